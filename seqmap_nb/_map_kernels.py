"""SeqMap kernels: linear probing over seqlocked slots, freed slots reused, cooperative resize.

This comment is the argument for why a concurrent ``get`` never sees a wrong value, why no
key is ever present twice although freed slots are reused, and why nothing that returned
is lost across resizes that every writing thread helps to carry out. The same kernels
serve ``SeqMap`` (``SYNC=True``) and ``PlainMap`` (``SYNC=False``: every sequence check,
lock and fence compiled out; one thread only; the speed reference); two more levels
exist for the duplicate-key test alone (see ``WIDE_GUARDED``).

Layout
======

The header is a uint64 array allocated by Python and never replaced (njit code and every
Python thread hold *it*, never a buffer): the lifecycle prefix of ``_lifecycle`` (BUF,
EPOCH, NEXT, JOB, the job's cursors, the pool), this map's constants on line 0
(``max_load`` as 16.16 fixed point, KW, VW, SW) and 16 lines of statistics (read retries
and write waits, one line per stripe so that counting never shares a line between threads).

A buffer is raw memory (``_unsafe.raw_alloc``; never freed while the map lives, so no
operation can ever touch freed memory, and no numba array references it)::

    +- line 0 -+- lines 1..16: 16 stripes -+- slots ------------------------+- counters -+- chunks -+
    | NBYTES CAP MASK LOG2 GROW STEP ... | COUNT_k, TALLY_k (a line  | seq|key|val| seq|key|val| ... | one per 8  | one per  |
    |                                    | each), k: the thread's     |                                 | homes (or  | 512 slots|
    |                                    | stripe                     |                                 | none)      |          |
    +------------------------------------+---------------------------+---------------------------------+------------+----------+
      slot = seq word + KW key words + VW value words, padded (``_codec.slot_words``:
      u64/u64 is 4 words, two slots per 64-byte line)

COUNT_k packs live entries (low 32 bits) and tombstones (high 32 bits), counted by the
threads whose stripe is k (from the thread's own address: two threads writing at once
count on two lines, not on one line every write would pull over), so that an insert into
an EMPTY slot (+1), a remove (+2**32 - 1) and an insert that reuses a tombstone
(+1 - 2**32) are one atomic add each, made while the slot is locked (a resize's counts can
then never miss or double-count one). Only the sum of all stripes means anything (a
thread may remove more than it inserted). TALLY_k counts the EMPTY slots its threads
claimed, for W5.

The sequence word of a slot is ``_seqlock``'s: LOCKED (bit 0), state EMPTY / FULL /
TOMBSTONE (bits 2-3), version (bits 4..) bumped by every write and never reused for the
life of the memory. No key value is reserved: state lives in the sequence word. The home
slot of a key is ``hash_words(key) & mask`` (``_hash``); probing is linear.

Insert counters count the new keys inserted from a home slot: where the slot layout has a
padding word (u64/u64: seq, key, value, pad) it is the home slot's own pad, on the line
the probe loads first; other layouts have one word per group of 8 home slots after the
slots. They are what makes reusing a freed slot safe (below).

Reader (get / contains): lock-free, never waits for a resize, writes nothing
==========================================================================
  G1. ``e = load(EPOCH, acquire)``; ``o = load(BUF, acquire)``; when ``e`` is odd (a move
      phase) also ``n = load(NEXT, acquire)``. A publication stores BUF before EPOCH
      (release), so ``o`` is the buffer that was current at ``e`` or a later one; NEXT
      changes only just before a flip, so in a move phase it is the target (``o == n``
      means the publication is under way: wait for EPOCH to move and start over).
  G2. Probe ``o`` from the home slot. Per slot: the sequence word (S1, acquire), the key
      and value words (S2, relaxed). EMPTY ends the probe, locked or not (an insert
      claiming it has not returned). TOMBSTONE continues. FULL with another key continues,
      locked or not, without re-checking the sequence word (why that is right although
      slots are reused: "readers and reuse" below). FULL with our key is the hit, and only
      this slot runs S3-S4 (fence, the sequence word again): locked or changed, the copy
      may be torn: back off and start over at G1.
  G3. ``fence(acquire)``; ``load(EPOCH) == e``, else start over at G1. If a writer in a
      later buffer, a publication or a recycler wrote anything we read, the acquire fence
      makes the EPOCH change that preceded it visible here. EPOCH never repeats: no ABA.
  In a move phase G2 is followed by the check of "reads during a move" (below).
  A hit returns a value copied whole (S4) from a slot holding our key, written by an
  insert or add of that key. Batches (``lookup_many``) do G1 once and reuse it while G3
  keeps passing, and prefetch the home slots of the keys ahead.

Writer (insert / add / remove)
==============================
  W1. G1. In a move phase, first the move-phase duties below; then the buffer to write,
      ``w``, is NEXT, else BUF. For a new key, ``c0 = load(counter of the key's home
      group, acquire)`` before anything else.
  W2. Probe ``w`` from the home slot, loading each sequence word with acquire. A LOCKED
      slot is waited for (backoff), never skipped. Remember the first TOMBSTONE; stop at
      our key (FULL, equal key words) or at the first EMPTY slot.
  W3. Our key found: ``try_lock(slot, s)``, a CAS against the exact word observed
      (``_seqlock`` L2, seq_cst); on failure start over at W1. Then the EPOCH check:
      ``load(EPOCH, seq_cst)`` is still ``e`` (or, writing NEXT, ``e + 1``: NEXT has just
      been published), else give the slot back unchanged and start over. insert writes
      the value; add writes old + delta (an integer overflow gives the slot back
      unchanged and reports OverflowError: never a silent wrap); remove marks TOMBSTONE
      (stripe: live - 1, tombstones + 1). Unlock (L4, release).
  W4. Our key absent (remove: report the miss after G3). The free slot is the first
      TOMBSTONE of the probe, else the EMPTY slot that ended it. ``try_lock`` it (exact
      word) and check EPOCH as in W3. Then ``cas(counter, c0, c0 + 1, acq_rel)``: if
      another new key was inserted from the same home group since W1, give the slot back
      unchanged and start over. Write key and value, count the stripe (live + 1, and
      tombstones - 1 for a reused slot), unlock as FULL.
  W5. After an insert into an EMPTY slot of BUF: every ``STEP`` such claims on its stripe
      (TALLY_k), the writer sums the stripes and starts a job when used = live +
      tombstones passes the growth threshold (see the move). Writers then do one chunk of
      a clear phase, if one is running.

Why a key is never present twice, although freed slots are reused
------------------------------------------------------------------
This is Boost's ``concurrent_flat_map`` optimistic insertion on a linear-probing table.
Take two inserts of the same new key K into one buffer (it has one home group, so one
counter). Each records the counter at W1 and commits with a CAS from that value at W4, so
their counter CASes are ordered and the second to commit succeeds only if its W1 load
already read the first one's commit. The first committer locked its slot F *before* its
counter CAS (acq_rel: release); the second's W1 load (acquire) then sees that lock, and
the second's probe, which starts after its W1, walks K's chain from the home slot: every
slot before F was non-EMPTY when the first inserter passed it, and a slot never becomes
EMPTY again in a buffer's life, so the probe reaches F. There it finds F locked (waits,
never skips) or FULL with K: it takes the W3 path and updates K instead. If the second
probe already passed F before the lock, its counter CAS fails (the first commit moved the
counter since the second's W1) and it starts over, now finding K. A reused tombstone is
thus as safe as an EMPTY slot. (What Boost's scheme replaces: with tombstones never
reused, the first EMPTY slot of a chain is the single meeting point of all inserters of a
key, and churn fills a table with tombstones until a rebuild; reusing a tombstone without
the counter is the duplicate-key race of many open-addressing tables.)

A counter CAS that fails only costs a retry; concurrent inserts of different new keys
with one home slot (or group of 8) are rare at any table size worth the name.

Readers and reuse
-----------------
With reuse, a slot's key can change between two lives of the slot (FULL K1, TOMBSTONE,
FULL K2). A reader decides a slot of another key by S1 and the key words alone: if it read
the sequence word of K1's life and the key words of K2's (or a mixture, for a multi-word
key), it takes the slot for one that does not hold its key. That is right when the slot
did not hold our key K at S1 either. If it did (K1 == K), K was removed while the reader
looked (the key words only change after a remove), so K was absent at that instant, which
lies inside the read: a miss linearizes there. Any mixture that happens to equal our key
takes the hit path, whose S3-S4 fail (the word changed): no torn key is ever accepted. In
general: a key present during a whole lookup stays in one slot (it moves only by a remove
and an insert) whose chain from the home slot has no EMPTY slot, so the probe reaches it
and reads it; a lookup that misses has therefore overlapped an instant when the key was
absent. Hits return a value written for our key (S4 on the hit slot).

Resize: a job every writer helps with (``_lifecycle`` J1-J6)
=============================================================
A job starts (W5) when used = live + tombstones passes ``grow = max_load * slots`` (or a
writer found no free slot, or ``clear()``): inserts reuse tombstones, so under steady
churn used grows only by inserts that found no tombstone in their chain. The new
capacity follows hashbrown's rule: the same (a rebuild that drops the tombstones) when
live entries fill at most half of ``grow``, else doubled (more than once if they would
still fill 2/3 of the new ``grow``). The target comes from the pool (a recycled buffer of
the same class: cleared cooperatively first, J3) or fresh from the kernel. At the flip
(J4) the chunk states of BUF were set free; then BUF is read-only for writers.

Moving a chunk (512 slots of BUF): for each slot, its sequence word (seq_cst, after the
chunk's seq_cst claim; a writer that locked it before the flip finishes first), the key and
value words, S3-S4; a FULL entry is *placed* into NEXT: probe from its home slot in NEXT
for an EMPTY slot, lock it (other movers and writers of NEXT work there too), write,
count NEXT's stripe, unlock FULL. Placing never uses the insert counters: the entry is one
that exists once in BUF, moving, not a new key.

Move-phase duties of a writer (W1): claim and move the next chunk in order (its share of
the copy: the job finishes after as many writes as BUF has chunks, and the cost, page
faults of the fresh target included, is spread over the writers); then probe BUF for its
key, from the home slot to the slot holding the key or to the first EMPTY slot (waiting on
locked slots: a pre-flip writer finishing), and make every chunk that probe touched done:
claim and move it, or wait while its mover finishes that one chunk. Then write NEXT. No
write waits for the whole job; the longest wait is one chunk.

Reads during a move (G2 in a move phase): probe BUF as usual, remember the chunks the probe
touched (home slot to the hit or the EMPTY slot that ended it), ``fence(acquire)``, load
their states: if all are done, probe NEXT and answer from it; else answer from BUF. Why
that is right: a writer of key K writes NEXT only after every chunk of K's probe in BUF is
done, and BUF does not change for K after the flip except by pre-flip writers, whose slot's
chunk cannot be done before they unlock. So while one of K's chunks is not done, BUF holds
K's current state (the answer is linearizable at the read of that chunk's state), and once
all are done, K's entry (if any) was placed into NEXT before the chunk states went done
(release; our acquire loads see the placement), and only NEXT changes for K from then on.
A writer's and a reader's probe of BUF end at the same slot, except where a pre-flip
insert was still claiming an EMPTY slot: the reader stops there (a miss), the writer waits
and goes on; the reader's chunks are a prefix of the writer's, so it reads NEXT only when
the writer may write it, and a miss in NEXT is then right too (K was not in BUF's chain).

New keys inserted into NEXT during the move phase use NEXT's insert counters; so do all
inserts once NEXT is published: the argument for "never twice" holds within NEXT. A key
present in BUF is placed into NEXT before its chunk is done, and an insert of it into NEXT
first makes that chunk done, so it finds it there and updates it instead.

Publication (J6) by the thread that completes the last chunk: ``store(BUF, NEXT,
release)``, ``store(EPOCH, e+2, release)``. Nothing that returned is lost: a write that
returned did so in BUF before the flip (its chunk's mover saw it: J4), or in NEXT.

Memory bound: the pool keeps per capacity class at most two retired buffers. Capacities
never shrink, so the map holds its current buffer, at most two spares of the current
class (rebuilds alternate between them) and one retired buffer of each smaller class it
grew through: less than 4x the current buffer (2x with growth only); ``memory_bytes()``
reports all of it.
"""
import numba
import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload

