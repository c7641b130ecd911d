"""Targeted tests: each one states a guarantee of the SeqMap protocol and tests it
directly, sized so that breaking the guarantee fails it in seconds, every run.

``tests/mutants/`` holds, for each test here, the minimal changes of the kernels that
break its guarantee (one step of the protocol removed or weakened) and a script that
applies each, runs its tests and reverts: the negative control of these tests, kept out
of the suite because every mutant recompiles the package.

Threads run njit kernels (``nogil``) and are bounded by ``run_threads`` (a stuck thread
fails its test); loops that wait on other threads also stop at a deadline. Nothing is
timed: every assertion is a count of wrong answers.
"""
import threading

import numba
import numpy as np
import pytest

from conftest import run_threads, scaled
from seqmap_nb import _lifecycle as L
from seqmap_nb import _map_kernels as K
from seqmap_nb._seqlock import FULL, lock, seq_next, store_data, unlock
from seqmap_nb._unsafe import (atomic_fetch_add, atomic_fetch_or, atomic_load, atomic_store, backoff,
                               monotonic_ns, sched_yield)
from seqmap_nb.seqmap import SeqMap

pytestmark = pytest.mark.timeout(300)

_U = numba.uint64


def _now_ns():
    return _clock()


@numba.njit(nogil=True, cache=True)
def _clock():
    return monotonic_ns()


def _deadline(seconds):
    return _now_ns() + int(seconds * 1e9)


# ----------------------------------------------------------------- forcing jobs


@numba.njit(nogil=True, cache=True)
def _churn(m, base, batch, stop, deadline_ns):
    """Insert `batch` fresh keys, remove them, again, until ``stop[0]`` (or the deadline).

    Fresh keys claim EMPTY slots and leave tombstones, so ``used`` climbs past the growth
    threshold while the live count stays small: the map rebuilds in place, again and
    again, between the two buffers of its size class (the second and later rebuilds clear
    a recycled buffer first). Returns the keys inserted."""
    k = base
    n = 0
    while atomic_load(stop, 0, "acquire") == 0:
        for j in range(batch):
            m.insert(k + j, k + j)
        for j in range(batch):
            m.remove(k + j)
        k += batch
        n += batch
        if monotonic_ns() > deadline_ns:
            break
    return n


@numba.njit(nogil=True, cache=True)
def _epoch(h):
    return atomic_load(h, L.H_EPOCH, "acquire")


# ----------------------------------------------------------------- G2: no torn value on a hit

VAL6 = np.dtype(("u8", 6))  # 1 key word + 6 value words + the sequence word: one 64-byte slot


@numba.njit(nogil=True, cache=True)
def _overwrite6(h, keys, wid, rounds, stop):
    """Overwrite the hot keys' 6-word values, every word = key << 40 | round << 1 | wid."""
    for r in range(rounds):
        if atomic_load(stop, 0, "acquire") != 0:
            return r
        for k in keys:
            w = (k << _U(40)) | (_U(r) << _U(1)) | _U(wid)
            K.update(h, (k,), (w, w, w, w, w, w), 0, 1, 6, 8, True, None)  # 0: OP_INSERT (a literal)
    return rounds


@numba.njit(nogil=True, cache=True)
def _read6(h, keys, nreads, stop, batch):
    """Read the hot keys (``batch``: G1 once per pass of ``lookup_many``; else ``lookup``,
    what ``m.get`` inlines) until `nreads` reads or ``stop[0]``; count values whose words
    differ or belong to another key. Returns (reads, bad)."""
    reads = 0
    bad = 0
    nk = keys.shape[0]
    out = np.empty(nk * 6, np.uint64)
    found = np.empty(nk, np.bool_)
    while reads < nreads and atomic_load(stop, 0, "acquire") == 0:
        if batch:
            K.lookup_many(h, keys, out, found, 1, 6, 8, True)
            for j in range(nk):
                w0 = out[j * 6]
                if not found[j] or (w0 >> _U(40)) != keys[j]:
                    bad += 1
                for i in range(1, 6):
                    if out[j * 6 + i] != w0:
                        bad += 1
                        break
        else:
            for j in range(nk):
                f, v = K.lookup(h, (keys[j],), 1, 6, 8, True)
                if not f or (v[0] >> _U(40)) != keys[j]:
                    bad += 1
                if v[1] != v[0] or v[2] != v[0] or v[3] != v[0] or v[4] != v[0] or v[5] != v[0]:
                    bad += 1
        reads += nk
    return reads, bad


