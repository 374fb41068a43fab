"""Flavor extra specs: /flavors/{id}/os-extra_specs[/{key}] and their validation from 2.86.

Reads are for everyone who can see the flavor (PROJECT_READER_OR_ADMIN); writes are for admins.
From 2.86 a key in a namespace nova knows must be one of nova's extra specs and its value must
meet that spec's rule; keys in other namespaces, or without one, pass.  The table of specs
(``extra_specs.json``) is restated from nova's validators by tools/extra_specs_table.py; the
standard resource classes and traits come from the same packages nova takes them from.
"""
from __future__ import annotations

import json
import os
import re

import orjson

from fastnova.api import errors
from fastnova.commands import common as cmd, runtime
from fastnova.commands.schemas import _obj, _wrap
from fastnova.commands.validation import by_minor
from fastnova.resources import common as C, flavors as F

RULE = "os_compute_api:os-flavor-extra-specs:%s"
_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$"
_SPECS = {"type": "object",
          "patternProperties": {_KEY: {"type": ["string", "number"], "maxLength": 255}},
          "additionalProperties": False}
CREATE = by_minor([(0, 255, _wrap("extra_specs", _SPECS))])
UPDATE = by_minor([(0, 255, dict(_SPECS, minProperties=1, maxProperties=1))])


class _Spec:
    __slots__ = ("name", "regex", "value")

    def __init__(self, name, regex, value):
        self.name, self.regex, self.value = name, re.compile(regex), value


def _load():
    path = os.path.join(os.path.dirname(__file__), "extra_specs.json")
    with open(path) as f:
        table = json.load(f)
    import os_resource_classes
    import os_traits
    standard = {"__STANDARD_RC__": "|".join(map(re.escape, os_resource_classes.STANDARDS)),
                "__STANDARD_TRAIT__": "|".join(map(re.escape, os_traits.get_traits()))}
    exact, patterns, namespaces = {}, [], set()
    for entry in table:
        name, regex = entry["name"], entry["name"]
        for param in entry["parameters"]:
            regex = regex.replace("{%s}" % param["name"], "(%s)" % param["pattern"])
        for marker, alternation in standard.items():
            if marker in regex:
                regex = regex.replace(marker, "(%s)" % alternation)
                name = name.replace(marker, "{name}")
        spec = _Spec(name, regex, entry["value"])
        if entry["parameters"] or name != entry["name"]:
            patterns.append(spec)
        else:
            exact[name] = spec
        if ":" in regex:
            namespaces.add(re.compile(regex.split(":", 1)[0]))
    return exact, patterns, namespaces


_TABLE = None


def validate(name: str, value: str):
    """nova's extra spec validation (2.86): a 400 with its message, or nothing."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _load()
    exact, patterns, namespaces = _TABLE
    spec = exact.get(name)
    if spec is None:
        spec = next((s for s in patterns if s.regex.fullmatch(name)), None)
    if spec is not None:
        return _check_value(spec, value)
    if ":" not in name:
        return
    prefix = name.split(":", 1)[0]
    if any(ns.fullmatch(prefix) for ns in namespaces):
        raise errors.bad_request("Validation failed; extra spec '%s' does not appear to be a "
                                 "valid extra spec." % name)


_TRUE = ("1", "t", "true", "on", "y", "yes")
_FALSE = ("0", "f", "false", "off", "n", "no")


def _check_value(spec: _Spec, value: str):
    rule = spec.value
    kind = rule["type"]
    if kind == "int":
        try:
            number = int(value)
        except ValueError:
            _fail("'%s' is not a valid integer value." % value)
        if "max" in rule and rule["max"] < number:
            _fail("'%s' is greater than the max value of '%s'." % (value, rule["max"]))
        if "min" in rule and rule["min"] > number:
            _fail("'%s' is less than the min value of '%s'." % (value, rule["min"]))
    elif kind == "bool":
        if str(value).strip().lower() not in _TRUE + _FALSE:
            _fail("'%s' is not a valid boolean-like value." % value)
    elif "pattern" in rule:
        if not re.fullmatch(rule["pattern"], value):
            _fail("'%s' is not of the format '%s'." % (value, rule["pattern"]))
    elif "enum" in rule and value not in rule["enum"]:
        _fail("'%s' is not one of: %s." % (value, ", ".join(str(x) for x in rule["enum"])))


def _fail(text: str):
    raise errors.bad_request("Validation failed; " + text)


def _check_values(specs: dict, minor: int):
    for name, value in specs.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
            if len(value) > 255:
                raise errors.bad_request("extra_specs value has more than 255 characters.")
        if minor >= 86:
            validate(name, value)


# -- handlers --------------------------------------------------------------------------------

async def index(app, req, ctx, minor, args, links):
    C.reject_unknown(C.query(req), (), minor, since=102)
    frec = F.visible_flavor(app, ctx, args[0])
    return 200, orjson.dumps({"extra_specs": frec.get("extra_specs") or {}})


async def show(app, req, ctx, minor, args, links):
    C.reject_unknown(C.query(req), (), minor, since=102)
    fid, key = args
    specs = F.visible_flavor(app, ctx, fid).get("extra_specs") or {}
    if key not in specs:
        raise _no_key(fid, key)
    return 200, orjson.dumps({key: specs[key]})


def _no_key(fid, key):
    return errors.not_found("Flavor %s has no extra specs with key %s." % (fid, key))


async def create(app, req, ctx, minor, args, links):
    C.require_admin(ctx, RULE % "create")
    body = cmd.parse_body(req)
    CREATE[minor].check(body)
    specs = body["extra_specs"]
    _check_values(specs, minor)
    await F.change_flavor(app, ctx, args[0], lambda f: f.update(
        extra_specs=dict(f.get("extra_specs") or {}, **_strings(specs))))
    return 200, orjson.dumps(body)


async def update(app, req, ctx, minor, args, links):
    C.require_admin(ctx, RULE % "update")
    fid, key = args
    body = cmd.parse_body(req)
    UPDATE[minor].check(body)
    _check_values(body, minor)
    if key not in body:
        raise errors.bad_request("Request body and URI mismatch")
    await F.change_flavor(app, ctx, fid, lambda f: f.update(
        extra_specs=dict(f.get("extra_specs") or {}, **_strings(body))))
    return 200, orjson.dumps(body)


async def delete(app, req, ctx, minor, args, links):
    C.require_admin(ctx, RULE % "delete")
    fid, key = args

    def drop(frec):
        specs = dict(frec.get("extra_specs") or {})
        if key not in specs:
            raise _no_key(fid, key)
        del specs[key]
        frec["extra_specs"] = specs
    await F.change_flavor(app, ctx, fid, drop)
    return 200, b""


def _strings(specs: dict) -> dict:
    """nova stores extra spec values as strings (the column is a string)."""
    return {k: v if isinstance(v, str) else str(v) for k, v in specs.items()}


del runtime
