"""The compiled "valid?" predicate of each request schema agrees with jsonschema on bodies derived
from valid ones by random mutations (fastnova.commands.validation: a yes from it skips
jsonschema, so it must never say yes where jsonschema says no)."""
from __future__ import annotations

import copy
import random

from fastnova.commands import schemas, validation

IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
SEEDS = [
    {"server": {"name": "vm", "flavorRef": "1", "imageRef": IMAGE, "networks": "auto",
                "metadata": {"a": "b"}, "tags": ["x"], "min_count": 2, "max_count": "3",
                "description": "d", "user_data": "aGVsbG8=", "accessIPv4": "10.0.0.1",
                "block_device_mapping_v2": [{"boot_index": 0, "uuid": IMAGE,
                                             "source_type": "image", "volume_size": "1",
                                             "destination_type": "volume"}],
                "networks_": [{"uuid": IMAGE, "fixed_ip": "10.0.0.2"}]}},
    {"server": {"name": "vm", "description": None, "accessIPv6": "::1",
                "OS-DCF:diskConfig": "AUTO", "hostname": "host-1"}},
    {"reboot": {"type": "HARD"}}, {"resize": {"flavorRef": 2}}, {"os-start": None},
    {"metadata": {"k": "v"}}, {"meta": {"k": "v"}}, {"tags": ["a", "b"]},
    {"rebuild": {"imageRef": IMAGE, "name": "n", "adminPass": "p", "metadata": {}}},
    {"createImage": {"name": "snap", "metadata": {"a": "1"}}}, {"lock": {"locked_reason": "r"}},
]
ODD = [None, True, False, 0, 1, -1, 1.5, 2.0, "", " ", "x" * 300, "1", "0", "abc", "True",
       "::1", "10.0.0.1", IMAGE, [], [1], ["a", "a"], {}, {"a": 1}, {"x" * 300: "v"},
       "\u00e9", "\x00", " lead", "trail ", "10.0.0.999", "bm90IGI2NA", "a/b"]


def _mutate(rng, value, depth=0):
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        out = dict(value)
        roll = rng.random()
        if roll < 0.2:
            del out[key]
        elif roll < 0.3:
            out[rng.choice(["bogus", "x" * 3, key + "_"])] = rng.choice(ODD)
        elif roll < 0.6 and depth < 4:
            out[key] = _mutate(rng, value[key], depth + 1)
        else:
            out[key] = copy.deepcopy(rng.choice(ODD))
        return out
    if isinstance(value, list) and value and rng.random() < 0.6:
        out = list(value)
        i = rng.randrange(len(out))
        out[i] = _mutate(rng, out[i], depth + 1) if rng.random() < 0.5 else rng.choice(ODD)
        if rng.random() < 0.2:
            out.append(copy.deepcopy(out[0]))
        return out
    return copy.deepcopy(rng.choice(ODD))


def _compiled():
    seen = {}
    for name in dir(schemas):
        table = getattr(schemas, name)
        if isinstance(table, list):
            for compiled in table:
                if isinstance(compiled, validation.Schema):
                    seen[id(compiled)] = compiled
    return list(seen.values())


def test_every_schema_has_a_fast_predicate():
    assert all(c.valid is not None for c in _compiled())


def test_fast_predicate_agrees_with_jsonschema():
    rng = random.Random(7)
    compiled = _compiled()
    checked = valid = 0
    for _ in range(400):
        body = SEEDS[rng.randrange(len(SEEDS))]
        for _ in range(rng.randrange(4)):
            body = _mutate(rng, body)
        for schema in compiled:
            want = schema.validator.is_valid(body)
            assert schema.valid(body) == want, (schema.validator.schema, body)
            checked += 1
            valid += want
    assert valid > 50 and checked - valid > 50
