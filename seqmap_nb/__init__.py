"""seqmap_nb: seqlock-based concurrent hash tables for numba, and the harness that measures them.

Public names (imported lazily, so ``import seqmap_nb`` stays cheap and compiles nothing):

- :class:`SeqArray` — an array whose every cell is its own seqlock.
- :class:`SeqMap` — a linear-probing map over seqlocked slots, lock-free reads.
- :class:`UninitializedError` — reading a SeqArray cell that was never set.
- :mod:`seqmap_nb.baselines` — the maps the design is judged against (DashMap-style, ...).
- :mod:`seqmap_nb.harness` — workloads, thread runner, sweeps; :mod:`seqmap_nb.plotting`.
"""
import importlib

from . import _nbext

_nbext.check_cache()  # before any kernel module loads its cached code (see _nbext)

__version__ = "0.1.0"

_LAZY = {
    "SeqArray": "seqmap_nb.seqarray",
    "UninitializedError": "seqmap_nb.seqarray",
    "SeqMap": "seqmap_nb.seqmap",
    "PlainMap": "seqmap_nb.seqmap",
}

__all__ = ["SeqArray", "SeqMap", "UninitializedError", "PlainMap", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'seqmap_nb' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
