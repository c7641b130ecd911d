"""SeqMap kernels: linear probing over seqlocked slots, with concurrent resize.

Why a concurrent ``get`` never sees a wrong value, why no key is ever present twice, and
why nothing that returned is lost across any number of resizes. Every kernel here is a
``@njit(nogil=True)`` function over a fixed uint64 *header* array plus raw buffers; the
same code serves ``SeqMap`` (``SYNC=True``) and ``PlainMap`` (``SYNC=False``: the seqlock
compiled out, single-thread only, the speed reference).

Layout
======

The header is one numpy uint64 array allocated by Python and never replaced (user njit
code and every Python thread hold *it*, never a buffer)::

    line 0   | BUF addr | max_load*2^16 | KW | VW | SW | SYNC | alloc limit | EPOCH | ...
             | read-mostly; EPOCH counts the publications of a buffer (stores of BUF)
    line 1   | RLOCK (resize lock) | RESIZES | MEM (bytes of live raw buffers) | ...
    line 2+k | COUNT_k | READ_RETRIES_k | WRITE_WAITS_k |    k = 0..15: striped counters,
             | one 128-byte line each; stripe k counts slots i with i%16 == k; COUNT_k
             | packs LIVE_k (low 32 bits) and TOMB_k (tombstones, high 32 bits), USED = sum
    pool     | 4 buffer addresses per capacity class (log2 capacity 0..47)

A buffer is raw memory (``raw_alloc``, 128-aligned): a 128-byte buffer header, then the
slots. Buffers are never freed while the map lives (they are recycled through the pool), so
no reader can ever touch freed memory (HAZARDS 1), and no numba array references a buffer
(refcounting could otherwise free it under a reader)::

    +--------- buffer header line (16 words) ----------+-- slot 0 --+-- slot 1 --+ ...
    | -   | CAP | MASK | LOG2 | GROW | TLIM | ...      | seq|key|val| seq|key|val|
    +---------------------------------------------------+------------+------------+
      slot = seq word + KW key words + VW value words, rounded up to a power of two words
      when <= 8 (u64/u64: 4 words = 32 bytes, two slots per 64-byte line, so one probe
      step touches one line), else to a multiple of 8 words.

The sequence word is ``_seqlock``'s: LOCKED (bit 0), MOVED (bit 1), state EMPTY / FULL /
TOMBSTONE (bits 2-3), version (bits 4..) bumped by every write and never reused for the
life of the memory. No key value is reserved: state lives in the sequence word.

Hashing: ``mix64`` = murmur3's fmix64 of the first key word, each further word folded in
with another fmix64 round; home slot = ``mix64 & (cap - 1)``; probing is linear.

Reader (get / contains), lock-free, never waits for a resize
===========================================================
  G1. ``e = load(EPOCH, acquire)``; ``addr = load(BUF, acquire)``. A publication stores BUF
      before EPOCH (both release), so ``addr`` is the buffer published as number ``e`` or
      a later one. BUF only ever holds published buffers: never one being filled.
  G2. From the home slot, for each slot: R1 of ``_seqlock`` (the sequence word, acquire),
      then key and value (relaxed). EMPTY ends the probe (miss), locked or not: an inserter
      claiming it has not returned yet. TOMBSTONE and FULL with another key continue,
      locked or not: a FULL slot's key never changes in an incarnation. FULL with equal
      key words is the hit, and only this slot needs R3-R4 (acquire fence, the sequence
      word again): if it was locked or has changed, the value may be torn, so the attempt
      ends: back off one step and start over at G1 (the probe itself never waits, which
      keeps the code inlined into callers short). MOVED slots are read like any other: a
      frozen buffer's contents are exactly the map's contents at the moment each slot
      froze, and nobody can change the key until the new buffer is published.
  G3. ``fence(acquire)``; if ``load(EPOCH) != e`` a buffer was published meanwhile and
      ours may have been recycled under us: start over at G1. (A recycler's slot writes
      come after the publication that retired the buffer, through the resize lock, and
      after its release fence: if we read any of them, our acquire fence makes that
      publication's EPOCH, which is above ``e``, visible here. EPOCH only grows: no ABA.)
  A hit returns a value copied whole (R4) from a slot whose key words equal ours, in one
  incarnation of the buffer (its life between two recyclings) where keys never change in
  a FULL slot: a value some insert/add wrote for this key. A miss is linearisable at the
  moment the EMPTY slot was read (or at the publication of the next buffer, if the slot
  had already frozen): see "no duplicates".
  Batches (``lookup_many``, ``get_many``) do G1 in full once per buffer rather than once
  per key, and prefetch the home slots of the keys ahead (why that is still G1 for every
  key: ``lookup_many``).

Writer (insert / add / remove)
==============================
  W1. G1 as for readers, then probe from the home slot, loading each sequence word with
      acquire. A LOCKED slot is *waited for* (backoff), never skipped: this is what makes
      the first EMPTY slot of a chain a single meeting point. A MOVED slot means a
      resize froze this buffer: wait until EPOCH changes, start over on the new buffer.
  W2. Key present (FULL, equal key): ``try_lock(slot, s)`` = CAS against the *exact* word
      observed. Versions are never reused, so success proves the slot still holds our key
      with the value we may read; on failure re-read the same slot. After the lock,
      re-check EPOCH (a stale writer in a recycled buffer gives the slot back unchanged
      and starts over; in a current buffer EPOCH cannot move while we hold the lock, as
      the resize must first freeze our slot). insert writes the value, add computes old+delta (integer overflow:
      give the slot back unchanged, report OverflowError: never a silent wrap), remove
      marks TOMBSTONE and moves one count of its stripe from LIVE to TOMB (one atomic
      add, see ST_COUNT); then unlock (release).
  W3. Key absent (EMPTY reached; remove reports the miss after the G3 check): CAS-claim
      that EMPTY slot with ``try_lock(slot, s)``, re-check EPOCH, write key and value, add
      one to the stripe's LIVE *while still holding the slot lock* (a resize's recount
      then cannot miss or double-count it), unlock as FULL.
  W4. After unlocking, if the stripe passed 7/8 of its fair share (1/16) of the growth or
      tombstone threshold (small tables: always), sum the stripes and resize if the
      table is over it.

Why a key is never present twice (the race the Rust original has)
-----------------------------------------------------------------
Tombstones are never reused, so within one buffer incarnation a slot only goes
EMPTY -> FULL -> TOMBSTONE (-> MOVED), and a FULL slot's key never changes. Take two
inserters of key K. Each walks the same chain from the same home slot, waits on locked
slots and passes a slot only after seeing it unlocked and FULL with another key or
TOMBSTONE: a state that slot can never leave for EMPTY or FULL-with-K. So the first EMPTY
slot either of them can reach is the same slot for both, and both CAS against its EMPTY
word: exactly one wins. The loser's CAS fails, it re-reads that slot, sees FULL with K,
and updates it instead. Reusing a tombstone breaks exactly this: two inserters that pass
different tombstones can each claim one (the duplicate-key race of the Rust seqlock map
and of many open-addressing tables); hence no reuse here, and tombstones are cleaned up
by rebuilding instead (below).

Resize (grow, in-place rebuild, clear)
======================================
  Z1. Take the header's resize lock (CAS 0 -> 1). A thread that finds it taken waits until
      it is free and starts its operation over: only one copy runs at a time.
  Z2. Decide the new capacity (hashbrown's rule): keep the capacity (a rebuild that only
      drops tombstones) when ``live <= grow/2``, else double (more than once only if
      the live entries would still fill 2/3 of the new threshold). Triggers: used (live + tombstones) over
      ``grow = max_load * cap``; tombstones over ``cap/8`` (this keeps probe lengths under
      churn within ~1.3x of a fresh table at the same load, see ``tests``); a writer that
      walked the whole table without an EMPTY slot (forced); ``clear()``.
  Z3. Get a buffer: recycle the pooled buffer of that capacity class, or ``raw_alloc``
      (failure: release the lock, map unchanged and usable, MemoryError reported only
      when the table was full). Recycling: ``fence(release)`` (it orders the publication
      that retired this buffer, which the resize lock made ours, before every slot write
      below: G3's partner), then re-initialise every slot to EMPTY *under its slot lock*
      (a stale writer may be holding one for an instant; it fails its EPOCH check and
      restores it), versions continuing.
  Z4. For every old slot: ``lock`` it (waiting for a writer that holds it), copy a FULL
      entry into the new buffer (through the new slot's lock, for the same reason), and
      store the old word back with MOVED set and LOCKED clear: no writer can take it again,
      readers keep reading its (now frozen, still current) data.
  Z5. Recount the stripes from the new positions (nobody else bumps them now: every old
      slot is frozen, the new buffer is unpublished); ``store(BUF, new, release)``, then
      ``store(EPOCH, e+1, release)``; retire the old buffer into the pool; release the
      resize lock.
  Nothing that returned is lost: a write that returned did so under a slot lock taken
  before the resizer's Z4 lock of that slot, so the copy includes it; a write that finds
  MOVED (or fails its CAS because MOVED changed the word) waits for the new buffer and
  starts over there.

Memory bound: buffers are recycled, never freed before the map dies (a stale operation may
still read a retired buffer). The pool keeps per capacity class the retired buffers: with
capacities that only grow, at most one spare of the current class plus at most two of
each smaller class, so the map holds less than 4x its current buffer (2x with growth
only); ``memory_bytes()`` reports it all.

The ``SYNC=False`` variant compiles the very same kernels with every sequence-word check,
lock and fence removed (``_lit(SYNC)`` is a compile-time constant): one thread only.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

from ._codec import scalar_word
from ._seqlock import EMPTY, FULL, TOMBSTONE, seq_next, seq_state
from ._unsafe import (
    prefetch,
    atomic_cas,
    atomic_fetch_add,
    atomic_load,
    atomic_store,
    backoff,
    bits_f32,
    bits_f64,
    f32_bits,
    f64_bits,
    fence,
    raw_alloc,
    raw_free,
    raw_words,
)
from .config import JIT, LINE_WORDS

njit = numba.njit


def _source_digest():
    """A number that changes whenever this module or what it compiles in changes.

    numba's cache checks only the timestamp of the file a cached function lives in; the
    entry-point kernels (closures in ``seqmap``) capture this digest so that their cache
    key changes with the protocol code they inline."""
    import hashlib
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    d = hashlib.sha256()
    for name in ("_map_kernels.py", "_seqlock.py", "_unsafe.py", "_codec.py", "config.py"):
        with open(os.path.join(here, name), "rb") as f:
            d.update(f.read())
    return int.from_bytes(d.digest()[:7], "little")


SOURCE_DIGEST = _source_digest()

# ------------------------------------------------------------------ header layout (words)
H_BUF = 0  # current buffer address (acquire/release)
H_MAXLOAD = 1  # max_load as a 16.16 fixed-point fraction
H_KW = 2
H_VW = 3
H_SW = 4
H_SYNC = 5
H_ALLOC_LIMIT = 6  # largest buffer (bytes) raw_alloc may be asked for; 0 = no limit
H_EPOCH = 7  # publications so far: stored (release) after BUF by each one; never decreases
H_RLOCK = LINE_WORDS  # resize lock: 0 free, 1 held
H_RESIZES = LINE_WORDS + 1
H_MEM = LINE_WORDS + 2  # bytes in raw buffers (current + pool)
NSTRIPES = 16
H_STRIPES = 2 * LINE_WORDS
# ST_COUNT packs the stripe's LIVE (low 32 bits) and TOMB (tombstones, high 32 bits), so
# that an insert (+1) and a remove (+2**32 - 1: LIVE - 1 and, by the carry, TOMB + 1) are
# one atomic add each; MAX_LOG2 keeps both halves below 2**31
ST_COUNT = 0
ST_RETRY = 1
ST_WAIT = 2
POOL_PER_CLASS = 4
NCLASSES = 48
H_POOL = H_STRIPES + NSTRIPES * LINE_WORDS
H_WORDS = H_POOL + POOL_PER_CLASS * NCLASSES

# ------------------------------------------------------------------ buffer header (words)
BUF_HDR = LINE_WORDS
B_CAP = 1  # (word 0 unused)
B_MASK = 2
B_LOG2 = 3
B_GROW = 4
B_TLIM = 5
#: keys ahead whose home slot a batch lookup prefetches (see lookup_many)
BATCH_PREFETCH = 8
MAX_LOG2 = 35  # 2**35 slots (1 TiB of u64/u64 slots): "absurd" above; a stripe then holds 2**31

# operation codes and statuses
OP_INSERT = 0
OP_ADD = 1
OP_REMOVE = 2
ST_ABSENT = 0  # key was absent (inserted now, or nothing removed)
ST_FOUND = 1
ST_OVERFLOW = 2
ST_NOMEM = 3
PROBE_MISS = 0  # _probe results
PROBE_HIT = 1
PROBE_WAIT = 2
RS_DONE = 0
RS_NOMEM = 1
RS_OTHER = 2  # someone else resized (or nothing to do): start over
#: tables whose growth threshold is below this check the exact stripe sum on every
#: insert of a new key; larger ones only when the bumped stripe nears its fair share
#: (the load can then pass max_load by a few entries before the resize: ~1/16 of the
#: inserts check, so the excess is a handful of slots, < 1% of such a table)
EXACT_BELOW = NSTRIPES * NSTRIPES

_U = np.uint64
U_LOCKED = _U(1)
U_MOVED = _U(2)
U_EMPTY = _U(EMPTY)
U_FULL = _U(FULL)
U_TOMB = _U(TOMBSTONE)
_LOW32 = _U(0xFFFFFFFF)
COUNT_INSERT = _U(1)
COUNT_REMOVE = _U((1 << 32) - 1)
_M1 = _U(0xFF51AFD7ED558CCD)
_M2 = _U(0xC4CEB9FE1A85EC53)
_GOLD = _U(0x9E3779B97F4A7C15)
_S33 = _U(33)


def slot_words(kw, vw):
    """Words per slot: 1 + kw + vw rounded up to a power of two (<= 8) or a multiple of 8."""
    n = 1 + kw + vw
    if n <= 8:
        p = 1
        while p < n:
            p *= 2
        return p
    return (n + 7) // 8 * 8


# ------------------------------------------------------------------ compile-time constants


def _lit(x):
    """njit: the value of a literal-typed argument as a compile-time constant."""
    raise NotImplementedError


@overload(_lit, inline="always")
def _ov_lit(x):
    if isinstance(x, types.Literal):
        v = x.literal_value
        return lambda x: v
    raise TypingError(f"internal: expected a literal (compile-time constant), got {x}")


# ------------------------------------------------------------------ word tuples


def _check_words(name, arr):
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.uint64 and arr.layout == "C"):
        raise TypingError(f"{name}: needs a C-contiguous 1-d uint64 array, got {arr}")


@intrinsic(prefer_literal=True)
def load_words(typingctx, arr, start, n, atomic):
    """``n`` words from ``arr[start:]`` as a UniTuple; relaxed atomic loads when `atomic`
    (the R2 copy of a seqlock section: never plain loads there, HAZARDS 4)."""
    _check_words("load_words", arr)
    if not isinstance(n, types.IntegerLiteral) or not isinstance(atomic, types.BooleanLiteral):
        raise TypingError("load_words: n and atomic must be compile-time constants")
    N = n.literal_value
    at = atomic.literal_value
    tupty = types.UniTuple(types.uint64, N)
    sig = tupty(arr, start, n, atomic)

    def codegen(context, builder, signature, args):
        ary = context.make_array(arr)(context, builder, args[0])
        st = context.cast(builder, args[1], start, types.intp)
        i64 = ir.IntType(64)
        vals = []
        for j in range(N):
            idx = builder.add(st, ir.Constant(st.type, j))
            ptr = cgutils.get_item_pointer(context, builder, arr, ary, [idx], wraparound=False)
            if at:
                vals.append(builder.load_atomic(ptr, "monotonic", align=8, typ=i64))
            else:
                vals.append(builder.load(ptr, align=8, typ=i64))
        return context.make_tuple(builder, tupty, vals)

    return sig, codegen


@intrinsic(prefer_literal=True)
def store_words(typingctx, arr, start, tup, atomic):
    """Store a UniTuple of words at ``arr[start:]``; relaxed atomic stores when `atomic`
    (W3 of a seqlock section: the slot is locked, readers may be copying concurrently)."""
    _check_words("store_words", arr)
    if not (isinstance(tup, types.UniTuple) and tup.dtype == types.uint64):
        raise TypingError(f"store_words: expected a tuple of uint64 words, got {tup}")
    if not isinstance(atomic, types.BooleanLiteral):
        raise TypingError("store_words: atomic must be a compile-time constant")
    N = tup.count
    at = atomic.literal_value
    sig = types.void(arr, start, tup, atomic)

    def codegen(context, builder, signature, args):
        ary = context.make_array(arr)(context, builder, args[0])
        st = context.cast(builder, args[1], start, types.intp)
        for j in range(N):
            v = builder.extract_value(args[2], j)
            idx = builder.add(st, ir.Constant(st.type, j))
            ptr = cgutils.get_item_pointer(context, builder, arr, ary, [idx], wraparound=False)
            if at:
                builder.store_atomic(v, ptr, "monotonic", align=8)
            else:
                builder.store(v, ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic(prefer_literal=True)
def zero_words(typingctx, n):
    """A UniTuple of ``n`` zero words."""
    if not isinstance(n, types.IntegerLiteral):
        raise TypingError("zero_words: n must be a compile-time constant")
    tupty = types.UniTuple(types.uint64, n.literal_value)
    sig = tupty(n)

    def codegen(context, builder, signature, args):
        z = ir.Constant(ir.IntType(64), 0)
        return context.make_tuple(builder, tupty, [z] * n.literal_value)

    return sig, codegen


# ------------------------------------------------------------------ typed scalars <-> words


def key_word(x, T):
    """njit: the canonical word of key `k` as dtype `KT`, or OverflowError / ValueError /
    TypeError (range, NaN, non-integral float for an integer key)."""
    raise NotImplementedError


@overload(key_word, inline="always")
def _ov_key_word(x, T):
    return _typed_word(x, T, "key", True)


def value_word(x, T):
    """njit: the canonical word of value `v` as dtype `VT` (no -0.0 folding for values)."""
    raise NotImplementedError


@overload(value_word, inline="always")
def _ov_value_word(x, T):
    return _typed_word(x, T, "value", False)


def _typed_word(x, T, what, is_key):
    t = T.instance_type if isinstance(T, types.NumberClass) else T.dtype if isinstance(T, types.DType) else T
    if isinstance(t, types.Boolean):
        if isinstance(x, types.Boolean):
            return lambda x, T: numba.uint64(1) if x else numba.uint64(0)
        raise TypingError(f"{what} must be a bool for a bool dtype, got {x}")
    if isinstance(t, types.Integer):
        if isinstance(x, types.Boolean):
            return lambda x, T: numba.uint64(1) if x else numba.uint64(0)
        if not isinstance(x, types.Integer):
            raise TypingError(f"{what} must be an integer for {t}, got {x}")
        lo, hi = (-(1 << (t.bitwidth - 1)), (1 << (t.bitwidth - 1)) - 1) if t.signed else (0, (1 << t.bitwidth) - 1)
        msg = f"{what} does not fit in {t}"
        if x.signed and not t.signed:
            if x.bitwidth <= t.bitwidth:
                def impl(x, T):
                    if x < 0:
                        raise OverflowError(msg)
                    return scalar_word(t(x))
            else:
                def impl(x, T):
                    if x < 0 or x > hi:
                        raise OverflowError(msg)
                    return scalar_word(t(x))
        elif not x.signed and t.signed:
            def impl(x, T):
                if x > numba.uint64(hi):
                    raise OverflowError(msg)
                return scalar_word(t(x))
        elif x.bitwidth > t.bitwidth:
            def impl(x, T):
                if x < lo or x > hi:
                    raise OverflowError(msg)
                return scalar_word(t(x))
        else:
            def impl(x, T):
                return scalar_word(t(x))
        return impl
    if isinstance(t, types.Float):
        if not isinstance(x, (types.Integer, types.Float)) or isinstance(x, types.Boolean):
            raise TypingError(f"{what} must be a real number for {t}, got {x}")
        is64 = t.bitwidth == 64
        nan_msg = "NaN cannot be a key: it compares unequal to itself, so it could never be found"
        ovf_msg = f"{what} overflows {t}"

        can_overflow = isinstance(x, types.Float) and x.bitwidth > t.bitwidth

        def impl(x, T):
            y = t(x)
            if is_key and y != y:
                raise ValueError(nan_msg)
            if can_overflow and np.isinf(y) and not np.isinf(x):
                raise OverflowError(ovf_msg)
            if is_key:
                y = y + t(0.0)  # -0.0 and 0.0 are one key
            if is64:
                return f64_bits(y)
            return numba.uint64(f32_bits(y))

        return impl
    raise TypingError(f"{what}s of type {t} are available from Python and batch calls only")


def word_value(w, VT):
    """njit: the scalar of dtype `VT` whose canonical word is `w`."""
    raise NotImplementedError


@overload(word_value, inline="always")
def _ov_word_value(w, VT):
    t = VT.instance_type if isinstance(VT, types.NumberClass) else VT
    if isinstance(t, types.Boolean):
        return lambda w, VT: w != 0
    if isinstance(t, types.Integer):
        return lambda w, VT: t(w)
    if t == types.float64:
        return lambda w, VT: bits_f64(w)
    if t == types.float32:
        return lambda w, VT: bits_f32(numba.uint32(w))
    raise TypingError(f"values of type {t} are available from Python and batch calls only")


def combine(op, old, arg, VT):
    """njit: (ok, new value words) for an update of `old` by `arg` (insert: arg; add: sum)."""
    raise NotImplementedError


@overload(combine, inline="always")
def _ov_combine(op, old, arg, VT):
    if not isinstance(op, types.IntegerLiteral):
        raise TypingError("combine: op must be a compile-time constant")
    if op.literal_value != OP_ADD:
        return lambda op, old, arg, VT: (True, arg)
    t = VT.instance_type if isinstance(VT, types.NumberClass) else None
    if isinstance(t, types.Integer):
        if t.bitwidth == 64 and t.signed:
            def impl(op, old, arg, VT):
                x = numba.int64(old[0])
                y = numba.int64(arg[0])
                r = x + y  # wraps; overflow iff both operands' signs differ from the result's
                return ((x ^ r) & (y ^ r)) >= 0, (numba.uint64(r),)
        elif t.bitwidth == 64:
            def impl(op, old, arg, VT):
                r = old[0] + arg[0]
                return r >= old[0], (r,)
        else:
            lo, hi = (-(1 << (t.bitwidth - 1)), (1 << (t.bitwidth - 1)) - 1) if t.signed else (0, (1 << t.bitwidth) - 1)

            def impl(op, old, arg, VT):
                r = numba.int64(t(old[0])) + numba.int64(t(arg[0]))
                return lo <= r <= hi, (scalar_word(t(r)),)
        return impl
    if t == types.float64:
        return lambda op, old, arg, VT: (True, (f64_bits(bits_f64(old[0]) + bits_f64(arg[0])),))
    if t == types.float32:
        return lambda op, old, arg, VT: (
            True,
            (numba.uint64(f32_bits(bits_f32(numba.uint32(old[0])) + bits_f32(numba.uint32(arg[0])))),),
        )
    raise TypingError(f"add: values of type {VT} have no addition (bool, complex and record values are not counters)")


# ------------------------------------------------------------------ hashing, buffers


@njit(inline="always", **JIT)
def _fmix64(h):
    # murmur3 finaliser: every input bit affects every output bit (low bits included)
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return h


@njit(inline="always", **JIT)
def mix64(key):
    """Hash of a tuple of key words (the same for SeqMap and PlainMap)."""
    h = _fmix64(key[0])
    for j in range(1, len(key)):
        h = _fmix64((h * _GOLD) ^ key[j])
    return h


@njit(inline="always", **JIT)
def header_at(addr):
    """The header at `addr` as an unowned uint64 view (see :func:`unowned`)."""
    return raw_words(addr, H_WORDS)


@njit(inline="always", **JIT)
def unowned(h):
    """The header as a view without an owner.

    Every entry kernel starts with this. A numba array that owns memory is incref'd and
    decref'd around every call that takes it (``update``, ``resize``): two atomic RMWs per
    operation on the header's meminfo, one cache line that every thread of every batch call
    shares (seen in a batch loop's assembly: an NRT_incref/NRT_decref pair per item). The
    header lives as long as the map, which the caller holds."""
    return header_at(h.ctypes.data)


@njit(inline="always", **JIT)
def _stripe(i):
    return H_STRIPES + (i & (NSTRIPES - 1)) * LINE_WORDS


@njit(inline="always", **JIT)
def _bump(h, idx, delta, SYNC):
    if _lit(SYNC):
        atomic_fetch_add(h, idx, delta, "relaxed")  # ordered by the slot lock held around it
    else:
        h[idx] += numba.uint64(delta)


@njit(inline="always", **JIT)
def _current(h, SYNC, SW):
    """G1: the current buffer (addr, header words, epoch, mask, slot words)."""
    sw = _lit(SW)
    if _lit(SYNC):
        e = atomic_load(h, H_EPOCH, "acquire")  # pairs with a publisher's release: BUF below is its or later
        addr = atomic_load(h, H_BUF, "acquire")  # buffer header and slots are read after this
    else:
        e = h[H_EPOCH]
        addr = h[H_BUF]
    hw = raw_words(addr, BUF_HDR)
    mask = numba.int64(hw[B_MASK])  # fixed for the buffer's life: capacity classes never change
    words = raw_words(addr, BUF_HDR + (mask + 1) * sw)
    return addr, hw, e, mask, words


@njit(inline="always", **JIT)
def _epoch_changed(h, e, SYNC):
    """G3: True if a buffer was published since `e` was read (acquire fence, then load)."""
    if _lit(SYNC):
        fence("acquire")  # every slot read above is ordered before the EPOCH re-read
        return atomic_load(h, H_EPOCH, "relaxed") != e
    return False


@njit(inline="always", **JIT)
def _counts(w):
    """(used, live) of a packed ST_COUNT word: used = live + tombstones."""
    live = numba.int64(w & _LOW32)
    return live + numba.int64(w >> numba.uint64(32)), live


@njit(inline="always", **JIT)
def _stripe_count(h, st, SYNC):
    if _lit(SYNC):
        return _counts(atomic_load(h, st + ST_COUNT, "relaxed"))
    return _counts(h[st + ST_COUNT])


@njit(inline="always", **JIT)
def _sum_stripes(h, SYNC):
    used = 0
    live = 0
    for k in range(NSTRIPES):
        u, lv = _stripe_count(h, H_STRIPES + k * LINE_WORDS, SYNC)
        used += u
        live += lv
    return used, live


@njit(inline="always", **JIT)
def _over_threshold(h, hw, st, SYNC):
    """W4: cheap per-stripe test first (fair share of the thresholds), exact sum after."""
    grow = numba.int64(hw[B_GROW])
    tlim = numba.int64(hw[B_TLIM])
    u, lv = _stripe_count(h, st, SYNC)
    # below 7/8 of its share this stripe is not where the excess is; small tables always sum
    if (grow >= EXACT_BELOW and u * NSTRIPES <= grow - (grow >> 3)
            and (u - lv) * NSTRIPES <= tlim - (tlim >> 3)):
        return False
    used, live = _sum_stripes(h, SYNC)
    return used > grow or used - live > tlim


@njit(inline="always", **JIT)
def _grow_of(h, cap):
    return (cap * numba.int64(h[H_MAXLOAD])) >> 16


@njit(inline="always", **JIT)
def _lock_slot(words, b, SYNC):
    """Lock a slot (waiting for its holder); returns the unlocked word observed."""
    if _lit(SYNC):
        step = 0
        while True:
            s = atomic_load(words, b, "relaxed")
            if (s & U_LOCKED) == 0:
                if atomic_cas(words, b, s, s | U_LOCKED, "acquire") == s:  # W2
                    fence("release")  # W3: the odd word is visible before any data we write
                    return s
            step = backoff(step)
    return words[b]


@njit(inline="always", **JIT)
def _unlock(words, b, s_new, SYNC):
    if _lit(SYNC):
        atomic_store(words, b, s_new, "release")  # W4: publishes every data store above
    else:
        words[b] = s_new


@njit(inline="always", **JIT)
def _try_lock(words, b, s, SYNC):
    if _lit(SYNC):
        if atomic_cas(words, b, s, s | U_LOCKED, "acquire") != s:  # exact observed word
            return False
        fence("release")
    return True


@njit(**JIT)
def _new_buffer(h, cap, log2, SW, SYNC):
    """Z3: a buffer of `cap` slots: a recycled one from the pool, else freshly allocated.
    Returns its address or 0 (allocation failed / over the limit). Resize lock held."""
    sw = _lit(SW)
    nwords = BUF_HDR + cap * sw
    for p in range(POOL_PER_CLASS):
        pi = H_POOL + log2 * POOL_PER_CLASS + p
        addr = h[pi]
        if addr != 0:
            h[pi] = 0
            hw = raw_words(addr, BUF_HDR)
            words = raw_words(addr, nwords)
            if _lit(SYNC):
                # a new incarnation: the publication that retired this buffer happens-before
                # us (resize lock); the fence orders it before every slot write below, so a
                # stale operation that reads one of them sees that EPOCH in G3 (or its
                # writer's re-check) and starts over
                fence("release")
            for i in range(cap):
                b = BUF_HDR + i * sw
                s = _lock_slot(words, b, SYNC)
                _unlock(words, b, seq_next(s, EMPTY), SYNC)
            return addr
    nbytes = nwords * 8
    limit = numba.int64(h[H_ALLOC_LIMIT])
    if limit != 0 and nbytes > limit:
        return numba.uint64(0)
    addr = raw_alloc(nbytes)
    if addr == 0:
        return addr
    hw = raw_words(addr, BUF_HDR)
    hw[B_CAP] = cap
    hw[B_MASK] = cap - 1
    hw[B_LOG2] = log2
    hw[B_GROW] = _grow_of(h, cap)
    hw[B_TLIM] = cap >> 3
    h[H_MEM] += numba.uint64(nbytes)
    return addr


@njit(**JIT)
def _place(words, mask, key, vals, KW, SW, SYNC):
    """Z4: put an entry into a new (unpublished) buffer; returns the slot index."""
    kw = _lit(KW)
    sw = _lit(SW)
    i = numba.int64(mix64(key)) & mask
    while True:
        b = BUF_HDR + i * sw
        if _lit(SYNC):
            s = atomic_load(words, b, "relaxed")
        else:
            s = words[b]
        if seq_state(s) == U_EMPTY:
            s = _lock_slot(words, b, SYNC)  # a stale writer may hold it for an instant
            if seq_state(s) == U_EMPTY:
                store_words(words, b + 1, key, SYNC)
                store_words(words, b + 1 + kw, vals, SYNC)
                _unlock(words, b, seq_next(s, FULL), SYNC)
                return i
            _unlock(words, b, s, SYNC)
        i = (i + 1) & mask


@njit(**JIT)
def resize(h, e, force, clear, KW, VW, SW, SYNC):
    """Z1-Z5 on the buffer published as number `e` (the caller's G1). Returns RS_DONE,
    RS_NOMEM or RS_OTHER (someone else resized since `e`, or nothing to do)."""
    kw = _lit(KW)
    sw = _lit(SW)
    if _lit(SYNC):
        if atomic_cas(h, H_RLOCK, 0, 1, "acq_rel") != 0:  # Z1; acquire: pool and buffer state below
            step = 0
            while atomic_load(h, H_RLOCK, "acquire") != 0:
                step = backoff(step)
            return RS_OTHER
        if atomic_load(h, H_EPOCH, "relaxed") != e:  # (only resize-lock holders publish)
            atomic_store(h, H_RLOCK, 0, "release")
            return RS_OTHER
    elif h[H_EPOCH] != e:
        return RS_OTHER
    old_addr = h[H_BUF]  # published as number e: under the resize lock nobody else stores it
    ohw = raw_words(old_addr, BUF_HDR)
    ocap = numba.int64(ohw[B_CAP])
    olog2 = numba.int64(ohw[B_LOG2])
    used, live = _sum_stripes(h, SYNC)
    if not (force or clear) and used <= numba.int64(ohw[B_GROW]) and used - live <= numba.int64(ohw[B_TLIM]):
        if _lit(SYNC):
            atomic_store(h, H_RLOCK, 0, "release")
        return RS_OTHER
    ncap = ocap
    nlog2 = olog2
    if not clear and live * 2 > _grow_of(h, ocap):  # Z2: too full to rebuild in place
        ncap *= 2
        nlog2 += 1
        while 3 * live > 2 * _grow_of(h, ncap) and nlog2 < MAX_LOG2:
            ncap *= 2
            nlog2 += 1
    naddr = numba.uint64(0)
    if live < _grow_of(h, ncap) or clear:
        naddr = _new_buffer(h, ncap, nlog2, SW, SYNC)
    if naddr == 0:
        if _lit(SYNC):
            atomic_store(h, H_RLOCK, 0, "release")
        return RS_NOMEM
    nmask = ncap - 1
    nwords = raw_words(naddr, BUF_HDR + ncap * sw)
    owords = raw_words(old_addr, BUF_HDR + ocap * sw)
    counts = np.zeros(NSTRIPES, np.int64)
    for i in range(ocap):
        b = BUF_HDR + i * sw
        s = _lock_slot(owords, b, SYNC)  # Z4: waits for a writer holding it
        if seq_state(s) == U_FULL and not clear:
            key = load_words(owords, b + 1, KW, False)  # we hold the lock: nobody writes
            vals = load_words(owords, b + 1 + kw, VW, False)
            j = _place(nwords, nmask, key, vals, KW, SW, SYNC)
            counts[j & (NSTRIPES - 1)] += 1
        _unlock(owords, b, s | U_MOVED, SYNC)  # frozen: readable, never writable again
    for k in range(NSTRIPES):  # Z5: recount (no one else bumps the counts now): no tombstones
        st = H_STRIPES + k * LINE_WORDS
        if _lit(SYNC):
            atomic_store(h, st + ST_COUNT, counts[k], "relaxed")
        else:
            h[st + ST_COUNT] = counts[k]
    if _lit(SYNC):
        atomic_store(h, H_BUF, naddr, "release")  # publish: the fill and the recount happen-before
        atomic_store(h, H_EPOCH, e + numba.uint64(1), "release")  # after BUF: see G1
    else:
        h[H_BUF] = naddr
        h[H_EPOCH] = e + numba.uint64(1)
    # retire the old buffer (at most POOL_PER_CLASS per class; see the memory bound above)
    for p in range(POOL_PER_CLASS):
        pi = H_POOL + olog2 * POOL_PER_CLASS + p
        if h[pi] == 0:
            h[pi] = old_addr
            break
    h[H_RESIZES] += numba.uint64(1)
    if _lit(SYNC):
        atomic_store(h, H_RLOCK, 0, "release")
    return RS_DONE


@njit(inline="always", **JIT)
def _wait_moved(h, e, SYNC):
    """A writer found its buffer frozen: wait (backoff) until a new one is published.

    EPOCH counts publications, so this also ends when the buffer that comes back is the
    same address recycled (in-place rebuilds alternate two buffers, and a writer that
    sleeps through two of them finds its old address current again: waiting for BUF to
    change would then never end)."""
    n = 0
    if _lit(SYNC):
        step = 0
        while atomic_load(h, H_EPOCH, "acquire") == e:
            step = backoff(step)
            n += 1
    return n


# ------------------------------------------------------------------ the two probes


@njit(inline="always", **JIT)
def _probe(words, mask, hv, key, KW, VW, SW, SYNC):
    """G2 in one buffer from the home slot of hash `hv`: (status, value words), status
    PROBE_HIT, PROBE_MISS, or PROBE_WAIT when our key's slot was locked or its copy torn
    (the caller backs off and probes again). Never waits itself: without a backoff loop
    inside, the code inlined into a caller's loop stays short, and how many lookups a core
    overlaps is bounded by how many of them fit in its reorder window.

    Only the slot whose key matches needs R3-R4; every other slot is decided by R1 and the
    key alone, locked or not. A FULL slot's key never changes in an incarnation (a writer
    holding it changes the value or the state, never the key), so a key read after R1
    (acquire) saw FULL is that slot's key; TOMBSTONE is final; and EMPTY, even locked by an
    inserter claiming it, ends the probe: that insert has not returned (it returns after
    its unlock), so the miss is linearisable at R1. So a reader never waits for a writer of
    another key in its chain, and skips ~5 instructions per slot passed."""
    kw = _lit(KW)
    sw = _lit(SW)
    i = hv & mask
    left = mask  # slots still to inspect after this one (a down-count: no trip-count setup)
    while True:
        b = BUF_HDR + i * sw
        if _lit(SYNC):
            s = atomic_load(words, b, "acquire")  # R1: the key and value loads stay below it
            ks = load_words(words, b + 1, KW, True)  # R2: key and value, one section
            vs = load_words(words, b + 1 + kw, VW, True)
        else:
            s = load_words(words, b, 1, False)[0]  # (no negative-index wraparound code)
            ks = load_words(words, b + 1, KW, False)
            vs = load_words(words, b + 1 + kw, VW, False)
        st = seq_state(s)
        if st == U_EMPTY:
            break
        if st == U_FULL and ks == key:
            if _lit(SYNC):
                fence("acquire")  # R3: the value loads above are ordered before R4
                if (s & U_LOCKED) or atomic_load(words, b, "relaxed") != s:  # R4: written meanwhile
                    return PROBE_WAIT, vs
            return PROBE_HIT, vs
        if left == 0:
            break
        left -= 1
        i = (i + 1) & mask
    return PROBE_MISS, zero_words(VW)


@njit(inline="always", **JIT)
def lookup(h, key, KW, VW, SW, SYNC):
    """G1-G3. Returns (found, value words).

    A retry adds one to the map's read-retry count where it happens (the wait path), so no
    counter stays live across the caller's loop: inlined into a user's njit loop, every
    register it holds is one the loop may have to spill.

    Inlined into every caller (numba IR level): as a called function the synchronised
    version ran ~3x slower than its inlined form in batch loops (measured with
    ``seqmap_nb.micro``), while the smaller unsynchronised one was being inlined by LLVM
    anyway, so the comparison was between a call and no call."""
    hv = numba.int64(mix64(key))
    step = 0
    while True:
        addr, hw, e, mask, words = _current(h, SYNC, SW)
        st, vals = _probe(words, mask, hv, key, KW, VW, SW, SYNC)
        if st == PROBE_WAIT:
            add_stat(h, ST_RETRY, 1, SYNC)  # counted here: no counter live across the loop
            step = backoff(step)
        elif not _epoch_changed(h, e, SYNC):  # G3: else maybe recycled under us, start over
            return st == PROBE_HIT, vals


@njit(inline="always", **JIT)
def _prefetch_home(addr, mask, key, SW):
    """Start the cache miss of `key`'s home slot in the buffer at `addr` (a hint only)."""
    i = mix64(key) & numba.uint64(mask)
    prefetch(addr + (numba.uint64(BUF_HDR) + i * numba.uint64(_lit(SW))) * numba.uint64(8))


@njit(inline="always", **JIT)
def prefetch_ahead(h, keys, j, n, KW, SW, SYNC):
    """Batch writers: prefetch the home slot of key ``j + BATCH_PREFETCH`` in the current
    buffer (a hint, see ``lookup_many``). Writers gain more than readers: the lock's
    ``lock cmpxchg`` is a full barrier on x86, so without it no two writes' cache misses
    overlap, while prefetches are not ordered by locked instructions."""
    pf = _lit(BATCH_PREFETCH)
    if j + pf < n:
        if _lit(SYNC):
            addr = atomic_load(h, H_BUF, "relaxed")
            mask = atomic_load(raw_words(addr, BUF_HDR), B_MASK, "relaxed")
        else:
            addr = h[H_BUF]
            mask = raw_words(addr, BUF_HDR)[B_MASK]
        _prefetch_home(addr, mask, load_words(keys, (j + pf) * KW, KW, False), SW)


@njit(inline="always", **JIT)
def lookup_many(h, keys, out, found, KW, VW, SW, SYNC):
    """``get_many``: G1-G3 for every key, with G1 done once per buffer rather than once
    per key, and the home slots of the next keys prefetched. Returns the read retries.

    Per key, G1 shrinks to "``load(BUF, acquire) == addr``" against the (e, addr, mask) of
    the last full G1. When the key's G3 then reads EPOCH == e, EPOCH was e all along
    (it only grows, and one thread's loads of it never go back), so a full G1 at the
    key's start would have read e and then BUF: exactly the pair we hold. The BUF load
    cannot be left out: a publisher stores BUF before EPOCH, and in between a writer may
    already insert into the new buffer and return; this load sees that buffer, G3 alone
    might not. A failed check redoes G1 in full and the key over.

    Batch lookups know their keys in advance: while key ``j`` is probed, the home slot
    of key ``j + BATCH_PREFETCH`` is prefetched, so several cache misses are in flight
    at once instead of as many as fit in the core's reorder window. The cached buffer
    is only a hint there: a stale one costs a useless fill (a prefetch never faults)."""
    pf = _lit(BATCH_PREFETCH)
    n = found.shape[0]
    retries = 0
    step = 0
    addr, hw, e, mask, words = _current(h, SYNC, SW)
    stale = False
    j = 0
    while j < n:
        if stale:  # G1 in full, then this key again
            addr, hw, e, mask, words = _current(h, SYNC, SW)
            stale = False
        if j + pf < n:
            _prefetch_home(addr, mask, load_words(keys, (j + pf) * KW, KW, False), SW)
        if _lit(SYNC):
            if atomic_load(h, H_BUF, "acquire") != addr:  # G1 for this key
                stale = True
                continue
        key = load_words(keys, j * KW, KW, False)
        st, vals = _probe(words, mask, numba.int64(mix64(key)), key, KW, VW, SW, SYNC)
        if st == PROBE_WAIT:  # a locked slot or a torn copy: back off, this key again
            retries += 1
            step = backoff(step)
            continue
        if _epoch_changed(h, e, SYNC):  # G3
            stale = True
            continue
        found[j] = st == PROBE_HIT
        store_words(out, j * VW, vals, False)  # zero words on a miss
        step = 0
        j += 1
    return retries


@njit(**JIT)
def update(h, key, arg, OP, KW, VW, SW, SYNC, VT):
    """W1-W4 for insert (OP_INSERT), add (OP_ADD) and remove (OP_REMOVE).

    Returns (status, old value words, write waits); status ST_ABSENT (key was absent),
    ST_FOUND, ST_OVERFLOW (add would overflow; nothing written) or ST_NOMEM (table full
    and a bigger one could not be allocated; nothing written).
    """
    kw = _lit(KW)
    sw = _lit(SW)
    sync = _lit(SYNC)
    op = _lit(OP)
    hv = numba.int64(mix64(key))
    waits = 0
    old = zero_words(VW)
    while True:
        addr, hw, e, mask, words = _current(h, SYNC, SW)
        i = hv & mask
        n = 0
        step = 0
        restart = False
        while n <= mask:
            b = BUF_HDR + i * sw
            if sync:
                s = atomic_load(words, b, "acquire")  # the key/state reads below stay after it
                if s & U_LOCKED:  # wait, never skip: the first EMPTY slot is the meeting point
                    waits += 1
                    step = backoff(step)
                    continue
                if s & U_MOVED:  # frozen by a resize: continue on the new buffer
                    waits += 1 + _wait_moved(h, e, SYNC)
                    restart = True
                    break
            else:
                s = words[b]
            st = seq_state(s)
            if st == U_EMPTY:
                if op == OP_REMOVE:
                    if _epoch_changed(h, e, SYNC):
                        restart = True
                        break
                    return ST_ABSENT, old, waits
                if not _try_lock(words, b, s, SYNC):  # lost the claim: re-read this slot
                    waits += 1
                    continue
                if sync and atomic_load(h, H_EPOCH, "relaxed") != e:  # stale: give it back
                    _unlock(words, b, s, SYNC)
                    restart = True
                    break
                store_words(words, b + 1, key, SYNC)
                store_words(words, b + 1 + kw, arg, SYNC)  # insert: the value; add: delta
                st_i = _stripe(i)
                _bump(h, st_i + ST_COUNT, COUNT_INSERT, SYNC)  # under the slot lock (see Z5)
                _unlock(words, b, seq_next(s, FULL), SYNC)
                if _over_threshold(h, hw, st_i, SYNC):
                    resize(h, e, False, False, KW, VW, SW, SYNC)  # failure: table still has room
                return ST_ABSENT, old, waits
            if st == U_FULL:
                ks = load_words(words, b + 1, KW, SYNC)  # immutable while the slot is FULL
                if ks == key:
                    if not _try_lock(words, b, s, SYNC):  # changed since observed: re-read
                        waits += 1
                        continue
                    if sync and atomic_load(h, H_EPOCH, "relaxed") != e:
                        _unlock(words, b, s, SYNC)
                        restart = True
                        break
                    old = load_words(words, b + 1 + kw, VW, False)  # we hold the lock
                    if op == OP_REMOVE:
                        st_i = _stripe(i)
                        _bump(h, st_i + ST_COUNT, COUNT_REMOVE, SYNC)  # LIVE - 1, TOMB + 1
                        _unlock(words, b, seq_next(s, TOMBSTONE), SYNC)
                        if _over_threshold(h, hw, st_i, SYNC):
                            resize(h, e, False, False, KW, VW, SW, SYNC)
                        return ST_FOUND, old, waits
                    okc, new = combine(OP, old, arg, VT)
                    if not okc:
                        _unlock(words, b, s, SYNC)  # nothing written: restore the exact word
                        return ST_OVERFLOW, old, waits
                    store_words(words, b + 1 + kw, new, SYNC)
                    _unlock(words, b, seq_next(s, FULL), SYNC)
                    return ST_FOUND, old, waits
            i = (i + 1) & mask
            n += 1
            step = 0
        if restart:
            continue
        # walked the whole table without meeting an EMPTY slot
        if op == OP_REMOVE:
            if _epoch_changed(h, e, SYNC):
                continue
            return ST_ABSENT, old, waits
        r = resize(h, e, True, False, KW, VW, SW, SYNC)
        if r == RS_NOMEM:
            return ST_NOMEM, old, waits


@njit(inline="always", **JIT)
def add_stat(h, which, n, SYNC):
    if n != 0:
        _bump(h, H_STRIPES + which, n, SYNC)


# ------------------------------------------------------------------ whole-table kernels


@njit(**JIT)
def init_map(h, cap, log2, SW, SYNC):
    """Allocate the first buffer; returns False when memory is short."""
    addr = _new_buffer(h, cap, log2, SW, SYNC)
    if addr == 0:
        return False
    h[H_BUF] = addr
    return True


@njit(**JIT)
def free_all(h):
    """Free every raw buffer of a map that no one can reach any more (finaliser)."""
    raw_free(h[H_BUF])
    h[H_BUF] = 0
    for p in range(POOL_PER_CLASS * NCLASSES):
        if h[H_POOL + p] != 0:
            raw_free(h[H_POOL + p])
            h[H_POOL + p] = 0


@njit(**JIT)
def info(h, out):
    """out[:] = capacity, used, live, memory bytes, resizes, read retries, write waits, bytes/slot."""
    addr = atomic_load(h, H_BUF, "acquire")
    hw = raw_words(addr, BUF_HDR)
    used = 0
    live = 0
    rr = 0
    ww = 0
    for k in range(NSTRIPES):
        b = H_STRIPES + k * LINE_WORDS
        u, lv = _stripe_count(h, b, True)
        used += u
        live += lv
        rr += numba.int64(atomic_load(h, b + ST_RETRY, "relaxed"))
        ww += numba.int64(atomic_load(h, b + ST_WAIT, "relaxed"))
    out[0] = numba.int64(hw[B_CAP])
    out[1] = used
    out[2] = live
    out[3] = numba.int64(atomic_load(h, H_MEM, "relaxed"))
    out[4] = numba.int64(atomic_load(h, H_RESIZES, "relaxed"))
    out[5] = rr
    out[6] = ww
    out[7] = numba.int64(h[H_SW]) * 8


@njit(**JIT)
def live_count(h):
    live = 0
    for k in range(NSTRIPES):
        live += _stripe_count(h, H_STRIPES + k * LINE_WORDS, True)[1]
    return live


@njit(**JIT)
def reset_stats(h):
    for k in range(NSTRIPES):
        b = H_STRIPES + k * LINE_WORDS
        atomic_store(h, b + ST_RETRY, 0, "relaxed")
        atomic_store(h, b + ST_WAIT, 0, "relaxed")
    atomic_store(h, H_RESIZES, 0, "relaxed")


@njit(**JIT)
def snapshot(h, keys, vals, plen, KW, VW, SW, SYNC):
    """Copy every FULL slot (seqlock-consistent per slot) of the current buffer; also the
    probe length of each (slots its lookup inspects). Returns the count, or -1 if the
    output arrays are shorter than the capacity (the caller retries bigger).

    Holds the resize lock while it copies, so that no buffer is published or recycled
    under it: a copy of a large table would otherwise start over at every publication,
    and under heavy churn (in-place rebuilds) might never finish. Writers go on
    meanwhile; a resize that one of them needs waits for the copy (Z1)."""
    kw = _lit(KW)
    vw = _lit(VW)
    sw = _lit(SW)
    if _lit(SYNC):
        step = 0
        while atomic_cas(h, H_RLOCK, 0, 1, "acq_rel") != 0:  # as Z1; acquire: BUF below is the last published
            step = backoff(step)
    addr, hw, e, mask, words = _current(h, SYNC, SW)
    n = 0
    if mask + 1 > plen.shape[0]:
        n = -1
    else:
        for i in range(mask + 1):
            b = BUF_HDR + i * sw
            while True:
                if _lit(SYNC):
                    s = atomic_load(words, b, "acquire")
                    if s & U_LOCKED:
                        backoff(3)
                        continue
                    ks = load_words(words, b + 1, KW, True)
                    vs = load_words(words, b + 1 + kw, VW, True)
                    fence("acquire")
                    if atomic_load(words, b, "relaxed") != s:
                        continue
                else:
                    s = words[b]
                    ks = load_words(words, b + 1, KW, False)
                    vs = load_words(words, b + 1 + kw, VW, False)
                break
            if seq_state(s) == U_FULL:
                store_words(keys, n * kw, ks, False)
                store_words(vals, n * vw, vs, False)
                home = numba.int64(mix64(ks)) & mask
                plen[n] = ((i - home) & mask) + 1
                n += 1
    if _lit(SYNC):
        atomic_store(h, H_RLOCK, 0, "release")
    return n


@njit(**JIT)
def clear_map(h, KW, VW, SW, SYNC):
    """clear(): a same-capacity rebuild that copies nothing. False when memory is short."""
    while True:
        e = atomic_load(h, H_EPOCH, "acquire")
        r = resize(h, e, False, True, KW, VW, SW, SYNC)
        if r == RS_DONE:
            return True
        if r == RS_NOMEM:
            return False
