"""Build the compiled hot path in fastnova/_ext/.

Cython runs at build time (it is pinned in pyproject.toml's build-system); the generated C and the
.so files are never committed.  Switches, as environment variables:

  FASTNOVA_CYTHON_ANNOTATE=1   write the annotated HTML next to each .pyx (where Python is touched)
  FASTNOVA_CYTHON_DEBUG=1      build with -O0 -g and Cython's line tracing, for gdb and profilers
  FASTNOVA_NO_EXT=1            build nothing: the pure-Python twins are used (slower, same answers)
"""
import glob
import os

from setuptools import setup

ext_modules = []
if os.environ.get("FASTNOVA_NO_EXT") != "1":
    from Cython.Build import cythonize
    from setuptools import Extension

    debug = os.environ.get("FASTNOVA_CYTHON_DEBUG") == "1"
    cflags = ["-O0", "-g"] if debug else ["-O2"]
    macros = [("CYTHON_TRACE_NOGIL", "1")] if debug else []
    sources = sorted(glob.glob(os.path.join("fastnova", "_ext", "*.pyx")))
    extensions = [
        Extension(
            "fastnova._ext." + os.path.splitext(os.path.basename(src))[0],
            [src],
            extra_compile_args=cflags,
            define_macros=macros,
        )
        for src in sources
    ]
    ext_modules = cythonize(
        extensions,
        annotate=os.environ.get("FASTNOVA_CYTHON_ANNOTATE") == "1",
        compiler_directives={
            "language_level": "3",
            "embedsignature": True,
            "linetrace": debug,
        },
    )

setup(ext_modules=ext_modules, package_data={"fastnova._ext": ["*.pxd", "*.pyi"]})
