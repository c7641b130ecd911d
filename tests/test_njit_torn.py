"""Torn-read stress through the public njit surface: a 4-word record value of a SeqMap.

Two writer threads run a user njit kernel that stores ``(x, x, x, x)`` under a few keys
(``m[k] = ...``, a tuple of the record's fields); two reader threads run a user njit
kernel that reads those keys (``m[k]``, an ItemCopy) and counts values whose four fields
differ. The negative control runs the very same reader kernel on the very same map while
the same writers write, through PlainMap's code (the map's memory typed as a PlainMap: no
sequence checks, plain loads): it must see torn values, so the harness can see them.
Every read overlaps the writers (readers start after both writers, writers stop after
both readers), and a deadline bounds every loop.

The keys are 5 words, so that a slot is 16 words (128 bytes) and the value's words 6-9
straddle a cache-line boundary: x86 moves a line between cores whole, and with the four
words in one line the unsynchronised reads saw no torn value in 6e6 reads here, where
across two lines they tear in every run. The guarantee is tested where it is needed.
"""
import numba
import numpy as np
import pytest

from conftest import SCALE, run_threads, scaled
from seqmap_nb import SeqMap
from seqmap_nb._unsafe import atomic_fetch_add, atomic_load, backoff, monotonic_ns
from seqmap_nb.seqmap import SeqMapType

pytestmark = pytest.mark.timeout(300)

REC4 = np.dtype([("a", "<u8"), ("b", "<u8"), ("c", "<u8"), ("d", "<u8")])
KEY5 = np.dtype(("<u8", 5))
NKEYS = 4
C_WRITERS = 0  # writers started (control words on their own 128-byte lines)
C_READERS_DONE = 16  # readers finished


@numba.njit(nogil=True, cache=True)
def _writer(m, wid, ctl, deadline_ns):
    atomic_fetch_add(ctl, C_WRITERS, 1, "release")
    x = numba.uint64(wid)
    writes = 0
    while atomic_load(ctl, C_READERS_DONE, "acquire") < 2:
        x += numba.uint64(2)  # writer 0 writes even values, writer 1 odd ones
        m[(x % NKEYS, 0, 0, 0, 0)] = (x, x, x, x)
        writes += 1
        if (writes & 1023) == 0 and monotonic_ns() > deadline_ns:
            break
    return writes


@numba.njit(nogil=True, cache=True)
def _reader(m, nreads, enough_torn, ctl, deadline_ns):
    """Read until `nreads` reads, `enough_torn` torn ones, or the deadline."""
    step = 0
    while atomic_load(ctl, C_WRITERS, "acquire") < 2:  # every read overlaps the writers
        step = backoff(step)
    torn = 0
    reads = 0
    k = 0
    while reads < nreads and torn < enough_torn:
        v = m[(k, 0, 0, 0, 0)]
        if v.a != v.b or v.a != v.c or v.a != v.d:
            torn += 1
        reads += 1
        k = (k + 1) % NKEYS
        if (reads & 1023) == 0 and monotonic_ns() > deadline_ns:
            break
    atomic_fetch_add(ctl, C_READERS_DONE, 1, "release")
    return reads, torn


class _PlainView:
    """The map's memory as a PlainMap: numba compiles the same user kernel with PlainMap's
    code (SYNC=0: plain loads, no sequence checks). numba types an argument by its
    ``_numba_type_`` and the map type's unboxer reads ``_hdr_addr``."""

    def __init__(self, m):
        t = numba.typeof(m)
        self._numba_type_ = SeqMapType(t.kdt, t.vdt, t.KW, t.VW, t.SW, 0)
        self._hdr_addr = m._hdr_addr
        self._map = m  # the memory lives as long as the view


def _now():
    return _clock()


@numba.njit(cache=True)
def _clock():
    return monotonic_ns()


def torn_run(sync, reads_per_reader, time_limit_s=30.0, enough_torn=2**62):
    """2 writers and 2 readers on one map: (reads, torn reads, writes, read retries)."""
    m = SeqMap(KEY5, REC4, capacity=16)
    assert m.bytes_per_slot == 128  # seq, 5 key words, 4 value words: words 6-9 cross a line
    for k in range(NKEYS):
        m[(k, 0, 0, 0, 0)] = (0, 0, 0, 0)
    target = m if sync else _PlainView(m)
    ctl = np.zeros(32, np.uint64)
    deadline = int(_now() + time_limit_s * 1e9)
    m.reset_stats()
    w0, w1, (r0, t0), (r1, t1) = run_threads([
        lambda: _writer(m, 0, ctl, deadline),
        lambda: _writer(m, 1, ctl, deadline),
        lambda: _reader(target, reads_per_reader, enough_torn, ctl, deadline),
        lambda: _reader(target, reads_per_reader, enough_torn, ctl, deadline),
    ], timeout=time_limit_s + 60)
    keys, values = m.items()
    assert len(keys) == NKEYS  # nothing lost or duplicated, every value whole
    assert (values["a"] == values["b"]).all() and (values["a"] == values["d"]).all()
    return r0 + r1, t0 + t1, w0 + w1, m.stats()["read_retries"]


def _warm():
    torn_run(True, 10, time_limit_s=5)
    torn_run(False, 10, time_limit_s=5)


def test_record_values_are_never_torn_through_the_njit_surface():
    _warm()
    reads, torn, writes, retries = torn_run(True, scaled(5_000_000, 100_000))
    print(f"SeqMap: {reads} reads, {torn} torn, {writes} writes, {retries} read retries")
    assert torn == 0
    assert writes > 0 and retries > 0  # the reads really raced the writes
    if SCALE >= 1:
        assert reads >= 10_000_000, "the time limit cut the run short: the machine is too loaded"


def test_unsynchronised_reads_of_the_same_map_tear_control():
    """The same kernels and map, the reads compiled without the seqlock: torn values show
    up. How many depends on how often the scheduler of the shared 2-core machine runs a
    reader and a writer at the same moment: from ~800 per 1e6 reads down to 1 per 4e7 here,
    so the readers go on until they have seen a few, up to 2e8 reads each (about 7 s) or 20 s."""
    _warm()
    reads, torn, writes, _ = torn_run(False, scaled(200_000_000, 1_000_000), time_limit_s=20, enough_torn=3)
    print(f"unsynchronised: {reads} reads, {torn} torn, {writes} writes")
    assert torn > 0
