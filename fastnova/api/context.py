"""Who is asking: the request context identity middleware builds, as nova's context sees it.

Two schemes make one: ``noauth`` (old nova's noauth2, for tests and demos: ``X-Auth-Token:
USER:PROJECT``, PROJECT defaulting to USER, trusted as given, which is why serve logs a warning)
and keystone (fastnova.auth.authtoken: a token validated by keystone).  noauth's user "admin"
has the admin role; everyone else is a member; keystone's implied roles are added (admin implies
member, member implies reader), as keystone puts them in a token.

Every decision that depends on the caller goes through ``ctx.can`` / ``ctx.authorize``: nova's
policy (fastnova.auth.policy), memoised per (rule, credentials, target).  ``is_admin`` is nova's
``context.is_admin``: the ``context_is_admin`` rule, evaluated once per context.
"""
from __future__ import annotations

import math

from fastnova.api.errors import unauthorized

FOREVER = math.inf
_IMPLIED = {"admin": ("admin", "member", "reader"), "member": ("member", "reader")}


class Context:
    __slots__ = ("user_id", "project_id", "roles", "system_scope", "domain_id",
                 "user_domain_id", "project_domain_id", "is_admin_project", "until",
                 "policy", "creds_key", "is_admin", "_show_ok", "_admin_view", "user_name",
                 "project_name", "_rules")

    def __init__(self, user_id: str, project_id: str | None, is_admin: bool | None = None,
                 roles=None, system_scope: str | None = None, domain_id: str | None = None,
                 user_domain_id: str | None = None, project_domain_id: str | None = None,
                 is_admin_project: bool = True, until: float = FOREVER, policy=None,
                 user_name: str | None = None, project_name: str | None = None):
        if roles is None:           # the old constructor: (user, project, is_admin)
            roles = _IMPLIED["admin" if is_admin else "member"]
        self.user_id = user_id
        self.project_id = project_id
        self.user_name = user_name
        self.project_name = project_name
        self.roles = tuple(sorted({r.lower() for r in roles}))
        self.system_scope = system_scope
        self.domain_id = domain_id
        self.user_domain_id = user_domain_id
        self.project_domain_id = project_domain_id
        self.is_admin_project = is_admin_project
        self.until = until          # Unix time after which this identity must be re-validated
        if policy is None:
            from fastnova.auth.policy import default
            policy = default()
        self.policy = policy
        self._show_ok = self._admin_view = None
        self._rules = {}            # rule -> answer for the caller's own project (the usual ask)
        self.is_admin = False
        self.creds_key = self._key()
        self.is_admin = policy.is_admin(self)
        self.creds_key = self._key()

    def _key(self):
        return (self.user_id, self.project_id, self.roles, self.system_scope, self.domain_id,
                self.user_domain_id, self.project_domain_id, self.is_admin_project,
                self.is_admin)

    def creds(self) -> dict:
        """What oslo.policy sees: oslo.context's policy values plus nova's is_admin."""
        return {"user_id": self.user_id, "project_id": self.project_id,
                "roles": list(self.roles), "system_scope": self.system_scope,
                "domain_id": self.domain_id, "user_domain_id": self.user_domain_id,
                "project_domain_id": self.project_domain_id,
                "is_admin_project": self.is_admin_project, "is_admin": self.is_admin,
                "service_user_id": None, "service_user_domain_id": None,
                "service_project_id": None, "service_project_domain_id": None,
                "service_roles": []}

    def can(self, rule: str, project_id: str | None = None, user_id: str | None = None) -> bool:
        if project_id is None and user_id is None:
            hit = self._rules.get(rule)
            if hit is None:
                hit = self._rules[rule] = self.policy.allowed(rule, self)
            return hit
        return self.policy.allowed(rule, self, project_id, user_id)

    def authorize(self, rule: str, project_id: str | None = None,
                  user_id: str | None = None) -> None:
        """nova's ``context.can(rule, target)``: 403 with nova's body when not allowed."""
        if not self.can(rule, project_id, user_id):
            from fastnova.auth.policy import forbidden
            raise forbidden(rule)

    # What the compiled show fast path asks once per caller (fastnova/_ext/_fastpath.pyx).
    @property
    def show_ok(self) -> bool:
        if self._show_ok is None:
            self._show_ok = self.can("os_compute_api:servers:show")
        return self._show_ok

    @property
    def admin_view(self) -> bool:
        """Whether documents carry the admin-only fields (OS-EXT-SRV-ATTR:*, host_status…)."""
        if self._admin_view is None:
            self._admin_view = self.can("os_compute_api:os-extended-server-attributes")
        return self._admin_view


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@")


def noauth(token: str | None, policy=None) -> Context:
    if not token:
        raise unauthorized()
    user, _sep, project = token.partition(":")
    project = project or user
    if not user or not set(user) <= _SAFE or not set(project) <= _SAFE:
        raise unauthorized()
    return Context(user, project, roles=_IMPLIED["admin" if user == "admin" else "member"],
                   policy=policy)
