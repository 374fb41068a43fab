"""fastnova.auth without a keystone: option parsing, nova's policy through oslo.policy, the
503 bodies, the shared token cache.  (Validation against a real keystone:
tests/integration/test_keystone_auth.py.)"""
from __future__ import annotations

import json
import time

import pytest

from fastnova.api.context import Context, noauth
from fastnova.auth.authtoken import unavailable
from fastnova.auth.cache import SharedTokenCache, digest
from fastnova.auth.options import AuthtokenOptions
from fastnova.auth.policy import Policy, default

NOVA_CONF_SECTION = {
    "www_authenticate_uri": "http://ks.example:5000/v3", "auth_url": "http://ks.example:5000",
    "auth_type": "password", "project_domain_name": "Default", "user_domain_name": "Default",
    "project_name": "service", "username": "nova", "password": "secret",
    "memcached_servers": "127.0.0.1:11211", "service_token_roles_required": "True",
    "region_name": "RegionOne",
}


def test_a_nova_conf_section_parses_and_names_what_it_ignores():
    opts = AuthtokenOptions.from_section(NOVA_CONF_SECTION)
    assert opts.identity_url == "http://ks.example:5000/v3"
    assert opts.challenge_uri == "http://ks.example:5000/v3"
    assert opts.token_cache_time == 300 and opts.service_token_roles == ["service"]
    assert opts.service_token_roles_required is True and opts.region_name == "RegionOne"
    assert opts.ignored == ["memcached_servers"]


@pytest.mark.parametrize("bad", [{"auth_url": ""}, {"auth_type": "token"},
                                 {"token_cache_time": "soon"}, {"insecure": "maybe"}])
def test_bad_options_are_refused(bad):
    with pytest.raises(ValueError):
        AuthtokenOptions.from_section(dict(NOVA_CONF_SECTION, **bad))


def _ctx(roles, project="p1", system=None, policy=None):
    return Context("u1", project, roles=roles, system_scope=system, policy=policy)


@pytest.mark.parametrize("rule, reader, member, admin", [
    ("os_compute_api:servers:index", True, True, True),
    ("os_compute_api:servers:show", True, True, True),
    ("os_compute_api:servers:create", False, True, True),
    ("os_compute_api:servers:delete", False, True, True),
    ("os_compute_api:server-metadata:create", False, True, True),
    ("os_compute_api:os-server-tags:index", True, True, True),
    ("os_compute_api:servers:detail:get_all_tenants", False, False, True),
    ("os_compute_api:servers:allow_all_filters", False, False, True),
    ("os_compute_api:os-extended-server-attributes", False, False, True),
    ("os_compute_api:os-lock-server:unlock:unlock_override", False, False, True),
    ("os_compute_api:limits", True, True, True),
    ("os_compute_api:limits:other_project", False, False, True),
    ("os_compute_api:os-console-output", False, True, True),
    ("os_compute_api:os-server-groups:create", False, True, True),
    ("os_compute_api:os-server-groups:delete", False, True, True),
    ("os_compute_api:os-server-groups:index", True, True, True),
    ("os_compute_api:os-server-groups:show", True, True, True),
    ("os_compute_api:os-server-groups:index:all_projects", False, False, True),
])
def test_nova_defaults_by_role(rule, reader, member, admin):
    assert _ctx(["reader"]).can(rule) is reader
    assert _ctx(["member", "reader"]).can(rule) is member
    assert _ctx(["admin", "member", "reader"]).can(rule) is admin


def test_admin_is_the_context_is_admin_rule_and_scope_is_checked():
    assert _ctx(["admin"]).is_admin and not _ctx(["member"]).is_admin
    # another project's server: a member's project rule fails, an admin's passes
    assert not _ctx(["member"]).can("os_compute_api:servers:delete", "p2")
    assert _ctx(["admin"]).can("os_compute_api:servers:delete", "p2")
    # no project, no roles (an unscoped token): nothing
    assert not _ctx([], project=None).can("os_compute_api:servers:index")
    # a system-scoped admin: nova's server rules are project-scoped
    system = _ctx(["admin"], project=None, system="all")
    assert system.is_admin and not system.can("os_compute_api:servers:index")


def test_noauth_roles():
    assert noauth("admin:p1").is_admin and noauth("admin:p1").roles == ("admin", "member",
                                                                        "reader")
    assert not noauth("alice:p1").is_admin and noauth("alice:p1").can(
        "os_compute_api:servers:create")


def test_policy_file_overrides_and_reloads(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text('"os_compute_api:servers:create": "role:admin"\n')
    policy = Policy(str(path))
    member = _ctx(["member", "reader"], policy=policy)
    assert not member.can("os_compute_api:servers:create")
    assert member.can("os_compute_api:servers:delete")          # not named: nova's default
    with pytest.raises(Exception) as err:
        member.authorize("os_compute_api:servers:create")
    assert err.value.status == 403 and json.loads(err.value.body) == {"forbidden": {
        "code": 403,
        "message": "Policy doesn't allow os_compute_api:servers:create to be performed."}}
    path.write_text('"os_compute_api:servers:create": "@"\n"os_compute_api:servers:delete": "!"\n')
    policy._checked -= 5            # the next tick looks at the file
    time.sleep(0.01)
    assert policy.reload_if_changed()
    fresh = _ctx(["member", "reader"], policy=policy)
    assert fresh.can("os_compute_api:servers:create")
    assert not fresh.can("os_compute_api:servers:delete")


def test_a_missing_policy_file_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        Policy(str(tmp_path / "nope.yaml"))


def test_policy_answers_are_memoised():
    policy = default()
    ctx = _ctx(["member", "reader"])
    ctx.can("os_compute_api:servers:update", "p9")
    assert ("os_compute_api:servers:update", ctx.creds_key, "p9", None) in policy.memo


@pytest.mark.parametrize("accept, ctype, marker", [
    (None, b"text/plain; charset=UTF-8", b"503 Service Unavailable\n\n"),
    ("application/json", b"application/json", b'"title":"Service Unavailable"'),
    ("text/html", b"text/html; charset=UTF-8", b"<h1>503 Service Unavailable</h1>"),
])
def test_keystone_unavailable_bodies_follow_accept(accept, ctype, marker):
    err = unavailable(accept)
    assert err.status == 503 and err.content_type == ctype
    assert marker in err.body and b"The Keystone service is temporarily unavailable." in err.body


def test_shared_cache_entries_expire_and_claims_are_exclusive(tmp_path):
    cache = SharedTokenCache(str(tmp_path))
    key = digest("tok")
    assert key != digest("tok", allow_expired=True)
    assert cache.get(key) is None
    assert cache.claim(key, 30) and not cache.claim(key, 30)
    now = time.time()
    cache.put(key, now + 60, {"user_id": "u"})
    assert cache.get(key, now)[1] == {"user_id": "u"}
    assert cache.get(key, now + 61) is None
    assert cache.claim(key, 30)             # put released the claim
    cache.put(digest("bad"), now + 60, None)
    assert cache.get(digest("bad"), now) == (now + 60, None)
    assert cache.purge(now + 120) >= 2
    cache.close()
