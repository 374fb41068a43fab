"""GET /flavors, /flavors/detail and /flavors/{id}.

Visibility is nova's (objects/flavor.py _flavor_get_query_from_db and _flavor_get_all_from_db,
compute/flavors.py _get_flavors and _parse_is_public):
- show and the marker lookup: a member finds public flavors and those its project has access to;
  an admin finds every flavor, disabled or not;
- list: a member gets those, minus disabled ones; an admin gets public flavors (plus those its
  project has access to), disabled included, unless ``is_public`` says otherwise ("none": all,
  a strict boolean: that visibility, anything else: 400).
Order: ``sort_key`` (default flavorid) then nova's internal id, both in ``sort_dir`` (default
asc), as oslo.db's paginate_query orders them (fastnova.api.flavor_order); the marker is the
flavor before the page in that order.
"""
from __future__ import annotations

import orjson

from fastnova import _ext
from fastnova.api import errors, qschema
from fastnova.api.flavor_order import flavor_order
from fastnova.api.query import Query, limit_and_marker, next_link
from fastnova.query import regex as R
from fastnova.api.servers import role_bit
from fastnova.store import layout as L


KNOWN_PARAMS = frozenset(qschema.FLAVORS[2][0]["properties"])


def _findable(frec, ctx) -> bool:
    """Whether the flavor query (show, marker) finds it for this caller."""
    return ctx.is_admin or _public_or_shared(frec, ctx)


def _public_or_shared(frec, ctx) -> bool:
    return bool(frec.get("is_public", True)) or ctx.project_id in (frec.get("projects") or ())


def _list_filter(q, ctx):
    """The list's visibility test for this caller and query."""
    if not ctx.is_admin:
        return lambda f: _public_or_shared(f, ctx) and not f.get("disabled", False)
    value = q.last.get("is_public")
    if value is None:
        return lambda f: _public_or_shared(f, ctx)
    if value.lower() == "none":
        return lambda f: True
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true", "on", "y", "yes"):
        return lambda f: _public_or_shared(f, ctx)
    if lowered in ("0", "f", "false", "off", "n", "no"):
        return lambda f: not f.get("is_public", True)
    raise errors.bad_request("Invalid is_public filter [%s]" % value)


def show(app, req, ctx, minor, route, links) -> bytes:
    if req.query:
        qschema.show(Query(req.query), minor)
    fid = route.arg
    with app.reader.begin() as txn:
        blob = app.reader.flavor_blob(txn, fid.encode())
        if blob is not None and not _findable(app.reader.flavor_record(txn, fid.encode()), ctx):
            blob = None
        doc = None if blob is None else _ext.show_doc(
            blob, minor, role_bit(ctx) | L.VIEW_SHOW, None, links.root, links.vroot)
    if doc is None:
        raise errors.flavor_not_found(fid)
    return b'{"flavor":' + doc + b"}"


def listing(app, req, ctx, minor, route, links, detail: bool) -> bytes:
    q = Query(req.query)
    kept = qschema.flavors_index(q, minor)
    limit, marker = limit_and_marker(q, app.max_limit)
    view = L.VIEW_DETAIL if detail else L.VIEW_INDEX
    visible = _list_filter(q, ctx)
    wanted = _filters(q, minor, app.reader.db_flavour)
    with app.reader.begin() as txn:
        ids = app.reader.flavor_ids(txn)
        recs = [(fid, app.reader.flavor_record(txn, fid)) for fid in ids]
        order = flavor_order(q, app.reader.db_flavour, {fid: n for n, fid in enumerate(ids)})
        if order is not None:
            recs.sort(key=order[0], reverse=order[1])
        if marker is not None:
            key = marker.encode()
            at = next((n for n, (fid, _f) in enumerate(recs) if fid == key), None)
            if at is None or not _findable(recs[at][1], ctx):
                raise errors.bad_request("marker [%s] not found" % marker)
            recs = recs[at + 1:]
        picked = []
        for fid, frec in recs:
            if len(picked) >= limit:
                break
            if visible(frec) and all(test(frec) for test in wanted):
                picked.append(fid)
        blobs = [app.reader.flavor_blob(txn, fid) for fid in picked]
        body = _ext.page_docs(blobs, minor, role_bit(ctx) | view, links.root, links.vroot)
    out = [b'{"flavors":[', body, b"]"]
    if limit and len(picked) == limit:
        href = next_link(q, links.vroot_str, "flavors/detail" if detail else "flavors",
                         picked[-1].decode(), keep=frozenset(kept))
        out.append(b',"flavors_links":' + orjson.dumps([{"href": href, "rel": "next"}]))
    out.append(b"}")
    return b"".join(out)


def _filters(q, minor: int, flavour: str) -> list:
    """nova's _get_flavors filters: minRam/minDisk (Python's int() of the value, else 400) and,
    from 2.102, a name regular expression (the database's REGEXP)."""
    tests = []
    for param, field in (("minRam", "ram"), ("minDisk", "disk")):
        if param in q.last:
            try:
                bound = int(q.last[param])
            except ValueError:
                raise errors.bad_request("Invalid %s filter [%s]" % (param, q.last[param])) \
                    from None
            tests.append(lambda f, field=field, bound=bound: (f.get(field) or 0) >= bound)
    if minor >= 102 and "name" in q.last:
        tests.append(_name_test(q.last["name"], flavour))
    return tests


def _name_test(pattern: str, flavour: str):
    try:
        match = R.column_matcher(pattern, flavour)
    except R.UnsupportedPattern as exc:
        raise errors.bad_request("Invalid input for query parameters name. Value: %s. fastnova "
                                 "evaluates regular expressions in linear time and does not "
                                 "support this one (%s)." % (pattern, exc)) from None
    return lambda f: bool(match.test(f.get("name")))
