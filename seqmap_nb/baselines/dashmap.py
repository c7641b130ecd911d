"""DashMap's design in numba: a sharded map, each shard a reader-writer lock over a table.

This is the opponent the seqlock map is judged against, rendered faithfully (Rust's
``dashmap`` crate, v5/v6):

* **Shards.** ``shards`` = next power of two of 4 x logical cores (DashMap's
  ``default_shard_amount``), or the ``shards=`` option. A key's shard comes from the HIGH
  bits of its 64-bit hash, skipping the top 7 (DashMap: ``(hash << 7) >> shift``, because
  hashbrown spends the top 7 bits on its control bytes); its slot inside the shard from
  the LOW bits. Both from the same ``_hash.mix64`` SeqMap uses.
* **Per-shard lock.** One ``uint64`` reader-writer lock word (``_rwlock``: reader count +
  writer bit + writer-pending bit, CAS fast path, spin then yield), alone with its shard's
  metadata on a 128-byte line (DashMap: ``CachePadded<RwLock<HashMap>>``).
* **Reads take the read lock.** ``get``/``contains`` do a CAS on the shard's lock word and
  a ``fetch_sub`` to leave: two atomic read-modify-writes on a line every reader of the
  shard writes. Under read-heavy load on many cores that line ping-pongs; that is the
  cost DashMap pays and the seqlock map avoids, and it is kept here on purpose.
* **Writes take the write lock**, and a shard grows (or drops its tombstones) inside it,
  so no reader is ever inside a buffer that is being freed: the old buffer is freed at
  once (no reader can still be inside it; that simplicity is what the lock buys).
* **The table** is ``_table``: linear probing over SeqMap's slot layout with the seqlock
  taken out, so the comparison measures synchronisation, not a different table.

Layout of the header array (uint64, 128-byte lines of 16 words, never replaced)::

    line 0      nshards | shard bits | KW | VW | SW | max_load (f64 bits) | vkind | vbits
    line 1+s    shard s: lock | buffer addr | capacity | live | used | threshold |
                resizes | reader waits | writer waits | (padding to 128 bytes)

Progress: as DashMap's. A reader waits only while a writer holds (or waits for) its
shard; a writer waits for the readers inside to leave. A thread preempted inside a
critical section (more threads than cores) stalls its shard, and its waiters yield the
CPU to it. Not re-entrant (see ``_rwlock``).

``global_lock`` is this class with one shard: RwLock<HashMap>, conc-map-bench's baseline.
"""
import os
import types as _pytypes
import weakref

import numba
import numpy as np

from .._codec import check_max_load
from .._hash import mix64, mix_words
from .._unsafe import atomic_fetch_add, atomic_load, bits_f64, f64_bits, raw_alloc, raw_free
from ..config import JIT, LINE_WORDS
from . import _table as T
from ._nbmap import OK, NO_MEMORY, UNSUPPORTED, WordMap, register_kernels
from ._rwlock import read_lock, read_unlock, write_lock, write_unlock

H_NSHARDS = 0
H_BITS = 1
H_KW = 2
H_VW = 3
H_SW = 4
H_MAXLOAD = 5
H_VKIND = 6
H_VBITS = 7

MIN_SHARD_CAP = 8
MAX_CAPACITY = 1 << 40
NO_WORDS = T.NO_WORDS


def default_shards():
    """DashMap's default: next power of two of 4 x logical cores."""
    n = 4 * (os.cpu_count() or 1)
    p = 1
    while p < n:
        p *= 2
    return p


# ------------------------------------------------------------------ kernel helpers


@numba.njit(inline="always", **JIT)
def _shard(hdr, h):
    """Metadata offset of the key's shard: hash bits [57-bits, 57) (DashMap's (h<<7)>>shift)."""
    s = (h >> (numba.uint64(57) - hdr[H_BITS])) & (hdr[H_NSHARDS] - numba.uint64(1))
    return numba.int64(LINE_WORDS) * (numba.int64(s) + numba.int64(1))


@numba.njit(inline="always", **JIT)
def _rlock(hdr, b):
    w = read_lock(hdr, b)
    if w != 0:  # stats only on the slow path: the fast path writes nothing else
        atomic_fetch_add(hdr, b + T.M_RWAITS, w, "relaxed")