from . import _lifecycle as L
from ._codec import add_words
from ._hash import hash_words
from ._seqlock import (
    EMPTY,
    FULL,
    LOCKED,
    TOMBSTONE,
    load_data,
    load_seq,
    lock,
    read_validate,
    seq_next,
    seq_state,
    store_data,
    try_lock,
    unlock,
    unlock_unchanged,
)
from ._unsafe import (
    atomic_cas,
    atomic_fetch_add,
    atomic_load,
    atomic_store,
    backoff,
    fence,
    lit,
    load_words,
    plain_load,
    plain_store,
    prefetch,
    raw_words,
    sched_yield,
    store_words,
    thread_pointer,
    zero_words,
)
from .config import JIT, LINE_WORDS

njit = numba.njit
_U = numba.uint64

# ------------------------------------------------------------------ header (words)
H_MAXLOAD = L.H_OWN0  # max_load as a 16.16 fixed-point fraction
H_KW = L.H_OWN0 + 1
H_VW = L.H_OWN0 + 2
H_SW = L.H_OWN0 + 3
STRIPE_LOG2 = 4
NSTRIPES = 1 << STRIPE_LOG2
#: a writer sums the stripes each time its stripe's used count passes a multiple of
#: growth threshold / 2**STEP_DIV_LOG2: with T threads the table passes its threshold by
#: at most T such steps (0.1% each) before a job starts
STEP_DIV_LOG2 = 10
H_STATS = L.LIFE_WORDS  # stripe k: line H_STATS + k*LINE_WORDS: READ_RETRIES, WRITE_WAITS
ST_RETRY = 0
ST_WAIT = 1
H_WORDS = H_STATS + NSTRIPES * LINE_WORDS

# ------------------------------------------------------------------ buffer (words)
B_CAP = 1
B_MASK = 2
B_LOG2 = 3
B_GROW = 4
B_STEPSH = 5  # log2 of the used-count step at which a writer sums the stripes (W5)
B_NCHUNKS = 6
B_CTRS = 7  # word offset of the insert counters
B_CHUNKS = 8  # word offset of the chunk states
BS0 = LINE_WORDS  # stripe k's COUNT word: BS0 + k * LINE_WORDS
SLOTS0 = BS0 + NSTRIPES * LINE_WORDS  # first slot's sequence word
GROUP_LOG2 = 3  # home slots per insert counter: 8
CHUNK_LOG2 = 9  # slots per move chunk: 512
CLEAR_LOG2 = 12  # slots per clear chunk: 4096
#: keys ahead whose home slot a batch write prefetches
BATCH_PREFETCH = 8
#: keys per group of a batch lookup (``lookup_many``): all of a group's home slots are
#: prefetched before any is probed
BATCH_GROUP = 16
MAX_LOG2 = 35  # 2**35 slots (1 TiB of u64/u64 slots): "absurd" above; a stripe then counts < 2**31

