"""The per-cell seqlock: every cell (SeqArray) and every slot (SeqMap) is its own lock.

Protocol (Boehm, "Can seqlocks get along with programming language memory models?",
MSPC 2012; crossbeam-utils ``atomic/seq_lock.rs``)
=======================================================================================

A cell is a run of 64-bit words in a uint64 buffer: one *sequence word* followed by the
data words (key and/or value in canonical word form, see ``_codec``)::

     word 0                        word 1 .. n
    +-----------------------------+-------------------------------+
    | version (60 bits) |st|M|L   |  data words (relaxed atomics) |
    +-----------------------------+-------------------------------+
      bit 0  L  LOCKED  odd = a writer owns the cell; the rest is the stamp
      bit 1  M  MOVED   a resize copied this cell out; its buffer is frozen for writers
      bits 2-3  state   0 EMPTY / 1 FULL / 2 TOMBSTONE (a SeqArray cell: EMPTY = never set)
      bits 4.. version  bumped by every write; never reused for the life of the buffer
                        memory (recycled buffers continue from the old version), so a
                        compare-exchange against a stale observation always fails

Writer (W1-W4)
  W1. ``s = load(seq, relaxed)``; if ``s`` is odd, back off and reload (another writer).
  W2. ``cas(seq, s, s | LOCKED, acquire)``; on failure back to W1. Acquire: the data
      writes below cannot move above the lock.
  W3. ``fence(release)`` then write the data words with relaxed atomic stores. The fence
      keeps the odd sequence visible *before* any new data: a reader that sees new data
      must then see the sequence moved (there is no "acquire store", so a fence it is).
  W4. ``store(seq, next_even, release)``: publishes the data; release orders every data
      store before the new even stamp.

Reader (R1-R4)
  R1. ``s1 = load(seq, acquire)``; if odd (a write in progress), back off and retry.
      Acquire: the data loads below cannot move above it.
  R2. Copy the data words with *relaxed atomic* loads. Plain loads would be a data race
      the compiler may exploit (merge, split, hoist out of the retry loop); relaxed
      atomics are single ``mov``s on x86-64 and ``ldr`` on aarch64 all the same.
  R3. ``fence(acquire)``. We want the data loads ordered before the second sequence load
      ("a release load", which does not exist); the acquire fence after the relaxed data
      loads gives exactly that: if any data load saw a write of a later W3, the fence
      synchronises with that writer's release fence and R4 must see its odd/new stamp.
  R4. ``s2 = load(seq, relaxed)``; if ``s2 != s1`` the copy may be torn: retry from R1.

Invariants
  * A reader returns only data that one writer's W3 wrote completely (no torn reads).
  * Readers never write shared memory: any number of them share the cell's cache line.
  * Writers to one cell are mutually excluded by W2; cells never block one another.
  * Progress: a reader can starve only while writers keep the same cell continuously
    busy; a writer preempted while holding a cell (more threads than cores) makes
    readers and writers of *that cell only* wait, and they yield the CPU (``backoff``)
    so that it gets to run.

The ``sync=False`` variants run the same code with the sequence checks switched off
(plain data loads behind a compiler barrier). They are the negative control of the torn-
read tests and the "cost of synchronisation" baseline; never use them with writers.
"""
import numba

from ._unsafe import atomic_cas, atomic_load, atomic_store, backoff, compiler_barrier, fence
from .config import JIT

# ------------------------------------------------------------------ sequence word encoding
LOCKED = 1
MOVED = 2
STATE_SHIFT = 2
STATE_MASK = 3 << STATE_SHIFT
EMPTY = 0
FULL = 1
TOMBSTONE = 2
VERSION_UNIT = 16  # bits 4..: one write = +16
FLAG_MASK = VERSION_UNIT - 1


@numba.njit(inline="always", **JIT)
def seq_state(s):
    """The cell state (EMPTY / FULL / TOMBSTONE) encoded in sequence word `s`."""
    return (s >> numba.uint64(STATE_SHIFT)) & numba.uint64(3)


@numba.njit(inline="always", **JIT)
def seq_next(s, state):
    """The even sequence word that ends a write of a cell locked from `s`, new `state`."""
    return ((s | numba.uint64(FLAG_MASK)) + numba.uint64(1)) | (numba.uint64(state) << numba.uint64(STATE_SHIFT))


@numba.njit(inline="always", **JIT)
def read_begin(words, i):
    """R1: wait until cell `i`'s sequence word is even; return it. Returns (seq, retries)."""
    step = 0
    waits = 0
    while True:
        s = atomic_load(words, i, "acquire")  # R1: data loads stay below this
        if (s & numba.uint64(LOCKED)) == 0:
            return s, waits
        waits += 1
        step = backoff(step)


@numba.njit(inline="always", **JIT)
def read_validate(words, i, s1):
    """R3-R4: True if the data copied since ``read_begin`` returned `s1` is consistent."""
    fence("acquire")  # R3: data loads above cannot sink below the re-read
    return atomic_load(words, i, "relaxed") == s1  # R4


@numba.njit(inline="always", **JIT)
def copy_out(words, start, n, out, out_start):
    """R2: copy `n` data words with relaxed atomic loads (never plain loads)."""
    for j in range(n):
        out[out_start + j] = atomic_load(words, start + j, "relaxed")


@numba.njit(inline="always", **JIT)
def copy_out_plain(words, start, n, out, out_start):
    """The unsynchronised copy (negative control): plain loads, same order, no seqlock."""
    compiler_barrier()
    for j in range(n):
        out[out_start + j] = words[start + j]
    compiler_barrier()


@numba.njit(inline="always", **JIT)
def try_lock(words, i, s):
    """W2-W3: take cell `i` if its sequence word is still exactly the even value `s`.

    Exact-value CAS: the caller's earlier observation of the cell (its state, its key) is
    still true when this succeeds, because every write changes the version.
    """
    if atomic_cas(words, i, s, s | numba.uint64(LOCKED), "acquire") != s:  # W2
        return False
    fence("release")  # W3: the odd stamp is visible before any new data
    return True


@numba.njit(inline="always", **JIT)
def lock(words, i):
    """W1-W3 with backoff: wait for cell `i` to be free and take it; returns (seq, waits)."""
    step = 0
    waits = 0
    while True:
        s = atomic_load(words, i, "relaxed")  # W1
        if (s & numba.uint64(LOCKED)) == 0 and try_lock(words, i, s):
            return s, waits
        waits += 1
        step = backoff(step)


@numba.njit(inline="always", **JIT)
def store_in(words, start, n, src, src_start):
    """W3: write `n` data words with relaxed atomic stores (the cell must be locked)."""
    for j in range(n):
        atomic_store(words, start + j, src[src_start + j], "relaxed")


@numba.njit(inline="always", **JIT)
def unlock(words, i, s_new):
    """W4: publish the write with the next even sequence word (release)."""
    atomic_store(words, i, s_new, "release")


@numba.njit(inline="always", **JIT)
def unlock_unchanged(words, i, s_old):
    """Give a locked cell back with nothing written: restore the observed word exactly.

    Readers that saw `s_old` before and after read consistent data (nothing changed)."""
    atomic_store(words, i, s_old, "release")
