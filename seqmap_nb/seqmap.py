"""SeqMap: a concurrent linear-probing hash map over seqlocked slots (and PlainMap).

The protocol (slot layout, reader and writer steps, why no key is duplicated although
freed slots are reused, the cooperative resize) is the top comment of
:mod:`seqmap_nb._map_kernels`; this module is the thin public layer:

- :class:`SeqMap` validates input (dtypes, capacity, max_load, keys, values, batch
  arrays) with clear exceptions and then calls *one* nogil kernel per call. The scalar
  path calls the kernel's compiled entry point for the exact Python types of its
  arguments (``_nbext.EntryPoints``: no dispatch by numba's dispatcher), with the
  header's address and the scalar (no boxing of a structure), and gets back a numpy
  scalar built in the kernel (``_npscalar``); other dtypes (records, sub-arrays, text,
  ...) and other argument types go through the batch kernels with one item.
- :class:`PlainMap` is the same class over the same kernels compiled with ``SYNC=False``
  (no sequence checks, no locks, no fences): the single-thread speed reference and the
  negative control of the concurrency tests. **Single-thread only**: concurrent use can
  lose updates and duplicate keys; a resize that finds another thread inside the map (the
  step that could otherwise corrupt memory) raises RuntimeError instead.
- ``numba.typeof(m)`` is a :class:`SeqMapType` whose data model holds only the header's
  address (``_nbext``); in user ``@njit(nogil=True)`` code ``m.get(k)`` (Optional),
  ``m.get(k, d)``, ``m.insert(k, v)`` (Optional previous), ``m.remove(k)`` (Optional
  removed), ``m.add(k, d)`` (new value; integer, float and complex values),
  ``m.contains(k)``, ``k in m``, ``m[k]`` (KeyError when absent), ``m[k] = v``,
  ``del m[k]`` (KeyError when absent) and ``len(m)`` compile for every key and value
  dtype the map accepts: how each dtype looks in njit code (records as by-value
  ``ItemCopy`` values with their fields, sub-arrays as arrays, ...) is the table in
  :mod:`seqmap_nb._codec`. These methods are the only definition of the scalar
  operations: the Python entry points call them too (``_nbext.at_addr``).

``capacity`` is the number of entries the map holds without growing; the table behind it
has ``m.slots`` slots, a power of two with ``max_load * slots >= capacity``. The map grows
when ``used = live + tombstones`` passes ``max_load * slots`` and never shrinks
(``clear()`` keeps the table). Memory is released when the map is garbage collected (a
``weakref.finalize`` on the header array, which the map owns and the caller of njit code
keeps alive while it runs).
"""
import functools
import operator
import weakref

import numba
import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload, overload_attribute, overload_method

from . import _lifecycle as L
from . import _map_kernels as K
from ._codec import Codec, check_max_load, item_spec, item_value, key_words, slot_words, value_words
from ._contents import MapBase, check_out
from ._nbext import AddrType, Announced, EntryPoints as _EntryPoints, at_addr, fast_types as _fast_types, register
from ._npscalar import as_numpy_scalar
from ._unsafe import load_words, store_words, zero_words
from .config import JIT

__all__ = ["SeqMap", "PlainMap", "SeqMapType"]

_ERR_NOMEM = "SeqMap: the table is full and a larger buffer could not be allocated (map unchanged)"
_ERR_MISUSE = ("PlainMap is single-thread only, and a resize found another thread using it "
               "(use SeqMap for concurrent access)")


# --------------------------------------------------------------------------- kernels
#
# Compile time is spent per *distinct specialisation*, and numba keys a specialisation by
# the exact argument types, literals included. Three rules keep the count down:
#
# - the word-level work (lookups, writes, resizes, snapshots) depends only on the layout
#   (KW, VW, SW, SYNC), so it is compiled once per layout and shared by every dtype pair
#   of that layout: u64 -> u64, i64 -> f64 and u8 -> bool all have KW = VW = 1, SW = 4;
# - every caller passes the same literal types: SYNC as an int (never True), the value
#   type only to ``add`` (insert and remove pass None: ``K.update`` uses it for the sum
#   alone), so the njit methods, the batch kernels and the harness share one ``update``
#   per operation and layout;
# - what depends on the dtypes (conversions of Python or njit values to words and back)
#   is small, and calls the shared word-level code instead of inlining it at numba's IR
#   level (LLVM inlines it instead, see ``_w_lookup``).


@numba.njit(forceinline=True, **JIT)
def _w_lookup(h, key, KW, VW, SW, SYNC):
    """G1-G3 of one key (``K.lookup``) as one function per layout: compiled once and
    inlined by LLVM into every caller (``forceinline``), where ``K.lookup``'s own numba-level
    inlining would re-type its body in every function that reads the map."""
    return K.lookup(h, key, KW, VW, SW, SYNC)


