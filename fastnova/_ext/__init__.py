"""The compiled hot path, or its pure-Python twin: ``compiled`` is the one place that chooses.

The ``pure`` setting (FASTNOVA_PURE=1) selects the pure twins (tests run both); ``require_ext``
(FASTNOVA_REQUIRE_EXT=1) makes a missing or broken build an import error instead of a silent
slowdown.  Both are read from fastnova.config.
"""
import importlib

from fastnova.config import current as _settings


def compiled(module: str, name: str):
    """``fastnova._ext.<module>.<name>``, or None when the pure twins are chosen or the module is
    not built (with require_ext, "not built" raises the ImportError instead)."""
    settings = _settings()
    if settings.pure:
        return None
    try:
        return getattr(importlib.import_module("fastnova._ext." + module), name)
    except ImportError:
        if settings.require_ext:
            raise
        return None


page_docs = compiled("_speedups", "page_docs")
show_doc = compiled("_speedups", "show_doc")
IMPLEMENTATION = "pure" if page_docs is None else "compiled"
if IMPLEMENTATION == "pure":
    from fastnova.store.assemble import page_docs, show_doc  # noqa: F401
