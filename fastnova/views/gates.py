"""The gates of a server document's pieces (fastnova.store.layout): (min_minor, max_minor, mask).

Shared by the pure view code (fastnova.views.servers) and its compiled twin
(fastnova/_ext/_render.pyx, _pack.pyx), which hand out these very tuples: the packer finds a gate it has
seen by identity first.
"""
from __future__ import annotations

from fastnova.store.layout import (MAX_MINOR, ROLE_ADMIN, ROLE_MEMBER, VIEW_DETAIL, VIEW_INDEX,
                                   VIEW_SHOW)

# The legacy /v2 API (minor 0, if the router uses it) shows the 2.1 document: nova serves it
# from the same view code with no microversion feature enabled.
FIRST = 0
LAST = MAX_MINOR

ADMIN = ROLE_ADMIN
EVERYONE = ROLE_ADMIN | ROLE_MEMBER
FULL = VIEW_SHOW | VIEW_DETAIL
EVERY_VIEW = VIEW_SHOW | VIEW_DETAIL | VIEW_INDEX

G_IDENTITY = (FIRST, LAST, EVERYONE | EVERY_VIEW)
G_CORE = (FIRST, LAST, EVERYONE | FULL)
G_ADMIN = (FIRST, LAST, ADMIN | FULL)
G_MEMBER = (FIRST, LAST, ROLE_MEMBER | FULL)
G_ADMIN_2_3 = (3, LAST, ADMIN | FULL)
G_HOSTNAME_2_90 = (90, LAST, ROLE_MEMBER | FULL)
G_HOST_STATUS = (16, LAST, ADMIN | FULL)
G_FLAVOR_OLD, G_FLAVOR_NEW = (FIRST, 46, EVERYONE | FULL), (47, LAST, EVERYONE | FULL)
G_IMAGE_OLD, G_IMAGE_NEW = (FIRST, 97, EVERYONE | FULL), (98, LAST, EVERYONE | FULL)
G_VOLUMES_OLD, G_VOLUMES_NEW = (FIRST, 2, EVERYONE | FULL), (3, LAST, EVERYONE | FULL)


def _since(lo: int, views: int = FULL) -> tuple:
    return (lo, LAST, EVERYONE | views)


# Members added by later microversions.
G_2_9, G_2_19, G_2_26, G_2_63 = _since(9), _since(19), _since(26), _since(63)
# server_groups: GET /servers/{id} only, never in the detail list.
G_2_71_SHOW = _since(71, VIEW_SHOW)
G_2_73, G_2_96, G_2_100 = _since(73), _since(96), _since(100)

# A part's output is a tuple of (gate, raw, bytes); see fastnova.views.servers.
RAW, MEMBERS = True, False

# Statuses that carry "progress" and "fault" (nova's view builder).
PROGRESS_STATUSES = frozenset(
    ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"))
FAULT_STATUSES = frozenset(("ERROR", "DELETED"))