def test_hits_on_hot_multiword_values_are_never_torn():
    """G2: a hit is accepted only if the slot's sequence word is unchanged after the
    copy (S3-S4 on the hit slot). Two writers overwrite the 6-word values of 4 hot keys
    (one slot, one cache line each) while two readers read them, through ``lookup`` (the
    body of ``m.get``) and ``lookup_many`` (``get_many``): every value read must be one
    write's six equal words for its own key. Two writers and two readers on two cores:
    reads and writes of one line really overlap, thousands of times per run."""
    m = SeqMap(np.uint64, VAL6, capacity=64)
    assert m.bytes_per_slot == 64
    keys = np.array([3, 1000, 77777, 5], np.uint64)
    m.insert_many(keys, np.repeat(keys[:, None] << np.uint64(40), 6, axis=1))
    h = m._h
    stop = np.zeros(1, np.int64)
    _overwrite6(h, keys, 0, 1, stop)
    _read6(h, keys, 4, stop, True)
    _read6(h, keys, 4, stop, False)
    nreads = scaled(4_000_000, 100_000)
    r0 = m.stats()["read_retries"]

    def readers():
        res = run_threads([lambda: _read6(h, keys, nreads, stop, True),
                           lambda: _read6(h, keys, nreads, stop, False)], timeout=200)
        stop[0] = 1
        return res

    res = run_threads([readers, lambda: _overwrite6(h, keys, 0, 1 << 40, stop),
                       lambda: _overwrite6(h, keys, 1, 1 << 40, stop)], timeout=250)
    (rb, bb), (rs, bs) = res[0]
    assert rb > 0 and rs > 0
    assert bb == 0 and bs == 0, (f"torn or foreign values: get_many {bb} of {rb} reads, "
                                 f"get {bs} of {rs} reads")
    assert m.stats()["read_retries"] > r0  # reads really met writes


# ----------------------------------------------------------------- G3: no miss in a recycled buffer


@numba.njit(nogil=True, cache=True)
def _get_stable(m, keys, stop, deadline_ns):
    """njit ``m.get`` of every stable key until ``stop[0]``: (reads, misses, wrong values)."""
    reads = misses = wrong = 0
    while atomic_load(stop, 0, "acquire") == 0:
        for k in keys:
            v = m.get(k)
            reads += 1
            if v is None:
                misses += 1
            elif v != k * 7 + 1:
                wrong += 1
        if monotonic_ns() > deadline_ns:
            break
    return reads, misses, wrong


@numba.njit(nogil=True, cache=True)
def _same_home(n, home, mask, start):
    """The first `n` int64 keys from `start` on whose home slot is `home`."""
    out = np.empty(n, np.int64)
    j = 0
    k = start
    while j < n:
        if (np.int64(K.hash_words((np.uint64(k),))) & mask) == home:
            out[j] = k
            j += 1
        k += 1
    return out


def _stable_map():
    """1024 slots (two move chunks) that grow past 16 used slots (``max_load`` 1/64), 6
    stable keys: a writer that inserts and removes one fresh key at a time makes the map
    rebuild in place every ~10 of its writes, so a buffer spends most of its life being
    cleared or refilled. The stable keys share a home slot: a lookup probes up to 6 slots,
    which widens the time between its G1 and the slot that answers it."""
    m = SeqMap(np.int64, np.int64, capacity=16, max_load=1 / 64)
    assert m.slots == 1024
    stable = _same_home(6, 600, 1023, 1_000_003)
    m.insert_many(stable, stable * 7 + 1)
    return m, stable


def _stable_run(nget, nbatch, want_jobs, limit=60):
    """`nget` njit ``m.get`` readers and `nbatch` ``get_many`` readers of the stable keys
    while one writer churns until the map has rebuilt `want_jobs` times: [(who, reads,
    misses, wrong values)]."""
    m, stable = _stable_map()
    stop = np.zeros(1, np.int64)
    _churn(m, 10**9, 1, np.ones(1, np.int64), _deadline(limit))  # compile outside the race
    _get_stable(m, stable, np.ones(1, np.int64), _deadline(limit))
    m.get_many(stable, out=np.empty_like(stable), found=np.empty(len(stable), np.bool_))  # compiled before too
    deadline = _deadline(limit)
    e0 = int(_epoch(m._h))
    batch = np.tile(stable, 2000)  # one G1 serves a whole batch while its G3s pass: jobs run meanwhile

    def batch_reader():
        reads = misses = wrong = 0
        vals, found = np.empty_like(batch), np.empty(len(batch), np.bool_)
        while not stop[0]:
            m.get_many(batch, out=vals, found=found)  # most of the time inside the kernel
            reads += len(batch)
            misses += int((~found).sum())
            wrong += int((vals[found] != batch[found] * 7 + 1).sum())
            if _now_ns() > deadline:
                break
        return reads, misses, wrong

    def churner():
        ctl = np.zeros(1, np.int64)
        t = threading.Thread(target=_churn, args=(m, 2 * 10**9, 1, ctl, deadline), daemon=True)
        t.start()
        while int(_epoch(m._h)) - e0 < 2 * want_jobs and _now_ns() < deadline:
            threading.Event().wait(0.01)
        ctl[0] = 1
        t.join(limit)
        stop[0] = 1

    res = run_threads([churner] + [lambda: _get_stable(m, stable, stop, deadline)] * nget
                      + [batch_reader] * nbatch, timeout=limit + 60)
    jobs = (int(_epoch(m._h)) - e0) // 2
    assert jobs >= want_jobs, f"only {jobs} rebuilds before the deadline"
    assert m.slots == 1024  # rebuilt in place: the two buffers of one class took turns
    vals, found = m.get_many(stable)
    assert found.all() and (vals == stable * 7 + 1).all()
    return [(who,) + r for who, r in zip(["get"] * nget + ["get_many"] * nbatch, res[1:])]


