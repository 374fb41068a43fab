"""nova 34's request-body schemas for the commands fastnova serves, per microversion.

Restated as data from nova's API reference and schema definitions (the contract, not the code):
each table maps a microversion range to the schema nova applies to it.  ``validation.by_minor``
compiles them once; a request pays one list index and one validation.
"""
from __future__ import annotations

from fastnova.commands.validation import by_minor

LAST = 255

# -- parameter types ---------------------------------------------------------------------------

NAME = {"type": "string", "format": "name", "minLength": 1, "maxLength": 255}
NAME_WS = {"type": "string", "format": "name_with_leading_trailing_spaces",
           "minLength": 1, "maxLength": 255}
NAME_OR_NONE = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 255},
                          {"type": "null"}]}
DESCRIPTION = {"type": ["string", "null"], "minLength": 0, "maxLength": 255,
               "format": "description"}
BOOLEAN = {"type": ["boolean", "string"],
           "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
                    False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No",
                    "no"]}
POSITIVE_INT = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1,
                "minLength": 1}
UUID = {"type": "string", "format": "uuid"}
IMAGE_OR_EMPTY = {"oneOf": [{"type": "string", "format": "uuid"},
                            {"type": "string", "maxLength": 0}]}
FLAVOR_REF = {"type": ["string", "integer"], "minLength": 1}
METADATA_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$"
METADATA = {"type": "object",
            "patternProperties": {METADATA_KEY: {"type": "string", "maxLength": 255}},
            "additionalProperties": False}