@functools.lru_cache(maxsize=None)
def _layout_kernels(KW, VW, SW, SYNC):
    """The batch and whole-map kernels of one layout (every dtype pair of the layout shares
    them). Constants are closure variables, so numba types them as literals and specialises
    every helper of ``_map_kernels`` on them (and ``cache=True`` keys each variant by their
    values). Each kernel first rebinds the header to ``K.unowned(h)``: no refcount traffic
    on it inside the kernel."""
    ns = {}
    # module attributes would type as plain int64: bind them here so they are literals
    OP_INSERT, OP_REMOVE = K.OP_INSERT, K.OP_REMOVE
    NOVT = None  # insert and remove do not use the value type (see above)

    @numba.njit(**JIT)
    def init(h, cap, log2):
        h = K.unowned(h)
        return K.init_map(h, cap, log2, SW)

    @numba.njit(**JIT)
    def clear(h):
        h = K.unowned(h)
        return K.clear_map(h, KW, VW, SW, SYNC)

    @numba.njit(**JIT)
    def snapshot(h, keys, vals, plen, pause):
        h = K.unowned(h)
        return K.snapshot(h, keys, vals, plen, pause, KW, VW, SW, SYNC)

    @numba.njit(**JIT)
    def get_many(h, keys, out, found):
        h = K.unowned(h)
        r = K.lookup_many(h, keys, out, found, KW, VW, SW, SYNC)
        K.add_stat(h, K.ST_RETRY, r, SYNC)

    @numba.njit(**JIT)
    def insert_many(h, keys, vals, old, found):
        """Returns (-1, 0), or (index, status) of the first item not inserted."""
        h = K.unowned(h)
        waits = 0
        n = found.shape[0]
        for j in range(n):
            K.prefetch_ahead(h, keys, j, n, KW, SW, SYNC)
            key = load_words(keys, j * KW, KW, False)
            v = load_words(vals, j * VW, VW, False)
            st, o, w = K.update(h, key, v, OP_INSERT, KW, VW, SW, SYNC, NOVT)
            waits += w
            if st == K.ST_NOMEM or st == K.ST_MISUSE:
                K.add_stat(h, K.ST_WAIT, waits, SYNC)
                return j, st
            found[j] = st == K.ST_FOUND
            store_words(old, j * VW, o, False)
        K.add_stat(h, K.ST_WAIT, waits, SYNC)
        return -1, 0

    @numba.njit(**JIT)
    def remove_many(h, keys, old, found):
        """Returns (-1, 0), or (index, status) of the first item not removed."""
        h = K.unowned(h)
        waits = 0
        z = zero_words(VW)
        n = found.shape[0]
        for j in range(n):
            K.prefetch_ahead(h, keys, j, n, KW, SW, SYNC)
            key = load_words(keys, j * KW, KW, False)
            st, o, w = K.update(h, key, z, OP_REMOVE, KW, VW, SW, SYNC, NOVT)
            waits += w
            if st == K.ST_MISUSE:
                K.add_stat(h, K.ST_WAIT, waits, SYNC)
                return j, st
            found[j] = st == K.ST_FOUND
            store_words(old, j * VW, o, False)
        K.add_stat(h, K.ST_WAIT, waits, SYNC)
        return -1, 0

    ns.update(init=init, clear=clear, snapshot=snapshot, get_many=get_many,
              insert_many=insert_many, remove_many=remove_many)
    what = f"for keys of {KW} and values of {VW} 64-bit words{'' if SYNC else ' (PlainMap)'}"
    return type("LayoutKernels", (), {k: Announced(f, f"the SeqMap {k} kernel {what}") for k, f in ns.items()})


@functools.lru_cache(maxsize=None)
def _add_many_kernel(KW, VW, SW, SYNC, VT):
    """``add_many`` for the value type `VT` (the sum is typed: one kernel per value type)."""
    OP_ADD = K.OP_ADD

    @numba.njit(**JIT)
    def add_many(h, keys, deltas, new):
        """Returns (-1, 0), or (index, status) of the first item not applied."""
        h = K.unowned(h)
        waits = 0
        n = new.shape[0] // VW
        for j in range(n):
            K.prefetch_ahead(h, keys, j, n, KW, SW, SYNC)
            key = load_words(keys, j * KW, KW, False)
            d = load_words(deltas, j * VW, VW, False)
            st, o, w = K.update(h, key, d, OP_ADD, KW, VW, SW, SYNC, VT)
            waits += w
            if st == K.ST_NOMEM or st == K.ST_OVERFLOW or st == K.ST_MISUSE:
                K.add_stat(h, K.ST_WAIT, waits, SYNC)
                return j, st
            if st == K.ST_FOUND:
                ok, nv = K.add_words(o, d, VT)
                store_words(new, j * VW, nv, False)
            else:
                store_words(new, j * VW, d, False)
        K.add_stat(h, K.ST_WAIT, waits, SYNC)
        return -1, 0

    return Announced(add_many, f"the SeqMap add_many kernel for {VT} values")


