"""Where serve's auth options come from: ``--config-file`` INI sections, then ``--keystone-*``
and ``--policy-file`` flags (a flag wins over a file; a later file over an earlier one).

A nova.conf works as it is: its ``[keystone_authtoken]`` and ``[oslo_policy]`` sections are read
and the rest is left alone.  oslo.config's INI is read with configparser, without interpolation
and without configparser's habit of copying ``[DEFAULT]`` into every section.
"""
from __future__ import annotations

import configparser

from fastnova.auth.options import USED

# serve flags: --keystone-<option> for every option fastnova uses.
FLAG_OPTIONS = tuple(o for o in USED if o != "auth_uri")


def read_sections(paths) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser(strict=False, interpolation=None,
                                          default_section="\0no-default", delimiters=("=",))
    parser.optionxform = str
    for path in paths or ():
        with open(path) as f:
            parser.read_file(f, source=path)
    return {name: dict(parser.items(name)) for name in parser.sections()}


def authtoken_section(args) -> dict[str, str]:
    """``[keystone_authtoken]`` from the files, overridden by the flags given."""
    section = dict(read_sections(getattr(args, "config_file", None) or ())
                   .get("keystone_authtoken", {}))
    for name in FLAG_OPTIONS:
        value = getattr(args, "keystone_" + name, None)
        if value is not None:
            section[name] = value
    return section


def policy_file(args) -> str | None:
    """``--policy-file``, else ``[oslo_policy] policy_file`` of the files (None: defaults)."""
    if getattr(args, "policy_file", None):
        return args.policy_file
    section = read_sections(getattr(args, "config_file", None) or ()).get("oslo_policy", {})
    return section.get("policy_file") or None


def add_flags(parser) -> None:
    parser.add_argument("--policy-file", default=None, metavar="PATH",
                        help="an oslo.policy policy.yaml overriding nova's default rules "
                             "(default: [oslo_policy] policy_file of --config-file, else none)")
    group = parser.add_argument_group("keystone (--auth keystone)",
                                      "keystonemiddleware's [keystone_authtoken] options; "
                                      "each overrides the --config-file value")
    for name in FLAG_OPTIONS:
        group.add_argument("--keystone-" + name.replace("_", "-"), dest="keystone_" + name,
                           default=None, metavar="VALUE")
