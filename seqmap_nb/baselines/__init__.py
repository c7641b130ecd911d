"""The maps the seqlock design is judged against, behind one interface, found by name.

Every map here has the interface of ``SeqMap`` (``insert/get/remove/add``, ``k in m``,
``len``, the batch calls, ``items``, ``stats``, ``memory_bytes``, ...), from Python and,
where ``spec.njit`` is true, inside ``@njit(nogil=True)`` code, so that one jitted
workload kernel drives any of them. Each is a faithful rendering of a design people use:

=============  ==========================================================================
name           design
=============  ==========================================================================
seqmap         linear probing over per-slot seqlocks: lock-free reads (the subject)
plain          SeqMap's kernels with synchronisation off: single-thread speed reference
dashmap        DashMap: shards of (reader-writer lock + open-addressing table)
global_lock    one reader-writer lock over one table (RwLock<HashMap>)
cas            lock-free linear probing, Preshing/Click style, 64-bit ints, fixed size
typed_dict     numba.typed.Dict, single thread
dict_lock      Python dict + threading.Lock, driven from Python threads
=============  ==========================================================================

:data:`INSTRUMENTS` holds maps that measure the harness rather than a design: ``null``
(operations that touch no table: the harness's own cost per op). The harness and the
``seqmap-nb`` command find them by name like the maps above; they are not in
``REGISTRY``, whose every map holds what it is given.

The registry::

    from seqmap_nb.baselines import REGISTRY, get_spec, make_map, names
    spec = get_spec("dashmap")
    spec.check({"read", "insert", "remove"}, threads=8)   # ValueError if it cannot run it
    m = make_map("dashmap", np.uint64, np.uint64, capacity=1 << 16, shards=64)

Factories are import paths resolved on first use, so this package imports (and compiles)
nothing until a map is made; ``seqmap`` and ``plain`` resolve once ``seqmap_nb.seqmap``
exists.

Workload needs understood by :meth:`MapSpec.check` (:data:`NEEDS`):
``read``, ``insert``, ``update``, ``upsert`` (every map), ``add`` (every map),
``remove`` (maps with delete), ``records`` (record / sub-array / complex keys or values),
``grow`` (more keys than the initial capacity: the map must resize itself),
``njit`` (operations issued from jitted kernels rather than Python).
"""
import importlib
from dataclasses import dataclass, field

import numpy as np


__all__ = ["MapSpec", "REGISTRY", "INSTRUMENTS", "NEEDS", "default_maps", "get_spec", "make_map", "names"]

#: every need a workload may declare to :meth:`MapSpec.check`
NEEDS = frozenset({"read", "insert", "update", "upsert", "add", "remove", "records", "grow", "njit"})

#: key_kinds / value_kinds vocabulary
KINDS = {
    "any": "every fixed-size dtype (bool, integers, floats, complex, records, sub-arrays)",
    "scalar": "bool, integer and float scalars",
    "int64-only": "int64 and uint64 only",
}


@dataclass(frozen=True)
class MapSpec:
    """What the harness needs to know about a map to run it, or to refuse a workload."""

    name: str
    description: str  # one line: the design it stands for
    factory: str  # "module:attribute", imported on first use
    thread_safe: bool
    njit: bool  # usable inside @njit code (False: drive it from Python threads)
    max_threads: int | None  # None: any number; 1: single-thread only
    supports_remove: bool
    supports_records: bool
    grows: bool  # resizes itself (else a fixed capacity)
    key_kinds: str = "any"
    value_kinds: str = "any"
    notes: str = field(default="", compare=False)
    #: in the default sweep (``seqmap-nb bench``, :func:`default_maps`); in registry order
    default_sweep: bool = field(default=True, compare=False)

    def load(self):
        """The map class (imports its module on first use)."""
        mod, _, attr = self.factory.partition(":")
        try:
            module = importlib.import_module(mod)
        except ImportError as exc:
            raise ImportError(f"map {self.name!r}: cannot import {mod} ({exc})") from exc
        return getattr(module, attr)

    def available(self):
        """True if the map's module imports (``seqmap``/``plain`` may not exist yet)."""
        try:
            self.load()
        except ImportError:
            return False
        return True

    def check(self, workload_needs, threads, key_dtype=None, value_dtype=None):
        """Raise ValueError saying why this map cannot run the workload; else return None.

        `workload_needs`: a set of names from :data:`NEEDS`; `threads`: the thread count;
        optionally the key and value dtypes (checked against key_kinds/value_kinds).
        """
        needs = set(workload_needs)
        unknown = needs - NEEDS
        if unknown:
            raise ValueError(f"unknown workload needs {sorted(unknown)}; known: {sorted(NEEDS)}")
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        why = []
        if self.max_threads is not None and threads > self.max_threads:
            why.append(f"it is single-thread only (not thread-safe), asked for {threads} threads")
        if "remove" in needs and not self.supports_remove:
            why.append("it has no delete, and the workload removes keys")
        if "records" in needs and not self.supports_records:
            why.append(f"it takes {KINDS[self.key_kinds]} only, and the workload uses record dtypes")
        if "grow" in needs and not self.grows:
            why.append("it has a fixed capacity, and the workload needs the table to grow")
        if "njit" in needs and not self.njit:
            why.append("it cannot be called from njit code (drive it from Python threads)")
        for what, dt, kinds in (("key", key_dtype, self.key_kinds), ("value", value_dtype, self.value_kinds)):
            if dt is not None and not _kind_ok(np.dtype(dt), kinds):
                why.append(f"its {what}s must be {KINDS[kinds]}, got {np.dtype(dt)}")
        if why:
            raise ValueError(f"map {self.name!r} cannot run this workload: " + "; ".join(why))