@functools.lru_cache(maxsize=None)
def _scalar_kernels(MT):
    """The kernels of the Python scalar methods for one map type: the njit methods (the one
    definition of each operation) on the map rebuilt from the header's address. An int
    unboxes in a few ns, where a structure argument costs a typed attribute read; they
    return numpy scalars built in the kernel (``_npscalar``). The Python methods call their
    compiled entry points directly (:class:`_EntryPoints`). Small: the word-level code they
    reach is compiled per layout and shared."""

    @numba.njit(**JIT)
    def get1(a, k):
        return as_numpy_scalar(at_addr(a, MT).get(k))  # None or a numpy scalar

    @numba.njit(**JIT)
    def contains1(a, k):
        return k in at_addr(a, MT)

    @numba.njit(**JIT)
    def insert1(a, k, v):
        return as_numpy_scalar(at_addr(a, MT).insert(k, v))  # None or a numpy scalar

    @numba.njit(**JIT)
    def remove1(a, k):
        return as_numpy_scalar(at_addr(a, MT).remove(k))  # None or a numpy scalar

    ns = dict(get1=get1, contains1=contains1, insert1=insert1, remove1=remove1, add1=None)
    if MT.can_add:

        @numba.njit(**JIT)
        def add1(a, k, d):
            return as_numpy_scalar(at_addr(a, MT).add(k, d))

        ns["add1"] = add1

    kfast, vfast = _fast_types(MT.KT), _fast_types(MT.VT)
    name = f"SeqMap({MT.kdt} -> {MT.vdt})" if MT.sync else f"PlainMap({MT.kdt} -> {MT.vdt})"
    ns.update(get_ep=_EntryPoints(get1, kfast, what=f"{name}.get"),
              contains_ep=_EntryPoints(contains1, kfast, what=f"{name}.contains"),
              insert_ep=_EntryPoints(insert1, kfast, vfast, what=f"{name}.insert"),
              remove_ep=_EntryPoints(remove1, kfast, what=f"{name}.remove"),
              add_ep=_EntryPoints(ns["add1"], kfast, vfast, what=f"{name}.add"))
    return type("ScalarKernels", (), ns)


# --------------------------------------------------------------------------- the Python class


_NO_ENTRY = _EntryPoints(None)  # layouts without scalar kernels (records, complex, ...)

_FAST_ERRORS = (TypeError, ValueError, OverflowError)


def slots_for(capacity, max_load):
    """log2 of the smallest power-of-two table whose growth threshold holds `capacity`."""
    ml16 = max(1, int(max_load * 65536))
    log2 = 0
    while min((1 << log2) - 1, ((1 << log2) * ml16) >> 16) < capacity:
        log2 += 1
    return log2


