"""A non-concurrent open-addressing (linear probing) table over a raw buffer.

The building block of the lock-based baselines: every DashMap shard, the global-lock map,
is one of these behind a reader-writer lock (``_rwlock``). Nothing here synchronises;
callers hold the shard's lock (read lock for lookups, write lock for everything else).

It is deliberately SeqMap's table with the seqlock taken out, so that a benchmark of
dashmap vs seqmap measures the locking, not a different table: same hash (``_hash.mix64``,
slot index from the low bits), same linear probing, same slot layout and size, same
maximum load (0.75 by default). Where it differs it is to be a good *sequential* table:
inserts reuse the first tombstone of the chain (safe here: the write lock excludes every
other inserter), and tombstones are cleaned by a same-capacity rebuild.

Slot layout (``SW`` words, ``SW`` = 1 + KW + VW rounded up to a power of two when <= 8,
else to a multiple of 8; u64 keys and values: 4 words, two slots per 64-byte line)::

    +--------+--------------+----------------+---------+
    | ctrl   | key words KW | value words VW | padding |
    +--------+--------------+----------------+---------+
      ctrl: EMPTY 0 / FULL 1 / TOMBSTONE 2

Shard metadata lives in a caller-provided uint64 array ``meta`` at offset ``b``
(``dashmap`` keeps it on the lock's own 128-byte line, as DashMap's ``CachePadded<RwLock<
HashMap>>`` keeps the lock word beside the table's pointer and counts)::

    b+0 lock word (``_rwlock``)     b+1 buffer address (raw_alloc)   b+2 capacity (slots)
    b+3 live keys                   b+4 used (live + tombstones)     b+5 growth threshold
    b+6 resizes                     b+7 reader waits (stats)         b+8 writer waits (stats)

Invariant: ``used <= threshold < capacity``, so every probe meets an EMPTY slot and ends.
Growth: an insert that would take an EMPTY slot past the threshold first rebuilds the
table, doubling it if live keys fill at least half the threshold, otherwise at the same
capacity (a tombstone clean-up). The old buffer is freed at once: the caller
holds the write lock, so no reader can be inside it.
"""
import numba
import numpy as np

from .._codec import slot_words  # noqa: F401 (the one slot rule; dashmap sizes its slots by it)
from .._hash import mix_words
from .._unsafe import bits_f32, bits_f64, f32_bits, f64_bits, raw_alloc, raw_free, raw_words
from ..config import JIT

EMPTY = 0
FULL = 1
TOMBSTONE = 2

# offsets of the shard metadata words (see the module docstring)
M_LOCK = 0
M_ADDR = 1
M_CAP = 2
M_LIVE = 3
M_USED = 4
M_THRESH = 5
M_RESIZES = 6
M_RWAITS = 7
M_WWAITS = 8

# status codes the kernels return (the Python layer and njit methods raise after unlocking)
OK = 0
NO_MEMORY = 1
OVERFLOW = 2

#: a stand-in for "no further key words" (one-word keys pass their word as a scalar)
NO_WORDS = np.zeros(1, np.uint64)


def dict_index_slots(n):
    """The index size of a CPython-style dict (``dict``, ``numba.typed.Dict``) holding `n`
    entries: a power of two, at least 8, kept at most 2/3 full."""
    size = 8
    while size * 2 // 3 < n:
        size *= 2
    return size


class DictSized:
    """``len``, ``slots`` and ``capacity`` of a map kept in a CPython-style dict (``dict``,
    ``numba.typed.Dict``): the sizes are an estimate, as neither exposes its index
    (``_d``: the dict, ``_initial``: the capacity asked for)."""

    def __len__(self):
        return len(self._d)

    @property
    def slots(self):
        return dict_index_slots(max(len(self._d), self._initial))

    @property
    def capacity(self):
        """Entries before the index grows."""
        return self.slots * 2 // 3


def threshold_of(cap, max_load):
    """Most used slots a table of `cap` slots may hold (always leaves one EMPTY)."""
    return max(1, min(cap - 1, int(cap * max_load)))


@numba.njit(inline="always", **JIT)
def buffer(meta, b, sw):
    """The shard's slots as a uint64 view of its raw buffer."""
    return raw_words(meta[b + M_ADDR], meta[b + M_CAP] * numba.uint64(sw))


@numba.njit(inline="always", **JIT)
def key_eq(buf, base, kw, k0, krest, koff):
    """True if the key words at ``buf[base+1 ..]`` equal (k0, krest[koff+1 ..])."""
    if buf[base + 1] != k0:
        return False
    for j in range(1, kw):
        if buf[base + 1 + j] != krest[koff + j]:
            return False
    return True


