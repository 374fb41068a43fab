"""The compiled hot path, or its pure-Python twin.

``FASTNOVA_PURE=1`` selects the pure twin (tests run both); ``FASTNOVA_REQUIRE_EXT=1`` makes a
missing or broken build an import error instead of a silent slowdown.
"""
import importlib
import os


def compiled(module: str, name: str):
    """``fastnova._ext.<module>.<name>``, or None when FASTNOVA_PURE=1 or the module is not built
    (with FASTNOVA_REQUIRE_EXT=1 "not built" raises the ImportError instead)."""
    if os.environ.get("FASTNOVA_PURE") == "1":
        return None
    try:
        return getattr(importlib.import_module("fastnova._ext." + module), name)
    except ImportError:
        if os.environ.get("FASTNOVA_REQUIRE_EXT") == "1":
            raise
        return None


IMPLEMENTATION = "pure"
if os.environ.get("FASTNOVA_PURE") != "1":
    try:
        from fastnova._ext._speedups import page_docs, show_doc  # noqa: F401
        IMPLEMENTATION = "compiled"
    except ImportError:
        if os.environ.get("FASTNOVA_REQUIRE_EXT") == "1":
            raise
if IMPLEMENTATION == "pure":
    from fastnova.store.assemble import page_docs, show_doc  # noqa: F401