class SeqMap(MapBase):
    """A concurrent hash map: lock-free seqlock reads, per-slot-locked writes that reuse
    freed slots, growth that every writing thread helps with. See the module docstring
    for the layers and ``_map_kernels`` for the protocol.

    ``SeqMap(key_dtype, value_dtype, capacity=16, max_load=0.75)``: keys and values of any
    fixed-size numpy dtype. ``capacity`` is the number of entries the map holds before it
    first grows; ``max_load`` (in [1/64, 0.99]) the share of the table's slots in use at
    which it grows.

    ``items()`` (and ``keys``, ``values``, ``to_pandas``, ``copy``, pickling) takes a
    snapshot while other threads may write: each key present for the whole call appears
    exactly once with a value it held during the call; a key inserted or removed during
    the call may or may not appear; no key ever appears twice. (The copy reads the table
    slot by slot, as any concurrent map's iteration does, not as of one instant.)
    """

    _SYNC = True
    #: the largest capacity accepted (entries); beyond it is "absurd" (ValueError)
    MAX_CAPACITY = 1 << K.MAX_LOG2

    def __init__(self, key_dtype, value_dtype, capacity=16, max_load=0.75):
        kc = Codec(key_dtype, is_key=True, what="key_dtype")
        vc = Codec(value_dtype, is_key=False, what="value_dtype")
        if isinstance(capacity, (bool, np.bool_)) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"capacity must be an integer, got {type(capacity).__name__} {capacity!r}")
        capacity = int(capacity)
        if capacity <= 0 or capacity > self.MAX_CAPACITY:
            raise ValueError(f"capacity must be in 1 .. 2**{K.MAX_LOG2} entries, got {capacity}")
        max_load = check_max_load(max_load)
        log2 = slots_for(capacity, max_load)
        if log2 > K.MAX_LOG2:
            raise ValueError(f"capacity {capacity} at max_load {max_load} needs 2**{log2} slots; "
                             f"at most 2**{K.MAX_LOG2} are supported")
        self._kc, self._vc = kc, vc
        self._KW, self._VW = kc.nwords, vc.nwords
        self._SW = slot_words(self._KW, self._VW)
        self._max_load = max_load
        SYNC = int(self._SYNC)  # an int literal everywhere (see "kernels")
        self._k = _layout_kernels(self._KW, self._VW, self._SW, SYNC)
        base = np.zeros(K.H_WORDS, np.uint64)
        h = base[:]  # njit code holds this view; its death frees the buffers
        h[K.H_MAXLOAD] = max(1, int(max_load * 65536))
        h[K.H_KW], h[K.H_VW], h[K.H_SW], h[L.H_SYNC] = self._KW, self._VW, self._SW, SYNC
        if not self._k.init(h, 1 << log2, log2):
            raise MemoryError(f"could not allocate {(1 << log2) * self._SW * 8} bytes for {1 << log2} slots")
        self._h = h
        self._hdr_addr = int(h.ctypes.data)  # what njit code unboxes (see SeqMapType)
        self._finalizer = weakref.finalize(h, K.free_all, base)
        mt = SeqMapType(kc.dtype, vc.dtype, self._KW, self._VW, self._SW, SYNC)
        self._numba_type_ = mt  # numba's dispatcher reads this attribute directly (see _nbext)
        self._can_add = mt.can_add
        self._no_pause = np.array([np.uint64(2**64 - 1), 0], np.uint64)
        k = _scalar_kernels(mt) if mt.KT is not None and mt.VT is not None else None
        self._get_ep = k.get_ep if k else _NO_ENTRY
        self._contains_ep = k.contains_ep if k else _NO_ENTRY
        self._insert_ep = k.insert_ep if k else _NO_ENTRY
        self._remove_ep = k.remove_ep if k else _NO_ENTRY
        self._add_ep = k.add_ep if k else _NO_ENTRY
        self._scalar = k

    # ------------------------------------------------------------ scalar operations
    def get(self, k, default=None):
        """The value of key `k` (a numpy scalar of the value dtype), or `default`."""
        ep = self._get_ep[type(k)]
        if ep is not None:
            try:
                r = ep(self._hdr_addr, k)
            except _FAST_ERRORS:  # a key the dtype cannot hold: the general path says why
                return self._get_slow(k, default)
            return default if r is None else r
        return self._get_slow(k, default)

    def _get_slow(self, k, default):
        w = self._kc.words(k)
        out = np.empty(self._VW, np.uint64)
        found = np.empty(1, np.bool_)
        self._k.get_many(self._h, w, out, found)
        return self._vc.from_words(out) if found[0] else default

    def insert(self, k, v):
        """Insert or overwrite; returns the previous value or None."""
        ep = self._insert_ep[type(k), type(v)]
        if ep is not None:
            try:
                return ep(self._hdr_addr, k, v)
            except _FAST_ERRORS:
                return self._insert_slow(k, v)
        return self._insert_slow(k, v)

    def _insert_slow(self, k, v):
        kw = self._kc.words(k)
        vw = self._vc.words(v)
        old = np.empty(self._VW, np.uint64)
        found = np.empty(1, np.bool_)
        j, st = self._k.insert_many(self._h, kw, vw, old, found)
        self._raise_batch(j, st, "insert")
        return self._vc.from_words(old) if found[0] else None

    def remove(self, k):
        """Remove `k`; returns the removed value or None."""
        ep = self._remove_ep[type(k)]
        if ep is not None:
            try:
                return ep(self._hdr_addr, k)
            except _FAST_ERRORS:
                return self._remove_slow(k)
        return self._remove_slow(k)

    def _remove_slow(self, k):
        kw = self._kc.words(k)
        old = np.empty(self._VW, np.uint64)
        found = np.empty(1, np.bool_)
        j, st = self._k.remove_many(self._h, kw, old, found)
        self._raise_batch(j, st, "remove")
        return self._vc.from_words(old) if found[0] else None

    def add(self, k, d):
        """Atomic ``value += d`` (inserting `d` when absent); returns the new value.

        Integer overflow raises OverflowError and leaves the value unchanged; floats and
        complex numbers follow IEEE. bool, record, text and other values have no addition
        (TypeError)."""
        if not self._can_add:
            raise TypeError(f"add: values of dtype {self._vc.dtype} are not numbers that can be added")
        ep = self._add_ep[type(k), type(d)]
        if ep is not None:
            try:
                return ep(self._hdr_addr, k, d)
            except _FAST_ERRORS:
                pass
        kw = self._kc.words(k)
        dw = self._vc.words(d)
        new = np.empty(self._VW, np.uint64)
        j, st = self._add_many_kernel()(self._h, kw, dw, new)
        if j >= 0:
            if st == K.ST_OVERFLOW:
                raise OverflowError(f"add: {k!r} + {d!r} does not fit in {self._vc.dtype} (value unchanged)")
            self._raise_batch(j, st, "add")
        return self._vc.from_words(new)

    def __contains__(self, k):
        ep = self._contains_ep[type(k)]
        if ep is not None:
            try:
                return ep(self._hdr_addr, k)
            except _FAST_ERRORS:
                pass
        return self._get_slow(k, _MISSING) is not _MISSING

    def __delitem__(self, k):
        # remove() returns the removed value, never None for a present key
        if self.remove(k) is None:
            raise KeyError(k)

    def __len__(self):
        return int(K.live_count(self._h))

    # ------------------------------------------------------------ batch operations
    def _batch_keys(self, keys):
        ka = self._kc.to_array(keys, "keys")
        kw = self._kc.array_words(ka)
        return ka, np.ascontiguousarray(kw).reshape(-1), kw.shape[0]

    def _batch_values(self, values, n, what):
        va = self._vc.to_array(values, what)
        if va.shape[0] != n:
            raise ValueError(f"{what}: {va.shape[0]} items for {n} keys (lengths must match)")
        return np.ascontiguousarray(self._vc.array_words(va)).reshape(-1)

    def get_many(self, keys, out=None, found=None):
        """``(values, found)`` for an array of keys, in one nogil kernel. Values of absent
        keys are zero (all bytes 0).

        `out` and `found` are optional arrays to fill instead of new ones (numpy's
        convention; both are returned): `out` of the value dtype (for a sub-array dtype,
        its base dtype) and shape ``(len(keys),) + subshape``, `found` of bool and shape
        ``(len(keys),)``; both writeable. Everything is checked before anything is
        written. Where the value dtype is its own words (8-byte scalars, records whose size
        is a multiple of 8 bytes without padding) and `out` is aligned and contiguous, the
        kernel writes into `out` directly: a ``%timeit`` of it times lookups, not the
        allocation and first touch of fresh output memory. `out` and `found` may overlap
        `keys` (the keys are then copied first)."""
        ka, kw, n = self._batch_keys(keys)
        vc = self._vc
        vdt = vc.dtype.base if vc.dtype.subdtype is not None else vc.dtype
        vshape = (n,) + vc.dtype.shape
        if out is not None:
            check_out(out, "out", vdt, vshape)
        if found is not None:
            check_out(found, "found", np.dtype(np.bool_), (n,))
        for a in (out, found):
            if a is not None and (np.may_share_memory(a, kw) or np.may_share_memory(a, ka)):
                kw = kw.copy()  # the kernel reads each key more than once
                break
        words = None
        if out is not None and vc.direct and out.flags.c_contiguous and out.ctypes.data % 8 == 0:
            words = out.reshape(-1).view(np.uint8).view(np.uint64)
        w = words if words is not None else np.empty(n * self._VW, np.uint64)
        f = found if found is not None and found.flags.c_contiguous else np.empty(n, np.bool_)
        self._k.get_many(self._h, kw, w, f)
        if found is None:
            found = f
        elif f is not found:
            found[...] = f
        if words is None:
            vals = vc.words_array(w.reshape(n, self._VW))
            if out is None:
                out = vals
            else:
                out[...] = vals
        return out, found

    def insert_many(self, keys, values):
        """Insert or overwrite every pair, in order, in one nogil kernel. Both arrays are
        validated before anything is written. Returns the bool array "key was present"."""
        _, kw, n = self._batch_keys(keys)
        vw = self._batch_values(values, n, "values")
        old = np.empty(n * self._VW, np.uint64)
        found = np.empty(n, np.bool_)
        j, st = self._k.insert_many(self._h, kw, vw, old, found)
        self._raise_batch(j, st, "insert_many")
        return found

    def remove_many(self, keys):
        """Remove every key; returns the bool array "key was present"."""
        _, kw, n = self._batch_keys(keys)
        old = np.empty(n * self._VW, np.uint64)
        found = np.empty(n, np.bool_)
        j, st = self._k.remove_many(self._h, kw, old, found)
        self._raise_batch(j, st, "remove_many")
        return found

    def add_many(self, keys, deltas):
        """Atomic ``value += delta`` per item, in order; returns the new values.

        Inputs are validated before anything is written. An integer overflow stops the
        batch at that item (its value unchanged, the earlier items applied) and raises
        OverflowError saying how many were applied."""
        if not self._can_add:
            raise TypeError(f"add_many: values of dtype {self._vc.dtype} are not numbers that can be added")
        _, kw, n = self._batch_keys(keys)
        dw = self._batch_values(deltas, n, "deltas")
        new = np.empty(n * self._VW, np.uint64)
        j, st = self._add_many_kernel()(self._h, kw, dw, new)
        self._raise_batch(j, st, "add_many")
        return self._vc.words_array(new.reshape(n, self._VW))

    def _add_many_kernel(self):
        mt = self._numba_type_
        return _add_many_kernel(self._KW, self._VW, self._SW, mt.sync, mt.VT)

    @staticmethod
    def _raise_batch(j, st, what):
        if j < 0:
            return
        if st == K.ST_OVERFLOW:
            raise OverflowError(f"{what}: item {j} overflows the value dtype (its value unchanged; "
                                f"{j} earlier items applied)")
        if st == K.ST_MISUSE:
            raise RuntimeError(_ERR_MISUSE)
        raise MemoryError(f"{what}: {_ERR_NOMEM}; {j} earlier items applied")

    # ------------------------------------------------------------ whole-map views
    def _snapshot(self, pause=None, dedupe=True):
        while True:
            slots = self.slots
            kb = np.empty(slots * self._KW, np.uint64)
            vb = np.empty(slots * self._VW, np.uint64)
            pl = np.empty(slots, np.int64)
            n = self._k.snapshot(self._h, kb, vb, pl, self._no_pause if pause is None else pause)
            if n == -2:
                raise RuntimeError(_ERR_MISUSE)
            if n >= 0:
                break
        kb = kb[: n * self._KW].reshape(n, self._KW)
        vb = vb[: n * self._VW].reshape(n, self._VW)
        pl = pl[:n]
        if dedupe and self._SYNC and n > 1:
            # a key removed and inserted again while the copy ran can be read twice (the
            # kernel's docstring): keep the first copy, so each key appears once
            if self._KW == 1:
                _, first = np.unique(kb[:, 0], return_index=True)
            else:
                _, first = np.unique(kb, axis=0, return_index=True)
            if len(first) < n:
                keep = np.sort(first)
                kb, vb, pl = kb[keep], vb[keep], pl[keep]
        return kb, vb, pl

    def items(self):
        """A snapshot ``(keys, values)`` as arrays (see the class docstring for what it
        holds under concurrent writes)."""
        kb, vb, _ = self._snapshot()
        return self._kc.words_array(kb), self._vc.words_array(vb)

    def probe_lengths(self):
        """For every live key, the number of slots its lookup inspects (1 = home slot)."""
        return self._snapshot()[2].copy()

    def clear(self):
        """Remove everything (an empty table of the same size: concurrent users simply
        continue on it)."""
        r = self._k.clear(self._h)
        if r == K.RS_MISUSE:
            raise RuntimeError(_ERR_MISUSE)
        if r != K.RS_DONE:
            raise MemoryError("clear: could not allocate the empty table (map unchanged)")

    # ------------------------------------------------------------ figures
    def _read_info(self):
        out = np.empty(10, np.int64)
        K.info(self._h, out)
        return out

    @property
    def capacity(self):
        """Entries the map holds before it grows next (used slots, tombstones included)."""
        return int(self._read_info()[8])

    @property
    def slots(self):
        """Slots of the table behind the map (a power of two)."""
        return int(self._read_info()[0])

    @property
    def max_load(self):
        return self._max_load

    @property
    def key_dtype(self):
        return self._kc.dtype

    @property
    def value_dtype(self):
        return self._vc.dtype

    @property
    def bytes_per_slot(self):
        """Bytes one slot occupies (sequence word + key + value, padded)."""
        return self._SW * 8

    def memory_bytes(self):
        """Bytes held now: every raw buffer (current, the target of a running resize, and
        those kept for recycling, which stale readers may still be reading) plus the header."""
        return int(self._read_info()[3]) + self._h.nbytes

    def stats(self):
        """Cumulative counters since creation or :meth:`reset_stats`."""
        i = self._read_info()
        return {
            "read_retries": int(i[5]),
            "write_waits": int(i[6]),
            "resizes": int(i[4]),
            "capacity": int(i[8]),
            "slots": int(i[0]),
            "len": int(i[2]),
            "tombstones": int(i[1] - i[2]),
            "memory_bytes": int(i[3]) + self._h.nbytes,
            "bytes_per_slot": int(i[7]),
        }

    def reset_stats(self):
        K.reset_stats(self._h)

    def _ctor_args(self):
        return (self._kc.dtype, self._vc.dtype), dict(capacity=max(1, self.capacity), max_load=self._max_load)

    def _set_alloc_limit(self, nbytes):
        """Testing hook: refuse buffers larger than `nbytes` (0: no limit), so the
        MemoryError path can be exercised on any machine."""
        self._h[L.H_ALLOC_LIMIT] = int(nbytes)


