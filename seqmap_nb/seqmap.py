"""SeqMap: a concurrent linear-probing hash map over seqlocked slots (and PlainMap).

The protocol (slot layout, reader and writer steps, why no key is duplicated, the resize)
is the top comment of :mod:`seqmap_nb._map_kernels`; this module is the thin public layer:

- :class:`SeqMap` validates input (dtypes, capacity, max_load, keys, values, batch
  arrays) with the exceptions of ``API.md`` and then calls *one* nogil kernel per call.
  The scalar path calls the kernel's compiled entry point for the exact Python types of
  its arguments (``_EntryPoints``: no dispatch by numba's dispatcher), with the header's
  address and the scalar (no boxing of a structure: HAZARDS 8), and gets back a numpy
  scalar built in the kernel (``_npscalar``); other dtypes (records, complex,
  sub-arrays, ...) and other argument types go through the batch kernels with one item.
- :class:`PlainMap` is the same class over the same kernels compiled with ``SYNC=False``
  (no sequence checks, no locks, no fences): the single-thread speed reference and the
  negative control of the concurrency tests. It refuses nothing but is **single-thread
  only**: concurrent use can lose updates and duplicate keys.
- ``numba.typeof(m)`` is a :class:`SeqMapType` whose data model holds only the header's
  address (no reference counting per call, see SeqMapType); in user ``@njit(nogil=True)`` code ``m.get(k)`` (Optional), ``m.get(k, d)``,
  ``m.insert(k, v)`` (Optional previous), ``m.remove(k)`` (Optional removed),
  ``m.add(k, d)`` (new value), ``m.contains(k)``, ``k in m`` and ``len(m)`` compile, for
  bool/integer/float keys and values (records only from Python and batch calls). Growth
  triggered inside user code needs no Python.

Capacity is a number of slots (rounded up to a power of two); the map grows when
``used = live + tombstones`` passes ``max_load * capacity`` and never shrinks
(``clear()`` keeps the capacity). Memory is released when the map is garbage collected
(a ``weakref.finalize`` on the header array, which the map owns and the caller of njit
code keeps alive while it runs).
"""
import functools
import operator
import weakref

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import (
    NativeValue,
    make_attribute_wrapper,
    models,
    overload,
    overload_attribute,
    overload_method,
    register_model,
    typeof_impl,
    unbox,
)

from . import _map_kernels as K
from ._codec import Codec, check_max_load
from ._contents import CopyByContents
from ._npscalar import as_numpy_scalar
from .config import JIT

__all__ = ["SeqMap", "PlainMap", "SeqMapType"]

_ERR_NOMEM = "SeqMap: the table is full and a larger buffer could not be allocated (map unchanged)"


def _nb_scalar(codec):
    return numba.from_dtype(codec.dtype) if codec.scalar else None


# --------------------------------------------------------------------------- kernels per layout