@numba.njit(inline="always", **JIT)
def find(buf, mask, sw, kw, h, k0, krest, koff):
    """Slot index holding the key, or -1 (probe from ``h & mask`` to the first EMPTY)."""
    i = h & mask
    while True:
        base = i * numba.uint64(sw)
        c = buf[base]
        if c == EMPTY:
            return numba.int64(-1)
        if c == FULL and key_eq(buf, base, kw, k0, krest, koff):
            return numba.int64(i)
        i = (i + numba.uint64(1)) & mask


@numba.njit(inline="always", **JIT)
def find_or_free(buf, mask, sw, kw, h, k0, krest, koff):
    """(slot, found): the key's slot, or else the first TOMBSTONE or EMPTY slot of its chain."""
    i = h & mask
    free = numba.int64(-1)
    while True:
        base = i * numba.uint64(sw)
        c = buf[base]
        if c == EMPTY:
            if free < 0:
                free = numba.int64(i)
            return free, False
        if c == TOMBSTONE:
            if free < 0:
                free = numba.int64(i)
        elif key_eq(buf, base, kw, k0, krest, koff):
            return numba.int64(i), True
        i = (i + numba.uint64(1)) & mask


@numba.njit(**JIT)
def rebuild(meta, b, sw, kw, new_cap, max_load_thresh_num):
    """Move every live entry into a fresh buffer of `new_cap` slots; free the old one.

    Caller holds the write lock. Returns OK or NO_MEMORY (then nothing changed).
    `max_load_thresh_num` is the new threshold (computed by the caller from max_load).
    """
    old_cap = meta[b + M_CAP]
    old = raw_words(meta[b + M_ADDR], old_cap * numba.uint64(sw))
    addr = raw_alloc(new_cap * numba.uint64(sw) * numba.uint64(8))
    if addr == 0:
        return NO_MEMORY
    new = raw_words(addr, new_cap * numba.uint64(sw))
    mask = new_cap - numba.uint64(1)
    for s in range(old_cap):
        base = numba.uint64(s) * numba.uint64(sw)
        if old[base] != FULL:
            continue
        h = mix_words(old[base + 1], old, base + 1, kw)
        i = h & mask
        while new[i * numba.uint64(sw)] != EMPTY:
            i = (i + numba.uint64(1)) & mask
        nb = i * numba.uint64(sw)
        for j in range(sw):
            new[nb + j] = old[base + j]
    raw_free(meta[b + M_ADDR], numba.int64(old_cap * numba.uint64(sw)) * 8)
    meta[b + M_ADDR] = addr
    meta[b + M_CAP] = new_cap
    meta[b + M_USED] = meta[b + M_LIVE]
    meta[b + M_THRESH] = max_load_thresh_num
    meta[b + M_RESIZES] += numba.uint64(1)
    return OK


@numba.njit(inline="always", **JIT)
def make_room(meta, b, sw, kw, max_load):
    """Before an insert takes an EMPTY slot: rebuild if it would pass the threshold.

    Returns OK or NO_MEMORY. Doubles when live keys fill half the threshold or more
    (so growth is amortised O(1)), else rebuilds at the same size to drop tombstones.
    """
    if meta[b + M_USED] + numba.uint64(1) <= meta[b + M_THRESH]:
        return OK
    cap = meta[b + M_CAP]
    new_cap = cap
    if (meta[b + M_LIVE] + numba.uint64(1)) * numba.uint64(2) > meta[b + M_THRESH]:
        new_cap = cap * numba.uint64(2)
    t = numba.uint64(new_cap * max_load)
    if t > new_cap - numba.uint64(1):
        t = new_cap - numba.uint64(1)
    if t < 1:
        t = numba.uint64(1)
    return rebuild(meta, b, sw, kw, new_cap, t)