class PlainMap(SeqMap):
    """The same map and kernels with synchronisation compiled out (``SYNC=False``).

    Single-thread only: the speed reference for SeqMap (the cost of the seqlock is the
    difference) and the negative control of the concurrency tests. Threads that use it
    at once lose updates and can duplicate keys; a resize (or a snapshot) that finds
    another thread in the map, where a race could corrupt memory rather than data, raises
    RuntimeError instead: a cheap check, made only there.
    """

    _SYNC = False


_MISSING = object()


# --------------------------------------------------------------------------- numba type

# The read methods below are compiled with LLVM's alwaysinline (numba's ``forceinline``):
# as out-of-line calls they cost SeqMap ~1.5x in an njit get loop (a call through numba's
# exception ABI per lookup, the Optional result on the stack), while PlainMap's smaller
# body was inlined by LLVM anyway, so the comparison measured a call. Writes are a call
# to ``update`` either way (not force-inlined: its body is large).
_INLINE = {"forceinline": True}


class SeqMapType(AddrType):
    """numba type of a SeqMap/PlainMap: the key and value dtypes and the layout are its
    parameters (data model: the header's address, see ``_nbext``).

    ``kspec``/``vspec`` describe the items in njit code (``_codec.ItemSpec``: every dtype
    the map accepts has one); ``KT``/``VT`` are the numba scalar types of the Python fast
    path (bool, integer, float, complex), else None."""

    def __init__(self, kdt, vdt, KW, VW, SW, sync):
        self.kdt, self.vdt = np.dtype(kdt), np.dtype(vdt)
        self._ctor_args = (self.kdt, self.vdt, KW, VW, SW, int(sync))
        self.kspec, self.vspec = item_spec(self.kdt), item_spec(self.vdt)
        self.KW, self.VW, self.SW, self.sync = KW, VW, SW, int(sync)
        self.KT = self.kspec.nbtype if self.kspec.kind in ("scalar", "complex") else None
        self.VT = self.vspec.nbtype if self.vspec.kind in ("scalar", "complex") else None
        self.can_add = self.VT is not None and not isinstance(self.VT, types.Boolean)
        cls = {0: "PlainMap", 1: "SeqMap", 2: "SeqMapWideUnguarded", 3: "SeqMapWideGuarded"}[self.sync]
        super().__init__(f"{cls}[{self.kdt.descr}, {self.vdt.descr}]")