@functools.lru_cache(maxsize=None)
def _kernels(KW, VW, SW, SYNC, KT, VT):
    """The entry-point kernels for one layout. Constants are closure variables, so numba
    types them as literals and specialises every helper of ``_map_kernels`` on them (and
    ``cache=True`` keys each variant by their values). Each kernel first rebinds the header
    to ``K.unowned(h)``: no refcount traffic on it inside the kernel (see there)."""
    ns = {}
    # module attributes would type as plain int64: bind them here so they are literals
    OP_INSERT, OP_ADD, OP_REMOVE = K.OP_INSERT, K.OP_ADD, K.OP_REMOVE
    # part of every kernel's cache key (closure variables are): a change in the protocol
    # code they inline then recompiles them instead of loading a stale cache entry
    DIGEST = K.SOURCE_DIGEST

    @numba.njit(**JIT)
    def init(h, cap, log2):
        DIGEST  # noqa: B018 (cache key, see above)
        h = K.unowned(h)
        return K.init_map(h, cap, log2, SW, SYNC)

    @numba.njit(**JIT)
    def clear(h):
        DIGEST  # noqa: B018 (cache key, see above)
        h = K.unowned(h)
        return K.clear_map(h, KW, VW, SW, SYNC)

    @numba.njit(**JIT)
    def snapshot(h, keys, vals, plen):
        DIGEST  # noqa: B018 (cache key, see above)
        h = K.unowned(h)
        return K.snapshot(h, keys, vals, plen, KW, VW, SW, SYNC)

    @numba.njit(**JIT)
    def get_many(h, keys, out, found):
        DIGEST  # noqa: B018 (cache key, see above)
        h = K.unowned(h)
        r = K.lookup_many(h, keys, out, found, KW, VW, SW, SYNC)
        K.add_stat(h, K.ST_RETRY, r, SYNC)

    @numba.njit(**JIT)
    def insert_many(h, keys, vals, old, found):
        """Returns -1, or the index of the first item not inserted (table full, no memory)."""
        DIGEST  # noqa: B018 (cache key, see above)
        h = K.unowned(h)
        waits = 0
        n = found.shape[0]
        for j in range(n):
            K.prefetch_ahead(h, keys, j, n, KW, SW, SYNC)
            key = K.load_words(keys, j * KW, KW, False)
            v = K.load_words(vals, j * VW, VW, False)
            st, o, w = K.update(h, key, v, OP_INSERT, KW, VW, SW, SYNC, VT)
            waits += w
            if st == K.ST_NOMEM:
                K.add_stat(h, K.ST_WAIT, waits, SYNC)
                return j
            found[j] = st == K.ST_FOUND
            K.store_words(old, j * VW, o, False)
        K.add_stat(h, K.ST_WAIT, waits, SYNC)
        return -1

    @numba.njit(**JIT)
    def remove_many(h, keys, old, found):
        DIGEST  # noqa: B018 (cache key, see above)
        h = K.unowned(h)
        waits = 0
        z = K.zero_words(VW)
        n = found.shape[0]
        for j in range(n):
            K.prefetch_ahead(h, keys, j, n, KW, SW, SYNC)
            key = K.load_words(keys, j * KW, KW, False)
            st, o, w = K.update(h, key, z, OP_REMOVE, KW, VW, SW, SYNC, VT)
            waits += w
            found[j] = st == K.ST_FOUND
            K.store_words(old, j * VW, o, False)
        K.add_stat(h, K.ST_WAIT, waits, SYNC)

    ns.update(init=init, clear=clear, snapshot=snapshot, get_many=get_many,
              insert_many=insert_many, remove_many=remove_many)

    if VT is not None and isinstance(VT, (types.Integer, types.Float)):

        @numba.njit(**JIT)
        def add_many(h, keys, deltas, new):
            """Returns (-1, 0), or (index, status) of the first item not applied."""
            DIGEST  # noqa: B018 (cache key, see above)
            h = K.unowned(h)
            waits = 0
            n = new.shape[0] // VW
            for j in range(n):
                K.prefetch_ahead(h, keys, j, n, KW, SW, SYNC)
                key = K.load_words(keys, j * KW, KW, False)
                d = K.load_words(deltas, j * VW, VW, False)
                st, o, w = K.update(h, key, d, OP_ADD, KW, VW, SW, SYNC, VT)
                waits += w
                if st == K.ST_NOMEM or st == K.ST_OVERFLOW:
                    K.add_stat(h, K.ST_WAIT, waits, SYNC)
                    return j, st
                if st == K.ST_FOUND:
                    ok, nv = K.combine(OP_ADD, o, d, VT)
                    K.store_words(new, j * VW, nv, False)
                else:
                    K.store_words(new, j * VW, d, False)
            K.add_stat(h, K.ST_WAIT, waits, SYNC)
            return -1, 0

        ns["add_many"] = add_many

    if KT is not None and VT is not None:
        # The scalar kernels of the Python methods. They take the header's *address* (an
        # int unboxes in a few ns, an array argument costs a reference-counted view per
        # call) and return numpy scalars built in the kernel (see _npscalar). The Python
        # methods call their compiled entry points directly (see _EntryPoints).

        @numba.njit(**JIT)
        def get1(a, k):
            DIGEST  # noqa: B018 (cache key, see above)
            h = K.header_at(a)
            key = (K.key_word(k, KT),)
            f, vals = K.lookup(h, key, KW, VW, SW, SYNC)
            if f:
                return as_numpy_scalar(K.word_value(vals[0], VT))
            return None

        @numba.njit(**JIT)
        def contains1(a, k):
            DIGEST  # noqa: B018 (cache key, see above)
            h = K.header_at(a)
            key = (K.key_word(k, KT),)
            f, vals = K.lookup(h, key, KW, VW, SW, SYNC)
            return f

        @numba.njit(**JIT)
        def insert1(a, k, v):
            DIGEST  # noqa: B018 (cache key, see above)
            h = K.header_at(a)
            key = (K.key_word(k, KT),)
            val = (K.value_word(v, VT),)  # both validated before anything is written
            st, o, w = K.update(h, key, val, OP_INSERT, KW, VW, SW, SYNC, VT)
            if w != 0:
                K.add_stat(h, K.ST_WAIT, w, SYNC)
            if st == K.ST_NOMEM:
                raise MemoryError(_ERR_NOMEM)
            if st == K.ST_FOUND:
                return as_numpy_scalar(K.word_value(o[0], VT))
            return None

        @numba.njit(**JIT)
        def remove1(a, k):
            DIGEST  # noqa: B018 (cache key, see above)
            h = K.header_at(a)
            key = (K.key_word(k, KT),)
            st, o, w = K.update(h, key, K.zero_words(VW), OP_REMOVE, KW, VW, SW, SYNC, VT)
            if w != 0:
                K.add_stat(h, K.ST_WAIT, w, SYNC)
            if st == K.ST_FOUND:
                return as_numpy_scalar(K.word_value(o[0], VT))
            return None

        ns.update(get1=get1, contains1=contains1, insert1=insert1, remove1=remove1)

        if isinstance(VT, (types.Integer, types.Float)) and not isinstance(VT, types.Boolean):

            @numba.njit(**JIT)
            def add1(a, k, d):
                DIGEST  # noqa: B018 (cache key, see above)
                h = K.header_at(a)
                key = (K.key_word(k, KT),)
                dw = (K.value_word(d, VT),)
                st, o, w = K.update(h, key, dw, OP_ADD, KW, VW, SW, SYNC, VT)
                if w != 0:
                    K.add_stat(h, K.ST_WAIT, w, SYNC)
                if st == K.ST_OVERFLOW:
                    raise OverflowError("add: the result does not fit the value dtype (value unchanged)")
                if st == K.ST_NOMEM:
                    raise MemoryError(_ERR_NOMEM)
                if st == K.ST_FOUND:
                    ok, nv = K.combine(OP_ADD, o, dw, VT)
                    return as_numpy_scalar(K.word_value(nv[0], VT))
                return as_numpy_scalar(K.word_value(dw[0], VT))

            ns["add1"] = add1

        kfast, vfast = _fast_types(KT), _fast_types(VT)
        ns.update(get_ep=_EntryPoints(get1, kfast), contains_ep=_EntryPoints(contains1, kfast),
                  insert_ep=_EntryPoints(insert1, kfast, vfast), remove_ep=_EntryPoints(remove1, kfast),
                  add_ep=_EntryPoints(ns.get("add1"), kfast, vfast))
    return type("Kernels", (), ns)


