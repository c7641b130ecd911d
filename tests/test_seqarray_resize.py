"""Resize under load: 64 threads on one SeqArray while another thread resizes it.

Writers (njit, ``arr.set``) each own the cells ``w, w + W, ...`` below ``floor`` and
write rounds 1, 2, 3, ... into them; readers (njit, ``arr.get``) check that every value
they see is a value some writer wrote and that no cell ever goes back to an older round
(a lost write or a stale buffer would show as a step backwards or a missing cell:
``UninitializedError`` propagates out of the kernel and fails the test). A Python thread
resizes the array repeatedly between sizes that never drop below ``floor``: growing and
shrinking, across size classes (copy into a new or recycled buffer) and within one (in
place). At the end every cell holds its writer's last round: nothing written before or
during a resize was lost, and nothing deadlocked (the thread runner's timeout).
"""
import threading
import time

import numba
import numpy as np
import pytest

from conftest import run_threads, scaled
from seqmap_nb import _array_kernels as A
from seqmap_nb import _lifecycle as L
from seqmap_nb._unsafe import atomic_fetch_add, atomic_load, monotonic_ns
from seqmap_nb._seqlock import EMPTY, LOCKED, seq_state, try_lock, unlock_unchanged
from seqmap_nb.seqarray import SeqArray

pytestmark = pytest.mark.timeout(600)

C_RESIZES = 0  # resizes done (written by the resizer thread)
C_WRITERS_DONE = 16  # writers finished


@numba.njit(nogil=True, cache=True)
def _writer(arr, start, step, floor, min_rounds, min_resizes, ctl, deadline_ns):
    """Write rounds into my cells until I did `min_rounds` and the resizer `min_resizes`."""
    r = 0
    while True:
        r += 1
        for i in range(start, floor, step):
            arr.set(i, r)
        if r >= min_rounds and atomic_load(ctl, C_RESIZES, "acquire") >= min_resizes:
            break
        if monotonic_ns() > deadline_ns:
            break
    atomic_fetch_add(ctl, C_WRITERS_DONE, 1, "release")
    return r


@numba.njit(nogil=True, cache=True)
def _reader(arr, floor, seed, nwriters, ctl):
    """Read cells in a scrambled order until the writers are done; count regressions."""
    last = np.zeros(floor, np.int64)
    reads = 0
    bad = 0
    i = seed % floor
    while True:  # at least one batch, however late this thread got the CPU
        for _ in range(64):
            v = arr.get(i)
            if v < last[i]:
                bad += 1  # a write was lost or a stale buffer was read
            last[i] = v
            reads += 1
            i = (i + 7919) % floor
        if atomic_load(ctl, C_WRITERS_DONE, "acquire") >= nwriters:
            break
    return reads, bad, last.sum()


def test_resize_under_load_64_threads():
    floor = 1024
    nwriters, nreaders = 31, 32
    arr = SeqArray(np.int64, capacity=floor)
    for i in range(floor):
        arr.set(i, 0)  # written before any resize
    ctl = np.zeros(32, np.int64)
    min_rounds = scaled(20, 3)
    # Writers keep writing until the resizer has done this many resizes. On an idle
    # 2-core machine thousands happen in seconds; when other processes add hundreds of
    # runnable threads, every wait for a cell whose writer was descheduled costs the
    # resizer a trip through the run queue, so the bar is modest and the deadline long.
    min_resizes = scaled(20, 5)
    limit_s = 240
    deadline = time.monotonic() + limit_s
    deadline_ns = int(time.monotonic_ns() + limit_s * 1e9)
    sizes = [floor, 3 * floor, floor + 1, 8 * floor, 2 * floor - 5, 2 * floor, floor, 5000, 1100]
    done = threading.Event()
    resizes = []

    def resizer():
        n = 0
        while not done.is_set() and time.monotonic() < deadline:
            arr.resize(sizes[n % len(sizes)])
            n += 1
            ctl[C_RESIZES] = n  # aligned 8-byte store: atomic on every supported CPU
        resizes.append(n)

    # compile everything before the threads start: a kernel compiled inside the resizer
    # thread would compete for 2 cores with 63 busy threads
    _writer(arr, 0, floor, floor, 1, 0, np.zeros(32, np.int64), deadline_ns)
    _reader(arr, floor, 1, 0, np.zeros(32, np.int64))
    arr.resize(2 * floor)  # copy into a new buffer
    arr.resize(floor)  # copy into the recycled one
    arr.resize(floor)  # in place
    arr.reset_stats()

    rt = threading.Thread(target=resizer, daemon=True)
    rt.start()
    targets = [
        (lambda w=w: _writer(arr, w, nwriters, floor, min_rounds, min_resizes, ctl, deadline_ns))
        for w in range(nwriters)
    ] + [(lambda k=k: _reader(arr, floor, 13 * k + 1, nwriters, ctl)) for k in range(nreaders)]
    results = run_threads(targets, timeout=limit_s + 120)
    done.set()
    rt.join(60)
    assert not rt.is_alive(), "the resizer did not finish"

    rounds = results[:nwriters]
    reader_results = results[nwriters:]
    print(f"resizes: {resizes[0]}, writer rounds: {min(rounds)}..{max(rounds)}, "
          f"reads: {sum(r[0] for r in reader_results)}")
    assert resizes[0] >= min_resizes, f"only {resizes[0]} resizes before the deadline"
    assert min(rounds) >= min_rounds
    assert sum(r[1] for r in reader_results) == 0  # no cell ever went back in time
    assert all(r[0] > 0 for r in reader_results)
    expected = [rounds[i % nwriters] for i in range(floor)]
    assert [int(arr.get(i)) for i in range(floor)] == expected  # every last write is there
    assert len(arr) == floor
    assert arr.stats()["resizes"] == resizes[0]
    assert not arr.resizing