@numba.njit(inline="always", **JIT)
def upsert_slot(meta, b, sw, kw, max_load, h, k0, krest, koff):
    """Slot for writing the key (write lock held): (status, slot, existed).

    Existing key: its slot. New key: a free slot, counted in live/used and marked FULL
    with its key words written; the caller writes the value words.
    """
    buf = buffer(meta, b, sw)
    mask = meta[b + M_CAP] - numba.uint64(1)
    i, found = find_or_free(buf, mask, sw, kw, h, k0, krest, koff)
    if found:
        return OK, i, True
    base = numba.uint64(i) * numba.uint64(sw)
    if buf[base] == EMPTY:
        st = make_room(meta, b, sw, kw, max_load)
        if st != OK:
            return st, numba.int64(-1), False
        buf = buffer(meta, b, sw)
        mask = meta[b + M_CAP] - numba.uint64(1)
        i, found = find_or_free(buf, mask, sw, kw, h, k0, krest, koff)
        base = numba.uint64(i) * numba.uint64(sw)
        if buf[base] == EMPTY:
            meta[b + M_USED] += numba.uint64(1)
    meta[b + M_LIVE] += numba.uint64(1)
    buf[base] = FULL
    buf[base + 1] = k0
    for j in range(1, kw):
        buf[base + 1 + j] = krest[koff + j]
    return OK, i, False


@numba.njit(inline="always", **JIT)
def erase(meta, b, sw, i):
    """Mark slot `i` a TOMBSTONE (write lock held); live -1, used unchanged."""
    buf = buffer(meta, b, sw)
    buf[numba.uint64(i) * numba.uint64(sw)] = TOMBSTONE
    meta[b + M_LIVE] -= numba.uint64(1)


@numba.njit(**JIT)
def probe_len_of(buf, cap, sw, kw, base):
    """Slots a lookup of the key stored at `base` inspects (1 = found at its home slot)."""
    h = mix_words(buf[base + 1], buf, base + 1, kw)
    home = h & (cap - numba.uint64(1))
    slot = base // numba.uint64(sw)
    return numba.int64(((slot - home) & (cap - numba.uint64(1))) + numba.uint64(1))


# ---------------------------------------------------------------------- value arithmetic
# Value kinds of the ``add`` kernels, chosen at run time from the header (one compiled
# kernel serves every dtype): signed, unsigned, float; anything else cannot be added to.
V_SIGNED = 0
V_UNSIGNED = 1
V_FLOAT = 2
V_OTHER = 3


def value_kind(dt):
    """(kind, bits) of a value dtype for the add kernels."""
    dt = np.dtype(dt)
    if dt.fields is None and dt.subdtype is None:
        if dt.kind == "i":
            return V_SIGNED, dt.itemsize * 8
        if dt.kind == "u":
            return V_UNSIGNED, dt.itemsize * 8
        if dt.kind == "f" and dt.itemsize in (4, 8):
            return V_FLOAT, dt.itemsize * 8
    return V_OTHER, dt.itemsize * 8


@numba.njit(inline="always", **JIT)
def add_int_word(w, d, signed, bits):
    """Canonical word of ``value(w) + d`` for an integer value of `bits` bits: (word, ok).

    `d` is an int64. ok is False when the exact sum does not fit the value type: the
    caller then leaves the value unchanged and raises OverflowError (no silent wrap).
    """
    d = numba.int64(d)
    if bits == 64 and not signed:
        a = numba.uint64(w)
        if d >= 0:
            r = a + numba.uint64(d)
            return r, r >= a
        m = numba.uint64(0) - numba.uint64(d)  # |d|, exact even for d = -2**63
        return a - m, a >= m
    if signed:
        sh = numba.uint64(64 - bits)
        a = numba.int64(numba.uint64(w) << sh) >> numba.int64(sh)  # sign-extend
    else:
        a = numba.int64(w)  # < 2**32: fits
    r = numba.int64(numba.uint64(a) + numba.uint64(d))  # wrapping add
    ok = ((a ^ r) & (d ^ r)) >= 0  # no int64 overflow
    if signed:
        lo = -(numba.int64(1) << numba.int64(bits - 1))
        hi = (numba.int64(1) << numba.int64(bits - 1)) - numba.int64(1)
    else:
        lo = numba.int64(0)
        hi = (numba.int64(1) << numba.int64(bits)) - numba.int64(1)
    ok = ok and r >= lo and r <= hi
    if bits == 64:
        return numba.uint64(r), ok
    return numba.uint64(r) & ((numba.uint64(1) << numba.uint64(bits)) - numba.uint64(1)), ok


@numba.njit(inline="always", **JIT)
def add_float_word(w, d, bits):
    """Canonical word of ``value(w) + d`` for a float32/float64 value (IEEE, always ok)."""
    if bits == 64:
        return f64_bits(bits_f64(numba.uint64(w)) + numba.float64(d))
    r = bits_f32(numba.uint32(w & numba.uint64(0xFFFFFFFF))) + numba.float32(d)
    return numba.uint64(f32_bits(r))