register(SeqMap, SeqMapType)


@overload_attribute(SeqMapType, "_header", inline="always")
def _ov_header(m):
    """The header inside njit code, as an unowned uint64 view (no reference count)."""
    return lambda m: K.header_at(m.addr)


def _layout(m):
    return m.kspec, m.vspec, m.KW, m.VW, m.SW, m.sync


@overload_method(SeqMapType, "get", jit_options=_INLINE)
def _ov_get(m, k, default=None):
    KS, VS, KW, VW, SW, SYNC = _layout(m)
    if default is None or isinstance(default, (types.NoneType, types.Omitted)):
        def impl(m, k, default=None):
            f, vals = _w_lookup(m._header, key_words(k, KS), KW, VW, SW, SYNC)
            if f:
                return item_value(vals, VS)
            return None
    else:
        def impl(m, k, default=None):
            f, vals = _w_lookup(m._header, key_words(k, KS), KW, VW, SW, SYNC)
            if f:
                return item_value(vals, VS)
            return default
    return impl


@overload_method(SeqMapType, "contains", jit_options=_INLINE)
def _ov_contains(m, k):
    KS, VS, KW, VW, SW, SYNC = _layout(m)

    def impl(m, k):
        f, vals = _w_lookup(m._header, key_words(k, KS), KW, VW, SW, SYNC)
        return f

    return impl