@numba.njit(inline="always", **JIT)
def _wlock(hdr, b):
    w = write_lock(hdr, b)
    if w != 0:
        hdr[b + T.M_WWAITS] += numba.uint64(w)  # we hold the write lock: plain is fine


@numba.njit(inline="always", **JIT)
def _lock(hdr, b, write):
    if write:
        _wlock(hdr, b)
    else:
        _rlock(hdr, b)


@numba.njit(inline="always", **JIT)
def _unlock(hdr, b, write):
    if write:
        write_unlock(hdr, b)
    else:
        read_unlock(hdr, b)


@numba.njit(inline="always", **JIT)
def _add_value(w, di, df, vkind, vbits):
    """(new word, ok) of value word `w` plus the delta (int64 `di` or float64 `df`)."""
    if vkind == T.V_FLOAT:
        return T.add_float_word(w, df, vbits), True
    return T.add_int_word(w, di, vkind == T.V_SIGNED, vbits)


# ------------------------------------------------------------------ one-word kernels
# (KW == VW == 1; slot = ctrl | key | value | pad)


@numba.njit(inline="always", **JIT)
def _find1(hdr, k0, take):
    """(found, value word) of key `k0`; with `take` (remove: a constant) under the shard's
    write lock, and the entry erased."""
    k0 = numba.uint64(k0)
    h = mix64(k0)
    b = _shard(hdr, h)
    sw = hdr[H_SW]
    _lock(hdr, b, take)
    buf = T.buffer(hdr, b, sw)
    i = T.find(buf, hdr[b + T.M_CAP] - numba.uint64(1), sw, 1, h, k0, NO_WORDS, 0)
    v = numba.uint64(0)
    if i >= 0:
        v = buf[numba.uint64(i) * sw + numba.uint64(2)]
        if take:
            T.erase(hdr, b, sw, i)
    _unlock(hdr, b, take)
    return i >= 0, v


@numba.njit(**JIT)
def get1(hdr, k0):
    return _find1(hdr, k0, False)


@numba.njit(**JIT)
def insert1(hdr, k0, v0):
    k0 = numba.uint64(k0)
    v0 = numba.uint64(v0)
    h = mix64(k0)
    b = _shard(hdr, h)
    sw = hdr[H_SW]
    _wlock(hdr, b)
    st, i, existed = T.upsert_slot(hdr, b, sw, 1, bits_f64(hdr[H_MAXLOAD]), h, k0, NO_WORDS, 0)
    prev = numba.uint64(0)
    if st == OK:
        buf = T.buffer(hdr, b, sw)
        vb = numba.uint64(i) * sw + numba.uint64(2)
        if existed:
            prev = buf[vb]
        buf[vb] = v0
    write_unlock(hdr, b)
    return st, existed, prev


@numba.njit(**JIT)
def remove1(hdr, k0):
    found, prev = _find1(hdr, k0, True)
    return OK, found, prev


@numba.njit(**JIT)
def add1(hdr, k0, di, df):
    k0 = numba.uint64(k0)
    h = mix64(k0)
    b = _shard(hdr, h)
    sw = hdr[H_SW]
    _wlock(hdr, b)
    st, w = _add_locked(hdr, b, sw, 1, h, k0, NO_WORDS, 0, di, df)
    write_unlock(hdr, b)
    return st, w


@numba.njit(inline="always", **JIT)
def _add_locked(hdr, b, sw, kw, h, k0, krest, koff, di, df):
    """add under the shard's write lock: (status, new value word); value unchanged on error."""
    buf = T.buffer(hdr, b, sw)
    i = T.find(buf, hdr[b + T.M_CAP] - numba.uint64(1), sw, kw, h, k0, krest, koff)
    old = numba.uint64(0)
    if i >= 0:
        old = buf[numba.uint64(i) * sw + numba.uint64(1 + kw)]
    new, ok = _add_value(old, di, df, hdr[H_VKIND], hdr[H_VBITS])
    if not ok:
        return T.OVERFLOW, old
    if i < 0:
        st, i, _ = T.upsert_slot(hdr, b, sw, kw, bits_f64(hdr[H_MAXLOAD]), h, k0, krest, koff)
        if st != OK:
            return st, old
        buf = T.buffer(hdr, b, sw)
    buf[numba.uint64(i) * sw + numba.uint64(1 + kw)] = new
    return OK, new