# --------------------------------------------------------------------------- the Python class


def _fast_types(nbtype):
    """Python types the scalar methods hand straight to a kernel typed `nbtype`: the
    builtin types of its kind and the numpy scalar type of its dtype."""
    dt = numba.np.numpy_support.as_dtype(nbtype)
    base = {"b": {bool}, "i": {int}, "u": {int}, "f": {float, int}}[dt.kind]
    return frozenset(base | {dt.type})


class _EntryPoints(dict):
    """Python argument types -> the compiled entry point of one scalar kernel, or None.

    Calling a jitted function goes through numba's dispatcher, which works out the numba
    type of every argument and looks the overload up: about 100 ns of a ~450 ns call on
    the reference machine. The scalar methods know the types already (they take the fast
    path only for the exact types of ``_fast_types``), so they look the compiled function
    up here by ``type(k)`` (or ``(type(k), type(v))``) and call it directly, as the
    dispatcher itself would. ``Dispatcher.compile(sig)`` compiles the signature, or loads
    it from the cache, and returns that entry point. Any other type maps to None: the
    caller's general path, which validates and converts. Shared by every map of a layout.
    """

    def __init__(self, kernel, *fast):
        super().__init__()
        self._kernel, self._fast = kernel, fast

    def __missing__(self, key):
        ts = key if isinstance(key, tuple) else (key,)
        ep = None
        if self._kernel is not None and all(t in f for t, f in zip(ts, self._fast)):
            ep = self._kernel.compile((types.intp,) + tuple(numba.typeof(t(0)) for t in ts))
        self[key] = ep
        return ep