IP = {"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
IPV4 = {"type": "string", "format": "ipv4"}
IPV6 = {"type": "string", "format": "ipv6"}
DISK_CONFIG = {"type": "string", "enum": ["AUTO", "MANUAL"]}
TAG = {"type": "string", "pattern": "^[^,/]*$", "minLength": 1, "maxLength": 60}
MAX_TAGS = 50
HOSTNAME = {"type": "string", "pattern": "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$",
            "minLength": 2, "maxLength": 63}
FQDN = {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1, "maxLength": 255}
PERSONALITY = {"type": "array", "items": {
    "type": "object",
    "properties": {"path": {"type": "string"},
                   "contents": {"type": "string", "format": "base64"}},
    "additionalProperties": False}}
TRUSTED_CERTS = {"type": ["array", "null"], "minItems": 1, "maxItems": 50, "uniqueItems": True,
                 "items": {"type": "string", "minLength": 1}}
USER_DATA = {"type": "string", "format": "base64", "maxLength": 65535}
VOLUME_SIZE = {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1,
               "maximum": 0x7FFFFFFF}
ANY = {}


def _obj(props: dict, required=(), extra=False) -> dict:
    # Key order matters: jsonschema reports the first failing keyword in schema order, and
    # nova's schemas list "required" before "additionalProperties".
    out = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    out["additionalProperties"] = extra
    return out


def _wrap(key: str, inner: dict) -> dict:
    return _obj({key: inner}, required=[key])


# -- block device mappings ---------------------------------------------------------------------

_BDM_LEGACY = {
    "virtual_name": {"type": "string", "maxLength": 255},
    "volume_id": UUID,
    "snapshot_id": UUID,
    "volume_size": VOLUME_SIZE,
    "device_name": {"type": "string", "minLength": 1, "maxLength": 255,
                    "pattern": "^[a-zA-Z0-9._/-]*$"},
    "delete_on_termination": BOOLEAN,
    "no_device": {},
    "connection_info": {"type": "string", "maxLength": 16777215},
}
_BDM_V2 = dict(_BDM_LEGACY, **{
    "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
    "uuid": {"type": "string", "minLength": 1, "maxLength": 255,
             "pattern": "^[a-zA-Z0-9._-]*$"},
    "image_id": UUID,
    "destination_type": {"type": "string", "enum": ["local", "volume"]},
    "guest_format": {"type": "string", "maxLength": 255},
    "device_type": {"type": "string", "maxLength": 255},
    "disk_bus": {"type": "string", "maxLength": 255},
    "boot_index": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"},
})

_HINTS = {"type": "object", "additionalProperties": True, "properties": {
    "group": {"oneOf": [{"type": "array", "items": UUID}, UUID]},
    "different_host": {"oneOf": [UUID, {"type": "array", "items": UUID}]},
    "same_host": {"type": ["string", "array"], "items": UUID},
    "query": {"type": ["string", "object"]},
    "target_cell": NAME,
    "different_cell": {"type": ["string", "array"], "items": {"type": "string"}},
    "build_near_host_ip": IP,
    "cidr": {"type": "string", "pattern": "^/[0-9a-f.:]+$"},
}}


# -- POST /servers -----------------------------------------------------------------------------

def _create(minor: int) -> dict:
    """The create schema nova applies at ``minor`` (0 is the legacy v2 API)."""
    name = NAME_WS if minor == 0 else NAME
    net_item = {"fixed_ip": IP, "port": {"type": ["string", "null"], "format": "uuid"},
                "uuid": {"type": "string"}}
    bdm_v2 = dict(_BDM_V2)
    props = {
        "name": name, "imageRef": IMAGE_OR_EMPTY, "flavorRef": FLAVOR_REF,
        "adminPass": {"type": "string"}, "metadata": METADATA,
        "OS-DCF:diskConfig": DISK_CONFIG, "accessIPv4": IPV4, "accessIPv6": IPV6,
        "personality": PERSONALITY, "availability_zone": name,
        "block_device_mapping": {"type": "array", "items": _obj(_BDM_LEGACY)},
        "config_drive": BOOLEAN, "key_name": name,
        "min_count": POSITIVE_INT, "max_count": POSITIVE_INT,
        "return_reservation_id": BOOLEAN,
        "security_groups": {"type": "array", "items": _obj({"name": name})},
        "user_data": dict(USER_DATA, type=["string", "null"]) if minor == 0 else USER_DATA,
    }
    required = ["name", "flavorRef"]
    if minor >= 19:
        props["description"] = DESCRIPTION
    if minor == 32:
        bdm_v2["tag"] = TAG
    if minor >= 32:
        net_item["tag"] = TAG
    if minor >= 37:
        required.append("networks")
        item = {"fixed_ip": IP, "port": {"type": ["string", "null"], "format": "uuid"},
                "uuid": UUID}
        if minor >= 42:
            item["tag"] = TAG
        props["networks"] = {"oneOf": [{"type": "array", "items": _obj(item)},
                                       {"type": "string", "enum": ["none", "auto"]}]}
    else:
        props["networks"] = {"type": "array", "items": _obj(net_item)}
    if minor >= 42:
        bdm_v2["tag"] = TAG
    if minor >= 52:
        props["tags"] = {"type": "array", "items": TAG, "maxItems": MAX_TAGS}
    if minor >= 57:
        del props["personality"]
    if minor >= 63:
        props["trusted_image_certificates"] = TRUSTED_CERTS
    if minor >= 67:
        bdm_v2["volume_type"] = {"type": ["string", "null"], "minLength": 0, "maxLength": 255}
    if minor >= 74:
        props["host"] = FQDN
        props["hypervisor_hostname"] = FQDN
    if minor >= 90:
        props["hostname"] = FQDN if minor >= 94 else HOSTNAME
    props["block_device_mapping_v2"] = {"type": "array", "items": _obj(bdm_v2)}
    server = _obj(props, required=required)
    return _obj({"server": server, "os:scheduler_hints": _HINTS,
                 "OS-SCH-HNT:scheduler_hints": _HINTS}, required=["server"])


# The microversions at which nova switches create schemas.
_CREATE_RANGES = [(0, 0), (1, 18), (19, 31), (32, 32), (33, 36), (37, 41), (42, 51), (52, 56),
                  (57, 62), (63, 66), (67, 73), (74, 89), (90, 93), (94, LAST)]
CREATE = by_minor([(lo, hi, _create(lo)) for lo, hi in _CREATE_RANGES])


# -- PUT /servers/{id} -------------------------------------------------------------------------

def _update(minor: int) -> dict:
    props = {"name": NAME_WS if minor == 0 else NAME, "OS-DCF:diskConfig": DISK_CONFIG,
             "accessIPv4": IPV4, "accessIPv6": IPV6}
    if minor >= 19:
        props["description"] = DESCRIPTION
    if minor >= 90:
        props["hostname"] = FQDN if minor >= 94 else HOSTNAME
    if minor >= 104:
        props["pinned_availability_zone"] = NAME_OR_NONE
    return _obj({"server": _obj(props)}, required=["server"])


UPDATE = by_minor([(lo, hi, _update(lo)) for lo, hi in
                   [(0, 0), (1, 18), (19, 89), (90, 93), (94, 103), (104, LAST)]])


# -- actions -----------------------------------------------------------------------------------

def _rebuild(minor: int) -> dict:
    props = {"name": NAME_WS if minor == 0 else NAME, "imageRef": UUID,
             "adminPass": {"type": "string"}, "metadata": METADATA,
             "preserve_ephemeral": BOOLEAN, "OS-DCF:diskConfig": DISK_CONFIG,
             "accessIPv4": IPV4, "accessIPv6": IPV6, "personality": PERSONALITY}
    if minor >= 19:
        props["description"] = DESCRIPTION
    if minor >= 54:
        props["key_name"] = NAME_OR_NONE
    if minor >= 57:
        del props["personality"]
        props["user_data"] = dict(USER_DATA, type=["string", "null"])
    if minor >= 63:
        props["trusted_image_certificates"] = TRUSTED_CERTS
    if minor >= 90:
        props["hostname"] = FQDN if minor >= 94 else HOSTNAME
    return _wrap("rebuild", _obj(props, required=["imageRef"]))


REBUILD = by_minor([(lo, hi, _rebuild(lo)) for lo, hi in
                    [(0, 0), (1, 18), (19, 53), (54, 56), (57, 62), (63, 89), (90, 93),
                     (94, LAST)]])

_EVERY = lambda schema: by_minor([(0, LAST, schema)])  # noqa: E731

REBOOT = _EVERY(_wrap("reboot", _obj(
    {"type": {"type": "string", "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}},
    required=["type"])))
RESIZE = _EVERY(_wrap("resize", _obj({"flavorRef": FLAVOR_REF, "OS-DCF:diskConfig": DISK_CONFIG},
                                     required=["flavorRef"])))
CREATE_IMAGE = by_minor([
    (0, 0, _wrap("createImage", _obj({"name": NAME_WS, "metadata": METADATA},
                                     required=["name"]))),
    (1, LAST, _wrap("createImage", _obj({"name": NAME, "metadata": METADATA},
                                        required=["name"]))),
])
LOCK = by_minor([
    (0, 72, _wrap("lock", ANY)),
    (73, LAST, _wrap("lock", {"type": ["object", "null"], "additionalProperties": False,
                              "properties": {"locked_reason": {"type": "string", "minLength": 1,
                                                               "maxLength": 255}}})),
])
# nova validates unlock only up to 2.72; later bodies pass as they are.
UNLOCK = by_minor([(0, 72, _wrap("unlock", ANY))])
# Actions whose body is just {"<action>": <anything>}.
SIMPLE = {name: _EVERY(_wrap(name, ANY)) for name in (
    "os-start", "os-stop", "pause", "unpause", "suspend", "resume", "confirmResize",
    "revertResize")}


# -- metadata and tags -------------------------------------------------------------------------

METADATA_SET = _EVERY(_wrap("metadata", METADATA))
METADATA_ITEM = _EVERY(_wrap("meta", dict(METADATA, minProperties=1, maxProperties=1)))
TAGS_SET = _EVERY(_wrap("tags", {"type": "array", "items": TAG, "maxItems": MAX_TAGS}))
TAG_ADD = _EVERY({"type": "null"})
TAG_SCHEMA = TAG
