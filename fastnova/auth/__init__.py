"""Identity and policy: keystone token validation (authtoken), nova's policy (policy).

See docs/auth.md.  ``build(options)`` is what a worker calls at boot.
"""
from __future__ import annotations


def build(options):
    """(Policy, authenticate) for a worker, from serve's options (plain values)."""
    from fastnova.api.context import noauth
    from fastnova.auth.policy import Policy
    policy = Policy(getattr(options, "policy_file", None))
    if getattr(options, "auth", "noauth") == "keystone":
        from fastnova.auth.authtoken import KeystoneAuth
        return policy, KeystoneAuth(options.authtoken, options.data_dir, policy)
    return policy, noauth