@numba.njit(nogil=True, cache=True)
def _set_all(arr, n, v):
    for i in range(n):
        arr.set(i, v)


def test_shrink_under_writers_drops_only_cells_past_the_end():
    """Cells past a shrink's end disappear (len adjusts), cells below survive; a later
    grow shows them uninitialised, never with a stale value."""
    arr = SeqArray(np.int64, capacity=4096)
    _set_all(arr, 4096, 7)

    def writer():
        for _ in range(20):
            _set_all(arr, 100, 9)  # always within the final capacity

    def resizer():
        for n in (2000, 3000, 150, 4096, 100):
            arr.resize(n)

    arr.resize(4096)  # compile the resize kernels outside the threads

    run_threads([writer, writer, resizer])
    assert arr.capacity == 100 and len(arr) == 100
    assert arr.to_numpy().tolist() == [9] * 100
    arr.resize(4096)
    snap = arr.to_numpy()
    assert snap[100:].mask.all() and len(arr) == 100


@numba.njit(nogil=True, cache=True)
def _write_past(arr, lo, hi, stop):
    """Set cells lo..hi-1 over and over; sets beyond the current capacity fail."""
    ok = 0
    failed = 0
    while atomic_load(stop, 0, "acquire") == 0:
        for i in range(lo, hi):
            try:
                arr.set(i, 1)
                ok += 1
            except Exception:  # IndexError: numba catches only `Exception`
                failed += 1
    return ok, failed


@numba.njit(nogil=True, cache=True)
def _full_cells_past_the_end(hdr):
    """Internal invariant check: FULL cells between the capacity and the buffer's end."""
    buf = A.buf_view(atomic_load(hdr, L.H_BUF, "acquire"))
    cap = numba.int64(atomic_load(buf, A.B_CAP, "acquire"))
    n = 0
    for j in range(cap, numba.int64(buf[A.B_CLASSCAP])):
        if seq_state(atomic_load(buf, A.CELLS0 + j * numba.int64(hdr[A.H_STRIDE]), "acquire")) != EMPTY:
            n += 1
    return n


def test_no_write_lands_past_the_end_of_a_shrink():
    """A3's EPOCH check: a writer that checked the index against the capacity before a
    shrink must not write the cell after the shrink moved the array on.

    Writers only target cells past the shrunk end. While the array is shrunk, no cell
    past the end may be FULL in the current buffer (so that a later grow shows fresh,
    uninitialised cells), and ``len`` stays the number of cells below the end. A writer
    preempted between its capacity check and its lock is what the check is for; with 8
    writers on 2 cores that happens many times per run.
    """
    small, big = 1100, 2048  # one size class: the two buffers of the class take turns
    arr = SeqArray(np.int64, capacity=big)
    for i in range(small):
        arr.set(i, 0)
    stop = np.zeros(16, np.int64)
    arr.resize(small)
    arr.resize(big)
    _write_past(arr, small, small + 1, np.ones(16, np.int64))  # compile
    _full_cells_past_the_end(arr._hdr)
    cycles = scaled(100, 20)
    excess = []
    stale = []

    def resizer():
        try:
            for _ in range(cycles):
                arr.resize(small)
                time.sleep(0.005)  # longer than a time slice: preempted writers resume
                stale.append(_full_cells_past_the_end(arr._hdr))
                excess.append(len(arr) - small)
                arr.resize(big)
                time.sleep(0.001)  # writers fill the grown cells
        finally:
            stop[0] = 1

    results = run_threads([resizer] + [lambda: _write_past(arr, small, big, stop)] * 8, timeout=300)
    ok = sum(r[0] for r in results[1:])
    failed = sum(r[1] for r in results[1:])
    print(f"{cycles} shrink/grow cycles, {ok} sets ok, {failed} sets past the end refused, "
          f"stale cells past the end: {sum(stale)}, len excess while shrunk: max {max(excess)}")
    assert ok > 0 and failed > 0  # the writers really raced the resizes
    assert sum(stale) == 0
    assert max(excess) == 0