@numba.njit(**JIT)
def length(hdr):
    n = numba.int64(0)
    for s in range(hdr[H_NSHARDS]):
        b = numba.int64(LINE_WORDS) * (s + 1)
        _rlock(hdr, b)  # DashMap's len() takes every shard's read lock in turn
        n += numba.int64(hdr[b + T.M_LIVE])
        read_unlock(hdr, b)
    return n


# ------------------------------------------------------------------ row kernels (any width)


@numba.njit(inline="always", **JIT)
def _row(hdr, kflat, r, kw):
    """Row `r` of a flat key-word array: (offset of its words, first word, hash, shard)."""
    ko = r * kw
    k0 = kflat[ko]
    h = mix_words(k0, kflat, ko, kw)
    return ko, k0, h, _shard(hdr, h)


@numba.njit(inline="always", **JIT)
def _copy_value(buf, i, sw, kw, vw, dst, r):
    """The `vw` value words of slot `i` into ``dst[r * vw:]``."""
    vb = numba.int64(i) * numba.int64(sw) + 1 + kw
    for j in range(vw):
        dst[r * vw + j] = buf[vb + j]


@numba.njit(inline="always", **JIT)
def _find_rows(hdr, kflat, out, found, take):
    """Each row's value into `out` (`found` set); with `take` (remove: a constant) under
    the shard's write lock, and the entry erased."""
    kw = numba.int64(hdr[H_KW])
    vw = numba.int64(hdr[H_VW])
    sw = hdr[H_SW]
    for r in range(found.shape[0]):
        ko, k0, h, b = _row(hdr, kflat, r, kw)
        _lock(hdr, b, take)
        buf = T.buffer(hdr, b, sw)
        i = T.find(buf, hdr[b + T.M_CAP] - numba.uint64(1), sw, kw, h, k0, kflat, ko)
        if i >= 0:
            found[r] = True
            _copy_value(buf, i, sw, kw, vw, out, r)
            if take:
                T.erase(hdr, b, sw, i)
        _unlock(hdr, b, take)


@numba.njit(**JIT)
def get_rows(hdr, kflat, vout, found):
    _find_rows(hdr, kflat, vout, found, False)


@numba.njit(**JIT)
def insert_rows(hdr, kflat, vflat, prev, pfound):
    kw = numba.int64(hdr[H_KW])
    vw = numba.int64(hdr[H_VW])
    sw = hdr[H_SW]
    ml = bits_f64(hdr[H_MAXLOAD])
    for r in range(pfound.shape[0]):
        ko, k0, h, b = _row(hdr, kflat, r, kw)
        _wlock(hdr, b)
        st, i, existed = T.upsert_slot(hdr, b, sw, kw, ml, h, k0, kflat, ko)
        if st == OK:
            buf = T.buffer(hdr, b, sw)
            if existed:
                pfound[r] = True
                _copy_value(buf, i, sw, kw, vw, prev, r)
            vb = numba.int64(i) * numba.int64(sw) + 1 + kw
            for j in range(vw):
                buf[vb + j] = vflat[r * vw + j]
        write_unlock(hdr, b)
        if st != OK:
            return st, r
    return OK, pfound.shape[0]


@numba.njit(**JIT)
def remove_rows(hdr, kflat, prev, found):
    _find_rows(hdr, kflat, prev, found, True)
    return OK


@numba.njit(**JIT)
def add_rows(hdr, kflat, dis, dfs, vout):
    kw = numba.int64(hdr[H_KW])
    sw = hdr[H_SW]
    if hdr[H_VW] != 1 or hdr[H_VKIND] == T.V_OTHER:
        return UNSUPPORTED, 0
    isf = hdr[H_VKIND] == T.V_FLOAT
    n = vout.shape[0]
    for r in range(n):
        ko, k0, h, b = _row(hdr, kflat, r, kw)
        _wlock(hdr, b)
        if isf:
            st, w = _add_locked(hdr, b, sw, kw, h, k0, kflat, ko, numba.int64(0), dfs[r])
        else:
            st, w = _add_locked(hdr, b, sw, kw, h, k0, kflat, ko, dis[r], 0.0)
        write_unlock(hdr, b)
        if st != OK:
            return st, r
        vout[r] = w
    return OK, n


