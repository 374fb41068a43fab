"""nova's query-parameter schemas for flavors, limits and the show requests, checked as nova's
``validation.query_schema`` decorator checks them.

The query becomes webob's ``dict_of_lists`` (every value a list), is validated with jsonschema
(Draft 2020-12 with nova's minimum/maximum, fastnova.commands.validation) and the first error
is nova's 400: "Invalid input for query parameters <key>. Value: <value>. <message>", or the
bare message for one about the whole query ("Additional properties are not allowed ('x' was
unexpected)").  Where the schema allows other keys, nova strips them from the request
afterwards: ``check`` returns the keys that remain.

Sources: nova/api/openstack/compute/schemas/{flavors,limits,servers}.py and
nova/api/validation/__init__.py (query_schema, _strip_additional_query_parameters).
"""
from __future__ import annotations

import copy

from fastnova.api import errors
from fastnova.commands.validation import _CHECKER, _Validator


def _multi(item: dict) -> dict:
    return {"type": "array", "items": item}


_STRING = _multi({"type": "string"})
_NON_NEGATIVE = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0,
                 "minLength": 1}
FLAVOR_SORT_KEYS = ["created_at", "description", "disabled", "ephemeral_gb", "flavorid", "id",
                    "is_public", "memory_mb", "name", "root_gb", "rxtx_factor", "swap",
                    "updated_at", "vcpu_weight", "vcpus"]

_FLAVORS = {"type": "object", "properties": {
    "limit": _multi(_NON_NEGATIVE), "marker": _STRING, "is_public": _STRING,
    "minRam": _STRING, "minDisk": _STRING,
    "sort_key": _multi({"type": "string", "enum": FLAVOR_SORT_KEYS}),
    "sort_dir": _multi({"type": "string", "enum": ["asc", "desc"]})},
    "additionalProperties": True}
_FLAVORS_V275 = dict(_FLAVORS, additionalProperties=False)
_FLAVORS_V2102 = copy.deepcopy(_FLAVORS_V275)
_FLAVORS_V2102["properties"]["name"] = _STRING
_FLAVORS_V2102["properties"]["sort_key"]["items"]["enum"].remove("rxtx_factor")

_SHOW = {"type": "object", "properties": {}, "additionalProperties": True}
_SHOW_V2102 = dict(_SHOW, additionalProperties=False)

_LIMITS = {"type": "object", "properties": {"tenant_id": _STRING}, "additionalProperties": True}
_LIMITS_V275 = dict(_LIMITS, additionalProperties=False)


def _validators(schema: dict):
    return schema, _Validator(schema, format_checker=_CHECKER)


FLAVORS = [_validators(_FLAVORS), _validators(_FLAVORS_V275), _validators(_FLAVORS_V2102)]
SHOW = [_validators(_SHOW), _validators(_SHOW_V2102)]
LIMITS = [_validators(_LIMITS), _validators(_LIMITS_V275)]


def flavors_index(q, minor: int) -> list[str]:
    return check(q, FLAVORS[2 if minor >= 102 else 1 if minor >= 75 else 0])


def show(q, minor: int) -> list[str]:
    """Server show and flavor show (additional keys refused from 2.102)."""
    return check(q, SHOW[1 if minor >= 102 else 0])


def limits(q, minor: int) -> list[str]:
    return check(q, LIMITS[1 if minor >= 75 else 0])


def check(q, pair) -> list[str]:
    """Validate the query (a fastnova.api.query.Query); the keys nova leaves in the request."""
    schema, validator = pair
    instance = q.dict_of_lists()
    if not instance:
        return []
    error = next(validator.iter_errors(instance), None)
    if error is not None:
        if error.path:
            raise errors.bad_request("Invalid input for query parameters %s. Value: %s. %s"
                                     % (error.path[0], error.instance, error.message))
        raise errors.bad_request(error.message)
    known = schema["properties"]
    return [k for k in instance if k in known]