@overload(operator.contains, jit_options=_INLINE)
def _ov_in(m, k):
    if isinstance(m, SeqMapType):
        return lambda m, k: m.contains(k)
    return None


def _key_error(m):
    """An njit function raising KeyError for key `k`: ``KeyError(k)`` as a dict raises it
    where numba can put the key into the exception (numbers), else a message."""
    if m.kspec.kind in ("scalar", "complex"):
        def missing(k):
            raise KeyError(k)
    else:
        def missing(k):
            raise KeyError("SeqMap: key not found")
    return numba.njit(inline="always")(missing)


@overload(operator.getitem, jit_options=_INLINE)
def _ov_getitem(m, k):
    """``m[k]``: the value, or KeyError."""
    if not isinstance(m, SeqMapType):
        return None
    KS, VS, KW, VW, SW, SYNC = _layout(m)
    missing = _key_error(m)

    def impl(m, k):
        f, vals = _w_lookup(m._header, key_words(k, KS), KW, VW, SW, SYNC)
        if not f:
            missing(k)
        return item_value(vals, VS)

    return impl


@overload(operator.setitem)
def _ov_setitem(m, k, v):
    """``m[k] = v``: insert or overwrite."""
    if not isinstance(m, SeqMapType):
        return None

    def impl(m, k, v):
        m.insert(k, v)

    return impl