def _kind_ok(dt, kinds):
    if kinds == "any":
        return True
    scalar = dt.fields is None and dt.subdtype is None and dt.kind in "biuf"
    if kinds == "scalar":
        return scalar
    if kinds == "int64-only":
        return dt in (np.dtype(np.int64), np.dtype(np.uint64))
    raise ValueError(f"unknown kinds {kinds!r}")


REGISTRY = {
    s.name: s
    for s in (
        MapSpec(
            "seqmap", "linear probing over per-slot seqlocks: lock-free reads, CAS-claimed inserts",
            "seqmap_nb.seqmap:SeqMap", thread_safe=True, njit=True, max_threads=None,
            supports_remove=True, supports_records=True, grows=True),
        MapSpec(
            "dashmap", "DashMap: hash-sharded reader-writer locks (CAS word) over open-addressing tables",
            "seqmap_nb.baselines.dashmap:DashMap", thread_safe=True, njit=True, max_threads=None,
            supports_remove=True, supports_records=True, grows=True,
            notes="shards= next power of two of 4 x cores; reads take the shard read lock"),
        MapSpec(
            "global_lock", "one reader-writer lock over one table (RwLock<HashMap>, conc-map-bench)",
            "seqmap_nb.baselines.dashmap:GlobalLockMap", thread_safe=True, njit=True, max_threads=None,
            supports_remove=True, supports_records=True, grows=True),
        MapSpec(
            "cas", "lock-free linear probing, Preshing/Click style: keys claimed by CAS, values atomic",
            "seqmap_nb.baselines.cas:CasMap", thread_safe=True, njit=True, max_threads=None,
            supports_remove=False, supports_records=False, grows=False,
            key_kinds="int64-only", value_kinds="int64-only",
            notes="fixed capacity (MapFullError when full); add wraps on overflow (fetch_add)", default_sweep=False),
        MapSpec(
            "plain", "SeqMap's table with synchronisation switched off: the single-thread speed reference",
            "seqmap_nb.seqmap:PlainMap", thread_safe=False, njit=True, max_threads=1,
            supports_remove=True, supports_records=True, grows=True),
        MapSpec(
            "typed_dict", "numba.typed.Dict (CPython-style dict in numba's runtime), not thread-safe",
            "seqmap_nb.baselines.typed_dict:TypedDictMap", thread_safe=False, njit=True, max_threads=1,
            supports_remove=True, supports_records=False, grows=True,
            key_kinds="scalar", value_kinds="scalar"),
        MapSpec(
            "dict_lock", "Python dict guarded by threading.Lock: what a Python user writes first",
            "seqmap_nb.baselines.dict_lock:DictLockMap", thread_safe=True, njit=False, max_threads=None,
            supports_remove=True, supports_records=True, grows=True),
    )
}

#: maps that measure the harness itself, not a design (see the module docstring)
INSTRUMENTS = {
    s.name: s
    for s in (
        MapSpec(
            "null", "operations that touch no table: what the harness itself costs per op",
            "seqmap_nb.baselines.null:NullMap", thread_safe=True, njit=True, max_threads=None,
            supports_remove=True, supports_records=False, grows=True,
            key_kinds="int64-only", value_kinds="int64-only",
            notes="answers every op 'absent'; verified by its predictable mismatches, not its contents"),
    )
}


def default_maps():
    """Names of the maps of the default sweep, in chart order: the registry's (but those
    that cannot run its workloads, ``cas``: no delete), then the ``null`` instrument. The
    one list: the harness and the ``seqmap-nb`` command take it from here."""
    return tuple(n for n, s in {**REGISTRY, **INSTRUMENTS}.items() if s.default_sweep)


def names():
    """Registered map names, in registry order."""
    return list(REGISTRY)


def get_spec(name):
    """The :class:`MapSpec` of `name` (KeyError listing the known names)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown map {name!r}; known: {', '.join(REGISTRY)}") from None


def make_map(name, key_dtype, value_dtype, capacity=16, **opts):
    """A new map of registered kind `name`: ``Cls(key_dtype, value_dtype, capacity=..., **opts)``."""
    return get_spec(name).load()(key_dtype, value_dtype, capacity=capacity, **opts)
