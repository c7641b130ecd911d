"""A reader-writer spin lock in one 64-bit word: the lock of every DashMap shard.

This is the lock DashMap puts in front of each shard (``dashmap::lock::RawRwLock``: one
``AtomicUsize`` holding a reader count and a writer bit, a compare-exchange fast path, a
slow path that spins and then parks), minus the parking: a numba kernel has no futex, so
the slow path spins with ``pause`` and then gives the CPU away with ``sched_yield``
(``_unsafe.backoff``), which is also what keeps 64 threads on 2 cores moving.

Word layout (one ``uint64``, alone on its 128-byte line or sharing it only with the data
that lock guards: see ``dashmap``)::

     63                                        2   1   0
    +-------------------------------------------+---+---+
    |            reader count (62 bits)         | P | W |
    +-------------------------------------------+---+---+
      bit 0  W  WRITER   a writer holds the lock (then the reader count is 0)
      bit 1  P  PENDING  a writer is waiting: no *new* reader may enter
      bits 2..  readers  number of readers inside (unit READER = 4)

Protocol
  Read lock (RL1-RL2)
    RL1. ``s = load(word, relaxed)``; if W or P is set, back off and go to RL1 (a writer
        holds the lock, or one is waiting and has priority over new readers).
    RL2. ``cas(word, s, s + READER, acquire)``; on success the reader is in. Acquire: the
        table reads of the critical section cannot move above it, and it synchronises
        with the release of the last writer's unlock (the table it wrote is visible).
        On failure (another reader got in first, or a writer arrived) go to RL1.
    This shared read-modify-write on every read, on a line that every reader of the shard
    writes, is DashMap's cost under read-mostly load; the seqlock map's readers write
    nothing. It is kept here on purpose, faithfully.
  Read unlock
    ``fetch_sub(word, READER, release)``: the table reads stay above it; a writer whose
    acquire CAS reads the decremented word sees the readers gone (release sequence).
  Write lock (WL1-WL3)
    WL1. ``s = load(word, relaxed)``.
    WL2. If neither W nor readers: ``cas(word, s, WRITER, acquire)``: takes the lock and
        clears P in one step (the waiting writer that wins is the one P was set for;
        other waiting writers set P again on their next turn). On failure go to WL1.
    WL3. Otherwise set P (``fetch_or(PENDING, relaxed)``) if it is not set, back off, WL1.
        Readers already inside finish; new ones wait at RL1, so the count drains.
  Write unlock
    ``fetch_and(word, ~WRITER, release)``: publishes the critical section's writes;
    keeps P if another writer set it while we held the lock (so that writer goes next).

Progress and hazards
  * Writers cannot starve: once a writer sets P no reader enters, and the readers inside
    leave after their (short) critical sections. The price: a stream of writers can hold
    readers off (writer preference, like DashMap's lock and Linux's rwsem).
  * No lost wake-ups: nobody sleeps waiting for a signal; every waiter re-reads the word
    after each backoff step, so a release is always seen.
  * Not re-entrant: a thread that takes the read lock and then the write lock of the same
    shard deadlocks with itself (as in DashMap: holding a ``Ref`` while inserting).
  * Holding a lock across a Python call or an exception is never done: every kernel in
    this package unlocks before it returns or raises.
"""
import numba

from .._unsafe import atomic_cas, atomic_fetch_and, atomic_fetch_or, atomic_fetch_sub, atomic_load, backoff
from ..config import JIT

WRITER = 1
PENDING = 2
READER = 4
#: everything but PENDING: what must be zero for a writer to take the lock
BUSY = ~numba.uint64(PENDING) & numba.uint64(0xFFFFFFFFFFFFFFFF)


@numba.njit(inline="always", **JIT)
def read_lock(words, i):
    """Take the read lock in ``words[i]``; returns the number of backoff waits (0 = fast path)."""
    step = 0
    waits = 0
    while True:
        s = atomic_load(words, i, "relaxed")  # RL1
        if (s & numba.uint64(WRITER | PENDING)) == 0:
            # RL2: acquire pairs with the last writer's release unlock
            if atomic_cas(words, i, s, s + numba.uint64(READER), "acquire") == s:
                return waits
            continue  # another reader moved the count: the word changed, try again at once
        waits += 1
        step = backoff(step)


@numba.njit(inline="always", **JIT)
def try_read_lock(words, i):
    """One RL1-RL2 attempt: True if the read lock was taken."""
    s = atomic_load(words, i, "relaxed")
    if (s & numba.uint64(WRITER | PENDING)) != 0:
        return False
    return atomic_cas(words, i, s, s + numba.uint64(READER), "acquire") == s


@numba.njit(inline="always", **JIT)
def read_unlock(words, i):
    """Leave a read section (release: the section's loads stay above)."""
    atomic_fetch_sub(words, i, READER, "release")


@numba.njit(inline="always", **JIT)
def write_lock(words, i):
    """Take the write lock in ``words[i]``; returns the number of backoff waits."""
    step = 0
    waits = 0
    while True:
        s = atomic_load(words, i, "relaxed")  # WL1
        if (s & BUSY) == 0:
            # WL2: acquire pairs with the release of the last unlock (reader or writer);
            # writing WRITER alone also clears PENDING (set on our behalf)
            if atomic_cas(words, i, s, numba.uint64(WRITER), "acquire") == s:
                return waits
            continue
        if (s & numba.uint64(PENDING)) == 0:
            atomic_fetch_or(words, i, PENDING, "relaxed")  # WL3: stop new readers
        waits += 1
        step = backoff(step)


@numba.njit(inline="always", **JIT)
def try_write_lock(words, i):
    """One WL1-WL2 attempt (does not set PENDING): True if the write lock was taken."""
    s = atomic_load(words, i, "relaxed")
    if (s & BUSY) != 0:
        return False
    return atomic_cas(words, i, s, numba.uint64(WRITER), "acquire") == s


@numba.njit(inline="always", **JIT)
def write_unlock(words, i):
    """Leave the write section (release: publishes its writes; PENDING survives)."""
    atomic_fetch_and(words, i, ~numba.uint64(WRITER), "release")


@numba.njit(inline="always", **JIT)
def readers(s):
    """The reader count encoded in lock word `s`."""
    return s >> numba.uint64(2)
