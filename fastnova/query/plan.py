"""One page of a server list: choose an index, walk it, filter, stop at the page.

Streams.  Every index part is a *stream* of uuids that is a superset of the answer: the base part
of the deleted mode (``c`` live, ``d`` deleted, both for changes-since), the vm_state parts of a
status/vm_state filter, the part of one tag of ``tags=``, the union of the parts of
``tags-any=``, all within the request's scope (its project, or ``*``).  Their sizes are kept in
``ix_counts``, so choosing the smallest costs one lookup per part.  by_changed (updated_at) and
by_name (display_name) are streams ordered by those keys; a uuid list is a stream of its own.

Strategies, in order of preference:

1. Ordered walk, exact: a stream ordered by the primary sort key whose every other predicate is
   implied by the stream itself (e.g. default order + status=ACTIVE: the ``sactive`` part of
   the project).  Cost O(limit) index entries, no row parsed: the same as an unfiltered page.
   changes-since/before is checked on the ``ix`` values (updated_at) during such a walk; as it
   pays only when the changes are among the newest servers (the polling case), that walk is
   capped at ENUM_BUDGET entries before falling through to 2.
2. Enumerate: some stream holds at most ENUM_BUDGET entries (a rare tag, a recent
   changes-since, a uuid): parse and test each row, sort in memory, cut at the marker.
   Cost O(ENUM_BUDGET) row checks at most; a changes-since set in the default order with no
   other filter sorts on the by_changed values alone (no row parsed).
3. Ordered walk with checks: walk the ordered stream and test the other predicates on each
   row (one ~300-byte parse).  Cost O(limit / selectivity), bounded by the stream's size.
4. Otherwise (a sort key with no ordered index: host, vm_state, ...): enumerate the smallest
   stream whatever its size.  Cost O(M log M), M the smallest stream (at most the scope's
   servers) -- the documented price of sorting by an unindexed key.

Ties of the primary key are regrouped and ordered by the full sort order (uuid last), so pages
are exactly nova's order; a marker resumes strictly after the marker's sort values.
"""
from __future__ import annotations

import heapq

from fastnova.api import errors
from fastnova.query import filters as F
from fastnova.query.regex import MYSQL
from fastnova.query.sort import Order
from fastnova.store import layout as L

ENUM_BUDGET = 5000


class _Stream:
    """Index parts (or another source) and the predicates it makes redundant."""

    __slots__ = ("kind", "parts", "count", "implies", "minus")

    def __init__(self, kind, parts=(), count=0, implies=(), minus=None):
        self.kind, self.parts, self.count, self.implies = kind, list(parts), count, set(implies)
        self.minus = minus          # a part whose entries the walk skips (soft-deleted servers)


def page(reader, txn, spec) -> list[bytes]:
    """The uuids of one page of ``spec`` (a fastnova.query.params.Spec)."""
    marker = None
    if spec.marker is not None:
        marker = reader.qrow(txn, spec.marker.encode())
        if marker is None:
            raise errors.bad_request("marker [%s] not found" % spec.marker)
    if spec.empty or spec.limit <= 0:
        return []
    return _Run(reader, txn, spec, marker).page()


