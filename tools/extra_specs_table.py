"""Regenerate fastnova/resources/extra_specs.json, the table of flavor extra specs nova 34
validates (2.86), from a nova source tree: names, parameters and value rules only.

    python tools/extra_specs_table.py /path/to/nova > fastnova/resources/extra_specs.json

Each ``nova/api/validation/extra_specs/<ns>.py`` is run with a stand-in for its ``base`` module
that records the arguments of every validator it declares (the facts of the API contract).
"""
import json
import pathlib
import sys
import types

MODULES = ("accel", "aggregate_instance_extra_specs", "capabilities", "hw", "hw_rng",
           "hw_video", "null", "os", "pci_passthrough", "quota", "resources", "traits",
           "vmware")
TYPES = {int: "int", str: "str", bool: "bool"}


def record(**kw):
    value = dict(kw["value"])
    value["type"] = TYPES[value["type"]]
    value.pop("description", None)
    return {"name": kw["name"], "value": value,
            "parameters": [{"name": p["name"], "pattern": p["pattern"]}
                           for p in kw.get("parameters", [])]}


# Stand-ins for what the modules import: nova's enum fields (their values), and the standard
# resource classes and traits as one placeholder each, which fastnova.resources.extra_specs
# expands at start from the os-resource-classes and os-traits packages nova uses.
FIELDS = types.SimpleNamespace(
    SoundModelType=types.SimpleNamespace(
        ALL=("sb16", "es1370", "pcspk", "ac97", "ich6", "ich9", "usb", "virtio")),
    USBControllerModelType=types.SimpleNamespace(ALL=("none", "nec-xhci", "qemu-xhci")),
    BlockDeviceEncryptionFormatType=types.SimpleNamespace(ALL=("plain", "luks", "luksv2")))
STANDARD_RC = "__STANDARD_RC__"
STANDARD_TRAIT = "__STANDARD_TRAIT__"


def main(root):
    base = types.ModuleType("base")
    base.ExtraSpecValidator = record
    sys.modules["os_resource_classes"] = types.SimpleNamespace(STANDARDS=[STANDARD_RC])
    sys.modules["os_traits"] = types.SimpleNamespace(get_traits=lambda: [STANDARD_TRAIT])
    out = []
    for mod in MODULES:
        src = (pathlib.Path(root) / "nova/api/validation/extra_specs" / (mod + ".py")).read_text()
        src = src.replace("from nova.api.validation.extra_specs import base", "")
        src = src.replace("from nova.objects import fields", "")
        scope = {"base": base, "__name__": "x", "fields": FIELDS}
        exec(compile(src, mod, "exec"), scope)
        found = scope.get("EXTRA_SPEC_VALIDATORS")
        if found is None:
            found = scope["register"]()
        out.extend(found)
    json.dump(out, sys.stdout, indent=0, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
