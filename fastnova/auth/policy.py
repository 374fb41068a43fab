"""nova's policy, evaluated by oslo.policy itself, memoised so the hot path pays a dict lookup.

One door: every decision that depends on who asks (may this caller list, create, see admin
fields, filter by host, act on a locked server, …) goes through ``Policy.allowed``.  The rules
are nova 34's defaults (fastnova.auth.nova_rules) overridden by the operator's policy.yaml
(``--policy-file``, or ``[oslo_policy] policy_file``), in oslo.policy's own language and with
its scope checks.

A decision depends only on the rule, the caller's credentials and the target's project and
user; callers repeat, so each (rule, credentials, target) is evaluated by oslo.policy once and
then answered from a dict.  The memo is bounded (cleared when full, like the app's memos) and
emptied when the policy file changes (checked at most once a second, as oslo.policy would on
its own reload).
"""
from __future__ import annotations

import logging
import os
import time

from oslo_config import cfg
from oslo_policy import _checks, policy as oslo

from fastnova.api import errors
from fastnova.auth import nova_rules

LOG = logging.getLogger("fastnova.policy")
MEMO_SIZE = 65536
_NO_FILE = "/nonexistent/fastnova-no-policy-file.yaml"


class _IsAdmin(_checks.Check):
    """nova's ``is_admin:True|False`` check: compares the credentials' is_admin (which nova
    sets from the context_is_admin rule)."""

    def __call__(self, target, creds, enforcer, current_rule=None):
        return bool(creds.get("is_admin")) == (self.match.lower() == "true")


_checks.register("is_admin", _IsAdmin)


def forbidden(rule: str) -> errors.ApiError:
    """nova's PolicyNotAuthorized, as its fault body."""
    return errors.fault(403, "Policy doesn't allow %s to be performed." % rule)


class Policy:
    def __init__(self, policy_file: str | None = None):
        self.policy_file = os.path.abspath(policy_file) if policy_file else None
        conf = cfg.ConfigOpts()
        conf([], project="fastnova", default_config_files=[], default_config_dirs=[])
        # use_conf: oslo.policy only merges the registered defaults into its rules when it
        # loads from configuration; with no file it finds none and keeps the defaults.
        self.enforcer = oslo.Enforcer(conf, policy_file=self.policy_file or _NO_FILE,
                                      use_conf=True)
        self.enforcer.suppress_default_change_warnings = True
        self.enforcer.suppress_deprecation_warnings = True
        for name, check, scopes in nova_rules.ALL:
            self.enforcer.register_default(
                oslo.RuleDefault(name, check, scope_types=list(scopes) if scopes else None))
        if self.policy_file and not os.path.exists(self.policy_file):
            raise ValueError("policy file %s does not exist" % self.policy_file)
        self.enforcer.load_rules()
        self.memo = {}
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()

    def _file_stamp(self):
        if not self.policy_file:
            return None
        try:
            st = os.stat(self.policy_file)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload_if_changed(self) -> bool:
        """Called from the worker's tick: a changed policy.yaml takes effect within ~1 s.
        True when the rules changed (the caller forgets what it memoised from them)."""
        if not self.policy_file or time.monotonic() - self._checked < 1.0:
            return False
        self._checked = time.monotonic()
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.enforcer.load_rules(force_reload=True)
        except Exception:       # a broken file keeps the rules in force; say why
            LOG.exception("policy file %s could not be loaded", self.policy_file)
            return False
        self.memo = {}
        LOG.info("policy file %s reloaded", self.policy_file)
        return True

    def allowed(self, rule: str, ctx, target_project: str | None = None,
                target_user: str | None = None) -> bool:
        key = (rule, ctx.creds_key, target_project, target_user)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        target = {"project_id": ctx.project_id if target_project is None else target_project,
                  "user_id": ctx.user_id if target_user is None else target_user}
        try:
            result = bool(self.enforcer.enforce(rule, target, ctx.creds(), do_raise=False))
        except oslo.InvalidScope:
            result = False
        if len(self.memo) >= MEMO_SIZE:
            self.memo = {}
        self.memo[key] = result
        return result

    def is_admin(self, ctx) -> bool:
        """nova's context.is_admin: the context_is_admin rule with the caller as target."""
        return self.allowed("context_is_admin", ctx)


_DEFAULT = None


def default() -> Policy:
    """nova's defaults with no policy file (tests, tools, noauth without --policy-file)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Policy(None)
    return _DEFAULT