# SYNC levels (a compile-time literal): 0 (False) PlainMap, everything unsynchronised;
# 1 (True) SeqMap. Two more exist for the duplicate-key test alone, never for use: both
# yield the CPU between an insert's probe and its lock (the moment at which a writer
# preempted on an oversubscribed machine lets others change the chain under it, made to
# happen often instead of once in millions), WIDE_GUARDED (3) with the insert counters,
# WIDE_UNGUARDED (2) without them: the negative control, whose reused slots then receive
# a key twice (tests/test_seqmap_concurrency.py)
WIDE_UNGUARDED = 2
WIDE_GUARDED = 3

# operation codes and statuses
OP_INSERT = 0
OP_ADD = 1
OP_REMOVE = 2
ST_ABSENT = 0  # key was absent (inserted now, or nothing removed)
ST_FOUND = 1
ST_OVERFLOW = 2
ST_NOMEM = 3
ST_MISUSE = 4  # PlainMap: a job found another thread inside the map
_RESTART = 5  # internal: start over at G1
_NOROOM = 6  # internal: the probe met no free slot
PROBE_MISS = 0
PROBE_HIT = 1
PROBE_WAIT = 2
# jobs
MODE_GROW = 0  # if over a threshold: grow or rebuild
MODE_FORCE = 1  # a writer found no free slot: grow or rebuild whatever the counts
MODE_CLEAR = 2  # an empty table of the same capacity
RS_DONE = 0
RS_NOMEM = 1
RS_OTHER = 2  # nothing to do, or another job ran meanwhile
RS_MISUSE = 3