# ------------------------------------------------------------------ A3, step by step
# A writer that did A1 (read the epoch and the buffer) and was then descheduled while a
# resize ran. The two halves of its write are run by hand around the resize:
# deterministic, where the stress test above depends on the scheduler preempting a
# writer at the right moment.


@numba.njit(cache=True)
def _a1(hdr):
    e = atomic_load(hdr, L.H_EPOCH, "acquire")
    return e, atomic_load(hdr, L.H_BUF, "acquire")


@numba.njit(cache=True)
def _lock_and_check(hdr, e, addr, i):
    """The rest of the stale writer's attempt at cell `i` (it gives the cell back either
    way): 0 = locked and the EPOCH check passed (it would write), 1 = its CAS failed (the
    cell changed under it), 2 = the EPOCH check sent it back."""
    buf = A.buf_view(addr)
    base = A.CELLS0 + i * numba.int64(hdr[A.H_STRIDE])
    s = atomic_load(buf, base, "relaxed")
    if (s & LOCKED) or not try_lock(buf, base, s, True):
        return 1
    ok = L.epoch_ok(hdr, e, True)
    unlock_unchanged(buf, base, s, True)
    return 0 if ok else 2


def test_stale_writer_after_a_shrink_starts_over():
    arr = SeqArray(np.int64, capacity=64)
    e, addr = _a1(arr._hdr)
    assert _lock_and_check(arr._hdr, e, addr, 50) == 0  # control: nothing happened in between
    arr.resize(40)
    assert _lock_and_check(arr._hdr, e, addr, 50) == 2


def test_stale_writer_on_a_recycled_buffer_starts_over():
    arr = SeqArray(np.int64, capacity=64)
    arr.set(10, 1)
    e, addr = _a1(arr._hdr)
    arr.resize(1000)  # the class-64 buffer is retired
    assert _lock_and_check(arr._hdr, e, addr, 10) == 2
    arr.resize(64)  # ... and recycled: its cells cleared under their locks, versions going on
    assert arr.get(10) == 1 and _a1(arr._hdr)[1] == addr
    assert _lock_and_check(arr._hdr, e, addr, 10) in (1, 2)
    arr.set(10, 2)  # the current writers are unaffected
    assert arr.get(10) == 2


# ----------------------------------------------------------------- liveness: ABA on the buffer


@numba.njit(nogil=True, cache=True)
def _spin_writer(arr, t, stop):
    """``arr.set((j + t) % cap, j)`` until ``stop[0]``; returns the sets done."""
    j = 0
    while atomic_load(stop, 0, "acquire") == 0:
        arr.set((j + t) % 8, j)
        j += 1
    return j


def test_writers_waiting_on_a_moved_cell_finish_after_resizes_stop():
    """A writer that meets a MOVED cell waits for the resize to publish. With resizes
    between two size classes, the buffer it saw comes back recycled at the same address:
    a writer that slept through A -> B -> A must still notice that a publication
    happened (it waits on a counter of publications, which never repeats a value, not
    on the address, which does). 64 writers on 2 cores race 3 s of resizes; once the
    resizes stop, every writer must see the stop flag within seconds."""
    arr = SeqArray(np.int64, capacity=8)
    stop = np.zeros(1, np.int64)
    _spin_writer(arr, 0, np.ones(1, np.int64))  # compile outside the race
    arr.resize(40)
    arr.resize(8)
    threads = [threading.Thread(target=_spin_writer, args=(arr, t, stop), daemon=True) for t in range(64)]
    for th in threads:
        th.start()
    end = time.monotonic() + 3.0
    n = 0
    while time.monotonic() < end:
        arr.resize(40)
        arr.resize(8)
        n += 2
    stop[0] = 1
    deadline = time.monotonic() + 20.0
    for th in threads:
        th.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(th.is_alive() for th in threads)
    if stuck:  # release them (one more publication) so the suite does not keep spinning threads
        arr.resize(40)
        for th in threads:
            th.join(5)
    assert n > 10
    assert stuck == 0, f"{stuck} of 64 writers still waiting 20 s after the last of {n} resizes"
