"""SeqArray resizes racing 64 writers, and a pre-flip writer played step by step.

The stress: 64 writers on 2 cores, each the only writer of its cells, read each of its
cells before writing it again: the read must return exactly its own last write, whatever
resize (grow, shrink, into a fresh buffer, a recycled one, or within one size class) ran in
between; a resizer thread cycles through sizes meanwhile. A lost write, a stale buffer or a
cell moved half-written shows as a wrong read at once, not only in the final state.

The step-by-step test holds a cell's lock by hand while a resize runs: the job must not be
published while a writer that locked before the flip still holds a cell, and its write
must survive the move.
"""
import threading
import time

import numba
import numpy as np
import pytest

from conftest import run_threads, scaled
from seqmap_nb import _array_kernels as A
from seqmap_nb import _lifecycle as L
from seqmap_nb._seqlock import FULL, lock, seq_next, unlock
from seqmap_nb._unsafe import atomic_load, atomic_store, monotonic_ns
from seqmap_nb.seqarray import SeqArray

pytestmark = pytest.mark.timeout(600)

C_RESIZES = 0  # resizes done so far (the resizer)
C_STOP = 16  # the writers stop


@numba.njit(nogil=True, cache=True)
def _own_writer(arr, w, nwriters, floor, min_rounds, min_resizes, ctl, deadline_ns):
    """Rounds over my cells w, w + nwriters, ... below `floor`: read each (it must hold my
    last write), then write it again. Until I did `min_rounds` and the resizer
    `min_resizes`. Returns (rounds, wrong reads)."""
    r = 0
    bad = 0
    while True:
        r += 1
        for i in range(w, floor, nwriters):
            v = arr.get(i)
            if v != (np.int64(i) << 32) + r - 1:
                bad += 1
            arr.set(i, (np.int64(i) << 32) + r)
        if r >= min_rounds and atomic_load(ctl, C_RESIZES, "acquire") >= min_resizes:
            break
        if monotonic_ns() > deadline_ns:
            break
    return r, bad


def test_64_writers_read_their_own_last_write_across_resizes():
    """64 cells of 1024 (a move chunk) per writer: every resize moves 64 chunks or more,
    one per write of the writers that meet it, so writes and reads keep landing in move
    phases (their cell's chunk moved or not yet)."""
    floor = 1 << 16
    nwriters = 64
    arr = SeqArray(np.int64, capacity=floor)
    for i in range(floor):
        arr.set(i, np.int64(i) << 32)  # round 0
    ctl = np.zeros(32, np.int64)
    min_rounds = scaled(20, 3)
    min_resizes = scaled(40, 5)
    limit_s = 240
    deadline = time.monotonic() + limit_s
    deadline_ns = int(time.monotonic_ns() + limit_s * 1e9)
    # grow, shrink, across size classes (fresh or recycled buffers) and within one (in place)
    sizes = [floor, 4 * floor, floor + 3, 2 * floor, 3 * floor - 1, floor, 5 * floor // 4, floor + 100, 2 * floor - 7]
    done = threading.Event()
    resizes = []

    def resizer():
        n = 0
        while not done.is_set() and time.monotonic() < deadline:
            arr.resize(sizes[n % len(sizes)])
            n += 1
            ctl[C_RESIZES] = n  # aligned 8-byte store
        resizes.append(n)

    _own_writer(arr, 0, floor, floor, 1, 0, np.zeros(32, np.int64), deadline_ns)  # compile; cell 0 now round 1
    arr.set(0, 0)
    for s in (2 * floor, floor, floor):  # compile the resize kernels outside the race
        arr.resize(s)
    rt = threading.Thread(target=resizer, daemon=True)
    rt.start()
    try:
        res = run_threads([lambda w=w: _own_writer(arr, w, nwriters, floor, min_rounds, min_resizes, ctl, deadline_ns)
                           for w in range(nwriters)], timeout=limit_s + 60)
    finally:
        done.set()
        rt.join(60)
    assert not rt.is_alive(), "the resizer did not finish"
    rounds = [r for r, _ in res]
    bad = sum(b for _, b in res)
    assert resizes[0] >= min_resizes, f"only {resizes[0]} resizes before the deadline"
    assert min(rounds) >= min_rounds
    assert bad == 0, f"{bad} reads did not return the reader's own last write (resizes: {resizes[0]})"
    last = np.array([(i << 32) + rounds[i % nwriters] for i in range(floor)], np.int64)
    if arr.capacity > floor:  # the last resize may have left cells past the floor, never set
        assert arr.to_numpy()[floor:].mask.all()
    arr.resize(floor)
    np.testing.assert_array_equal(arr.to_numpy().data, last)
    assert len(arr) == floor and not arr.resizing


# ------------------------------------------------------------------ J4/J5 step by step


@numba.njit(nogil=True, cache=True)
def _cell_base(hdr, i):
    return atomic_load(hdr, L.H_BUF, "acquire"), A.CELLS0 + i * np.int64(hdr[A.H_STRIDE])


@numba.njit(nogil=True, cache=True)
def _hold_cell(addr, base):
    """L1-L3 on a cell by hand: a writer that holds it (its EPOCH check passed)."""
    return lock(A.buf_view(addr), base, True)[0]


@numba.njit(nogil=True, cache=True)
def _write_and_unlock(addr, base, s, x):
    buf = A.buf_view(addr)
    atomic_store(buf, base + 1, np.uint64(x), "relaxed")
    unlock(buf, base, seq_next(s, FULL), True)


@numba.njit(nogil=True, cache=True)
def _epoch(hdr):
    return atomic_load(hdr, L.H_EPOCH, "acquire")


def test_a_resize_waits_for_a_writer_that_locked_before_the_flip():
    """A writer holds cell 5 (value 10), locked before a resize's flip; the resize (in
    another thread: a grow into a fresh buffer, flipped at once) must wait for that cell
    before its chunk is done, so it cannot publish while the cell is held; the writer then
    stores 11 and unlocks, the resize ends, and cell 5 reads 11."""
    arr = SeqArray(np.int64, capacity=64)
    for i in range(64):
        arr.set(i, i)
    arr.set(5, 10)
    h = arr._hdr
    addr, base = _cell_base(h, 5)
    warm = SeqArray(np.int64, capacity=64)
    warm.set(5, 1)
    warm.resize(5000)  # compile the resize and its move before the clock of the wait below
    _write_and_unlock(*_cell_base(warm._hdr, 5), _hold_cell(*_cell_base(warm._hdr, 5)), 1)
    e = int(_epoch(h))
    s = _hold_cell(addr, base)
    t = threading.Thread(target=arr.resize, args=(5000,), daemon=True)
    try:
        t.start()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and int(_epoch(h)) < e + 2:
            time.sleep(0.005)  # the resize flips at once, then reaches cell 5's chunk
        during = int(_epoch(h))
    finally:
        _write_and_unlock(addr, base, s, 11)
    t.join(30)
    assert not t.is_alive(), "the resize never finished after the writer unlocked"
    assert arr.get(5) == 11, f"the pre-flip write was lost: cell 5 reads {arr.get(5)}"
    assert during == e + 1, "the resize was published while a pre-flip writer held a cell"
    assert arr.capacity == 5000 and int(_epoch(h)) == e + 2
    assert [int(arr.get(i)) for i in range(64)] == [11 if i == 5 else i for i in range(64)]