U_LOCKED = _U(LOCKED)
U_EMPTY = _U(EMPTY)
U_FULL = _U(FULL)
U_TOMB = _U(TOMBSTONE)
_LOW32 = _U(0xFFFFFFFF)
_GOLD = _U(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: a multiplicative hash of the thread pointer
COUNT_INSERT = _U(1)
COUNT_REMOVE = _U((1 << 32) - 1)  # live - 1, tombstones + 1 (by the carry)
COUNT_REUSE = _U((1 - (1 << 32)) % (1 << 64))  # live + 1, tombstones - 1


# ------------------------------------------------------------------ geometry


def buffer_words(cap, SW):
    """Words of a buffer of `cap` slots (offsets of its regions: see ``new_buffer``)."""
    ctr = SLOTS0 + cap * SW
    ngroups = max(1, cap >> GROUP_LOG2)
    nchunks = max(1, (cap + (1 << CHUNK_LOG2) - 1) >> CHUNK_LOG2)
    return ctr + ngroups + nchunks


@njit(inline="always", **JIT)
def header_at(addr):
    """The header at `addr` as an unowned uint64 view (see :func:`unowned`)."""
    return raw_words(addr, H_WORDS)


@njit(inline="always", **JIT)
def unowned(h):
    """The header as a view without an owner.

    Every entry kernel starts with this. A numba array that owns memory is incref'd and
    decref'd around every call that takes it: two atomic RMWs per operation on the
    header's meminfo, one cache line that every thread of every batch call shares. The
    header lives as long as the map, which the caller holds."""
    return header_at(h.ctypes.data)


@njit(inline="always", **JIT)
def buf_view(addr):
    """The whole buffer at `addr` as a uint64 view (its size from its header line)."""
    return raw_words(addr, raw_words(addr, LINE_WORDS)[L.B_NBYTES] >> _U(3))


@njit(inline="always", **JIT)
def _mask(words):
    return numba.int64(words[B_MASK])  # fixed for a buffer's life (capacity classes)


@njit(inline="always", **JIT)
def _slot(i, SW):
    return SLOTS0 + i * lit(SW)


@njit(inline="always", **JIT)
def _chunk_off(words):
    return numba.int64(words[B_CHUNKS])


@njit(**JIT)
def new_buffer(h, cap, log2, SW):
    """A fresh buffer of `cap` slots (header initialised), or 0 (no memory). Job owner."""
    sw = lit(SW)
    ctr = SLOTS0 + cap * sw
    ngroups = max(1, cap >> GROUP_LOG2)
    nchunks = max(1, (cap + (1 << CHUNK_LOG2) - 1) >> CHUNK_LOG2)
    nwords = ctr + ngroups + nchunks
    addr = L.alloc(h, nwords * 8)
    if addr == 0:
        return addr
    w = raw_words(addr, nwords)
    w[B_CAP] = cap
    w[B_MASK] = cap - 1
    w[B_LOG2] = log2
    w[B_GROW] = _grow_of(h, cap)
    sh = 0
    while (_grow_of(h, cap) >> STEP_DIV_LOG2) >> (sh + 1) > 0:
        sh += 1
    w[B_STEPSH] = sh
    w[B_NCHUNKS] = nchunks
    w[B_CTRS] = ctr
    w[B_CHUNKS] = ctr + ngroups
    return addr


@njit(inline="always", **JIT)
def _grow_of(h, cap):
    """Used slots (live + tombstones) a table of `cap` slots holds before it grows."""
    g = (cap * numba.int64(h[H_MAXLOAD])) >> 16
    return min(g, cap - 1)


# ------------------------------------------------------------------ G1, G3, counts


current = L.current  # G1 (``_lifecycle.current``)


@njit(inline="always", **JIT)
def epoch_changed(h, e, SYNC):
    """G3: True if EPOCH moved since `e` was read (acquire fence, then load)."""
    if lit(SYNC):
        fence("acquire")  # every slot read above is ordered before the EPOCH re-read
        return atomic_load(h, L.H_EPOCH, "relaxed") != e
    return False


@njit(inline="always", **JIT)
def _counts(w):
    """(used, live) of a COUNT total: used = live + tombstones."""
    live = numba.int64(w & _LOW32)
    return live + numba.int64(w >> _U(32)), live


@njit(inline="always", **JIT)
def sum_counts(words, SYNC):
    """(used, live) of a buffer. The stripes are summed as raw words before the halves
    are taken apart: a thread's stripe can count more removes than inserts (it removed
    keys that other threads inserted), so its live half alone can go below zero and
    borrow from its tombstone half; the sum of all stripes is the exact packed total."""
    total = _U(0)
    for k in range(NSTRIPES):
        if lit(SYNC):
            total += atomic_load(words, BS0 + k * LINE_WORDS, "relaxed")
        else:
            total += plain_load(words, BS0 + k * LINE_WORDS)
    return _counts(total)


@njit(inline="always", **JIT)
def _count(words, delta, claim, SYNC):
    """Add `delta` to a COUNT of this buffer: the stripe of the calling thread, so that two
    threads writing at once count on two lines, not on one line that every write of every
    thread would pull over (the sum is the same). `claim`: the write took an EMPTY slot;
    then the stripe's claim tally goes up, and True comes back each `step` claims (the
    buffer's step): time to check the total against the growth threshold (W5). The tally
    is a plain load and store, not an atomic add: two threads sharing a stripe may lose a
    claim of it, which only delays a check a little; the counts themselves are exact."""
    if lit(SYNC):
        k = numba.int64((thread_pointer() * _GOLD) >> _U(64 - STRIPE_LOG2))
        off = BS0 + k * LINE_WORDS
        atomic_fetch_add(words, off, delta, "relaxed")  # ordered by the slot lock around it
        if claim:
            c = atomic_load(words, off + 1, "relaxed") + _U(1)
            atomic_store(words, off + 1, c, "relaxed")
            return (c & ((_U(1) << _U(words[B_STEPSH])) - _U(1))) == 0
        return False
    off = BS0
    plain_store(words, off, plain_load(words, off) + delta)
    if claim:
        c = plain_load(words, off + 1) + _U(1)
        plain_store(words, off + 1, c)
        return (c & ((_U(1) << _U(words[B_STEPSH])) - _U(1))) == 0
    return False


@njit(inline="always", **JIT)
def _over_grow(words, SYNC):
    """W5: used (live + tombstones) past the growth threshold."""
    used, live = sum_counts(words, SYNC)
    return used > numba.int64(words[B_GROW])


@njit(inline="always", **JIT)
def add_stat(h, which, n, SYNC):
    """Count `n` read retries / write waits on a statistics stripe (only when n != 0)."""
    if n != 0:
        if lit(SYNC):
            atomic_fetch_add(h, H_STATS + which, _U(n), "relaxed")
        else:
            plain_store(h, H_STATS + which, plain_load(h, H_STATS + which) + _U(n))


# ------------------------------------------------------------------ G2: the reader's probe


@njit(inline="always", **JIT)
def probe(words, mask, hv, key, KW, VW, SW, SYNC):
    """G2 in one buffer from the home slot of hash `hv`: (status, value words, last slot).

    Status PROBE_HIT, PROBE_MISS, or PROBE_WAIT when our key's slot was locked or its copy
    torn (the caller backs off and starts over). The last slot is where the probe stopped
    (the hit, the EMPTY slot, or the slot before the home when it went all round).
    Never waits itself: without a wait loop inside, the code inlined into a caller's loop
    stays short. Only the slot whose key matches runs S3-S4 (see "readers and reuse")."""
    kw = lit(KW)
    i = hv & mask
    left = mask  # slots still to inspect after this one (a down-count: no trip-count setup)
    while True:
        b = _slot(i, SW)
        s = load_seq(words, b, SYNC)  # S1: key and value loads stay below it
        ks = load_data(words, b + 1, KW, SYNC)  # S2: key and value, one section
        vs = load_data(words, b + 1 + kw, VW, SYNC)
        st = seq_state(s)
        if st == U_EMPTY:
            return PROBE_MISS, zero_words(VW), i
        if st == U_FULL and ks == key:
            if lit(SYNC):
                if (s & U_LOCKED) or not read_validate(words, b, s, SYNC):  # S3-S4
                    return PROBE_WAIT, vs, i
            return PROBE_HIT, vs, i
        if left == 0:
            return PROBE_MISS, zero_words(VW), i
        left -= 1
        i = (i + 1) & mask


@njit(inline="always", **JIT)
def _chunks_done(words, mask, home, last, tag):
    """True if every chunk from the one holding slot `home` to the one holding `last`
    (going round the table) is done in move phase `tag`."""
    off = _chunk_off(words)
    nch = numba.int64(words[B_NCHUNKS])
    c = home >> CHUNK_LOG2
    c_last = last >> CHUNK_LOG2
    for _ in range(nch):
        if not L.chunk_done(words, off, c, tag):
            return False
        if c == c_last:
            return True
        c += 1
        if c == nch:
            c = 0
    return True


@njit(inline="always", **JIT)
def _moving_answer(e, o, n, hv, key, st, vals, last, KW, VW, SW):
    """G2 in a move phase, after the probe of BUF `o` returned (st, vals, last): the answer
    from NEXT `n` if every chunk of that probe is done, else BUF's (see "reads during a
    move"). Returns (status, value words); PROBE_WAIT sends the caller back to G1."""
    if n == 0 or n == o:  # the publication is under way (G1): start over
        return PROBE_WAIT, vals
    ow = buf_view(o)
    mask = _mask(ow)
    fence("acquire")  # the probe's slot reads come before the chunk state loads
    if not _chunks_done(ow, mask, numba.int64(hv) & mask, last, e):
        return st, vals
    nw = buf_view(n)
    st2, vals2, _ = probe(nw, _mask(nw), hv, key, KW, VW, SW, True)
    return st2, vals2


@njit(**JIT)
def lookup_slow(h, key, hv, KW, VW, SW):
    """G1-G3 of a lookup that met a move phase (odd EPOCH). Not inlined: move phases are
    rare, and a call inside the inlined fast path (even in a branch never taken) cost a
    batch lookup loop half its speed (its values then go through memory around the call)."""
    step = 0
    while True:
        e, o, n = current(h, True)
        words = buf_view(o)
        st, vals, last = probe(words, _mask(words), hv, key, KW, VW, SW, True)
        if st != PROBE_WAIT and (e & _U(1)):
            st, vals = _moving_answer(e, o, n, hv, key, st, vals, last, KW, VW, SW)
        if st == PROBE_WAIT:
            add_stat(h, ST_RETRY, 1, True)
            step = backoff(step)
            continue
        if not epoch_changed(h, e, True):
            return st == PROBE_HIT, vals


@njit(inline="always", **JIT)
def lookup(h, key, KW, VW, SW, SYNC):
    """G1-G3. Returns (found, value words).

    A retry adds one to the map's read-retry count where it happens (the wait path), so no
    counter stays live across the caller's loop: inlined into a user's njit loop, every
    register it holds is one the loop may have to spill. A move phase leaves the inlined
    code at once for :func:`lookup_slow`.

    Inlined into every caller: as a called function the synchronised version ran ~3x
    slower than its inlined form in batch loops (measured with ``seqmap_nb.micro``)."""
    hv = numba.int64(hash_words(key))
    step = 0
    while True:
        e, o, n = current(h, SYNC)
        if lit(SYNC):
            if e & _U(1):
                return lookup_slow(h, key, hv, KW, VW, SW)
        words = buf_view(o)
        st, vals, last = probe(words, _mask(words), hv, key, KW, VW, SW, SYNC)
        if lit(SYNC):
            if st == PROBE_WAIT:
                add_stat(h, ST_RETRY, 1, SYNC)  # counted here: no counter live across the loop
                step = backoff(step)
                continue
        if not epoch_changed(h, e, SYNC):  # G3: else maybe recycled under us, start over
            return st == PROBE_HIT, vals


@njit(inline="always", **JIT)
def prefetch_home(addr, mask, hv, SW):
    """Start the cache miss of a home slot in the buffer at `addr` (a hint only: a prefetch
    never faults, so a stale or wrong address costs a useless fill)."""
    i = _U(hv) & _U(mask)
    prefetch(addr + (_U(SLOTS0) + i * _U(lit(SW))) * _U(8))


@njit(inline="always", **JIT)
def prefetch_ahead(h, keys, j, n, KW, SW, SYNC):
    """Batch writers: prefetch the home slot of key ``j + BATCH_PREFETCH`` in the current
    buffer. Writers gain more than readers: the lock's ``lock cmpxchg`` is a full barrier
    on x86, so without it no two writes' cache misses overlap, while prefetches are not
    ordered by locked instructions."""
    pf = lit(BATCH_PREFETCH)
    if j + pf < n:
        if lit(SYNC):
            addr = atomic_load(h, L.H_BUF, "relaxed")
        else:
            addr = plain_load(h, L.H_BUF)
        mask = raw_words(addr, LINE_WORDS)[B_MASK]
        prefetch_home(addr, mask, hash_words(load_words(keys, (j + pf) * lit(KW), KW, False)), SW)


@njit(**JIT)
def _lookup_rest(h, keys, out, found, j0, KW, VW, SW):
    """``lookup_many`` from key `j0` on, one full lookup per key (a move phase)."""
    kw = lit(KW)
    vw = lit(VW)
    for j in range(j0, found.shape[0]):
        key = load_words(keys, j * kw, KW, False)
        f, vals = lookup_slow(h, key, numba.int64(hash_words(key)), KW, VW, SW)
        found[j] = f
        store_words(out, j * vw, vals, False)


@njit(inline="always", **JIT)
def lookup_many(h, keys, out, found, KW, VW, SW, SYNC):
    """``get_many``: G1-G3 for every key, in groups of ``BATCH_GROUP`` keys: hash the group's
    keys and prefetch their home slots, then probe them; one G1 before the group and one
    G3 after it. Returns the read retries.

    Group prefetching (Chen, Ailamaki, Gibbons, Mowry, "Improving hash join performance
    through prefetching", ICDE 2004): the prefetches of a whole group are in flight at once
    (a prefetch is never held back by the probes' branches), and the probes then find
    their lines in cache, instead of each probe's miss waiting behind the previous one's
    mispredicted branches. Why one G1-G3 per group is a G1-G3 per key: every probe of the
    group runs after the group's G1 and before its G3, and when G3 reads EPOCH == e, EPOCH
    was e throughout (it only grows). A failed G3, or a key whose slot was locked or torn
    (PROBE_WAIT), redoes the group. A move phase hands the rest of the batch to the
    per-key path (``_lookup_rest``): no call is left inside the loop."""
    kw = lit(KW)
    vw = lit(VW)
    grp = lit(BATCH_GROUP)
    n_keys = found.shape[0]
    hvs = np.empty(grp, np.int64)
    retries = 0
    step = 0
    j = 0
    while j < n_keys:
        e, o, n = current(h, SYNC)
        if lit(SYNC):
            if e & _U(1):
                break
        words = buf_view(o)
        mask = _mask(words)
        end = min(j + grp, n_keys)
        for q in range(j, end):  # stage 1: hash and prefetch the group
            hv = numba.int64(hash_words(load_words(keys, q * kw, KW, False)))
            hvs[q - j] = hv
            prefetch_home(o, mask, hv, SW)
        ok = True
        for q in range(j, end):  # stage 2: probe
            st, vals, last = probe(words, mask, hvs[q - j], load_words(keys, q * kw, KW, False),
                                   KW, VW, SW, SYNC)
            if lit(SYNC):
                if st == PROBE_WAIT:  # a locked slot or a torn copy: back off, the group again
                    ok = False
                    break
            found[q] = st == PROBE_HIT
            store_words(out, q * vw, vals, False)  # zero words on a miss
        if not ok:
            retries += 1
            step = backoff(step)
            continue
        if epoch_changed(h, e, SYNC):  # G3, for the whole group
            continue
        step = 0
        j = end
    if j < n_keys:  # a move phase: the rest key by key
        _lookup_rest(h, keys, out, found, j, KW, VW, SW)
    return retries


# ------------------------------------------------------------------ W2-W4: a write in one buffer


@njit(inline="always", **JIT)
def _guarded(SYNC):
    """The insert counters are in use: SeqMap (1) and the test level WIDE_GUARDED (3)."""
    return lit(SYNC) == 1 or lit(SYNC) == WIDE_GUARDED


@njit(inline="always", **JIT)
def _counter_at(words, home, KW, VW, SW):
    """Word index of the insert counter of home slot `home`. Where a slot has a padding
    word (u64/u64: seq, key, value, pad), the counter is the home slot's own padding word,
    on the line the probe loads first anyway (a counter array costs inserts a second
    cache miss); other layouts count per group of 8 homes in the counter array."""
    if lit(SW) > 1 + lit(KW) + lit(VW):
        return _slot(home, SW) + 1 + lit(KW) + lit(VW)
    return numba.int64(words[B_CTRS]) + (home >> GROUP_LOG2)



def combine(op, old, arg, VT):
    """njit: (ok, new value words) of an update of `old` by `arg`: insert stores `arg`,
    add stores ``old + arg`` (``_codec.add_words``). `op` is a compile-time constant, so
    maps whose values have no addition (records, ...) never type the sum."""
    raise NotImplementedError("only callable from njit code")


@overload(combine, inline="always")
def _ov_combine(op, old, arg, VT):
    if not isinstance(op, types.IntegerLiteral):
        raise TypingError("combine: op must be a compile-time constant")
    if op.literal_value != OP_ADD:
        return lambda op, old, arg, VT: (True, arg)
    return lambda op, old, arg, VT: add_words(old, arg, VT)



@njit(inline="always", **JIT)
def _write_in(h, w, e, hv, key, arg, OP, KW, VW, SW, SYNC, VT):
    """W2-W4 in the buffer at `w` found at epoch `e`. Returns (status, old value words,
    waits, check): status _RESTART (start over at G1) or _NOROOM as well; check is 1 when
    an insert took an EMPTY slot and its stripe passed a step (time for W5's sum)."""
    kw = lit(KW)
    op = lit(OP)
    words = buf_view(w)
    mask = _mask(words)
    i = hv & mask
    g = _counter_at(words, i, KW, VW, SW)
    c0 = _U(0)
    if _guarded(SYNC) and op != OP_REMOVE:
        c0 = atomic_load(words, g, "acquire")  # W1: before the probe (see "never twice")
    old = zero_words(VW)
    waits = 0
    step = 0
    free_b = -1
    free_i = -1
    free_s = _U(0)
    n = 0
    while n <= mask:
        b = _slot(i, SW)
        if lit(SYNC):
            s = atomic_load(words, b, "acquire")  # the key/state reads below stay after it
            if s & U_LOCKED:  # wait, never skip: the slot may be becoming our key
                waits += 1
                step = backoff(step)
                continue
        else:
            s = plain_load(words, b)
        st = seq_state(s)
        if st == U_EMPTY:
            if free_b < 0:
                free_b = b
                free_i = i
                free_s = s
            break
        if st == U_TOMB:
            if free_b < 0:
                free_b = b
                free_i = i
                free_s = s
        elif load_data(words, b + 1, KW, SYNC) == key:  # FULL with our key: W3
            if not try_lock(words, b, s, SYNC):  # changed since observed: start over
                return _RESTART, old, waits + 1, 0
            if not L.epoch_ok(h, e, SYNC):
                unlock_unchanged(words, b, s, SYNC)
                return _RESTART, old, waits + 1, 0
            old = load_data(words, b + 1 + kw, VW, False)  # we hold the lock
            if op == OP_REMOVE:
                _count(words, COUNT_REMOVE, False, SYNC)  # live - 1, tombstones + 1
                unlock(words, b, seq_next(s, TOMBSTONE), SYNC)
                return ST_FOUND, old, waits, 0
            ok, new = combine(OP, old, arg, VT)
            if not ok:
                unlock_unchanged(words, b, s, SYNC)  # nothing written: restore the exact word
                return ST_OVERFLOW, old, waits, 0
            store_data(words, b + 1 + kw, new, SYNC)
            unlock(words, b, seq_next(s, FULL), SYNC)
            return ST_FOUND, old, waits, 0
        i = (i + 1) & mask
        n += 1
        step = 0
    # W4: our key is absent
    if op == OP_REMOVE:
        if lit(SYNC):
            fence("acquire")  # G3 for the miss: the probe's loads come before the EPOCH load
            if not L.epoch_ok(h, e, SYNC):
                return _RESTART, old, waits, 0  # the miss may have been read in a stale buffer
        return ST_ABSENT, old, waits, 0
    if free_b < 0:
        return _NOROOM, old, waits, 0
    if lit(SYNC) == WIDE_GUARDED or lit(SYNC) == WIDE_UNGUARDED:
        for _ in range(3):
            sched_yield()  # (test levels only, see above)
    if not try_lock(words, free_b, free_s, SYNC):
        return _RESTART, old, waits + 1, 0
    if not L.epoch_ok(h, e, SYNC):
        unlock_unchanged(words, free_b, free_s, SYNC)
        return _RESTART, old, waits + 1, 0
    if _guarded(SYNC):
        if atomic_cas(words, g, c0, c0 + _U(1), "acq_rel") != c0:  # another new key from our homes
            unlock_unchanged(words, free_b, free_s, SYNC)
            return _RESTART, old, waits + 1, 0
    store_data(words, free_b + 1, key, SYNC)
    store_data(words, free_b + 1 + kw, arg, SYNC)  # insert: the value; add: the delta
    if seq_state(free_s) == U_TOMB:
        check = _count(words, COUNT_REUSE, False, SYNC)  # used unchanged: no check
    else:
        check = _count(words, COUNT_INSERT, True, SYNC)
    unlock(words, free_b, seq_next(free_s, FULL), SYNC)
    return ST_ABSENT, old, waits, numba.int64(check)


@njit(**JIT)
def update(h, key, arg, OP, KW, VW, SW, SYNC, VT):
    """W1-W5 for insert (OP_INSERT), add (OP_ADD) and remove (OP_REMOVE).

    Returns (status, old value words, write waits); status ST_ABSENT (the key was absent),
    ST_FOUND, ST_OVERFLOW (add would overflow; nothing written), ST_NOMEM (no free slot
    and no memory for a bigger table; nothing written) or ST_MISUSE (PlainMap only)."""
    hv = numba.int64(hash_words(key))
    waits = 0
    step = 0
    while True:
        e, o, n = current(h, SYNC)
        w = o
        if lit(SYNC) and (e & _U(1)):  # a move phase: W1's duties first
            if n == 0 or n == o:  # the publication is under way
                waits += L.wait_epoch(h, e)
                continue
            waits += help_move(h, e, KW, VW, SW)
            waits += ensure_chain(h, e, o, hv, key, KW, VW, SW)
            w = n
        st, old, wt, check = _write_in(h, w, e, hv, key, arg, OP, KW, VW, SW, SYNC, VT)
        waits += wt
        if st == _RESTART:
            step = backoff(step)
            continue
        if st == _NOROOM:
            r = make_room(h, e, KW, VW, SW, SYNC)
            if r == RS_NOMEM:
                return ST_NOMEM, old, waits
            if r == RS_MISUSE:
                return ST_MISUSE, old, waits
            continue
        if (e & _U(1)) == 0 and w == o:  # W5 (a write in NEXT leaves thresholds to NEXT's turn)
            if check and _over_grow(buf_view(w), SYNC):
                if start_job(h, e, MODE_GROW, KW, VW, SW, SYNC) == RS_MISUSE:
                    return ST_MISUSE, old, waits
            if lit(SYNC) and L.job(h) == L.JOB_CLEAR:
                help_clear(h, e, SW)
        return st, old, waits


@njit(**JIT)
def make_room(h, e, KW, VW, SW, SYNC):
    """A writer met no free slot: start a job, or help the one running, or wait for a
    whole-map operation to let go. Returns RS_DONE (try again), RS_NOMEM or RS_MISUSE."""
    if lit(SYNC) and (e & _U(1)):
        help_move_all(h, e, KW, VW, SW)
        return RS_DONE
    r = start_job(h, e, MODE_FORCE, KW, VW, SW, SYNC)
    if r == RS_NOMEM or r == RS_MISUSE:
        return r
    if lit(SYNC):
        j = L.job(h)
        if j == L.JOB_CLEAR:
            help_clear(h, e, SW)
        elif j == L.JOB_MOVE:
            e1 = atomic_load(h, L.H_EPOCH, "acquire")
            if e1 & _U(1):
                help_move_all(h, e1, KW, VW, SW)
        elif j != L.JOB_IDLE:
            backoff(8)  # held by a snapshot or a starter: let it finish
    return RS_DONE


# ------------------------------------------------------------------ jobs (_lifecycle J1-J6)


@njit(**JIT)
def start_job(h, e, mode, KW, VW, SW, SYNC):
    """J1-J4 for the buffer current at epoch `e` (even). Returns RS_DONE, RS_NOMEM,
    RS_OTHER (nothing to do, or the job was taken) or RS_MISUSE (PlainMap only)."""
    got = L.begin(h, L.JOB_PREP)
    if got != L.JOB_IDLE:
        if not lit(SYNC):
            return RS_MISUSE  # one thread runs PlainMap's jobs to the end: this is another
        return RS_OTHER
    if atomic_load(h, L.H_EPOCH, "acquire") != e:  # another job ran since our G1
        L.end(h)
        return RS_OTHER
    o = atomic_load(h, L.H_BUF, "relaxed")
    ow = buf_view(o)
    ocap = numba.int64(ow[B_CAP])
    olog2 = numba.int64(ow[B_LOG2])
    grow = numba.int64(ow[B_GROW])
    used, live = sum_counts(ow, SYNC)
    if mode == MODE_GROW and used <= grow:
        L.end(h)
        return RS_OTHER
    ncap = ocap
    nlog2 = olog2
    if mode != MODE_CLEAR and live * 2 > grow:  # too full to rebuild in place: double
        ncap *= 2
        nlog2 += 1
        while 3 * live > 2 * _grow_of(h, ncap) and nlog2 < MAX_LOG2:
            ncap *= 2
            nlog2 += 1
    if nlog2 > MAX_LOG2:
        L.end(h)
        return RS_NOMEM
    naddr = L.pool_take(h, nlog2)
    recycled = naddr != 0
    if not recycled:
        naddr = new_buffer(h, ncap, nlog2, SW)
        if naddr == 0:
            L.end(h)
            return RS_NOMEM
    nw = buf_view(naddr)
    for k in range(NSTRIPES):  # NEXT counts what is placed or written into it
        atomic_store(nw, BS0 + k * LINE_WORDS, 0, "relaxed")
        atomic_store(nw, BS0 + k * LINE_WORDS + 1, 0, "relaxed")
    nmove = 0 if mode == MODE_CLEAR else numba.int64(ow[B_NCHUNKS])
    L.init_chunks(ow, _chunk_off(ow), numba.int64(ow[B_NCHUNKS]), e + _U(1))
    if recycled:
        nclear = (ncap + (1 << CLEAR_LOG2) - 1) >> CLEAR_LOG2
        L.start_clear(h, e, naddr, nclear, nmove)
        if not lit(SYNC):
            for c in range(nclear):
                clear_chunk(naddr, c, SW, SYNC)
            _flip(h, e, naddr, nmove, olog2)
    else:
        _flip(h, e, naddr, nmove, olog2)
    if not lit(SYNC):  # one thread: the whole move now
        for c in range(nmove):
            move_chunk(h, e + _U(1), o, naddr, c, KW, VW, SW, SYNC)
        if nmove > 0:
            L.publish(h, e + _U(1), olog2)
    return RS_DONE


@njit(inline="always", **JIT)
def _flip(h, e, naddr, nmove, olog2):
    L.flip(h, e, naddr, nmove)
    if nmove == 0:  # clear(): nothing to move, NEXT is the map now
        L.publish(h, e + _U(1), olog2)


@njit(**JIT)
def clear_chunk(naddr, c, SW, SYNC):
    """J3: clear chunk `c` of a recycled target: every slot EMPTY, versions continuing,
    each under its lock (a stale writer of the buffer's last life may hold one for an
    instant; it fails its EPOCH check and restores its word, which we then overwrite)."""
    words = buf_view(naddr)
    cap = numba.int64(words[B_CAP])
    lo = c << CLEAR_LOG2
    hi = min(cap, lo + (1 << CLEAR_LOG2))
    for i in range(lo, hi):
        b = _slot(i, SW)
        s, _ = lock(words, b, SYNC)
        unlock(words, b, seq_next(s, EMPTY), SYNC)


@njit(**JIT)
def help_clear(h, e, SW):
    """One chunk of the clear phase of the job that left epoch `e`, if one is left; the
    thread that clears the last chunk flips (J3-J4)."""
    if atomic_load(h, L.H_JEPOCH, "relaxed") != e:
        return
    c = L.claim_next(h, L.H_CCUR, L.H_NCLEAR, e)
    if c < 0:
        return
    naddr = atomic_load(h, L.H_CTARGET, "relaxed")  # our job's: read after the claim
    clear_chunk(naddr, c, SW, True)
    if L.done_one(h, L.H_CDONE, numba.int64(atomic_load(h, L.H_NCLEAR, "relaxed"))):
        nmove = numba.int64(atomic_load(h, L.H_NMOVE, "relaxed"))
        olog2 = numba.int64(buf_view(atomic_load(h, L.H_BUF, "relaxed"))[B_LOG2])
        _flip(h, e, naddr, nmove, olog2)


@njit(**JIT)
def place(nw, key, vals, KW, SW, SYNC):
    """Put an entry moved out of BUF into the target `nw`: the first EMPTY slot of its
    chain, claimed under the slot's lock (other movers and writers work in NEXT too)."""
    kw = lit(KW)
    mask = _mask(nw)
    i = numba.int64(hash_words(key)) & mask
    step = 0
    while True:
        b = _slot(i, SW)
        if lit(SYNC):
            s = atomic_load(nw, b, "acquire")
            if s & U_LOCKED:
                step = backoff(step)
                continue
        else:
            s = plain_load(nw, b)
        if seq_state(s) == U_EMPTY:
            if try_lock(nw, b, s, SYNC):
                store_data(nw, b + 1, key, SYNC)
                store_data(nw, b + 1 + kw, vals, SYNC)
                _count(nw, COUNT_INSERT, False, SYNC)
                unlock(nw, b, seq_next(s, FULL), SYNC)
                return
            continue  # claimed by another: read it again
        i = (i + 1) & mask


@njit(**JIT)
def move_chunk(h, e1, o, n, c, KW, VW, SW, SYNC):
    """J5: move chunk `c` of BUF `o` into NEXT `n` (the chunk is claimed by us), mark it
    done, and publish if it was the last. Returns the waits for locked slots."""
    kw = lit(KW)
    ow = buf_view(o)
    nw = buf_view(n)
    ocap = numba.int64(ow[B_CAP])
    lo = c << CHUNK_LOG2
    hi = min(ocap, lo + (1 << CHUNK_LOG2))
    placed = 0
    waits = 0
    step = 0
    i = lo
    while i < hi:
        b = _slot(i, SW)
        if lit(SYNC):
            s = atomic_load(ow, b, "seq_cst")  # after the flip and our claim (J4)
            if s & U_LOCKED:  # a writer that locked before the flip finishes first
                waits += 1
                step = backoff(step)
                continue
        else:
            s = plain_load(ow, b)
        if seq_state(s) == U_FULL:
            ks = load_data(ow, b + 1, KW, SYNC)
            vs = load_data(ow, b + 1 + kw, VW, SYNC)
            if not read_validate(ow, b, s, SYNC):
                continue
            place(nw, ks, vs, KW, SW, SYNC)
            placed += 1
        i += 1
        step = 0
    if lit(SYNC):
        atomic_fetch_add(h, L.H_MOVED, _U(placed), "relaxed")
        L.finish_chunk(ow, _chunk_off(ow), c, e1)
        if L.done_one(h, L.H_MDONE, numba.int64(ow[B_NCHUNKS])):
            L.publish(h, e1, numba.int64(ow[B_LOG2]))
    else:
        plain_store(h, L.H_MOVED, plain_load(h, L.H_MOVED) + _U(placed))
    return waits


@njit(**JIT)
def help_move(h, e1, KW, VW, SW):
    """A writer's background share of move phase `e1`: claim the next chunk in order and
    move it (nothing when every chunk is claimed). Returns the waits."""
    c = L.claim_next(h, L.H_MCUR, L.H_NMOVE, e1)
    if c < 0:
        return 0
    o = atomic_load(h, L.H_BUF, "acquire")
    n = atomic_load(h, L.H_NEXT, "acquire")
    ow = buf_view(o)
    if L.claim_chunk(ow, _chunk_off(ow), c, e1) != L.CLAIMED:
        return 0  # claimed directly by a writer that needed it
    return move_chunk(h, e1, o, n, c, KW, VW, SW, True)


@njit(**JIT)
def help_move_all(h, e1, KW, VW, SW):
    """Move chunks of phase `e1` until none is left to claim, wait for the chunks others
    are moving, then for the publication (whole-map operations, and a writer that found
    no room in NEXT)."""
    while atomic_load(h, L.H_EPOCH, "acquire") == e1:
        c = L.claim_next(h, L.H_MCUR, L.H_NMOVE, e1)
        if c < 0:
            break
        o = atomic_load(h, L.H_BUF, "acquire")  # our claim holds the job open: BUF, NEXT are its
        ow = buf_view(o)
        if L.claim_chunk(ow, _chunk_off(ow), c, e1) == L.CLAIMED:
            move_chunk(h, e1, o, atomic_load(h, L.H_NEXT, "acquire"), c, KW, VW, SW, True)
    L.wait_epoch(h, e1)  # the last chunk's mover publishes; the others' chunks are in flight


@njit(**JIT)
def ensure_chain(h, e1, o, hv, key, KW, VW, SW):
    """Move-phase duty of a writer of `key`: probe BUF `o` from the home slot to the slot
    holding the key or the first EMPTY slot (waiting on locked slots), and make every chunk
    the probe touched done: move it, or wait while its mover finishes it. Returns waits."""
    ow = buf_view(o)
    mask = _mask(ow)
    home = numba.int64(hv) & mask
    i = home
    n = 0
    waits = 0
    step = 0
    while n <= mask:
        b = _slot(i, SW)
        s = atomic_load(ow, b, "acquire")
        if s & U_LOCKED:  # a pre-flip writer: see what it leaves
            if atomic_load(h, L.H_EPOCH, "acquire") != e1:
                return waits
            waits += 1
            step = backoff(step)
            continue
        st = seq_state(s)
        if st == U_EMPTY or (st == U_FULL and load_data(ow, b + 1, KW, True) == key):
            break
        i = (i + 1) & mask
        n += 1
    if n > mask:  # went all round: every chunk
        i = (home - 1) & mask
    off = _chunk_off(ow)
    nch = numba.int64(ow[B_NCHUNKS])
    c = home >> CHUNK_LOG2
    c_last = i >> CHUNK_LOG2
    nxt = atomic_load(h, L.H_NEXT, "acquire")
    for _ in range(nch):
        got = L.claim_chunk(ow, off, c, e1)
        if got == L.CLAIMED:
            waits += move_chunk(h, e1, o, nxt, c, KW, VW, SW, True)
        elif got == L.BUSY:
            waits += L.wait_chunk(ow, off, c, e1, h, e1)
        if c == c_last:
            break
        c += 1
        if c == nch:
            c = 0
    return waits


@njit(**JIT)
def finish_job(h, KW, VW, SW, SYNC):
    """Help whatever job is running until it is published (whole-map operations)."""
    if not lit(SYNC):
        return
    while True:
        j = L.job(h)
        e = atomic_load(h, L.H_EPOCH, "acquire")
        if j == L.JOB_CLEAR and (e & _U(1)) == 0:
            help_clear(h, e, SW)
            backoff(0)
        elif j == L.JOB_MOVE and (e & _U(1)):
            help_move_all(h, e, KW, VW, SW)
        elif j == L.JOB_MOVE or j == L.JOB_PREP:
            backoff(6)  # between states: the owner is about to flip or publish
        else:
            return


@njit(**JIT)
def hold(h, KW, VW, SW, SYNC):
    """Keep jobs from starting while a whole-map operation reads the table (HOLD); helps
    a running job to its end first. False for PlainMap used from another thread."""
    step = 0
    while True:
        finish_job(h, KW, VW, SW, SYNC)
        got = L.begin(h, L.JOB_HOLD)
        if got == L.JOB_IDLE:
            return True
        if not lit(SYNC):
            return False
        if got == L.JOB_HOLD:
            step = backoff(step)  # another whole-map operation: wait for it


# ------------------------------------------------------------------ whole-map kernels


@njit(**JIT)
def init_map(h, cap, log2, SW):
    """Allocate the first buffer; False when memory is short."""
    addr = new_buffer(h, cap, log2, SW)
    if addr == 0:
        return False
    h[L.H_BUF] = addr
    h[L.H_NEXT] = addr
    return True


@njit(**JIT)
def info(h, out):
    """out[:] = slots, used, live, memory bytes, resizes, read retries, write waits,
    bytes per slot, growth threshold (entries before the next growth), epoch."""
    while True:
        e = atomic_load(h, L.H_EPOCH, "acquire")
        o = atomic_load(h, L.H_BUF, "acquire")
        ow = buf_view(o)
        used, live = sum_counts(ow, True)
        cap = numba.int64(ow[B_CAP])
        grow = numba.int64(ow[B_GROW])
        if e & _U(1):  # a move phase: BUF's entries not yet placed, plus NEXT's
            n = atomic_load(h, L.H_NEXT, "acquire")
            if n == o or n == 0:
                L.wait_epoch(h, e)
                continue
            nw = buf_view(n)
            nu, nl = sum_counts(nw, True)
            moved = numba.int64(atomic_load(h, L.H_MOVED, "relaxed"))
            live = live - moved + nl
            used = live + (nu - nl)
            cap = numba.int64(nw[B_CAP])
            grow = numba.int64(nw[B_GROW])
        if atomic_load(h, L.H_EPOCH, "acquire") == e:
            break
    rr = 0
    ww = 0
    for k in range(NSTRIPES):
        rr += numba.int64(atomic_load(h, H_STATS + k * LINE_WORDS + ST_RETRY, "relaxed"))
        ww += numba.int64(atomic_load(h, H_STATS + k * LINE_WORDS + ST_WAIT, "relaxed"))
    out[0] = cap
    out[1] = used
    out[2] = live
    out[3] = numba.int64(atomic_load(h, L.H_MEM, "relaxed"))
    out[4] = numba.int64(atomic_load(h, L.H_RESIZES, "relaxed"))
    out[5] = rr
    out[6] = ww
    out[7] = numba.int64(h[H_SW]) * 8
    out[8] = grow
    out[9] = numba.int64(e)


@njit(**JIT)
def live_count(h):
    out = np.empty(10, np.int64)
    info(h, out)
    return out[2]


@njit(**JIT)
def reset_stats(h):
    for k in range(NSTRIPES):
        atomic_store(h, H_STATS + k * LINE_WORDS + ST_RETRY, 0, "relaxed")
        atomic_store(h, H_STATS + k * LINE_WORDS + ST_WAIT, 0, "relaxed")
    atomic_store(h, L.H_RESIZES, 0, "relaxed")


@njit(**JIT)
def snapshot(h, keys, vals, plen, pause, KW, VW, SW, SYNC):
    """Copy every FULL slot of the table (each slot read consistently) with the probe
    length of each (slots its lookup inspects). Returns the count, -1 if the output
    arrays are shorter than the table (the caller retries bigger), or -2 (PlainMap in
    use by another thread).

    Holds the map (JOB = HOLD) while it copies, after helping a running job to its end:
    no buffer is published or recycled under the copy, so one buffer holds the whole
    map. Writers go on meanwhile. A key that a writer removes and inserts again while the
    copy runs can be read twice (at its old slot before the remove, at its new one after
    the insert): the caller keeps one of the two (``SeqMap._snapshot``).

    `pause` is a test hook (a uint64 array, [slot index or -1, flag]): when the copy
    reaches that slot it sets ``pause[1] = 1`` and waits until the test sets it to 2, so
    a test can write at a chosen moment of a copy."""
    kw = lit(KW)
    vw = lit(VW)
    if not hold(h, KW, VW, SW, SYNC):
        return -2
    e, o, _ = current(h, SYNC)
    words = buf_view(o)
    mask = _mask(words)
    n = 0
    if mask + 1 > plen.shape[0]:
        n = -1
    else:
        stop_at = numba.int64(pause[0])
        for i in range(mask + 1):
            if i == stop_at:
                atomic_store(pause, 1, 1, "release")
                pstep = 0
                while atomic_load(pause, 1, "acquire") != 2:
                    pstep = backoff(pstep)
            b = _slot(i, SW)
            step = 0
            while True:
                s = load_seq(words, b, SYNC)
                if lit(SYNC) and (s & U_LOCKED):
                    step = backoff(step)
                    continue
                ks = load_data(words, b + 1, KW, SYNC)
                vs = load_data(words, b + 1 + kw, VW, SYNC)
                if read_validate(words, b, s, SYNC):
                    break
            if seq_state(s) == U_FULL:
                store_words(keys, n * kw, ks, False)
                store_words(vals, n * vw, vs, False)
                home = numba.int64(hash_words(ks)) & mask
                plen[n] = ((i - home) & mask) + 1
                n += 1
    L.end(h)
    return n


@njit(**JIT)
def clear_map(h, KW, VW, SW, SYNC):
    """clear(): a job to an empty table of the same capacity. RS_DONE, RS_NOMEM, RS_MISUSE."""
    step = 0
    while True:
        finish_job(h, KW, VW, SW, SYNC)
        e = atomic_load(h, L.H_EPOCH, "acquire")
        if e & _U(1):
            continue
        r = start_job(h, e, MODE_CLEAR, KW, VW, SW, SYNC)
        if r == RS_DONE:
            finish_job(h, KW, VW, SW, SYNC)
            return RS_DONE
        if r == RS_NOMEM or r == RS_MISUSE:
            return r
        step = backoff(step)  # a job or a hold got in first: help or wait, then again


@njit(**JIT)
def free_all(h):
    """Free every buffer of a map that no one can reach any more (finaliser)."""
    L.free_all(h)