_NO_ENTRY = _EntryPoints(None)  # layouts without scalar kernels (records, complex, ...)


_FAST_ERRORS = (TypeError, ValueError, OverflowError)


class SeqMap(CopyByContents):
    """A concurrent hash map: lock-free seqlock reads, per-slot-locked writes, concurrent
    growth. See ``API.md`` for the contract and ``_map_kernels`` for the protocol.

    ``SeqMap(key_dtype, value_dtype, capacity=16, max_load=0.75)``: keys and values of any
    fixed-size numpy dtype. ``capacity`` is the initial number of slots (rounded up to a
    power of two); the map grows when ``max_load`` of the slots are used.
    """

    _SYNC = True
    #: the largest capacity accepted (slots); beyond it is "absurd" (ValueError)
    MAX_CAPACITY = 1 << K.MAX_LOG2

    def __init__(self, key_dtype, value_dtype, capacity=16, max_load=0.75):
        kc = Codec(key_dtype, is_key=True, what="key_dtype")
        vc = Codec(value_dtype, is_key=False, what="value_dtype")
        if isinstance(capacity, (bool, np.bool_)) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"capacity must be an integer, got {type(capacity).__name__} {capacity!r}")
        capacity = int(capacity)
        if capacity <= 0 or capacity > self.MAX_CAPACITY:
            raise ValueError(f"capacity must be in 1 .. 2**{K.MAX_LOG2}, got {capacity}")
        max_load = check_max_load(max_load)
        log2 = max(0, (capacity - 1).bit_length())
        self._kc, self._vc = kc, vc
        self._KW, self._VW = kc.nwords, vc.nwords
        self._SW = K.slot_words(self._KW, self._VW)
        self._max_load = max_load
        KT, VT = _nb_scalar(kc), _nb_scalar(vc)
        self._k = _kernels(self._KW, self._VW, self._SW, self._SYNC, KT, VT)
        base = np.zeros(K.H_WORDS, np.uint64)
        h = base[:]  # njit code holds this view; its death frees the buffers
        h[K.H_MAXLOAD] = max(1, int(max_load * 65536))
        h[K.H_KW], h[K.H_VW], h[K.H_SW], h[K.H_SYNC] = self._KW, self._VW, self._SW, int(self._SYNC)
        if not self._k.init(h, 1 << log2, log2):
            raise MemoryError(f"could not allocate {(1 << log2) * self._SW * 8} bytes for {1 << log2} slots")
        self._h = h
        self._hdr_addr = int(h.ctypes.data)  # what njit code unboxes (see SeqMapType)
        self._finalizer = weakref.finalize(h, K.free_all, base)
        self._info = np.zeros(8, np.int64)
        self._nbtype = SeqMapType(KT, VT, self._KW, self._VW, self._SW, self._SYNC, kc.dtype, vc.dtype)
        self._can_add = vc.kind in "iuf"
        k = self._k
        self._get_ep = getattr(k, "get_ep", _NO_ENTRY)
        self._contains_ep = getattr(k, "contains_ep", _NO_ENTRY)
        self._insert_ep = getattr(k, "insert_ep", _NO_ENTRY)
        self._remove_ep = getattr(k, "remove_ep", _NO_ENTRY)
        self._add_ep = getattr(k, "add_ep", _NO_ENTRY)

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
        if self._k.insert_many(self._h, kw, vw, old, found) >= 0:
            raise MemoryError(_ERR_NOMEM)
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
        self._k.remove_many(self._h, kw, old, found)
        return self._vc.from_words(old) if found[0] else None

    def add(self, k, d):
        """Atomic ``value += d`` (inserting `d` when absent); returns the new value.

        Integer overflow raises OverflowError and leaves the value unchanged; floats
        follow IEEE. bool, complex and record values have no addition (TypeError)."""
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
        j, st = self._k.add_many(self._h, kw, dw, new)
        if j >= 0:
            if st == K.ST_OVERFLOW:
                raise OverflowError(f"add: {k!r} + {d!r} does not fit in {self._vc.dtype} (value unchanged)")
            raise MemoryError(_ERR_NOMEM)
        return self._vc.from_words(new)

    def contains(self, k):
        ep = self._contains_ep[type(k)]
        if ep is not None:
            try:
                return ep(self._hdr_addr, k)
            except _FAST_ERRORS:
                pass
        return self._get_slow(k, _MISSING) is not _MISSING

    __contains__ = contains

    def __getitem__(self, k):
        v = self.get(k, _MISSING)
        if v is _MISSING:
            raise KeyError(k)
        return v

    def __setitem__(self, k, v):
        self.insert(k, v)

    def __delitem__(self, k):
        # remove() returns the value; a present key always has one, so check presence
        kw = self._kc.words(k)
        old = np.empty(self._VW, np.uint64)
        found = np.empty(1, np.bool_)
        self._k.remove_many(self._h, kw, old, found)
        if not found[0]:
            raise KeyError(k)

    def __len__(self):
        return int(K.live_count(self._h))

    def __iter__(self):
        return iter(self.keys())

    def __repr__(self):
        return (f"{type(self).__name__}({self._kc.dtype}, {self._vc.dtype}, len={len(self)}, "
                f"capacity={self.capacity})")

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

    def get_many(self, keys):
        """``(values, found)`` for an array of keys, in one nogil kernel. Values of absent
        keys are zero (all bytes 0)."""
        _, kw, n = self._batch_keys(keys)
        out = np.empty(n * self._VW, np.uint64)
        found = np.empty(n, np.bool_)
        self._k.get_many(self._h, kw, out, found)
        return self._vc.words_array(out.reshape(n, self._VW)), found

    def insert_many(self, keys, values):
        """Insert or overwrite every pair, in order, in one nogil kernel. Both arrays are
        validated before anything is written. Returns the bool array "key was present"."""
        _, kw, n = self._batch_keys(keys)
        vw = self._batch_values(values, n, "values")
        old = np.empty(n * self._VW, np.uint64)
        found = np.empty(n, np.bool_)
        j = self._k.insert_many(self._h, kw, vw, old, found)
        if j >= 0:
            raise MemoryError(f"insert_many: {_ERR_NOMEM}; the first {j} items were inserted")
        return found

    def remove_many(self, keys):
        """Remove every key; returns the bool array "key was present"."""
        _, kw, n = self._batch_keys(keys)
        old = np.empty(n * self._VW, np.uint64)
        found = np.empty(n, np.bool_)
        self._k.remove_many(self._h, kw, old, found)
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
        j, st = self._k.add_many(self._h, kw, dw, new)
        self._raise_batch(j, st, "add_many")
        return self._vc.words_array(new.reshape(n, self._VW))

    @staticmethod
    def _raise_batch(j, st, what):
        if j < 0:
            return
        if st == K.ST_OVERFLOW:
            raise OverflowError(f"{what}: item {j} overflows the value dtype (its value unchanged; "
                                f"{j} earlier items applied)")
        raise MemoryError(f"{what}: {_ERR_NOMEM}; {j} earlier items applied")

    # ------------------------------------------------------------ whole-map views
    def _snapshot(self):
        while True:
            cap = self.capacity
            kb = np.empty(cap * self._KW, np.uint64)
            vb = np.empty(cap * self._VW, np.uint64)
            pl = np.empty(cap, np.int64)
            n = self._k.snapshot(self._h, kb, vb, pl)
            if n >= 0:
                return kb[: n * self._KW].reshape(n, self._KW), vb[: n * self._VW].reshape(n, self._VW), pl[:n]

    def items(self):
        """A snapshot ``(keys, values)`` as arrays (each slot read consistently; under
        concurrent writes, like any concurrent map iteration, not one atomic picture)."""
        kb, vb, _ = self._snapshot()
        return self._kc.words_array(kb), self._vc.words_array(vb)

    def keys(self):
        return self.items()[0]

    def values(self):
        return self.items()[1]

    def to_pandas(self):
        """DataFrame with columns ``key``, ``value``; record dtypes expand to one column per
        field (``key.<field>``), sub-arrays to one column per element (``key[i]``)."""
        import pandas as pd

        ks, vs = self.items()
        cols = {}
        for name, arr, dt in (("key", ks, self._kc.dtype), ("value", vs, self._vc.dtype)):
            if dt.fields is not None:
                for f in dt.names:
                    sub = arr[f]
                    if sub.ndim > 1:
                        flat = sub.reshape(sub.shape[0], -1)
                        for i in range(flat.shape[1]):
                            cols[f"{name}.{f}[{i}]"] = flat[:, i]
                    else:
                        cols[f"{name}.{f}"] = sub
            elif arr.ndim > 1:
                flat = arr.reshape(arr.shape[0], -1)
                for i in range(flat.shape[1]):
                    cols[f"{name}[{i}]"] = flat[:, i]
            else:
                cols[name] = arr
        return pd.DataFrame(cols)

    def probe_lengths(self):
        """For every live key, the number of slots its lookup inspects (1 = home slot)."""
        return self._snapshot()[2].copy()

    def clear(self):
        """Remove everything (a same-capacity rebuild: concurrent users simply continue on
        the empty table)."""
        if not self._k.clear(self._h):
            raise MemoryError("clear: could not allocate the empty table (map unchanged)")

    # ------------------------------------------------------------ figures
    def _read_info(self):
        out = np.empty(8, np.int64)
        K.info(self._h, out)
        return out

    @property
    def capacity(self):
        return int(self._read_info()[0])

    @property
    def load_factor(self):
        i = self._read_info()
        return int(i[2]) / int(i[0])

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

    def is_empty(self):
        return len(self) == 0

    def memory_bytes(self):
        """Bytes held now: every raw buffer (current and those kept for recycling, which
        stale readers may still be reading) plus the header."""
        return int(self._read_info()[3]) + self._h.nbytes

    def stats(self):
        """Cumulative counters since creation or :meth:`reset_stats`."""
        i = self._read_info()
        return {
            "read_retries": int(i[5]),
            "write_waits": int(i[6]),
            "resizes": int(i[4]),
            "capacity": int(i[0]),
            "len": int(i[2]),
            "tombstones": int(i[1] - i[2]),
            "memory_bytes": int(i[3]) + self._h.nbytes,
            "bytes_per_slot": int(i[7]),
        }

    def reset_stats(self):
        K.reset_stats(self._h)

    def _ctor_args(self):
        return (self._kc.dtype, self._vc.dtype), dict(capacity=self.capacity, max_load=self._max_load)

    def _set_alloc_limit(self, nbytes):
        """Testing hook: refuse buffers larger than `nbytes` (0: no limit), so the
        MemoryError path can be exercised on any machine."""
        self._h[K.H_ALLOC_LIMIT] = int(nbytes)