def _no_miss(results):
    seen = "; ".join(f"{who}: {misses} misses, {wrong} wrong in {reads} reads"
                     for who, reads, misses, wrong in results)
    assert all(r[1] > 0 for r in results), seen
    assert all(r[2] == 0 and r[3] == 0 for r in results), seen


def test_stable_keys_are_never_missed_while_rebuilds_recycle_buffers():
    """G3: a lookup that read BUF and then lost the CPU may probe a buffer that has since
    been retired and recycled (cleared, then refilled by a move). Its EPOCH re-check after
    the probe sends it back to G1; without it the lookup answers from the recycled buffer.

    One writer churns fresh keys, so the map rebuilds in place over and over between the
    two buffers of its size class; 6 keys present all along are read by njit ``m.get``
    in four threads: none may ever be missed or have a wrong value. Five threads on two
    cores: readers lose the CPU mid-lookup hundreds of times a second, and a job takes
    tens of microseconds, so many lookups span several jobs."""
    _no_miss(_stable_run(4, 0, scaled(60_000, 3000)))


def test_stable_keys_are_never_missed_by_batches_while_rebuilds_recycle_buffers():
    """The same for ``get_many``, which takes G1 once per group of keys and checks G3 after
    the group's probes: 8 batch readers on 2 cores, with preallocated outputs so that they
    spend their time inside the kernel, lose the CPU in the middle of groups often enough
    that jobs recycle a group's buffer under it (without G3: misses in every run)."""
    _no_miss(_stable_run(0, 8, scaled(20_000, 2000)))


# ----------------------------------------------------------------- W3/J4/J5: no add lost or doubled


@numba.njit(nogil=True, cache=True)
def _adder(m, keys, t, n, seen, stop):
    """``m.add(k, 1)`` n times over the hot keys (from key t on). Every value an add
    returns is marked in its key's row of the bitmap `seen`; returns (adds, values
    returned twice). Stops early at ``stop[0]``."""
    nk = keys.shape[0]
    twice = 0
    for j in range(n):
        if (j & 255) == 0 and atomic_load(stop, 0, "acquire") != 0:
            return j, twice
        i = (j + t) % nk
        v = m.add(keys[i], 1)
        bit = _U(1) << _U(v & 63)
        if atomic_fetch_or(seen[i], v >> 6, bit, "relaxed") & bit:
            twice += 1
    return n, twice


@numba.njit(nogil=True, cache=True)
def _marked(seen):
    """Per row: (marked values, highest marked value)."""
    nk = seen.shape[0]
    count = np.zeros(nk, np.int64)
    top = np.zeros(nk, np.int64)
    for i in range(nk):
        for w in range(seen.shape[1]):
            x = seen[i, w]
            for b in range(64):
                if (x >> _U(b)) & _U(1):
                    count[i] += 1
                    top[i] = w * 64 + b
    return count, top


