# cython: language_level=3
# Inline helpers shared by the compiled writers (_render, _rows); nothing here is a module.

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)
    const unsigned char* PyUnicode_1BYTE_DATA(object)
    void PyObject_GC_UnTrack(void*)


# The tuples (and index dicts) the compiled writers make hold only bytes, None, booleans and the gates' int
# tuples, so they can never be part of a reference cycle; they are taken off the cycle
# collector's lists when made (CPython itself untracks such tuples, but only when a collection
# first walks them).  The writer's render cache keeps ~70 of them per server: they were most
# of what the applier's collections walked (gc_collect_main, a sixth of its time, py-spy).
cdef inline object _untracked(object obj):
    PyObject_GC_UnTrack(<void*>obj)
    return obj


cdef inline tuple _pair(object a, object b):
    return _untracked((a, b))