@overload(operator.delitem)
def _ov_delitem(m, k):
    """``del m[k]``: remove, or KeyError."""
    if not isinstance(m, SeqMapType):
        return None
    KS, VS, KW, VW, SW, SYNC = _layout(m)
    OP_REMOVE = K.OP_REMOVE
    NOVT = None
    missing = _key_error(m)

    def impl(m, k):
        h = m._header
        st, o, w = K.update(h, key_words(k, KS), zero_words(VW), OP_REMOVE, KW, VW, SW, SYNC, NOVT)
        K.add_stat(h, K.ST_WAIT, w, SYNC)
        _raise_status(st)
        if st != K.ST_FOUND:
            missing(k)

    return impl


@overload(len)
def _ov_len(m):
    if isinstance(m, SeqMapType):
        return lambda m: K.live_count(m._header)
    return None


def _raise_status(st):
    """njit: the exception of an update status (no-op for ST_ABSENT / ST_FOUND)."""
    raise NotImplementedError


@overload(_raise_status, inline="always")
def _ov_raise_status(st):
    def impl(st):
        if st == K.ST_NOMEM:
            raise MemoryError(_ERR_NOMEM)
        if st == K.ST_OVERFLOW:
            raise OverflowError("add: the result does not fit the value dtype (value unchanged)")
        if st == K.ST_MISUSE:
            raise RuntimeError(_ERR_MISUSE)
    return impl


@numba.njit(inline="always", **JIT)
def _write(h, key, val, op, KW, VW, SW, SYNC, VT):
    """The write of insert, remove and add in njit code: one ``update``, its waits counted,
    a failure raised. Returns (the key was present, its previous value words)."""
    st, o, w = K.update(h, key, val, op, KW, VW, SW, SYNC, VT)
    K.add_stat(h, K.ST_WAIT, w, SYNC)
    _raise_status(st)
    return st == K.ST_FOUND, o


@overload_method(SeqMapType, "insert")
def _ov_insert(m, k, v):
    KS, VS, KW, VW, SW, SYNC = _layout(m)
    OP_INSERT = K.OP_INSERT
    NOVT = None  # the same ``update`` as insert_many's (see "kernels")

    def impl(m, k, v):
        h = m._header
        key = key_words(k, KS)
        val = value_words(v, VS)  # both validated before anything is written
        found, o = _write(h, key, val, OP_INSERT, KW, VW, SW, SYNC, NOVT)
        if found:
            return item_value(o, VS)
        return None

    return impl


@overload_method(SeqMapType, "remove")
def _ov_remove(m, k):
    KS, VS, KW, VW, SW, SYNC = _layout(m)
    OP_REMOVE = K.OP_REMOVE
    NOVT = None

    def impl(m, k):
        h = m._header
        found, o = _write(h, key_words(k, KS), zero_words(VW), OP_REMOVE, KW, VW, SW, SYNC, NOVT)
        if found:
            return item_value(o, VS)
        return None

    return impl


@overload_method(SeqMapType, "add")
def _ov_add(m, k, d):
    KS, VS, KW, VW, SW, SYNC = _layout(m)
    OP_ADD = K.OP_ADD
    VT = m.VT
    if not m.can_add:
        raise TypingError(f"{m}: add needs integer, float or complex values, not {m.vdt}")

    def impl(m, k, d):
        h = m._header
        key = key_words(k, KS)
        dw = value_words(d, VS)
        found, o = _write(h, key, dw, OP_ADD, KW, VW, SW, SYNC, VT)
        if found:
            ok, nv = K.add_words(o, dw, VT)
            return item_value(nv, VS)
        return item_value(dw, VS)

    return impl