class PlainMap(SeqMap):
    """The same map and kernels with synchronisation compiled out (``SYNC=False``).

    Single-thread only: the speed reference for SeqMap (the cost of the seqlock is the
    difference) and the negative control of the concurrency tests. Nothing stops several
    threads from using it; they will lose updates and can duplicate keys.
    """

    _SYNC = False


_MISSING = object()


# --------------------------------------------------------------------------- numba type


#: bump whenever the data model or the header layout change
_LAYOUT_VERSION = 5


def _methods_digest():
    """The kernels' source digest folded with this file's bytes (where the njit methods
    live): part of the type's name, so a cached user function that inlined an older
    method body (get/contains/in are force-inlined) recompiles instead of running it."""
    import hashlib

    with open(__file__, "rb") as f:
        d = hashlib.sha256(f.read())
    d.update(K.SOURCE_DIGEST.to_bytes(8, "little"))
    return d.hexdigest()[:12]


_METHODS_DIGEST = _methods_digest()

# The read methods below are compiled with LLVM's alwaysinline (numba's ``forceinline``):
# as out-of-line calls they cost SeqMap ~1.5x in an njit get loop (a call through numba's
# exception ABI per lookup, the Optional result on the stack), while PlainMap's smaller
# body was inlined by LLVM anyway, so the comparison measured a call. numba's IR-level
# ``inline="always"`` does the same for speed but tripled the compile time of a user
# function calling them, and its SSA pass warns about the inlined loops. Writes are a
# call to ``update`` either way (not force-inlined: its body is large).
_INLINE = {"forceinline": True}


