"""nova 34's default policy for what fastnova serves: rule names, check strings, scope types.

These are facts read from nova/policies/*.py (base.py, servers.py, server_metadata.py,
server_tags.py, limits.py, lock_server.py, pause_server.py, suspend_server.py,
extended_server_attributes.py, flavor_access.py, server_groups.py); nova itself never enters the workers.  An
operator's policy.yaml overrides any of them, in oslo.policy's rule language.
"""
from __future__ import annotations

PROJECT = ("project",)

# The base rules nova registers (no scope types).
BASE = (
    ("context_is_admin", "role:admin", None),
    ("admin_or_owner", "is_admin:True or project_id:%(project_id)s", None),
    ("admin_api", "is_admin:True", None),
    ("project_manager_api", "role:manager and project_id:%(project_id)s", None),
    ("project_member_api", "role:member and project_id:%(project_id)s", None),
    ("project_reader_api", "role:reader and project_id:%(project_id)s", None),
    ("project_manager_or_admin", "rule:project_manager_api or rule:context_is_admin", None),
    ("project_member_or_admin", "rule:project_member_api or rule:context_is_admin", None),
    ("project_reader_or_admin", "rule:project_reader_api or rule:context_is_admin", None),
)

_READER = "rule:project_reader_or_admin"
_MEMBER = "rule:project_member_or_admin"
_ADMIN = "rule:context_is_admin"

COMPUTE = tuple((name, check, PROJECT) for name, check in (
    ("os_compute_api:servers:index", _READER),
    ("os_compute_api:servers:detail", _READER),
    ("os_compute_api:servers:index:get_all_tenants", _ADMIN),
    ("os_compute_api:servers:detail:get_all_tenants", _ADMIN),
    ("os_compute_api:servers:allow_all_filters", _ADMIN),
    ("os_compute_api:servers:show", _READER),
    ("os_compute_api:servers:show:flavor-extra-specs", _READER),
    ("os_compute_api:servers:show:host_status", _ADMIN),
    ("os_compute_api:servers:show:host_status:unknown-only", _ADMIN),
    ("os_compute_api:servers:create", _MEMBER),
    ("os_compute_api:servers:create:forced_host", _ADMIN),
    ("os_compute_api:servers:create:attach_volume", _MEMBER),
    ("os_compute_api:servers:create:attach_network", _MEMBER),
    ("os_compute_api:servers:create:trusted_certs", _MEMBER),
    ("os_compute_api:servers:create:zero_disk_flavor", _ADMIN),
    ("os_compute_api:servers:delete", _MEMBER),
    ("os_compute_api:servers:update", _MEMBER),
    ("os_compute_api:servers:confirm_resize", _MEMBER),
    ("os_compute_api:servers:revert_resize", _MEMBER),
    ("os_compute_api:servers:reboot", _MEMBER),
    ("os_compute_api:servers:resize", _MEMBER),
    ("os_compute_api:servers:rebuild", _MEMBER),
    ("os_compute_api:servers:rebuild:trusted_certs", _MEMBER),
    ("os_compute_api:servers:create_image", _MEMBER),
    ("os_compute_api:servers:create_image:allow_volume_backed", _MEMBER),
    ("os_compute_api:servers:start", _MEMBER),
    ("os_compute_api:servers:stop", _MEMBER),
    ("os_compute_api:os-extended-server-attributes", _ADMIN),
    ("os_compute_api:os-lock-server:lock", _MEMBER),
    ("os_compute_api:os-lock-server:unlock", _MEMBER),
    ("os_compute_api:os-lock-server:unlock:unlock_override", _ADMIN),
    ("os_compute_api:os-pause-server:pause", _MEMBER),
    ("os_compute_api:os-pause-server:unpause", _MEMBER),
    ("os_compute_api:os-suspend-server:suspend", _MEMBER),
    ("os_compute_api:os-suspend-server:resume", _MEMBER),
    ("os_compute_api:os-flavor-access", _ADMIN),
    ("os_compute_api:server-metadata:index", _READER),
    ("os_compute_api:server-metadata:show", _READER),
    ("os_compute_api:server-metadata:create", _MEMBER),
    ("os_compute_api:server-metadata:update_all", _MEMBER),
    ("os_compute_api:server-metadata:update", _MEMBER),
    ("os_compute_api:server-metadata:delete", _MEMBER),
    ("os_compute_api:os-server-tags:index", _READER),
    ("os_compute_api:os-server-tags:show", _READER),
    ("os_compute_api:os-server-tags:update", _MEMBER),
    ("os_compute_api:os-server-tags:update_all", _MEMBER),
    ("os_compute_api:os-server-tags:delete", _MEMBER),
    ("os_compute_api:os-server-tags:delete_all", _MEMBER),
    ("os_compute_api:limits", "@"),
    # nova/policies/console_output.py
    ("os_compute_api:os-console-output", _MEMBER),
    # nova/policies/server_groups.py
    ("os_compute_api:os-server-groups:create", _MEMBER),
    ("os_compute_api:os-server-groups:delete", _MEMBER),
    ("os_compute_api:os-server-groups:index", _READER),
    ("os_compute_api:os-server-groups:index:all_projects", _ADMIN),
    ("os_compute_api:os-server-groups:show", _READER),
    ("os_compute_api:limits:other_project", _ADMIN),
))

ALL = BASE + COMPUTE

# A server action (the body's one key) -> the rule nova checks for it.
ACTIONS = {
    "os-start": "os_compute_api:servers:start",
    "os-stop": "os_compute_api:servers:stop",
    "reboot": "os_compute_api:servers:reboot",
    "resize": "os_compute_api:servers:resize",
    "confirmResize": "os_compute_api:servers:confirm_resize",
    "revertResize": "os_compute_api:servers:revert_resize",
    "rebuild": "os_compute_api:servers:rebuild",
    "createImage": "os_compute_api:servers:create_image",
    "lock": "os_compute_api:os-lock-server:lock",
    "unlock": "os_compute_api:os-lock-server:unlock",
    "pause": "os_compute_api:os-pause-server:pause",
    "unpause": "os_compute_api:os-pause-server:unpause",
    "suspend": "os_compute_api:os-suspend-server:suspend",
    "resume": "os_compute_api:os-suspend-server:resume",
}
