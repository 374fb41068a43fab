"""serve's ``--keystone-*`` flags: keystonemiddleware's ``[keystone_authtoken]`` options one by
one, each overriding the section as the configuration files give it
(``fastnova.config.Settings.section("keystone_authtoken")``: a nova.conf works as it is)."""
from __future__ import annotations

from fastnova.auth.options import USED

# --keystone-<option> for every option fastnova uses.
FLAG_OPTIONS = tuple(o for o in USED if o != "auth_uri")


def with_flags(section: dict, args) -> dict[str, str]:
    """``[keystone_authtoken]`` from the files, overridden by the flags given."""
    out = dict(section)
    for name in FLAG_OPTIONS:
        value = getattr(args, "keystone_" + name, None)
        if value is not None:
            out[name] = value
    return out


def add_flags(parser) -> None:
    group = parser.add_argument_group("keystone (--auth keystone)",
                                      "keystonemiddleware's [keystone_authtoken] options; "
                                      "each overrides the --config-file value (docs/auth.md)")
    for name in FLAG_OPTIONS:
        group.add_argument("--keystone-" + name.replace("_", "-"), dest="keystone_" + name,
                           default=None, metavar="VALUE",
                           help="[keystone_authtoken] %s" % name)
