"""``cas``: a lock-free linear-probing table in the Preshing / Click style.

Jeff Preshing's "The World's Simplest Lock-Free Hash Table" (2013), itself the core of
Cliff Click's non-blocking hash map: keys are claimed by compare-exchange on an empty
slot and never move or leave; values are published with atomic stores and updated with
atomic exchange / fetch-add. No locks, no seqlock: a read is two or three plain-cost
atomic loads per probe step.

What it cannot do (the registry says so, and the harness refuses such workloads):
  * 64-bit integer keys and values only (``int64`` / ``uint64``), no records, no floats.
  * Fixed capacity: no resize. A new key that finds no free slot after probing the
    whole table raises :class:`MapFullError` (a ``MemoryError``); linear probing slows
    down long before that, so size it at about twice the keys it will hold.
  * No delete: ``remove`` raises ``NotImplementedError`` (Preshing's table has none;
    tombstones would need a resize to ever be reclaimed).
  * ``add`` is ``fetch_add``: it wraps around on overflow like C's and Rust's atomic
    add (it does not raise ``OverflowError`` as the other maps do).
  * ``clear()`` is not safe while other threads use the map.

Slot layout (4 words = 32 bytes, the size of SeqMap's and dashmap's u64/u64 slots, so
the three tables have the same memory footprint per slot)::

    +----------+----------+----------+---------+
    | key      | state    | value    | (pad)   |
    +----------+----------+----------+---------+
      key    0 = EMPTY; otherwise the key, set once by CAS and never changed
      state  0 = claimed, value not yet published; 1 = published
      value  the value word: atomic store / exchange / fetch_add

The EMPTY marker: key word 0. No key value is reserved for users: the key 0 itself
lives in a dedicated cell in the header (same layout, its "key" word is a claimed flag
0/1), so every 64-bit pattern is an ordinary key.

Protocol
  get(k)
    CG1. From ``mix64(k) & mask``: ``kk = load(key, relaxed)``; EMPTY ends the probe (miss).
        Keys never change once claimed, so relaxed suffices to recognise one.
    CG2. On ``kk == k``: ``s = load(state, acquire)``; 0 means the first insert of `k` has
        not published yet: a miss (that insert is linearised at its publication). The
        acquire pairs with the publisher's release store: its value store is visible.
    CG3. ``v = load(value, relaxed)``: the latest value in the slot's modification order.
  insert(k, v) / add(k, d)
    CI1. Probe as CG1, but on EMPTY: ``cas(key, 0, k, acq_rel)``. Success: this thread owns
        the new key; store the value (relaxed), then ``store(state, 1, release)``:
        publication. Failure returns the key another thread claimed: compare it (it may
        be `k` itself: all inserters of one key meet at its first EMPTY slot, so exactly
        one CAS wins and a key is never present twice).
    CI2. On ``kk == k``: wait (backoff) until ``state == 1`` (the claimer is between two
        stores; this is the one wait in the design, and only against the first insert of
        the same key), then ``xchg(value, v, acq_rel)`` (insert: returns the previous
        value) or ``fetch_add(value, d, acq_rel)`` (add).
  len: striped counters (16 cache lines) bumped after publication; may lag.
"""
import types as _pytypes
import weakref

import numba
import numpy as np

from .._hash import mix64
from .._unsafe import (
    atomic_cas,
    atomic_fetch_add,
    atomic_load,
    atomic_store,
    atomic_xchg,
    backoff,
    raw_alloc,
    raw_free,
    raw_words,
)
from ..config import JIT, LINE_WORDS
from ._nbmap import FULL, OK, UNSUPPORTED, MapFullError, WordMap, register_kernels

SW = 4
H_ADDR = 0
H_CAP = 1
ZERO_CELL = LINE_WORDS  # line 1: the cell of key 0 (claimed flag | state | value)
NSTRIPES = 16
STRIPES = 2 * LINE_WORDS  # lines 2 .. 2+NSTRIPES-1: word 0 live count, word 1 waits
HDR_WORDS = (2 + NSTRIPES) * LINE_WORDS
MAX_CAPACITY = 1 << 40

__all__ = ["CasMap", "MapFullError"]


@numba.njit(inline="always", **JIT)
def _slots(hdr):
    return raw_words(hdr[H_ADDR], hdr[H_CAP] * numba.uint64(SW))


@numba.njit(inline="always", **JIT)
def _stripe(i):
    return STRIPES + numba.int64(i & (NSTRIPES - 1)) * LINE_WORDS