def test_adds_on_hot_keys_are_exact_while_jobs_move_the_table():
    """An add (W3) reads and writes its key's value under the slot lock, in the buffer of
    its epoch: it waits for a slot another writer holds (never skips it), gives the slot
    back if a flip happened since its G1 (the mover may have copied it already), and the
    mover waits for a writer that locked a slot before the flip. Break any of these and an
    add is lost, or its key gets a second slot.

    16 threads add 1 to 8 hot keys while a churning writer makes the map rebuild in place
    every few dozen writes (1024 slots, ``max_load`` 1/32): the adds of each key must have
    returned exactly 1 .. n, each value once (a lost add makes a later one repeat a value,
    a key in two slots starts a second count), and the table must end with each key once,
    holding its total. Each thread runs for many time slices: adders lose the CPU while
    they hold a slot, and jobs run meanwhile."""
    nthreads = 16
    per_thread = scaled(200_000, 4000) // 8 * 8
    m = SeqMap(np.int64, np.int64, capacity=32, max_load=1 / 32)
    assert m.slots == 1024
    keys = np.array([11, 222, 3333, 44444, 555555, 6666666, 77777777, 888888888], np.int64)
    per_key = nthreads * per_thread // len(keys)
    seen = np.zeros((len(keys), per_key // 64 + 2), np.uint64)
    stop = np.zeros(1, np.int64)
    limit = 120
    _adder(SeqMap(np.int64, np.int64), keys, 0, 8, seen.copy(), stop)
    _marked(seen[:, :1])
    _churn(m, 10**9, 1, np.ones(1, np.int64), _deadline(limit))
    e0 = int(_epoch(m._h))

    def adders_then_stop():
        try:
            return run_threads([lambda t=t: _adder(m, keys, t, per_thread, seen, stop)
                                for t in range(nthreads)], timeout=limit)
        finally:
            stop[0] = 1

    res = run_threads([adders_then_stop, lambda: _churn(m, 2 * 10**9, 1, stop, _deadline(limit))],
                      timeout=limit + 30)
    jobs = (int(_epoch(m._h)) - e0) // 2
    assert [r[0] for r in res[0]] == [per_thread] * nthreads
    assert jobs >= 100, f"only {jobs} jobs ran while the adds did"
    twice = sum(r[1] for r in res[0])
    count, top = _marked(seen)
    assert twice == 0 and (count == per_key).all() and (top == per_key).all(), (
        f"{twice} values returned twice; values returned per key {count.tolist()}, highest "
        f"{top.tolist()}, for {per_key} adds each")
    ks, vs = m.items()
    live = np.isin(ks, keys)
    assert np.count_nonzero(live) == len(keys), f"{len(keys)} hot keys in {np.count_nonzero(live)} slots"
    assert (vs[live] == per_key).all()


# ----------------------------------------------------------------- J4/J5: the mover waits for a pre-flip writer


@numba.njit(nogil=True, cache=True)
def _slot_of(h, k):
    """(buffer address, word index of key `k`'s slot) in the current buffer; -1 if absent."""
    addr = atomic_load(h, L.H_BUF, "acquire")
    words = K.buf_view(addr)
    mask = K._mask(words)
    i = np.int64(K.hash_words((np.uint64(k),))) & mask
    for _ in range(mask + 1):
        b = K._slot(i, 4)
        st = K.seq_state(words[b])
        if st == K.U_EMPTY:
            break
        if st == K.U_FULL and words[b + 1] == np.uint64(k):
            return addr, b
        i = (i + 1) & mask
    return addr, -1


@numba.njit(nogil=True, cache=True)
def _lock_slot(addr, b):
    """L1-L3 on a slot by hand: a writer that holds it (its EPOCH check passed)."""
    return lock(K.buf_view(addr), b, True)[0]


@numba.njit(nogil=True, cache=True)
def _write_and_unlock(addr, b, s, value):
    """The held slot's writer finishes: L3's value store, then L4."""
    words = K.buf_view(addr)
    store_data(words, b + 2, (np.uint64(value),), True)
    unlock(words, b, seq_next(s, FULL), True)


@numba.njit(nogil=True, cache=True)
def _move_all(h, e1):
    """A whole-map operation's share of move phase `e1`: every chunk left, then the wait
    for the publication (``help_move_all``)."""
    K.help_move_all(h, e1, 1, 1, 4)
    return atomic_load(h, L.H_EPOCH, "acquire")


def test_the_move_waits_for_a_writer_that_locked_before_the_flip():
    """J4-J5: a writer that locked its slot and passed its EPOCH check before the flip
    writes the old buffer; the chunk's mover must wait for it to unlock (its seq_cst
    load sees the slot locked) before copying, else the write is lost.

    Played step by step: a writer holds key K's slot (value 10) at epoch e; fresh keys,
    homed far from K, are inserted until one of them starts a job (growth into a fresh
    buffer: the flip comes at once); a mover thread then moves every chunk. While the slot is held
    the job cannot end: the chunk holding K cannot be done. The writer then stores 11 and
    unlocks, the mover finishes, and K must read 11."""
    m = SeqMap(np.int64, np.int64, capacity=16, max_load=1 / 64)  # 1024 slots, two chunks
    k = 5
    m.insert(k, 10)
    h = m._h
    addr, b = _slot_of(h, k)
    assert b >= 0
    home_k = (b - K.SLOTS0) // 4
    far = (home_k + 512) % 1024  # trigger keys: homed in the other chunk, chains nowhere near K
    fresh = _same_home(20, far, 1023, 1000)
    _move_all(SeqMap(np.int64, np.int64)._h, 1)  # compile (returns at once: not in phase 1)
    e = int(_epoch(h))
    assert e % 2 == 0
    s = _lock_slot(addr, b)
    out = []
    try:
        j = 0
        while int(_epoch(h)) == e:  # each insert claims an EMPTY slot; past 16 used a job starts
            m.insert(int(fresh[j]), 1)
            j += 1
        e1 = int(_epoch(h))
        assert e1 == e + 1, "the job did not flip at once"
        t = threading.Thread(target=lambda: out.append(_move_all(h, e1)), daemon=True)
        t.start()
        t.join(2.0)  # the mover reaches K's chunk long before; it must still be waiting
        held_through = int(_epoch(h))
    finally:
        _write_and_unlock(addr, b, s, 11)
    t.join(30)
    assert not t.is_alive(), "the mover never finished after the writer unlocked"
    assert m.get(k) == 11, f"the pre-flip write was lost: K reads {m.get(k)}"
    assert held_through == e1, "the job was published while a pre-flip writer held a slot"
    assert out == [e1 + 1] and m.slots == 2048
    ks, vs = m.items()
    assert sorted(ks.tolist()) == sorted([k] + fresh[:j].tolist())


# ----------------------------------------------------------------- W4: no insert lost to a job


class _WideGuardedMap(SeqMap):
    """SeqMap whose inserts of a new key yield the CPU three times between the probe and
    the lock (SYNC level ``WIDE_GUARDED``, insert counters on): the window in which a
    writer preempted there lets a whole job run, made wide (see ``_map_kernels``)."""

    _SYNC = K.WIDE_GUARDED


@numba.njit(nogil=True, cache=True)
def _insert_check_remove(m, base, n, window, stop):
    """Insert keys base .. base+n-1, each once (so each insert finds it absent); right
    after each insert read it back, and remove the key inserted `window` keys earlier,
    which must still be there. Returns the wrong answers (a key lost, or found where it
    was absent)."""
    bad = 0
    for j in range(n):
        if (j & 63) == 0 and atomic_load(stop, 0, "acquire") != 0:
            break
        k = base + j
        if m.insert(k, k * 3) is not None:
            bad += 1
        v = m.get(k)
        if v is None or v != k * 3:
            bad += 1
        if j >= window:
            old = m.remove(k - window)
            if old is None or old != (k - window) * 3:
                bad += 1
    return bad


def _fresh_keys_run(cls, nthreads, n):
    m = cls(np.int64, np.int64, capacity=32, max_load=1 / 64)  # 4096 slots, grows past 64 used
    stop = np.zeros(1, np.int64)
    _insert_check_remove(cls(np.int64, np.int64), 0, 4, 2, stop)
    e0 = int(_epoch(m._h))
    try:
        bad = run_threads([lambda t=t: _insert_check_remove(m, (t + 1) << 32, n, 4, stop)
                           for t in range(nthreads)], timeout=120)
    finally:
        stop[0] = 1
    return bad, (int(_epoch(m._h)) - e0) // 2, m


@pytest.mark.parametrize("cls", [SeqMap, _WideGuardedMap], ids=["SeqMap", "wide-window"])
def test_fresh_keys_inserted_while_jobs_run_are_never_lost(cls):
    """W4: an insert of a new key locks its free slot and then checks EPOCH; a flip since
    its G1 means the mover may already have passed that slot: it must give the slot back
    and start over, or its key is written into a frozen buffer and lost.

    8 threads insert fresh keys, read each back at once and remove it a few inserts
    later, so that the map rebuilds in place every few dozen inserts: every insert must
    find its key absent, every read and remove find it. With the wide window (the inserts
    yield between probe and lock) jobs run inside that window all the time."""
    bad, jobs, m = _fresh_keys_run(cls, 8, scaled(100_000, 2000) if cls is SeqMap else scaled(4000, 200))
    assert jobs >= 20, f"only {jobs} jobs ran"
    assert sum(bad) == 0, f"wrong answers per thread: {bad} ({jobs} jobs)"


# ----------------------------------------------------------------- reads during a move


@numba.njit(nogil=True, cache=True)
def _owner_adds(m, k, pub, i, stop):
    """The only writer of key `k`: ``m.add(k, 1)`` until ``stop[0]``, publishing each new
    value in ``pub[i]`` once the add has returned. Returns the adds."""
    n = 0
    while atomic_load(stop, 0, "acquire") == 0:
        v = m.add(k, 1)
        atomic_store(pub, i, v, "release")
        n += 1
    return n


@numba.njit(nogil=True, cache=True)
def _read_not_older(m, keys, pub, stop):
    """Until ``stop[0]``: per hot key, load its published value p, then ``m.get``: the
    read started after the add of p returned, so it must see p or a later value.
    Returns (reads, misses, stale values)."""
    reads = misses = stale = 0
    while atomic_load(stop, 0, "acquire") == 0:
        for i in range(keys.shape[0]):
            p = atomic_load(pub, i, "acquire")
            v = m.get(keys[i])
            reads += 1
            if v is None:
                misses += 1
            elif v < p:
                stale += 1
    return reads, misses, stale


def test_reads_during_moves_see_every_write_that_returned():
    """Reads during a move (G2 in a move phase): BUF answers only while a chunk of the
    key's probe is not done; once all are done, writers write NEXT, and the read must
    answer from NEXT. Answering from BUF regardless returns values older than a write
    that already returned; answering from NEXT regardless misses keys not moved yet.

    16384 slots (32 chunks) that rebuild every ~250 fresh keys (``max_load`` 1/64), so the
    map is in a move phase most of the time; each of 4 hot keys has one writer adding 1
    and publishing the value its add returned; readers (njit ``m.get`` and ``get_many``)
    load the published value first, then read the key: never absent, never older."""
    m = SeqMap(np.int64, np.int64, capacity=256, max_load=1 / 64)
    assert m.slots == 16384
    keys = np.array([7, 70_000_007, 1234567, 99], np.int64)
    m.insert_many(keys, np.zeros(4, np.int64))
    pub = np.zeros(4, np.int64)
    stop = np.zeros(1, np.int64)
    limit = 120
    _owner_adds(SeqMap(np.int64, np.int64), 1, np.zeros(1, np.int64), 0, np.ones(1, np.int64))
    _read_not_older(m, keys, pub, np.ones(1, np.int64))
    _churn(m, 10**9, 1, np.ones(1, np.int64), _deadline(limit))
    want_jobs = scaled(600, 100)
    deadline = _deadline(limit)
    e0 = int(_epoch(m._h))

    def batch_reader():
        reads = misses = stale = 0
        while not stop[0]:
            p = pub.copy()  # aligned 8-byte loads, before the batch starts
            vals, found = m.get_many(keys)
            reads += len(keys)
            misses += int((~found).sum())
            stale += int((vals[found] < p[found]).sum())
        return reads, misses, stale

    def until_enough_jobs():
        while int(_epoch(m._h)) - e0 < 2 * want_jobs and _now_ns() < deadline:
            threading.Event().wait(0.01)
        stop[0] = 1

    res = run_threads([until_enough_jobs, lambda: _churn(m, 2 * 10**9, 1, stop, deadline), batch_reader]
                      + [lambda: _read_not_older(m, keys, pub, stop)] * 2
                      + [lambda i=i: _owner_adds(m, keys[i], pub, i, stop) for i in range(4)],
                      timeout=limit + 30)
    jobs = (int(_epoch(m._h)) - e0) // 2
    assert jobs >= want_jobs, f"only {jobs} jobs ran"
    seen = "; ".join(f"{who}: {r[1]} misses, {r[2]} stale in {r[0]} reads"
                     for who, r in zip(["get_many", "get", "get"], res[2:5]))
    assert all(r[0] > 0 for r in res[2:5]), seen
    assert all(r[1] == 0 and r[2] == 0 for r in res[2:5]), seen
    vals, found = m.get_many(keys)
    assert found.all() and (vals == np.array(res[5:])).all()


# ----------------------------------------------------------------- J5: claims are tagged with their job


@numba.njit(nogil=True, cache=True)
def _job_state(h):
    """(EPOCH, BUF, finished chunks of the move phase, chunk state words of BUF, the move
    cursor)."""
    o = atomic_load(h, L.H_BUF, "acquire")
    ow = K.buf_view(o)
    nch = np.int64(ow[K.B_NCHUNKS])
    states = np.empty(nch, np.uint64)
    for c in range(nch):
        states[c] = atomic_load(ow, K._chunk_off(ow) + c, "acquire")
    return (atomic_load(h, L.H_EPOCH, "acquire"), o, atomic_load(h, L.H_MDONE, "acquire"), states,
            atomic_load(h, L.H_MCUR, "acquire"))


@numba.njit(nogil=True, cache=True)
def _stale_writer_duty(h, e1, o, k):
    """The move-phase duty (``ensure_chain``) of a writer of key `k` whose G1 read epoch
    `e1` and buffer `o`, run now: as if it had slept since."""
    key = (np.uint64(k),)
    return K.ensure_chain(h, e1, o, K.hash_words(key), key, 1, 1, 4)


@numba.njit(nogil=True, cache=True)
def _stale_claim(h, e1, c):
    """A helper that took index `c` from the cursor of move phase `e1` and slept: it loads
    BUF now and claims chunk `c` of it (``help_move``'s next step)."""
    ow = K.buf_view(atomic_load(h, L.H_BUF, "acquire"))
    return L.claim_chunk(ow, K._chunk_off(ow), c, e1)


@numba.njit(nogil=True, cache=True)
def _help_move_once(h, e1):
    return K.help_move(h, e1, 1, 1, 4)


def _until_job(m, k0):
    """Insert and remove fresh keys (from k0 on) until an insert starts a job (its key is
    left in: a remove would help the job along); returns that key."""
    e = int(_epoch(m._h))
    while True:
        m.insert(k0, 1)
        if int(_epoch(m._h)) != e:
            return k0
        m.remove(k0)
        k0 += 1


def test_a_helper_that_slept_through_jobs_claims_nothing_of_a_later_one():
    """J5: chunk states and cursors carry the epoch of their job, so a thread that woke
    with the epoch and buffer of a job long finished can neither claim nor complete a
    chunk of the job now running in that same (recycled) buffer. Untagged, it would move
    the chunk in the name of its old job, count it done, and, completing the last chunk,
    publish with its stale epoch: EPOCH would go backwards.

    Played by hand, on one thread: the map (1024 slots, two chunks) rebuilds in place
    A -> B -> A; in a third job, moving A again, chunk 0 is moved by a writer, and then
    the stale writer of job 1 runs its duty for a key of chunk 1, a stale helper of job 1
    takes the next index of the cursor, and another claims chunk 1. None may change
    anything; the job then ends normally."""
    m = SeqMap(np.int64, np.int64, capacity=16, max_load=1 / 64)
    h = m._h
    live = _same_home(5, 700, 1023, 1)  # chunk 1: slots 700 .. 704
    m.insert_many(live, live * 2)
    k = _until_job(m, 10**9)  # job 1: A -> B (fresh, flipped at once)
    e1, a, _, _, _ = _job_state(h)
    assert e1 % 2 == 1
    m.items()  # helps job 1 to its end
    m.remove(k)
    k = _until_job(m, k + 1)  # job 2: B -> A (recycled: cleared, then flipped)
    m.items()
    m.remove(k)
    k = _until_job(m, k + 1)  # job 3: A -> B, left running
    e3, o, done0, states, _ = _job_state(h)
    assert o == a and e3 == e1 + 4 and done0 == 0
    assert (states == e3 * 4 + L.CH_FREE).all()
    _help_move_once(h, e3)  # a writer's share of job 3: chunk 0
    before = _job_state(h)
    assert before[2] == 1 and before[3][0] == e3 * 4 + L.CH_DONE and before[3][1] == e3 * 4 + L.CH_FREE
    _stale_writer_duty(h, e1, a, int(live[4]))
    _help_move_once(h, e1)  # a stale helper at its first step: the cursor of job 1
    claim = _stale_claim(h, e1, 1)
    after = _job_state(h)
    assert after[0] == e3, f"EPOCH went from {e3} to {after[0]}: a stale thread published"
    assert claim != L.CLAIMED, "a stale helper claimed a chunk of a later job"
    assert after[2] == 1 and (after[3] == before[3]).all(), "a stale thread moved a chunk of a later job"
    assert after[4] == before[4], "a stale helper took an index from a later job's cursor"
    m.items()  # job 3 ends normally
    assert int(_epoch(h)) == e3 + 1
    vals, found = m.get_many(live)
    assert found.all() and (vals == live * 2).all() and len(m) == len(live) + 1 and m.slots == 1024


# ----------------------------------------------------------------- W1/W4: no key twice with slots reused


class _WideUnguardedMap(SeqMap):
    """The wide window without the insert counters (SYNC level ``WIDE_UNGUARDED``): the
    negative control of the duplicate-key test, nothing else."""

    _SYNC = K.WIDE_UNGUARDED


@numba.njit(nogil=True, cache=True)
def _copies(h, k):
    """Slots of the current buffer that hold key `k` (FULL), along its chain."""
    words = K.buf_view(atomic_load(h, L.H_BUF, "acquire"))
    mask = K._mask(words)
    i = np.int64(K.hash_words((np.uint64(k),))) & mask
    n = 0
    for _ in range(mask + 1):
        b = K._slot(i, 4)
        s = atomic_load(words, b, "acquire")
        st = K.seq_state(s)
        if st == K.U_EMPTY:
            break
        if st == K.U_FULL and atomic_load(words, b + 1, "relaxed") == np.uint64(k):
            n += 1
        i = (i + 1) & mask
    return n


@numba.njit(nogil=True, cache=True)
def _first_inserts(m, h, churn, targets, t, nthreads, ctl, extra):
    """Round r: every thread inserts the new key ``targets[r]`` (all race to be first);
    the last len(churn) threads first wait until half of the others have started their
    insert, and remove their churn key: slots at the front of the chain are freed while
    some inserts of the key are between their probe and their lock, and others have not
    probed yet. Then all threads meet; thread 0 counts the slots that hold the key (more
    than one is a duplicate), removes it, puts the churn keys back, and starts the next
    round."""
    nc = churn.shape[0]
    ni = nthreads - nc
    for r in range(targets.shape[0]):
        step = 0
        if t >= ni:
            while atomic_load(ctl, 32, "acquire") < r * ni + ni // 2:
                step = backoff(step)
            m.remove(churn[t - ni])
        else:
            atomic_fetch_add(ctl, 32, 1, "acq_rel")  # started
        m.insert(targets[r], np.uint64(t))
        atomic_fetch_add(ctl, 0, 1, "acq_rel")  # arrive
        step = 0
        if t == 0:
            while atomic_load(ctl, 0, "acquire") < (r + 1) * nthreads:
                step = backoff(step)
            extra[r] = _copies(h, targets[r]) - 1
            m.remove(targets[r])
            for c in churn:
                m.insert(c, np.uint64(1))
            atomic_store(ctl, 16, r + 1, "release")
        else:
            while atomic_load(ctl, 16, "acquire") < r + 1:
                step = backoff(step)
    return 0


def _first_insert_run(cls, nthreads, rounds, nc=4):
    m = cls(np.uint64, np.uint64, capacity=768)  # 1024 slots: no job for these few keys
    keys = _same_home(nc + rounds, 300, m.slots - 1, 1).astype(np.uint64)  # one chain
    churn, targets = keys[:nc], keys[nc:]
    m.insert_many(churn, np.ones(nc, np.uint64))
    ctl = np.zeros(48, np.int64)
    extra = np.zeros(rounds, np.int64)
    small = cls(np.uint64, np.uint64)
    _first_inserts(small, small._h, churn[:0], targets[:1], 0, 1, np.zeros(48, np.int64), np.zeros(1, np.int64))
    run_threads([lambda t=t: _first_inserts(m, m._h, churn, targets, t, nthreads, ctl, extra)
                 for t in range(nthreads)], timeout=120)
    return extra


def test_racing_first_inserts_of_a_key_never_leave_it_twice():
    """W1/W4 (the insert counters): two inserts of one new key that picked different free
    slots of its chain (one freed after the other's probe passed it) cannot both commit:
    each commits with a CAS from the home counter it read before probing.

    64 threads on 2 cores each insert one new key per round, all into one chain; while
    half of them have started, 4 threads free slots at the front of the chain. With the
    insert counters (SeqMap, and the same map whose inserts yield between probe and lock)
    every round ends with the key in one slot. The control, the wide window without the
    counters, ends almost every round with the key in two or more slots, in the same
    harness."""
    rounds = scaled(30, 10)
    for cls in (SeqMap, _WideGuardedMap):
        extra = _first_insert_run(cls, 64, rounds)
        assert (extra == 0).all(), (f"{cls.__name__}: a key in {extra.max() + 1} slots after "
                                    f"{np.count_nonzero(extra)} of {rounds} rounds")
    control = _first_insert_run(_WideUnguardedMap, 64, rounds)
    print(f"\n[negative control] no insert counters: a key twice after {np.count_nonzero(control)} of {rounds} rounds")
    assert np.count_nonzero(control) > 0, "the control never duplicated a key: the test cannot see the race"


# ----------------------------------------------------------------- J5: placing into NEXT claims the slot


@numba.njit(nogil=True, cache=True)
def _place_keys(h, keys, go):
    """Place entries (key, key) into the current buffer as a mover places them into NEXT
    (``place``), after ``go[0]`` says all threads are ready."""
    step = 0
    while atomic_load(go, 0, "acquire") == 0:
        step = backoff(step)
    words = K.buf_view(atomic_load(h, L.H_BUF, "acquire"))
    for k in keys:
        K.place(words, (k,), (k,), 1, 4, True)
    return keys.shape[0]


@numba.njit(nogil=True, cache=True)
def _arrive(ctl):
    atomic_fetch_add(ctl, 1, 1, "acq_rel")


def test_concurrent_placements_into_one_chain_lose_nothing():
    """J5: a mover places an entry into the first EMPTY slot of its chain in NEXT *under
    that slot's lock*: other movers (of neighbouring chunks, whose chains can run into
    each other's) and writers of NEXT claim EMPTY slots there at the same time. Without
    the lock, two placements that found the same EMPTY slot both write it, and one entry
    is gone.

    ``place`` run directly, as the movers run it: 8 threads place 48 entries each, all
    with one home, into an idle 4096-slot table, so that every placement races the others
    for the slot at the end of one chain; every entry must be there once."""
    nthreads, per = 8, 48
    for r in range(scaled(5, 2)):
        m = SeqMap(np.uint64, np.uint64, capacity=3000)
        assert m.slots == 4096
        keys = _same_home(nthreads * per, 1000 + r, 4095, 1 + 100_000 * r).astype(np.uint64)
        go = np.zeros(1, np.int64)
        if r == 0:
            _place_keys(SeqMap(np.uint64, np.uint64)._h, keys[:1], np.ones(1, np.int64))
        ctl = np.zeros(2, np.int64)

        def placer(t):
            _arrive(ctl)
            return _place_keys(m._h, keys[t::nthreads], go)

        def starter():
            while ctl[1] < nthreads:
                threading.Event().wait(0.001)
            go[0] = 1

        run_threads([starter] + [lambda t=t: placer(t) for t in range(nthreads)], timeout=60)
        ks, vs = m.items()
        raw = m._snapshot(dedupe=False)[0][:, 0]
        assert len(raw) == len(keys) and sorted(raw.tolist()) == sorted(keys.tolist()), (
            f"round {r}: {len(keys)} placements left {len(raw)} entries, {len(set(keys.tolist()) - set(raw.tolist()))} lost")
        assert (vs == ks).all() and len(m) == len(keys)
