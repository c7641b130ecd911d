"""The per-cell seqlock: every cell (SeqArray) and every slot (SeqMap) is its own lock.

This module is the only implementation of the lock: SeqArray's cells, SeqMap's slots and
PlainMap's slots (the same code with ``SYNC=False``) all run these functions, so the
torn-read stress test and its negative control prove the lock that every structure uses.

Protocol (Boehm, "Can seqlocks get along with programming language memory models?",
MSPC 2012; crossbeam-utils ``atomic/seq_lock.rs``)
=======================================================================================

A cell is a run of 64-bit words in a uint64 buffer: one *sequence word* followed by the
data words (key and/or value in canonical word form, see ``_codec``)::

     word 0                        word 1 .. n
    +-----------------------------+-------------------------------+
    | version (60 bits) |st|-|L   |  data words (relaxed atomics) |
    +-----------------------------+-------------------------------+
      bit 0  L  LOCKED  odd = a writer owns the cell; the rest is the stamp
      bit 1  -  (always 0)
      bits 2-3  state   0 EMPTY / 1 FULL / 2 TOMBSTONE (a SeqArray cell: EMPTY = never set)
      bits 4.. version  bumped by every write; never reused for the life of the buffer
                        memory (a recycled buffer is cleared by writes that continue the
                        versions), so a compare-exchange against a stale observation of
                        the cell always fails

Writer (L1-L4)
  L1. ``s = load(seq)``; if ``s`` is odd, back off and reload (another writer).
  L2. ``cas(seq, s, s | LOCKED, seq_cst)``; on failure back to L1. The CAS acquires (the
      data writes below cannot move above the lock) and is sequentially consistent: the
      map and the array follow it with a load of their publication counter (EPOCH), and
      a resize stores EPOCH and then reads the cells; with both sides in the single
      total order of seq_cst operations, either the writer sees the new EPOCH or the
      resize sees the cell locked (the store-load pattern that acquire/release alone
      does not order). On x86-64 this is the same ``lock cmpxchg`` as an acquire CAS.
  L3. ``fence(release)`` then write the data words with relaxed atomic stores. The fence
      keeps the odd sequence visible *before* any new data: a reader that sees new data
      must then see the sequence moved (there is no "acquire store", so a fence it is).
  L4. ``store(seq, next_even, release)``: publishes the data; release orders every data
      store before the new even stamp.

Reader (S1-S4)
  S1. ``s1 = load(seq, acquire)``; if odd (a write in progress), back off and retry.
      Acquire: the data loads below cannot move above it.
  S2. Copy the data words with *relaxed atomic* loads. Plain loads would be a data race
      the compiler may exploit (merge, split, hoist out of the retry loop); relaxed
      atomics are single ``mov``s on x86-64 and ``ldr`` on aarch64 all the same.
  S3. ``fence(acquire)``. We want the data loads ordered before the second sequence load
      ("a release load", which does not exist); the acquire fence after the relaxed data
      loads gives exactly that: if any data load saw a write of a later L3, the fence
      synchronises with that writer's release fence and S4 must see its odd/new stamp.
  S4. ``s2 = load(seq, relaxed)``; if ``s2 != s1`` the copy may be torn: retry from S1.

Invariants
  * A reader returns only data that one writer's L3 wrote completely (no torn reads).
  * Readers never write shared memory: any number of them share the cell's cache line.
  * Writers to one cell are mutually excluded by L2; cells never block one another.
  * Progress: a reader can starve only while writers keep the same cell continuously
    busy; a writer preempted while holding a cell (more threads than cores) makes
    readers and writers of *that cell only* wait, and they yield the CPU (``backoff``)
    so that it gets to run.

``SYNC``
  Every function takes ``SYNC`` as a compile-time literal (plain accesses in its
  unsynchronised branches go through ``_unsafe.plain_load``/``plain_store``, see there). ``SYNC=False`` compiles the
  same code with the sequence checks, locks and fences removed (plain loads behind a
  compiler barrier): PlainMap, the cost-of-synchronisation baseline, and the negative
  control of the torn-read tests. Never use it with concurrent writers.
"""
import numba

from ._unsafe import (
    atomic_cas,
    atomic_load,
    atomic_store,
    backoff,
    compiler_barrier,
    fence,
    lit,
    load_words,
    plain_load,
    plain_store,
    store_words,
)
from .config import JIT

# ------------------------------------------------------------------ sequence word encoding
LOCKED = 1
STATE_SHIFT = 2
STATE_MASK = 3 << STATE_SHIFT
EMPTY = 0
FULL = 1
TOMBSTONE = 2
VERSION_UNIT = 16  # bits 4..: one write = +16
FLAG_MASK = VERSION_UNIT - 1

_U = numba.uint64