class SeqMapType(types.Type):
    """numba type of a SeqMap/PlainMap, with the layout as parameters.

    The data model is one uint64: the address of the header array (``K.H_WORDS`` words),
    rebuilt inside the methods into an unowned view (``K.header_at``). A model holding the
    header *array* costs an incref/decref pair of its meminfo on every method call: two
    atomic RMWs on one cache line that every thread shares, which both slows one thread
    down and caps multi-thread scaling. Safe because the header lives as long as the map
    (``SeqMap._h``; its death frees the buffers), which the caller of the njit function
    keeps alive for the call; a map cannot be returned from or stored by njit code (there
    is no boxing).
    """

    def __init__(self, KT, VT, KW, VW, SW, sync, kdt, vdt):
        self.KT, self.VT, self.KW, self.VW, self.SW, self.sync = KT, VT, KW, VW, SW, sync
        self.kdt, self.vdt = np.dtype(kdt), np.dtype(vdt)
        cls = "SeqMap" if sync else "PlainMap"
        # the layout version and the methods' source digest are part of the type's key:
        # numba's on-disk cache keys compiled functions by their argument types and the
        # caller's source file only, so a change of this data model or of the code inlined
        # into callers must change the type, or a cached caller would run the old one
        super().__init__(name=f"{cls}[{self.kdt.descr}, {self.vdt.descr}]"
                              f"(layout={_LAYOUT_VERSION}, src={_METHODS_DIGEST})")


