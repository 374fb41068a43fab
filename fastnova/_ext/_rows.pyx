# cython: language_level=3
"""Compiled twins of the rest of the feed's write-time work: a server's index entries (twin of
fastnova.store.writer.index_entries_pure) and its query row (twin of fastnova.query.row's
``build_pure`` and ``micros_pure``).  Split from _render.pyx (the view parts and their blob);
tests/unit/test_writer_incremental.py and tests/unit/test_query_property.py hold each to its twin.

The key formats are fastnova/store/layout.py's (``ix_key``, ``changed_key``, ``name_key``, which
the pure twin calls); ``index_entries`` concatenates the same bytes in one copy each, and the twin
test holds it to them byte for byte.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_GET_LENGTH
from libc.string cimport memcpy

from fastnova._ext._untrack cimport (PyUnicode_1BYTE_DATA, PyUnicode_IS_ASCII, _pair,
                                     _untracked)


# -- index entries -----------------------------------------------------------------------------

from fastnova.store import layout as _L

cdef bytes _DB_INDEX = _L.DB_INDEX
cdef bytes _DB_BY_CHANGED = _L.DB_BY_CHANGED
cdef bytes _DB_BY_NAME = _L.DB_BY_NAME
cdef bytes _PART_LIVE = _L.PART_LIVE
cdef bytes _PART_DELETED = _L.PART_DELETED
cdef bytes _PART_STATE = _L.PART_STATE
cdef bytes _PART_TAG = _L.PART_TAG
cdef bytes _ALL_SCOPE = _L.ALL_SCOPE
cdef Py_ssize_t _NAME_KEY_MAX = _L.NAME_KEY_MAX
_name_collate = _L.name_collate


cdef inline int _num(const unsigned char* s, int n) noexcept:
    """The value of n ASCII digits, or -1."""
    cdef int v = 0, i, digit
    for i in range(n):
        digit = <unsigned char>s[i] - 48      # '0'
        if digit < 0 or digit > 9:
            return -1
        v = v * 10 + digit
    return v


cdef inline long long _days_from_civil(long long y, int m, int d) noexcept:
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    cdef long long era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline int _month_days(int y, int m) noexcept:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m == 4 or m == 6 or m == 9 or m == 11 else 31


cdef bint _canonical_micros(object value, long long* out) except -1:
    """Microseconds since the epoch of a canonical time from 1970 on, read here; False for
    anything else (fastnova.query.row.micros reads those)."""
    cdef const unsigned char* s
    cdef int y, mo, d, h, mi, se, us
    if type(value) is not str or PyUnicode_GET_LENGTH(value) != 26 or not PyUnicode_IS_ASCII(value):
        return False
    s = PyUnicode_1BYTE_DATA(value)
    if not (s[4] == 45 and s[7] == 45 and s[10] == 84 and s[13] == 58     # - - T :
            and s[16] == 58 and s[19] == 46):                              # : .
        return False
    y, mo, d = _num(s, 4), _num(s + 5, 2), _num(s + 8, 2)
    h, mi, se, us = _num(s + 11, 2), _num(s + 14, 2), _num(s + 17, 2), _num(s + 20, 6)
    if not (y >= 1970 and 1 <= mo <= 12 and 1 <= d <= _month_days(y, mo) and 0 <= h < 24
            and 0 <= mi < 60 and 0 <= se < 60 and us >= 0):
        return False
    out[0] = (_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) * 1000000 + us
    return True


cdef object _micros(object value):
    """fastnova.query.row.micros."""
    cdef long long micros
    if _canonical_micros(value, &micros):
        return micros
    from fastnova.query.row import micros_pure
    return micros_pure(value)


cdef bytes _micros8(object value):
    """``micros_bytes(micros(value))`` (fastnova.store.layout, fastnova.query.row)."""
    cdef long long micros
    cdef char out[8]
    cdef int i
    if _canonical_micros(value, &micros):
        for i in range(8):
            out[7 - i] = <char>((micros >> (8 * i)) & 0xff)
        return PyBytes_FromStringAndSize(out, 8)
    return _micros(value).to_bytes(8, "big")


cdef bytes _cat(bytes a, bytes b, bytes c, bytes d, bytes e):
    """a + b + c + d + e in one allocation (an index key; a third of index_entries' time was
    the chains of concatenations, callgrind)."""
    cdef Py_ssize_t na = len(a), nb = len(b), nc = len(c), nd = len(d), ne = len(e)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, na + nb + nc + nd + ne)
    cdef char* p = PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(a), na)
    memcpy(p + na, PyBytes_AS_STRING(b), nb)
    memcpy(p + na + nb, PyBytes_AS_STRING(c), nc)
    memcpy(p + na + nb + nc, PyBytes_AS_STRING(d), nd)
    memcpy(p + na + nb + nc + nd, PyBytes_AS_STRING(e), ne)
    return out


def index_entries(dict rec):
    """Twin of fastnova.store.writer.index_entries_pure: every index entry of a record,
    {(db name, key): (value, count key or None)}."""
    cdef bytes uuid = rec["id"].encode()
    cdef object created_at = rec["created_at"]
    cdef bytes created = _micros8(created_at)
    cdef bytes updated = _micros8(rec.get("updated_at") or created_at)
    cdef bytes vm_state = (rec.get("vm_state") or "").encode()
    cdef bint deleted = bool(rec.get("deleted"))
    cdef list parts
    cdef bytes state, scope, prefix, part, name = None
    cdef dict out = {}
    if deleted:
        parts = [_PART_DELETED]
    else:
        parts = [_PART_LIVE, _PART_STATE + vm_state]
        tags = rec.get("tags")
        if tags:
            for tag in sorted({t.lower().encode() for t in tags}):
                parts.append(_PART_TAG + tag)
        name = _name_collate(rec.get("name")).encode()[:_NAME_KEY_MAX]
    state = _cat(b"d" if deleted else b"l", created, vm_state, b"", b"")
    for scope in (_ALL_SCOPE, rec["project_id"].encode()):
        for part in parts:
            prefix = _cat(scope, b"\x00", part, b"\x00", b"")
            out[_pair(_DB_INDEX, _cat(prefix, created, uuid, b"", b""))] = _pair(updated, prefix)
        out[_pair(_DB_BY_CHANGED, _cat(scope, b"\x00", updated, uuid, b""))] = _pair(state, None)
        if name is not None:
            out[_pair(_DB_BY_NAME, _cat(scope, b"\x00", name, b"\x00", uuid))] = \
                _pair(vm_state, None)
    return _untracked(out)


# -- the query row -----------------------------------------------------------------------------

# fastnova.query.row._COPIED, in its order (the row's keys are in the order the twin adds them).
cdef tuple _COPIED = (
    "project_id", "user_id", "host", "node", "vm_state", "task_state", "power_state",
    "launched_at", "terminated_at", "created_at", "availability_zone", "key_name",
    "config_drive", "locked", "hostname", "reservation_id", "launch_index", "kernel_id",
    "ramdisk_id", "root_device_name", "progress", "deleted", "seq")


def micros(value):
    """Twin of fastnova.query.row.micros_pure."""
    return _micros(value)


def build_row(dict rec):
    """Twin of fastnova.query.row.build_pure: the query row of a normalized record."""
    cdef dict row = {}
    cdef list ips4 = [], ips6 = []
    for key in _COPIED:
        row[key] = rec.get(key)
    row["uuid"] = rec["id"]
    row["display_name"] = rec.get("name")
    row["display_description"] = rec.get("description")
    image = rec.get("image")
    row["image_ref"] = image.get("id", "") if image else ""
    row["instance_type_id"] = str((rec.get("flavor") or {}).get("id", ""))
    updated = rec.get("updated_at") or rec["created_at"]
    row["updated_at"] = updated
    row["access_ip_v4"] = rec.get("access_ip_v4") or None
    row["access_ip_v6"] = rec.get("access_ip_v6") or None
    row["auto_disk_config"] = rec.get("disk_config") == "AUTO"
    row["locked_by"] = rec.get("locked_by")
    row["tags"] = [] if rec.get("deleted") else list(rec.get("tags") or ())
    addresses = rec.get("addresses")
    if addresses:
        for addrs in addresses.values():
            for addr in addrs:
                if addr.get("type", "fixed") != "fixed" or not addr.get("addr"):
                    continue
                (ips6 if addr.get("version") == 6 else ips4).append(addr["addr"])
    row["ips4"] = ips4
    row["ips6"] = ips6
    row["ca"] = _micros(rec["created_at"])
    row["ua"] = _micros(updated)
    return row
