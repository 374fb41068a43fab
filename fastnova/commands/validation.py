"""Request-body validation as nova does it: JSON Schema 2020-12 with nova's format checks and
nova's ``badRequest`` wording.

nova validates with ``jsonschema`` (Draft 2020-12, plus ``minimum``/``maximum`` that also accept
numeric strings, plus its own formats); using the same library here gives the same first error and
the same message text for the same body.  The message nova builds from an error:

* a ``name`` format failure: "An invalid 'name' value was provided. The name must be: <reason>"
* an error with a path: "Invalid input for field/attribute <last path item>. Value: <value>.
  <jsonschema message>"
* an error at the top (e.g. a missing required key): the jsonschema message alone.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import sys
import unicodedata
import uuid as _uuid

import jsonschema
from jsonschema import exceptions as js_exc

from fastnova.api import errors

_CHECKER = jsonschema.FormatChecker()


class InvalidName(Exception):
    """Raised by the name formats; its text is nova's InvalidName message."""

    def __init__(self, reason: str):
        super().__init__("An invalid 'name' value was provided. The name must be: " + reason)


# nova's name ranges only cover code points below U+FFFF (its range builder stops there), so a
# character above it is never valid in a name; kept as nova behaves.
def _printable(ch: str, spaces: bool) -> bool:
    if ord(ch) >= 0xFFFF:
        return False
    cat = unicodedata.category(ch)
    if cat.startswith("C"):
        return False
    if cat.startswith("Z"):
        return spaces and cat == "Zs"
    return True


_NAME_REASON = "printable characters. Can not start or end with whitespace."
_NAME_WS_REASON = "printable characters with at least one non space character"


@_CHECKER.checks("name", raises=InvalidName)
def _check_name(value):
    if not isinstance(value, str):
        raise InvalidName(_NAME_REASON)
    if value and (not _printable(value[0], False) or not _printable(value[-1], False)):
        raise InvalidName(_NAME_REASON)
    if not all(_printable(ch, True) for ch in value):
        raise InvalidName(_NAME_REASON)
    return True


@_CHECKER.checks("name_with_leading_trailing_spaces", raises=InvalidName)
def _check_name_ws(value):
    if not isinstance(value, str) or not all(_printable(ch, True) for ch in value) \
            or not any(_printable(ch, False) for ch in value):
        raise InvalidName(_NAME_WS_REASON)
    return True


@_CHECKER.checks("description")
def _check_description(value):
    # nova spells this as a pattern of every printable range; the rule is the same.
    return not isinstance(value, str) or all(_printable(ch, True) for ch in value)


def is_uuid_like(value) -> bool:
    """oslo's ``is_uuid_like``: any spelling uuid.UUID accepts that normalizes to the same hex."""
    if not isinstance(value, str):
        return False
    try:
        parsed = _uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    plain = value.lower()
    for junk in ("urn:", "uuid:", "{", "}", "-"):
        plain = plain.replace(junk, "")
    return parsed.hex == plain


@_CHECKER.checks("uuid")
def _check_uuid(value):
    return not isinstance(value, str) or is_uuid_like(value)


@_CHECKER.checks("base64")
def _check_base64(value):
    # nova's check lets binascii errors escape (an unintended 500); a 400 is what it means.
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value.encode("utf-8"))
    except (binascii.Error, ValueError):
        return False
    return True


@_CHECKER.checks("ipv4")
def _check_ipv4(value):
    if not isinstance(value, str):
        return True
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