@register_model(SeqMapType)
class _SeqMapModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("hdr_addr", types.uint64)])


make_attribute_wrapper(SeqMapType, "hdr_addr", "hdr_addr")

@overload_attribute(SeqMapType, "_header", inline="always")
def _ov_header(m):
    """The header inside njit code, as an unowned uint64 view (no reference count)."""
    return lambda m: K.header_at(m.hdr_addr)


@typeof_impl.register(SeqMap)
def _typeof_seqmap(val, c):
    return val._nbtype


@unbox(SeqMapType)
def _unbox_seqmap(typ, obj, c):
    # one int attribute: the header's address (see SeqMapType; HAZARDS 8)
    st = cgutils.create_struct_proxy(typ)(c.context, c.builder)
    is_error = cgutils.alloca_once_value(c.builder, cgutils.false_bit)
    addr_obj = c.pyapi.object_getattr_string(obj, "_hdr_addr")
    with c.builder.if_else(cgutils.is_not_null(c.builder, addr_obj)) as (ok, failed):
        with ok:
            st.hdr_addr = c.pyapi.long_as_ulonglong(addr_obj)
            c.pyapi.decref(addr_obj)
            c.builder.store(cgutils.is_not_null(c.builder, c.pyapi.err_occurred()), is_error)
        with failed:  # AttributeError already set
            c.builder.store(cgutils.true_bit, is_error)
    return NativeValue(st._getvalue(), is_error=c.builder.load(is_error))


def _scalar_layout(m, what):
    if m.KT is None or m.VT is None:
        raise TypingError(
            f"{m}: {what} inside njit code needs bool/integer/float keys and values; "
            "record, complex and other dtypes are available from Python and batch calls"
        )
    return m.KT, m.VT, m.KW, m.VW, m.SW, m.sync


