"""Who is asking: the request context that identity middleware would build.

``noauth`` is old nova's noauth2 scheme for tests and demos: ``X-Auth-Token: USER:PROJECT``
(PROJECT defaults to USER), admin when USER is ``admin``.  It trusts the client completely, which
is why serve logs a warning when it is on.  Keystone (a later issue) plugs in as another
``authenticate`` with the same result type.
"""
from __future__ import annotations

from fastnova.api.errors import unauthorized


class Context:
    __slots__ = ("user_id", "project_id", "is_admin")

    def __init__(self, user_id: str, project_id: str, is_admin: bool):
        self.user_id = user_id
        self.project_id = project_id
        self.is_admin = is_admin


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@")


def noauth(token: str | None) -> Context:
    if not token:
        raise unauthorized()
    user, _sep, project = token.partition(":")
    project = project or user
    if not user or not set(user) <= _SAFE or not set(project) <= _SAFE:
        raise unauthorized()
    return Context(user, project, user == "admin")