class _Run:
    def __init__(self, reader, txn, spec, marker):
        self.reader, self.txn, self.spec, self.marker = reader, txn, spec, marker
        self.order = Order(spec.order, spec.flavour)
        self.scope = L.ALL_SCOPE if spec.scope is None else spec.scope.encode()
        self.fold = L.name_collate if spec.flavour == MYSQL else (lambda v: v)
        # The project predicate is the scope of every index walk.
        self.scoped = {id(p) for p in spec.predicates
                       if isinstance(p, F.Exact) and p.field == "project_id"}

    # -- choosing ------------------------------------------------------------------------------

    def page(self) -> list[bytes]:
        field, desc = self.order.primary
        ordered = self._ordered_stream(field)
        if ordered is not None and not self._residual(ordered):
            if ordered.kind != "ix" or self.spec.changes is None:
                return self._walk(ordered, desc, [])
            # changes-since is checked on the index values during the walk; it pays when the
            # changes are among the newest servers (polling), so try it first with a cap.
            found = self._walk(ordered, desc, [], cap=ENUM_BUDGET)
            if found is not None:
                return found
        small = self._small_stream()
        if small is not None:
            return self._enumerate(small)
        if ordered is not None:
            return self._walk(ordered, desc, self._residual(ordered))
        return self._enumerate(min(self._ix_streams(), key=lambda s: s.count))

    def _residual(self, stream) -> list:
        skip = stream.implies | self.scoped
        return [p for p in self.spec.predicates if id(p) not in skip]

    def _count(self, parts) -> int:
        return sum(self.reader.part_count(self.txn, self.scope, p) for p in parts)

    def _ix_streams(self) -> list[_Stream]:
        spec = self.spec
        deleted = spec.deleted
        out = []
        if deleted is None:
            base = [L.PART_LIVE, L.PART_DELETED]
        elif deleted.deleted:
            base = [L.PART_DELETED] + ([L.PART_STATE + b"soft-delete"] if deleted.soft else [])
        else:
            base = [L.PART_LIVE]
        out.append(self._ix(base, set()))
        with_deleted = deleted is None or deleted.deleted
        if spec.vm_states is not None:
            parts = sorted({L.PART_STATE + self.fold(v).encode() for v in spec.vm_states})
            if with_deleted:
                parts.append(L.PART_DELETED)
            vm = [p for p in spec.predicates if isinstance(p, F.Exact) and p.field == "vm_state"]
            out.append(self._ix(parts, {id(vm[0])} if not with_deleted else set()))
        exact_tags = spec.flavour == MYSQL
        for mode, values in (("tags", spec.tags), ("tags-any", spec.tags_any)):
            if not values:
                continue
            pred = [p for p in spec.predicates if isinstance(p, F.Tags) and p.mode == mode][0]
            options = ([[t] for t in values] if mode == "tags" else [values])
            for tags in options:
                parts = sorted({L.PART_TAG + L.name_collate(t).encode() for t in tags})
                exact = exact_tags and (mode == "tags-any" or len(values) == 1)
                out.append(self._ix(parts, {id(pred)} if exact else set()))
        return out

    def _ix(self, parts, implies) -> _Stream:
        """A stream of ``ix`` parts.  Live parts (c, t*) hold soft-deleted servers, which nova
        hides unless soft_deleted is given: rather than parse every row to find them, the walk
        skips the entries of the scope's ``ssoft-delete`` part (a merge: O(entries of that part
        inside the page's range); none at all in the usual cloud without soft delete)."""
        stream = _Stream("ix", parts, self._count(parts), implies | self._base_implies(parts))
        if self.spec.changes is not None:
            stream.implies.add(id(self.spec.changes))      # checked on the ix values
        deleted = self.spec.deleted
        soft = L.PART_STATE + b"soft-delete"
        if (deleted is not None and not deleted.deleted and not deleted.soft
                and all(p[:1] in (L.PART_LIVE, L.PART_STATE, L.PART_TAG) for p in parts)):
            if soft not in parts and self._count([soft]) and any(
                    p[:1] != L.PART_STATE for p in parts):
                stream.minus = soft
            if soft not in parts:
                stream.implies.add(id(deleted))
        return stream

    def _base_implies(self, parts) -> set:
        """Whether walking ``parts`` already enforces the deleted/soft_deleted predicate."""
        deleted = self.spec.deleted
        if deleted is None:
            return set()
        live = all(p[:1] in (L.PART_LIVE, L.PART_STATE, L.PART_TAG) for p in parts)
        if deleted.deleted:
            ok = set(parts) <= {L.PART_DELETED, L.PART_STATE + b"soft-delete"}
        else:
            ok = live and deleted.soft   # not soft: see _ix (the soft-delete part is skipped)
        return {id(deleted)} if ok else set()

    def _ordered_stream(self, field):
        if field == "created_at":
            return min(self._ix_streams(), key=lambda s: s.count)
        implies = {id(self.spec.deleted)} if self.spec.deleted is not None else set()
        if field == "updated_at":
            if self.spec.changes is not None:
                implies.add(id(self.spec.changes))
            return _Stream("changed", implies=implies)
        deleted = self.spec.deleted
        if (field == "display_name" and self.spec.flavour == MYSQL and deleted is not None
                and not deleted.deleted):
            return _Stream("name", implies=implies)
        return None

    def _small_stream(self):
        best = None
        for stream in self._ix_streams():
            if stream.count <= ENUM_BUDGET and (best is None or stream.count < best.count):
                best = stream
        if self.spec.uuids is not None and len(self.spec.uuids) <= ENUM_BUDGET:
            return _Stream("uuids", count=len(self.spec.uuids))
        if self.spec.changes is not None and (best is None or best.count > 64):
            found = self._changed_range(ENUM_BUDGET + 1)
            if len(found) <= ENUM_BUDGET and (best is None or len(found) < best.count):
                return _Stream("changes", found, len(found))
        return best

    # -- enumerating ---------------------------------------------------------------------------

    def _changed_range(self, budget: int) -> list[tuple[bytes, bytes]]:
        """(uuid, by_changed value) of the scope's changes in the changes-since/before range."""
        changes = self.spec.changes
        prefix = L.changed_prefix(self.scope)
        start = L.micros_bytes(changes.since) if changes.since is not None else None
        out = []
        for key, value in self.reader.walk(self.txn, self.reader.by_changed, prefix, False,
                                           start):
            if changes.before is not None and L.key_micros(key) > changes.before:
                break
            out.append((L.key_uuid(key), value))
            if len(out) >= budget:
                break
        return out

    def _enumerate(self, stream) -> list[bytes]:
        if stream.kind == "changes":
            fast = self._changes_by_created(stream.parts)
            if fast is not None:
                return fast
            uuids = [uuid for uuid, _value in stream.parts]
        elif stream.kind == "uuids":
            uuids = [u.encode() for u in dict.fromkeys(self.spec.uuids)]
        else:
            uuids = [s[-L.UUID_LEN:] for p in stream.parts
                     for s, _v in self.reader.walk_part(self.txn, self.scope, p, False)]
        rows = []
        seen = set()
        for uuid in uuids:
            if uuid in seen:
                continue
            seen.add(uuid)
            row = self.reader.qrow(self.txn, uuid)
            if row is not None and self._match(row, self.spec.predicates):
                rows.append(row)
        return self._cut(self.order.sort(rows))

    def _changes_by_created(self, entries):
        """A changes-since set in the default order straight from by_changed values (state +
        created_at), when nothing else needs a row: None otherwise."""
        skip = {id(self.spec.changes), id(self.spec.deleted)} | self.scoped
        if any(id(p) not in skip for p in self.spec.predicates):
            return None
        keys = self.spec.order
        if [k for k, _d in keys] != ["created_at", "uuid"]:
            return None
        ok = _state_filter(self.spec.deleted)
        picked = [(v[1:1 + L.MICROS_LEN], u) for u, v in entries if ok(v)]
        (_k, created_dir), (_u, uuid_dir) = keys
        picked.sort(key=lambda e: e[1], reverse=uuid_dir == "desc")
        picked.sort(key=lambda e: e[0], reverse=created_dir == "desc")
        if self.marker is not None:
            mark = (L.micros_bytes(self.marker["ca"]), self.marker["uuid"].encode())
            picked = [e for e in picked if _after(e, mark, created_dir, uuid_dir)]
        return [u for _c, u in picked[:self.spec.limit]]

    def _match(self, row, predicates) -> bool:
        for pred in predicates:
            if not pred.test(row):
                return False
        return True

    def _cut(self, rows) -> list[bytes]:
        if self.marker is not None:
            rows = [r for r in rows if self.order.after(r, self.marker)]
        return [r["uuid"].encode() for r in rows[:self.spec.limit]]

    # -- walking -------------------------------------------------------------------------------

    def _walk(self, stream, desc: bool, residual, cap: int | None = None):
        """The page from an ordered walk; None when ``cap`` index entries did not fill it."""
        if (stream.kind == "ix" and len(stream.parts) == 1 and stream.minus is None
                and self.spec.changes is None and not residual and cap is None):
            return self._walk_part(stream.parts[0], desc)
        out: list[bytes] = []
        limit = self.spec.limit
        marker_group = self._marker_group(stream)
        self._examined, self._cap = 0, cap
        try:
            for group_key, uuids in self._groups(stream, desc):
                check_marker = marker_group is not None and group_key == marker_group
                if len(uuids) == 1 and not residual and not check_marker:
                    out.append(uuids[0])
                else:
                    rows = [r for r in (self.reader.qrow(self.txn, u) for u in uuids)
                            if r is not None and self._match(r, residual)]
                    if len(rows) > 1:
                        self.order.sort(rows)
                    if check_marker:
                        rows = [r for r in rows if self.order.after(r, self.marker)]
                    out.extend(r["uuid"].encode() for r in rows)
                if len(out) >= limit:
                    return out[:limit]
        except _CapReached:
            return None
        return out

    def _walk_part(self, part: bytes, desc: bool) -> list[bytes]:
        """``_walk`` of the commonest page (one index part in created_at order, no filter to
        check, no changes-since), without its generator chain: one loop over py-lmdb's key
        iterator.  Same groups of ties, same marker rule, same answer
        (tests/unit/test_query_property.py holds the pages of both walks to the brute-force
        answer)."""
        prefix = L.part_prefix(self.scope, part)
        cut = len(prefix)
        split = cut + L.MICROS_LEN
        limit = self.spec.limit
        marker_group = None if self.marker is None else L.micros_bytes(self.marker["ca"])
        out: list[bytes] = []
        group, members = None, []
        with self.txn.cursor(db=self.reader.index) as cur:
            keys = self.reader.position(cur, prefix, desc, marker_group, values=False)
            for key in keys if keys is not None else ():
                if not key.startswith(prefix):
                    break
                created = key[cut:split]
                if created == group:
                    members.append(key[split:])
                    continue
                if members:
                    if len(members) == 1 and group != marker_group:
                        out.append(members[0])
                    else:
                        self._add_group(out, members, group == marker_group)
                    if len(out) >= limit:
                        return out[:limit]
                group, members = created, [key[split:]]
        if members:
            self._add_group(out, members, group == marker_group)
        return out[:limit]

    def _add_group(self, out: list, uuids: list, check_marker: bool):
        """Append one group of servers created in the same microsecond, in the full order."""
        if len(uuids) == 1 and not check_marker:
            out.append(uuids[0])
            return
        rows = [r for r in (self.reader.qrow(self.txn, u) for u in uuids) if r is not None]
        if len(rows) > 1:
            self.order.sort(rows)
        if check_marker:
            rows = [r for r in rows if self.order.after(r, self.marker)]
        out.extend(r["uuid"].encode() for r in rows)

    def _marker_group(self, stream):
        if self.marker is None:
            return None
        if stream.kind == "ix":
            return L.micros_bytes(self.marker["ca"])
        if stream.kind == "changed":
            return L.micros_bytes(self.marker["ua"])
        return L.name_collate(self.marker.get("display_name")).encode()[:L.NAME_KEY_MAX]

    def _groups(self, stream, desc: bool):
        """(primary key bytes, [uuid, ...]) in order: entries that tie on the primary key."""
        group, members = None, []
        for key, uuid in self._entries(stream, desc):
            if key != group:
                if members:
                    yield group, members
                group, members = key, []
            if uuid not in members:       # tags-any: a server under two of the tags
                members.append(uuid)
        if members:
            yield group, members

    def _entries(self, stream, desc: bool):
        """(primary key bytes, uuid) of a stream in the primary order, from the marker on."""
        start = self._marker_group(stream)
        if stream.kind == "ix":
            walks = [self.reader.walk_part(self.txn, self.scope, p, desc, start)
                     for p in stream.parts]
            merged = walks[0] if len(walks) == 1 else heapq.merge(*walks, reverse=desc)
            if stream.minus is not None:
                merged = _minus(merged, self.reader.walk_part(self.txn, self.scope, stream.minus,
                                                              desc, start), desc)
            changes = self.spec.changes
            lo = changes.since if changes is not None and changes.since is not None else -1
            hi = changes.before if changes is not None and changes.before is not None \
                else 1 << 64
            cap = self._cap
            for suffix, value in merged:
                if cap is not None:
                    self._examined += 1
                    if self._examined > cap:
                        raise _CapReached()
                if changes is not None and not lo <= int.from_bytes(value, "big") <= hi:
                    continue
                yield suffix[:L.MICROS_LEN], suffix[L.MICROS_LEN:]
        elif stream.kind == "changed":
            yield from self._changed_entries(desc, start)
        else:
            yield from self._name_entries(desc, start)

    def _changed_entries(self, desc: bool, start):
        changes, state_ok = self.spec.changes, _state_filter(self.spec.deleted)
        lo = changes.since if changes is not None else None
        hi = changes.before if changes is not None else None
        if start is not None:
            mark = int.from_bytes(start, "big")
            lo, hi = (lo, mark if hi is None else min(hi, mark)) if desc else \
                     (mark if lo is None else max(lo, mark), hi)
        bound = L.micros_bytes(hi if desc else lo) if (hi if desc else lo) is not None else None
        prefix = L.changed_prefix(self.scope)
        for key, value in self.reader.walk(self.txn, self.reader.by_changed, prefix, desc, bound):
            micros = L.key_micros(key)
            if (lo is not None and micros < lo) or (hi is not None and micros > hi):
                if desc and lo is not None and micros < lo:
                    return
                if not desc and hi is not None and micros > hi:
                    return
                continue
            if state_ok(value):
                yield key[-L.UUID_LEN - L.MICROS_LEN:-L.UUID_LEN], L.key_uuid(key)

    def _name_entries(self, desc: bool, start):
        prefix = L.changed_prefix(self.scope)
        soft_ok = self.spec.deleted.soft
        bound = None if start is None else start + b"\x00"
        for key, value in self.reader.walk(self.txn, self.reader.by_name, prefix, desc, bound):
            if not soft_ok and value == b"soft-delete":
                continue
            yield key[len(prefix):-L.UUID_LEN - 1], L.key_uuid(key)


class _CapReached(Exception):
    pass


def _after(entry, mark, created_dir, uuid_dir) -> bool:
    if entry[0] != mark[0]:
        return entry[0] < mark[0] if created_dir == "desc" else entry[0] > mark[0]
    return entry[1] < mark[1] if uuid_dir == "desc" else entry[1] > mark[1]


def _minus(walk, skip, desc: bool):
    """The (suffix, value) entries of ``walk`` whose suffix is not in ``skip`` (same order)."""
    head = next(skip, (None, None))[0]
    for entry in walk:
        suffix = entry[0]
        while head is not None and (head > suffix if desc else head < suffix):
            head = next(skip, (None, None))[0]
        if head != suffix:
            yield entry


def _state_filter(deleted):
    """The deleted/soft_deleted predicate on a by_changed value (state, created_at, vm_state)."""
    if deleted is None:
        return lambda value: True
    cut = 1 + L.MICROS_LEN
    if deleted.deleted:
        soft = deleted.soft
        return lambda v: v[:1] == b"d" or (soft and v[cut:] == b"soft-delete")
    if deleted.soft:
        return lambda v: v[:1] == b"l"
    return lambda v: v[:1] == b"l" and v[cut:] != b"soft-delete"