@overload_method(SeqMapType, "get", jit_options=_INLINE)
def _ov_get(m, k, default=None):
    KT, VT, KW, VW, SW, SYNC = _scalar_layout(m, "get")
    if default is None or isinstance(default, (types.NoneType, types.Omitted)):
        def impl(m, k, default=None):
            h = m._header
            f, vals = K.lookup(h, (K.key_word(k, KT),), KW, VW, SW, SYNC)
            if f:
                return K.word_value(vals[0], VT)
            return None
    else:
        def impl(m, k, default=None):
            h = m._header
            f, vals = K.lookup(h, (K.key_word(k, KT),), KW, VW, SW, SYNC)
            if f:
                return K.word_value(vals[0], VT)
            return default
    return impl


@overload_method(SeqMapType, "contains", jit_options=_INLINE)
def _ov_contains(m, k):
    KT, VT, KW, VW, SW, SYNC = _scalar_layout(m, "contains")

    def impl(m, k):
        h = m._header
        f, vals = K.lookup(h, (K.key_word(k, KT),), KW, VW, SW, SYNC)
        return f

    return impl


@overload(operator.contains, jit_options=_INLINE)
def _ov_in(m, k):
    if isinstance(m, SeqMapType):
        _scalar_layout(m, "`in`")  # its TypingError names the operator
        return lambda m, k: m.contains(k)
    return None


@overload(len)
def _ov_len(m):
    if isinstance(m, SeqMapType):
        return lambda m: K.live_count(m._header)
    return None


@overload_method(SeqMapType, "insert")
def _ov_insert(m, k, v):
    KT, VT, KW, VW, SW, SYNC = _scalar_layout(m, "insert")
    OP_INSERT = K.OP_INSERT

    def impl(m, k, v):
        h = m._header
        key = (K.key_word(k, KT),)
        val = (K.value_word(v, VT),)
        st, o, w = K.update(h, key, val, OP_INSERT, KW, VW, SW, SYNC, VT)
        K.add_stat(h, K.ST_WAIT, w, SYNC)
        if st == K.ST_NOMEM:
            raise MemoryError(_ERR_NOMEM)
        if st == K.ST_FOUND:
            return K.word_value(o[0], VT)
        return None

    return impl


@overload_method(SeqMapType, "remove")
def _ov_remove(m, k):
    KT, VT, KW, VW, SW, SYNC = _scalar_layout(m, "remove")
    OP_REMOVE = K.OP_REMOVE

    def impl(m, k):
        h = m._header
        st, o, w = K.update(h, (K.key_word(k, KT),), K.zero_words(VW), OP_REMOVE, KW, VW, SW, SYNC, VT)
        K.add_stat(h, K.ST_WAIT, w, SYNC)
        if st == K.ST_FOUND:
            return K.word_value(o[0], VT)
        return None

    return impl


@overload_method(SeqMapType, "add")
def _ov_add(m, k, d):
    KT, VT, KW, VW, SW, SYNC = _scalar_layout(m, "add")
    OP_ADD = K.OP_ADD
    if isinstance(VT, types.Boolean) or not isinstance(VT, (types.Integer, types.Float)):
        raise TypingError(f"{m}: add needs integer or float values")

    def impl(m, k, d):
        h = m._header
        key = (K.key_word(k, KT),)
        dw = (K.value_word(d, VT),)
        st, o, w = K.update(h, key, dw, OP_ADD, KW, VW, SW, SYNC, VT)
        K.add_stat(h, K.ST_WAIT, w, SYNC)
        if st == K.ST_OVERFLOW:
            raise OverflowError("add: the result does not fit the value dtype (value unchanged)")
        if st == K.ST_NOMEM:
            raise MemoryError(_ERR_NOMEM)
        if st == K.ST_FOUND:
            ok, nv = K.combine(OP_ADD, o, dw, VT)
            return K.word_value(nv[0], VT)
        return K.word_value(dw[0], VT)

    return impl