# ------------------------------------------------------------------ whole-table kernels


@numba.njit(**JIT)
def init_buffers(hdr):
    """Allocate every shard's buffer; NO_MEMORY (and nothing allocated) on failure."""
    sw = hdr[H_SW]
    for s in range(hdr[H_NSHARDS]):
        b = LINE_WORDS * (s + 1)
        addr = raw_alloc(hdr[b + T.M_CAP] * sw * numba.uint64(8))
        if addr == 0:
            free_buffers(hdr)
            return NO_MEMORY
        hdr[b + T.M_ADDR] = addr
    return OK


@numba.njit(**JIT)
def free_buffers(hdr):
    for s in range(hdr[H_NSHARDS]):
        b = LINE_WORDS * (s + 1)
        if hdr[b + T.M_ADDR] != 0:
            raw_free(hdr[b + T.M_ADDR], numba.int64(hdr[b + T.M_CAP] * hdr[H_SW]) * 8)
            hdr[b + T.M_ADDR] = 0


@numba.njit(**JIT)
def shard_snapshot(hdr, s):
    """(key words (n, KW), value words (n, VW), probe lengths (n,)) of shard `s`, read-locked."""
    kw = numba.int64(hdr[H_KW])
    vw = numba.int64(hdr[H_VW])
    sw = hdr[H_SW]
    b = LINE_WORDS * (s + 1)
    _rlock(hdr, b)
    n = numba.int64(hdr[b + T.M_LIVE])
    cap = hdr[b + T.M_CAP]
    buf = T.buffer(hdr, b, sw)
    ks = np.empty((n, kw), np.uint64)
    vs = np.empty((n, vw), np.uint64)
    pl = np.empty(n, np.int64)
    r = 0
    for i in range(cap):
        base = numba.uint64(i) * sw
        if buf[base] == T.FULL:
            for j in range(kw):
                ks[r, j] = buf[base + numba.uint64(1 + j)]
            for j in range(vw):
                vs[r, j] = buf[base + numba.uint64(1 + kw + j)]
            pl[r] = T.probe_len_of(buf, cap, sw, kw, base)
            r += 1
    read_unlock(hdr, b)
    return ks, vs, pl


@numba.njit(**JIT)
def clear_all(hdr):
    sw = hdr[H_SW]
    for s in range(hdr[H_NSHARDS]):
        b = LINE_WORDS * (s + 1)
        _wlock(hdr, b)
        buf = T.buffer(hdr, b, sw)
        buf[:] = 0
        hdr[b + T.M_LIVE] = 0
        hdr[b + T.M_USED] = 0
        write_unlock(hdr, b)


@numba.njit(**JIT)
def totals(hdr):
    """(capacity, resizes, reader waits, writer waits) summed over shards (relaxed loads)."""
    cap = numba.int64(0)
    rz = numba.int64(0)
    rw = numba.int64(0)
    ww = numba.int64(0)
    for s in range(hdr[H_NSHARDS]):
        b = LINE_WORDS * (s + 1)
        cap += numba.int64(atomic_load(hdr, b + T.M_CAP, "relaxed"))
        rz += numba.int64(atomic_load(hdr, b + T.M_RESIZES, "relaxed"))
        rw += numba.int64(atomic_load(hdr, b + T.M_RWAITS, "relaxed"))
        ww += numba.int64(atomic_load(hdr, b + T.M_WWAITS, "relaxed"))
    return cap, rz, rw, ww


KERNELS = _pytypes.SimpleNamespace(
    get1=get1, insert1=insert1, remove1=remove1, add1=add1, length=length,
    get_rows=get_rows, insert_rows=insert_rows, remove_rows=remove_rows, add_rows=add_rows,
)
register_kernels("dashmap", KERNELS)
register_kernels("global_lock", KERNELS)


def _free(hdr):
    free_buffers(hdr)


# ------------------------------------------------------------------ the Python class