@numba.njit(inline="always", **JIT)
def seq_state(s):
    """The cell state (EMPTY / FULL / TOMBSTONE) encoded in sequence word `s`."""
    return (s >> _U(STATE_SHIFT)) & _U(3)


@numba.njit(inline="always", **JIT)
def seq_next(s, state):
    """The even sequence word that ends a write of a cell locked from `s`, new `state`."""
    return ((s | _U(FLAG_MASK)) + _U(1)) | (_U(state) << _U(STATE_SHIFT))


@numba.njit(inline="always", **JIT)
def load_seq(words, i, SYNC):
    """S1's load without the wait: the sequence word (acquire), or a plain load."""
    if lit(SYNC):
        return atomic_load(words, i, "acquire")  # S1: data loads stay below
    compiler_barrier()
    return plain_load(words, i)


@numba.njit(inline="always", **JIT)
def read_begin(words, i, SYNC):
    """S1: wait until cell `i`'s sequence word is even; return (it, backoff waits)."""
    step = 0
    waits = 0
    if lit(SYNC):
        while True:
            s = atomic_load(words, i, "acquire")  # S1: data loads stay below this
            if (s & _U(LOCKED)) == 0:
                return s, waits
            waits += 1
            step = backoff(step)
    compiler_barrier()
    return plain_load(words, i), waits


@numba.njit(inline="always", **JIT)
def read_validate(words, i, s1, SYNC):
    """S3-S4: True if the data copied since ``read_begin`` returned `s1` is consistent."""
    if lit(SYNC):
        fence("acquire")  # S3: data loads above cannot sink below the re-read
        return atomic_load(words, i, "relaxed") == s1  # S4
    compiler_barrier()
    return True


@numba.njit(inline="always", **JIT)
def load_data(words, start, N, SYNC):
    """S2: `N` (a literal) data words from ``words[start:]`` as a tuple: relaxed atomic
    loads (never plain loads inside a seqlock section), or plain ones without SYNC."""
    return load_words(words, start, N, lit(SYNC))


@numba.njit(inline="always", **JIT)
def store_data(words, start, tup, SYNC):
    """L3: store a tuple of data words (relaxed atomic stores; the cell must be locked)."""
    store_words(words, start, tup, lit(SYNC))


@numba.njit(inline="always", **JIT)
def copy_out(words, start, n, out, out_start, SYNC):
    """S2 for a run-time number of words: into ``out[out_start:]``."""
    if lit(SYNC):
        for j in range(n):
            out[out_start + j] = atomic_load(words, start + j, "relaxed")
    else:
        compiler_barrier()  # the optimiser keeps the same loads in the same order
        for j in range(n):
            plain_store(out, out_start + j, plain_load(words, start + j))
        compiler_barrier()


@numba.njit(inline="always", **JIT)
def copy_in(words, start, n, src, src_start, SYNC):
    """L3 for a run-time number of words: from ``src[src_start:]`` (cell locked)."""
    if lit(SYNC):
        for j in range(n):
            atomic_store(words, start + j, src[src_start + j], "relaxed")
    else:
        for j in range(n):
            plain_store(words, start + j, plain_load(src, src_start + j))


@numba.njit(inline="always", **JIT)
def try_lock(words, i, s, SYNC):
    """L2-L3: take cell `i` if its sequence word is still exactly the even value `s`.

    Exact-value CAS: the caller's earlier observation of the cell (its state, its key) is
    still true when this succeeds, because every write changes the version."""
    if lit(SYNC):
        if atomic_cas(words, i, s, s | _U(LOCKED), "seq_cst") != s:  # L2 (see the module doc)
            return False
        fence("release")  # L3: the odd stamp is visible before any new data
    return True


@numba.njit(inline="always", **JIT)
def lock(words, i, SYNC):
    """L1-L3 with backoff: wait for cell `i` to be free and take it; (its even word, waits)."""
    if lit(SYNC):
        step = 0
        waits = 0
        while True:
            s = atomic_load(words, i, "relaxed")  # L1
            if (s & _U(LOCKED)) == 0 and try_lock(words, i, s, SYNC):
                return s, waits
            waits += 1
            step = backoff(step)
    return plain_load(words, i), 0


@numba.njit(inline="always", **JIT)
def unlock(words, i, s_new, SYNC):
    """L4: publish the write with the next even sequence word (release)."""
    if lit(SYNC):
        atomic_store(words, i, s_new, "release")
    else:
        plain_store(words, i, s_new)


@numba.njit(inline="always", **JIT)
def unlock_unchanged(words, i, s_old, SYNC):
    """Give a locked cell back with nothing written: restore the observed word exactly.

    Readers that saw `s_old` before and after read consistent data (nothing changed)."""
    if lit(SYNC):
        atomic_store(words, i, s_old, "release")
    else:
        plain_store(words, i, s_old)