@numba.njit(inline="always", **JIT)
def _cell(hdr, k0, claim):
    """(array, base, claimed_by_us) of the cell of key `k0`: the slot holding it, or with
    `claim` (inserts; a constant, folded away after inlining) the first EMPTY slot of its
    chain claimed by CAS. Base -1: a miss (lookups) or a full table (claims)."""
    if k0 == 0:
        if claim:
            old = atomic_cas(hdr, ZERO_CELL, 0, 1, "acq_rel")
            return hdr, numba.int64(ZERO_CELL), old == 0
        return hdr, numba.int64(ZERO_CELL), False
    s = _slots(hdr)
    cap = hdr[H_CAP]
    mask = cap - numba.uint64(1)
    i = mix64(k0) & mask
    for _ in range(cap):
        base = numba.int64(i) * SW
        kk = atomic_load(s, base, "relaxed")  # CG1
        if kk == 0:
            if not claim:
                return s, numba.int64(-1), False
            kk = atomic_cas(s, base, 0, k0, "acq_rel")  # CI1: claim the first EMPTY slot
            if kk == 0:
                return s, base, True
        if kk == k0:
            return s, base, False
        i = (i + numba.uint64(1)) & mask
    return s, numba.int64(-1), False


@numba.njit(inline="always", **JIT)
def _publish(hdr, arr, base, v):
    atomic_store(arr, base + 2, v, "relaxed")
    atomic_store(arr, base + 1, 1, "release")  # CI1: publication; pairs with CG2's acquire
    atomic_fetch_add(hdr, _stripe(base // SW), 1, "relaxed")


@numba.njit(inline="always", **JIT)
def _await_published(hdr, arr, base):
    """CI2: wait until the claimer of this cell has published its first value."""
    if atomic_load(arr, base + 1, "acquire") == 1:
        return
    step = 0
    waits = 0
    while atomic_load(arr, base + 1, "acquire") != 1:
        waits += 1
        step = backoff(step)
    atomic_fetch_add(hdr, _stripe(base // SW) + 1, waits, "relaxed")


@numba.njit(**JIT)
def get1(hdr, k0):
    k0 = numba.uint64(k0)
    arr, base, _ = _cell(hdr, k0, False)
    if base < 0:
        return False, numba.uint64(0)
    if atomic_load(arr, base + 1, "acquire") != 1:  # CG2
        return False, numba.uint64(0)
    return True, atomic_load(arr, base + 2, "relaxed")  # CG3


@numba.njit(**JIT)
def insert1(hdr, k0, v0):
    k0 = numba.uint64(k0)
    v0 = numba.uint64(v0)
    arr, base, mine = _cell(hdr, k0, True)
    if base < 0:
        return FULL, False, numba.uint64(0)
    if mine:
        _publish(hdr, arr, base, v0)
        return OK, False, numba.uint64(0)
    _await_published(hdr, arr, base)
    return OK, True, atomic_xchg(arr, base + 2, v0, "acq_rel")


@numba.njit(**JIT)
def remove1(hdr, k0):
    k0 = numba.uint64(k0)
    return UNSUPPORTED, False, numba.uint64(0)


@numba.njit(**JIT)
def add1(hdr, k0, di, df):
    k0 = numba.uint64(k0)
    d = numba.uint64(di)  # two's complement: fetch_add of a negative delta subtracts
    arr, base, mine = _cell(hdr, k0, True)
    if base < 0:
        return FULL, numba.uint64(0)
    if mine:
        _publish(hdr, arr, base, d)
        return OK, d
    _await_published(hdr, arr, base)
    return OK, atomic_fetch_add(arr, base + 2, d, "acq_rel") + d


@numba.njit(**JIT)
def length(hdr):
    n = numba.int64(0)
    for s in range(NSTRIPES):
        n += numba.int64(atomic_load(hdr, STRIPES + s * LINE_WORDS, "relaxed"))
    return n


@numba.njit(**JIT)
def get_rows(hdr, kflat, vout, found):
    for r in range(found.shape[0]):
        f, v = get1(hdr, kflat[r])
        found[r] = f
        vout[r] = v


@numba.njit(**JIT)
def insert_rows(hdr, kflat, vflat, prev, pfound):
    for r in range(pfound.shape[0]):
        st, existed, p = insert1(hdr, kflat[r], vflat[r])
        if st != OK:
            return st, r
        pfound[r] = existed
        prev[r] = p
    return OK, pfound.shape[0]


@numba.njit(**JIT)
def remove_rows(hdr, kflat, prev, found):
    return UNSUPPORTED


@numba.njit(**JIT)
def add_rows(hdr, kflat, dis, dfs, vout):
    for r in range(vout.shape[0]):
        st, w = add1(hdr, kflat[r], dis[r], 0.0)
        if st != OK:
            return st, r
        vout[r] = w
    return OK, vout.shape[0]


@numba.njit(**JIT)
def snapshot(hdr):
    """(keys, values, probe lengths) of every published entry (a racy scan; no locks)."""
    s = _slots(hdr)
    cap = hdr[H_CAP]
    mask = cap - numba.uint64(1)
    ks = []
    vs = []
    pl = []
    if atomic_load(hdr, ZERO_CELL + 1, "acquire") == 1:
        ks.append(numba.uint64(0))
        vs.append(atomic_load(hdr, ZERO_CELL + 2, "relaxed"))
        pl.append(numba.int64(1))
    for i in range(cap):
        base = numba.int64(i) * SW
        k = atomic_load(s, base, "relaxed")
        if k != 0 and atomic_load(s, base + 1, "acquire") == 1:
            ks.append(k)
            vs.append(atomic_load(s, base + 2, "relaxed"))
            pl.append(numba.int64(((numba.uint64(i) - (mix64(k) & mask)) & mask) + numba.uint64(1)))
    n = len(ks)
    ka = np.empty((n, 1), np.uint64)
    va = np.empty((n, 1), np.uint64)
    pa = np.empty(n, np.int64)
    for j in range(n):
        ka[j, 0] = ks[j]
        va[j, 0] = vs[j]
        pa[j] = pl[j]
    return ka, va, pa


@numba.njit(**JIT)
def alloc(hdr):
    addr = raw_alloc(hdr[H_CAP] * numba.uint64(SW * 8))
    hdr[H_ADDR] = addr
    return addr != 0


@numba.njit(**JIT)
def release(hdr):
    if hdr[H_ADDR] != 0:
        raw_free(hdr[H_ADDR], numba.int64(hdr[H_CAP]) * (SW * 8))
        hdr[H_ADDR] = 0


@numba.njit(**JIT)
def wipe(hdr):
    s = _slots(hdr)
    s[:] = 0
    for j in range(LINE_WORDS, HDR_WORDS):
        hdr[j] = 0


@numba.njit(**JIT)
def total_waits(hdr):
    n = numba.int64(0)
    for s in range(NSTRIPES):
        n += numba.int64(atomic_load(hdr, STRIPES + s * LINE_WORDS + 1, "relaxed"))
    return n


KERNELS = _pytypes.SimpleNamespace(
    get1=get1, insert1=insert1, remove1=remove1, add1=add1, length=length,
    get_rows=get_rows, insert_rows=insert_rows, remove_rows=remove_rows, add_rows=add_rows,
)
register_kernels("cas", KERNELS)

_OK_DTYPES = (np.dtype(np.int64), np.dtype(np.uint64))


class CasMap(WordMap):
    """Lock-free fixed-capacity linear probing for 64-bit integer keys and values.

    ``CasMap(key_dtype, value_dtype, capacity=1024)``: `capacity` is the number of entries
    it is made for (as for every map here): the table has the smallest power of two of
    slots that holds them at a load of 3/4 (``m.slots``), and it never grows; past its
    slots it is full (``MapFullError``). See the module docstring for what it
    cannot do and why each step is correct.
    """

    _kind = "cas"

    def __init__(self, key_dtype, value_dtype, capacity=1024):
        for what, dt in (("key dtype", key_dtype), ("value dtype", value_dtype)):
            try:
                d = np.dtype(dt)
            except TypeError:
                raise TypeError(f"cas map: {what} {dt!r} is not a numpy dtype") from None
            if d not in _OK_DTYPES:
                raise TypeError(f"cas map: {what} must be int64 or uint64 (64-bit integers only), got {d}")
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"capacity must be an integer, got {type(capacity).__name__}")
        if not 0 < capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity must be in 1 .. {MAX_CAPACITY}, got {capacity}")
        self._setup(key_dtype, value_dtype)
        want = -(-int(capacity) * 4 // 3)  # slots for `capacity` entries at a load of 3/4
        cap = max(2, 1 << (want - 1).bit_length())
        hdr = np.zeros(HDR_WORDS, np.uint64)
        hdr[H_CAP] = cap
        if not alloc(hdr):
            raise MemoryError(f"cannot allocate {cap} slots")
        self._bind(hdr)
        self.bytes_per_slot = SW * 8
        self._finalizer = weakref.finalize(self, release, hdr)

    def _ctor_args(self):
        return (self.key_dtype, self.value_dtype), dict(capacity=self.capacity)

    def _collect(self):
        k, v, _ = snapshot(self._hdr)
        return k, v

    def probe_lengths(self):
        return snapshot(self._hdr)[2]

    def clear(self):
        """Empty the table. Not safe while other threads use the map."""
        wipe(self._hdr)

    @property
    def capacity(self):
        """Entries the table is made for (3/4 of its slots; it takes more until full)."""
        return self.slots * 3 // 4

    @property
    def slots(self):
        return int(self._hdr[H_CAP])

    def _raw_stats(self):
        return dict(read_retries=0, write_waits=int(total_waits(self._hdr)), resizes=0)