@_CHECKER.checks("ipv6")
def _check_ipv6(value):
    if not isinstance(value, str):
        return True
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _number(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None


_BASE = jsonschema.Draft202012Validator


def _minimum(validator, minimum, instance, schema):
    value = _number(instance)
    if value is not None:
        yield from _BASE.VALIDATORS["minimum"](validator, minimum, value, schema)


def _maximum(validator, maximum, instance, schema):
    value = _number(instance)
    if value is not None:
        yield from _BASE.VALIDATORS["maximum"](validator, maximum, value, schema)


_Validator = jsonschema.validators.extend(_BASE, {"minimum": _minimum, "maximum": _maximum})


# -- the fast yes ---------------------------------------------------------------------------
#
# jsonschema's iter_errors costs ~130 us for a plain POST /servers body (generic keyword
# dispatch, error generators): a tenth of a create's CPU.  Almost every body is valid, so each
# schema is also compiled into nested closures that only answer "valid?" with the same keyword
# semantics (jsonschema's own equality for enum/uniqueItems, the same format checker, the same
# re.search); when they say no, jsonschema runs and finds nova's first error as before.  A schema
# using a keyword the compiler does not know gets no fast path.

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or
    (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


class _Unknown(Exception):
    pass


def _fast(schema):
    """A predicate equal to jsonschema's validity for ``schema`` (raises _Unknown)."""
    if schema is True or schema == {}:
        return lambda v: True
    if schema is False:
        return lambda v: False
    checks = [_keyword(k, val, schema) for k, val in schema.items()]
    checks = [c for c in checks if c is not None]
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(c(v) for c in checks)


def _keyword(key, val, schema):
    from jsonschema._utils import equal, uniq
    import re
    if key == "type":
        tests = [_TYPES[t] for t in ([val] if isinstance(val, str) else val)]
        return lambda v: any(t(v) for t in tests)
    if key == "format":
        return lambda v: _CHECKER.conforms(v, val)
    if key in ("minLength", "maxLength"):
        low = key == "minLength"
        return lambda v: not isinstance(v, str) or (len(v) >= val if low else len(v) <= val)
    if key in ("minItems", "maxItems"):
        low = key == "minItems"
        return lambda v: not isinstance(v, list) or (len(v) >= val if low else len(v) <= val)
    if key in ("minProperties", "maxProperties"):
        low = key == "minProperties"
        return lambda v: not isinstance(v, dict) or (len(v) >= val if low else len(v) <= val)
    if key == "pattern":
        return lambda v: not isinstance(v, str) or re.search(val, v) is not None
    if key in ("minimum", "maximum"):
        low = key == "minimum"

        def bound(v):
            n = _number(v)
            return n is None or (n >= val if low else n <= val)
        return bound
    if key == "enum":
        return lambda v: any(equal(each, v) for each in val)
    if key == "uniqueItems":
        return (lambda v: not isinstance(v, list) or uniq(v)) if val else None
    if key == "required":
        return lambda v: not isinstance(v, dict) or all(k in v for k in val)
    if key == "items":
        item = _fast(val)
        return lambda v: not isinstance(v, list) or all(item(x) for x in v)
    if key == "oneOf":
        subs = [_fast(sub) for sub in val]
        return lambda v: sum(1 for sub in subs if sub(v)) == 1
    if key == "properties":
        props = [(name, _fast(sub)) for name, sub in val.items()]
        return lambda v: not isinstance(v, dict) or all(
            sub(v[name]) for name, sub in props if name in v)
    if key == "patternProperties":
        pats = [(re.compile(p), _fast(sub)) for p, sub in val.items()]
        return lambda v: not isinstance(v, dict) or all(
            sub(x) for p, sub in pats for k, x in v.items() if p.search(k))
    if key == "additionalProperties":
        known = schema.get("properties", {})
        joined = "|".join(schema.get("patternProperties", {}))
        extra = _fast(val)

        def additional(v):
            if not isinstance(v, dict):
                return True
            for k, x in v.items():
                if k in known or (joined and re.search(joined, k)):
                    continue
                if not extra(x):
                    return False
            return True
        return additional
    raise _Unknown(key)


class Schema:
    """One compiled request schema; ``check(body)`` raises nova's 400 on the first error."""

    __slots__ = ("validator", "valid")

    def __init__(self, schema: dict):
        self.validator = _Validator(schema, format_checker=_CHECKER)
        try:
            self.valid = _fast(schema)
        except _Unknown:
            self.valid = None

    def check(self, body):
        try:
            if self.valid is not None and self.valid(body):
                return
        except TypeError:      # a non-string key met a pattern: jsonschema says how
            pass
        except RecursionError:  # a deep value met enum/uniqueItems: jsonschema says how
            pass
        with _deep_room():
            try:
                error = next(self.validator.iter_errors(body), None)
                text = None if error is None else message(error)
            except TypeError as exc:   # a non-string key met a patternProperties regex
                raise errors.bad_request(str(exc)) from None
            except RecursionError:
                raise errors.bad_request(DEEP_MESSAGE) from None
        if text is not None:
            raise errors.bad_request(text)


# A body parses up to orjson's nesting limit (1,024).  jsonschema writes repr(instance) into its
# messages, and repr of a value nested ~1,000 deep passes the interpreter's default recursion
# limit (1,000 frames here; nova's Python 3.12+ counts C recursion apart, so its repr succeeds
# and it answers its ordinary 400 with that text).  Room for the deepest parsable body, raised
# only around validation; the C stack a repr level takes is a few hundred bytes.
_ROOM = 6000
DEEP_MESSAGE = "Malformed request body"


class _deep_room:
    __slots__ = ("saved",)

    def __enter__(self):
        self.saved = sys.getrecursionlimit()
        if self.saved < _ROOM:
            sys.setrecursionlimit(_ROOM)

    def __exit__(self, *exc):
        sys.setrecursionlimit(self.saved)
        return False


def message(error: js_exc.ValidationError) -> str:
    if isinstance(error.cause, InvalidName):
        return str(error.cause)
    if error.path:
        return "Invalid input for field/attribute %s. Value: %s. %s" % (
            error.path[-1], error.instance, error.message)
    return error.message


def by_minor(table: list[tuple[int, int, dict]]):
    """[(lo, hi, schema)] -> a lookup list indexed by the minor version (None: not validated)."""
    out = [None] * 256
    for lo, hi, schema in table:
        compiled = Schema(schema)
        for minor in range(lo, hi + 1):
            out[minor] = compiled
    return out


