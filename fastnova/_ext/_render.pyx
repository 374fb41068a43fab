# cython: language_level=3
"""Compiled twin of rendering a server's view parts (the feed's write-time work; packing them
into the view blob is fastnova/_ext/_pack.pyx, index entries and the query row
fastnova/_ext/_rows.pyx).
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_GET_LENGTH
from libc.string cimport memcpy

from fastnova._ext._untrack cimport PyUnicode_1BYTE_DATA, PyUnicode_IS_ASCII, _untracked


# -- rendering parts ---------------------------------------------------------------------------
#
# Twin of the parts of fastnova.views.servers (``render_parts_pure``, ``_render_some_pure``):
# the same tuples of (gate, raw, bytes), the same gate objects (fastnova.views.gates).  A create
# renders all fifteen parts; in Python that was a third of a create's time (profiled), most of it
# building dicts for orjson, slicing its output and calling small functions.  Here each chunk is
# written into one buffer: strings that need no escaping (printable ASCII without a quote or a
# backslash, nearly all of them), None, booleans, 64-bit ints and empty containers by hand,
# everything else by orjson, as the twin does.  tests/unit/test_writer_incremental.py compares the
# two over random records.

from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdio cimport snprintf

import hashlib as _hashlib

import orjson as _orjson

from fastnova.views import gates as _G
from fastnova.views.status import STATE_MAP as _STATE_MAP, fault_doc as _fault_doc_shared

_dumps = _orjson.dumps
_sha224 = _hashlib.sha224

cdef tuple G_IDENTITY = _G.G_IDENTITY, G_CORE = _G.G_CORE, G_ADMIN = _G.G_ADMIN
cdef tuple G_MEMBER = _G.G_MEMBER, G_ADMIN_2_3 = _G.G_ADMIN_2_3
cdef tuple G_HOSTNAME_2_90 = _G.G_HOSTNAME_2_90, G_HOST_STATUS = _G.G_HOST_STATUS
cdef tuple G_FLAVOR_OLD = _G.G_FLAVOR_OLD, G_FLAVOR_NEW = _G.G_FLAVOR_NEW
cdef tuple G_IMAGE_OLD = _G.G_IMAGE_OLD, G_IMAGE_NEW = _G.G_IMAGE_NEW
cdef tuple G_VOLUMES_OLD = _G.G_VOLUMES_OLD, G_VOLUMES_NEW = _G.G_VOLUMES_NEW
cdef tuple G_2_9 = _G.G_2_9, G_2_19 = _G.G_2_19, G_2_26 = _G.G_2_26, G_2_63 = _G.G_2_63
cdef tuple G_2_71_SHOW = _G.G_2_71_SHOW, G_2_73 = _G.G_2_73, G_2_96 = _G.G_2_96
cdef tuple G_2_100 = _G.G_2_100
cdef object RAW = _G.RAW, MEMBERS = _G.MEMBERS
cdef frozenset PROGRESS_STATUSES = _G.PROGRESS_STATUSES, FAULT_STATUSES = _G.FAULT_STATUSES
cdef dict _UNKNOWN = {"default": "UNKNOWN"}
cdef tuple _NONE = ()


cdef class _Buf:
    """A growing byte buffer; ``take`` returns what was written and starts again."""
    cdef char* data
    cdef Py_ssize_t n, cap

    def __cinit__(self):
        self.cap = 2048
        self.n = 0
        self.data = <char*>PyMem_Malloc(self.cap)
        if self.data == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.data)

    cdef int _grow(self, Py_ssize_t k) except -1:
        cdef Py_ssize_t cap = self.cap
        cdef char* data
        while cap < self.n + k:
            cap *= 2
        data = <char*>PyMem_Realloc(self.data, cap)
        if data == NULL:
            raise MemoryError()
        self.data, self.cap = data, cap
        return 0

    cdef inline int add(self, const char* s, Py_ssize_t k) except -1:
        if self.n + k > self.cap:
            self._grow(k)
        memcpy(self.data + self.n, s, k)
        self.n += k
        return 0

    cdef inline int bytes_(self, bytes b) except -1:
        return self.add(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    cdef int json(self, object v) except -1:
        """orjson.dumps(v), written here when it is simple."""
        cdef long long n
        cdef int overflow = 0, k
        cdef char digits[24]
        cdef type t
        if v is None:
            return self.add("null", 4)
        if v is True:
            return self.add("true", 4)
        if v is False:
            return self.add("false", 5)
        t = type(v)
        if t is str:
            if self.plain(v, True):
                return 0
        elif t is int:
            n = PyLong_AsLongLongAndOverflow(v, &overflow)
            if not overflow:
                k = snprintf(digits, sizeof(digits), "%lld", n)
                return self.add(digits, k)
        elif t is dict:
            if not <dict>v:
                return self.add("{}", 2)
        elif t is list:
            if not <list>v:
                return self.add("[]", 2)
        return self.bytes_(_dumps(v))

    cdef int plain(self, str s, bint quoted) except -1:
        """Write ``s`` as JSON string text (in quotes or not) if no character needs escaping;
        False (nothing written) if one does, or if it is not ASCII."""
        cdef Py_ssize_t i, k
        cdef const unsigned char* p
        cdef unsigned char c
        if not PyUnicode_IS_ASCII(s):
            return False
        p = PyUnicode_1BYTE_DATA(s)
        k = PyUnicode_GET_LENGTH(s)
        for i in range(k):
            c = p[i]
            if c < 0x20 or c == 34 or c == 92:         # control, '"', '\'
                return False
        if self.n + k + 2 > self.cap:
            self._grow(k + 2)
        if quoted:
            self.data[self.n] = b'"'
            self.n += 1
        memcpy(self.data + self.n, p, k)
        self.n += k
        if quoted:
            self.data[self.n] = b'"'
            self.n += 1
        return True

    cdef int text(self, str s) except -1:
        """``s`` JSON-escaped, without its quotes."""
        cdef bytes b
        if not self.plain(s, False):
            b = _dumps(s)
            self.add(PyBytes_AS_STRING(b) + 1, PyBytes_GET_SIZE(b) - 2)
        return 0

    cdef inline int member(self, bytes key, object value) except -1:
        self.bytes_(key)
        return self.json(value)

    cdef inline bytes take(self):
        cdef bytes out = PyBytes_FromStringAndSize(self.data, self.n)
        self.n = 0
        return out


cdef object _status(dict rec):
    """fastnova.views.status.record_status."""
    cdef object task_map
    if rec.get("deleted"):
        return "DELETED"
    task_map = _STATE_MAP.get(rec.get("vm_state"), _UNKNOWN)
    return task_map.get(rec.get("task_state"), task_map["default"])


cdef inline object _isotime(object value):
    """fastnova.record.isotime."""
    if value is None:
        return None
    return value[:19] + "Z"


cdef int _bookmark_links(_Buf b, bytes path, str ident) except -1:
    """fastnova.views.links.bookmark_links: [{"href": MARK_ROOT + path + ident, ...}]."""
    b.bytes_(b'[{"href":"\x01')
    b.bytes_(path)
    b.text(ident)
    return b.bytes_(b'","rel":"bookmark"}]')


cdef tuple _identity(_Buf b, dict rec):
    sid = rec["id"]
    ident = sid if type(sid) is str else str(sid)
    b.member(b'"id":', sid)
    b.member(b',"name":', rec["name"])
    b.bytes_(b',"links":[{"href":"\x02/servers/')
    b.text(ident)
    b.bytes_(b'","rel":"self"},{"href":"\x01/servers/')
    b.text(ident)
    b.bytes_(b'","rel":"bookmark"}]')
    return ((G_IDENTITY, RAW, b.take()),)


cdef tuple _access(_Buf b, dict rec):
    b.member(b'"accessIPv4":', rec["access_ip_v4"] or "")
    b.member(b',"accessIPv6":', rec["access_ip_v6"] or "")
    return ((G_CORE, MEMBERS, b.take()),)


cdef tuple _addresses(_Buf b, dict rec):
    cdef dict out = {}
    cdef list ordered
    # nova hides addresses while the server is building.
    if not rec["vm_state"] == "building":
        for label, addrs in rec["addresses"].items():
            # nova lists a network's fixed IPs first, then its floating IPs.
            ordered = sorted(addrs, key=_floating)
            out[label] = [{
                "version": a.get("version"),
                "addr": a.get("addr"),
                "OS-EXT-IPS:type": a.get("type"),
                "OS-EXT-IPS-MAC:mac_addr": a.get("mac"),
            } for a in ordered]
    b.member(b'"addresses":', out)
    return ((G_CORE, MEMBERS, b.take()),)


def _floating(a):
    return a.get("type") == "floating"


cdef tuple _placement(_Buf b, dict rec):
    project_id, host = rec["project_id"], rec["host"]
    b.member(b'"created":', _isotime(rec["created_at"]))
    b.member(b',"hostId":',
             _sha224((project_id + host).encode("utf-8")).hexdigest() if host else "")
    b.member(b',"metadata":', rec["metadata"] or {})
    return ((G_CORE, MEMBERS, b.take()),)


cdef tuple _state(_Buf b, dict rec, object status):
    b.member(b'"status":', status)
    b.member(b',"tenant_id":', rec["project_id"] or "")
    b.member(b',"user_id":', rec["user_id"] or "")
    b.member(b',"updated":', _isotime(rec["updated_at"] or rec["created_at"]))
    b.member(b',"OS-DCF:diskConfig":', rec["disk_config"])
    b.member(b',"OS-EXT-AZ:availability_zone":', rec["availability_zone"] or "")
    b.member(b',"config_drive":', rec["config_drive"])
    b.member(b',"key_name":', rec["key_name"])
    b.member(b',"OS-SRV-USG:launched_at":', rec["launched_at"])
    b.member(b',"OS-SRV-USG:terminated_at":', rec["terminated_at"])
    b.member(b',"OS-EXT-STS:task_state":', rec["task_state"])
    b.member(b',"OS-EXT-STS:vm_state":', rec["vm_state"])
    b.member(b',"OS-EXT-STS:power_state":', rec["power_state"])
    return ((G_CORE, MEMBERS, b.take()),)


cdef tuple _progress(_Buf b, dict rec, object status):
    if status not in PROGRESS_STATUSES:
        return _NONE
    b.member(b'"progress":', rec["progress"])
    return ((G_CORE, MEMBERS, b.take()),)


cdef tuple _security_groups(_Buf b, dict rec):
    cdef bint first = True
    groups = rec["security_groups"]
    # nova only sets the key when neutron reports at least one group for the server's ports.
    if not groups:
        return _NONE
    b.bytes_(b'"security_groups":[')
    for name in groups:
        b.bytes_(b'{"name":' if first else b',{"name":')
        b.json(name)
        b.bytes_(b"}")
        first = False
    b.bytes_(b"]")
    return ((G_CORE, MEMBERS, b.take()),)


cdef tuple _flavor(_Buf b, dict rec):
    flavor = rec["flavor"]
    fid = str(flavor["id"])
    b.member(b'"flavor":{"id":', fid)
    b.bytes_(b',"links":')
    _bookmark_links(b, b"/flavors/", fid)
    b.bytes_(b"}")
    old = b.take()
    # 2.47 embeds the instance's own flavor copy; extra_specs goes to project readers and
    # admins alike (servers:show:flavor-extra-specs is PROJECT_READER_OR_ADMIN).
    b.member(b'"flavor":{"vcpus":', flavor["vcpus"])
    b.member(b',"ram":', flavor["ram"])
    b.member(b',"disk":', flavor["disk"])
    b.member(b',"ephemeral":', flavor["ephemeral"])
    b.member(b',"swap":', flavor["swap"])
    b.member(b',"original_name":', flavor["name"])
    b.member(b',"extra_specs":', flavor["extra_specs"] or {})
    b.bytes_(b"}")
    return ((G_FLAVOR_OLD, RAW, old), (G_FLAVOR_NEW, RAW, b.take()))


cdef tuple _image(_Buf b, dict rec):
    cdef bytes head
    image = rec["image"]
    if not image or not image.get("id"):
        # Booted from volume: nova shows an empty string, not null or {}.
        b.bytes_(b'"image":""')
        return ((G_CORE, MEMBERS, b.take()),)
    iid = str(image["id"])
    b.member(b'"image":{"id":', iid)
    b.bytes_(b',"links":')
    _bookmark_links(b, b"/images/", iid)
    head = b.take()
    # nova drops None-valued properties.
    props = {k: v for k, v in (image.get("properties") or {}).items() if v is not None}
    b.bytes_(head)
    b.bytes_(b"}")
    old = b.take()
    b.bytes_(head)
    b.member(b',"properties":', props)
    b.bytes_(b"}")
    return ((G_IMAGE_OLD, RAW, old), (G_IMAGE_NEW, RAW, b.take()))


cdef tuple _volumes(_Buf b, dict rec):
    cdef list vols = [v for v in rec["volumes_attached"] if v.get("id")]
    cdef bytes old
    b.bytes_(b'"os-extended-volumes:volumes_attached":[')
    for i, v in enumerate(vols):
        b.member(b'{"id":' if i == 0 else b',{"id":', v["id"])
        b.bytes_(b"}")
    b.bytes_(b"]")
    old = b.take()
    b.bytes_(b'"os-extended-volumes:volumes_attached":[')
    for i, v in enumerate(vols):
        b.member(b'{"id":' if i == 0 else b',{"id":', v["id"])
        b.member(b',"delete_on_termination":', bool(v.get("delete_on_termination")))
        b.bytes_(b"}")
    b.bytes_(b"]")
    return ((G_VOLUMES_OLD, RAW, old), (G_VOLUMES_NEW, RAW, b.take()))


cdef tuple _fault(_Buf b, dict rec, object status):
    fault = rec["fault"]
    if not fault or status not in FAULT_STATUSES:
        return _NONE
    # nova shows details to admins always, to others only when the code is not 500.
    has_details = bool(fault.get("details"))
    if not has_details or fault.get("code") != 500:
        return ((G_CORE, MEMBERS, b'"fault":' + _dumps(_fault_doc_shared(fault, has_details))),)
    return ((G_ADMIN, MEMBERS, b'"fault":' + _dumps(_fault_doc_shared(fault, True))),
            (G_MEMBER, MEMBERS, b'"fault":' + _dumps(_fault_doc_shared(fault, False))))


cdef tuple _ext_host(_Buf b, dict rec):
    b.member(b'"OS-EXT-SRV-ATTR:host":', rec["host"])
    b.member(b',"OS-EXT-SRV-ATTR:instance_name":', rec["instance_name"])
    b.member(b',"OS-EXT-SRV-ATTR:hypervisor_hostname":', rec["node"])
    return ((G_ADMIN, MEMBERS, b.take()),)


cdef tuple _ext_2_3(_Buf b, dict rec):
    hostname = rec["hostname"]
    b.member(b'"OS-EXT-SRV-ATTR:reservation_id":', rec["reservation_id"])
    b.member(b',"OS-EXT-SRV-ATTR:launch_index":', rec["launch_index"])
    b.member(b',"OS-EXT-SRV-ATTR:kernel_id":', rec["kernel_id"])
    b.member(b',"OS-EXT-SRV-ATTR:ramdisk_id":', rec["ramdisk_id"])
    b.member(b',"OS-EXT-SRV-ATTR:root_device_name":', rec["root_device_name"])
    b.member(b',"OS-EXT-SRV-ATTR:user_data":', rec["user_data"])
    b.member(b',"OS-EXT-SRV-ATTR:hostname":', hostname)
    admin = b.take()
    b.member(b'"OS-EXT-SRV-ATTR:hostname":', hostname)
    return ((G_ADMIN_2_3, MEMBERS, admin), (G_HOSTNAME_2_90, MEMBERS, b.take()))


cdef tuple _host_status(_Buf b, dict rec):
    b.member(b'"host_status":', rec["host_status"])
    return ((G_HOST_STATUS, MEMBERS, b.take()),)


cdef inline tuple _one(_Buf b, tuple gate, bytes key, object value):
    b.member(key, value)
    return (gate, MEMBERS, b.take())


cdef tuple _later(_Buf b, dict rec):
    return (
        _one(b, G_2_9, b'"locked":', bool(rec["locked"])),
        _one(b, G_2_19, b'"description":', rec["description"]),
        _one(b, G_2_26, b'"tags":', rec["tags"] or []),
        _one(b, G_2_63, b'"trusted_image_certificates":', rec["trusted_image_certificates"]),
        _one(b, G_2_71_SHOW, b'"server_groups":', rec["server_groups"] or []),
        _one(b, G_2_73, b'"locked_reason":', rec["locked_reason"]),
        _one(b, G_2_96, b'"pinned_availability_zone":', rec["pinned_availability_zone"]),
        _one(b, G_2_100, b'"scheduler_hints":', rec["scheduler_hints"]),
    )


cdef enum:
    NPARTS = 15
    # The parts that read the status (fastnova.views.servers.PARTS).
    P_STATE = 4
    P_FAULT = 7
    P_PROGRESS = 8


cdef tuple _render_part(_Buf b, int i, dict rec, object status):
    """Part ``i`` of fastnova.views.servers.PARTS."""
    if i == 0:
        return _identity(b, rec)
    if i == 1:
        return _access(b, rec)
    if i == 2:
        return _addresses(b, rec)
    if i == 3:
        return _placement(b, rec)
    if i == 4:
        return _state(b, rec, status)
    if i == 5:
        return _flavor(b, rec)
    if i == 6:
        return _image(b, rec)
    if i == 7:
        return _fault(b, rec, status)
    if i == 8:
        return _progress(b, rec, status)
    if i == 9:
        return _security_groups(b, rec)
    if i == 10:
        return _ext_host(b, rec)
    if i == 11:
        return _ext_2_3(b, rec)
    if i == 12:
        return _volumes(b, rec)
    if i == 13:
        return _host_status(b, rec)
    if i == 14:
        return _later(b, rec)
    raise IndexError("no part %d" % i)


def render_parts(dict rec):
    """Every part of a normalized record; twin of fastnova.views.servers.render_parts_pure."""
    cdef _Buf b = _Buf()
    cdef object status = _status(rec)
    cdef tuple out = PyTuple_New(NPARTS)
    cdef int i
    cdef tuple part
    for i in range(NPARTS):
        part = _part(b, i, rec, status)
        Py_INCREF(part)
        PyTuple_SET_ITEM(out, i, part)
    return _untracked(out)


cdef tuple _part(_Buf b, int i, dict rec, object status):
    """Part ``i`` of fastnova.views.servers.PARTS, its chunks and itself untracked."""
    cdef tuple part = _render_part(b, i, rec, status)
    for chunk in part:
        _untracked(chunk)
    return _untracked(part)


def render_some(tuple parts, dict rec, tuple stale):
    """``parts`` with the parts at the indexes ``stale`` rendered again from ``rec``; twin of
    fastnova.views.servers.render_some_pure."""
    cdef _Buf b = _Buf()
    cdef list out = list(parts)
    cdef object status = None
    cdef Py_ssize_t i
    cdef bint need_status = False
    for i in stale:
        if i == P_STATE or i == P_FAULT or i == P_PROGRESS:
            need_status = True
    if need_status:
        status = _status(rec)
    for i in stale:
        out[i] = _part(b, i, rec, status)
    return _untracked(tuple(out))