class DashMap(WordMap):
    """A DashMap-style sharded map (see the module docstring for the design).

    ``DashMap(key_dtype, value_dtype, capacity=16, shards=None, max_load=0.75)``:
    `capacity` is the number of entries the map holds without growing (as for SeqMap and
    Rust's ``DashMap::with_capacity``): each shard gets the smallest power of two of slots
    (at least 8) whose ``max_load`` share holds its part of them; ``m.slots`` is the total.
    Every shard grows by itself. Thread-safe from Python and from njit
    code; keys and values of any fixed-size dtype (records from Python and batch calls).
    """

    _kind = "dashmap"

    def __init__(self, key_dtype, value_dtype, capacity=16, *, shards=None, max_load=0.75):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"capacity must be an integer, got {type(capacity).__name__}")
        if not 0 < capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity must be in 1 .. {MAX_CAPACITY}, got {capacity}")
        max_load = check_max_load(max_load)
        ns = default_shards() if shards is None else shards
        if isinstance(ns, bool) or not isinstance(ns, (int, np.integer)) or ns < 1 or ns > 1 << 16 or ns & (ns - 1):
            raise ValueError(f"shards must be a power of two in 1 .. 65536, got {shards!r}")
        self._setup(key_dtype, value_dtype)
        ns = int(ns)
        want = -(-int(capacity) // ns)  # entries per shard, rounded up
        per = MIN_SHARD_CAP
        while T.threshold_of(per, max_load) < want:
            per *= 2
        sw = T.slot_words(self._kw, self._vw)
        hdr = np.zeros(LINE_WORDS * (1 + ns), np.uint64)
        hdr[H_NSHARDS] = ns
        hdr[H_BITS] = ns.bit_length() - 1
        hdr[H_KW], hdr[H_VW], hdr[H_SW] = self._kw, self._vw, sw
        hdr[H_MAXLOAD] = np.float64(max_load).view(np.uint64)
        hdr[H_VKIND], hdr[H_VBITS] = self._vkind, self._vbits
        for s in range(ns):
            b = LINE_WORDS * (s + 1)
            hdr[b + T.M_CAP] = per
            hdr[b + T.M_THRESH] = T.threshold_of(per, max_load)
        if init_buffers(hdr) != OK:
            raise MemoryError(f"cannot allocate {per * ns} slots of {sw * 8} bytes")
        self._bind(hdr)
        self.shards = ns
        self.max_load = float(max_load)
        self.bytes_per_slot = sw * 8
        self._finalizer = weakref.finalize(self, _free, hdr)

    def _ctor_args(self):
        return (self.key_dtype, self.value_dtype), dict(capacity=self.capacity, shards=self.shards,
                                                         max_load=self.max_load)

    def _snapshot(self):
        parts = [shard_snapshot(self._hdr, s) for s in range(self.shards)]
        ks = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, self._kw), np.uint64)
        vs = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, self._vw), np.uint64)
        pl = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.int64)
        return ks, vs, pl

    def _collect(self):
        """Snapshot: consistent per shard (each read-locked in turn), as DashMap's iter()."""
        ks, vs, _ = self._snapshot()
        return ks, vs

    def probe_lengths(self):
        """For every live key, the slots its lookup inspects in its shard (1 = home slot)."""
        return self._snapshot()[2]

    def clear(self):
        clear_all(self._hdr)

    @property
    def capacity(self):
        """Entries the map holds before a shard grows (the shards' thresholds summed)."""
        return int(sum(self._hdr[LINE_WORDS * (s + 1) + T.M_THRESH] for s in range(self.shards)))

    @property
    def slots(self):
        """Slots of the shards' tables together."""
        return int(totals(self._hdr)[0])

    def _raw_stats(self):
        _, rz, rw, ww = totals(self._hdr)
        return dict(read_retries=int(rw), write_waits=int(ww), resizes=int(rz))


class GlobalLockMap(DashMap):
    """One reader-writer lock over one table: ``RwLock<HashMap>`` of conc-map-bench.

    DashMap's code with one shard (a parameter, not a copy)."""

    _kind = "global_lock"

    def __init__(self, key_dtype, value_dtype, capacity=16, *, max_load=0.75):
        super().__init__(key_dtype, value_dtype, capacity, shards=1, max_load=max_load)

    def _ctor_args(self):
        return (self.key_dtype, self.value_dtype), dict(capacity=self.capacity, max_load=self.max_load)
