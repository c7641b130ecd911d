"""Cooperative resizes under 64 threads on 2 cores: nothing lost, no key twice, adds exact.

Every thread runs its own seeded sequence of operations, inside one njit kernel: inserts,
removes, adds and reads of keys only it touches, checked against its own model of them as
each result comes back (a lost write, a key present twice or a resurrected key shows as a
wrong answer at once), and adds to hot keys that every thread shares. The map starts at 16
slots and grows through many doublings while the removes' tombstones make it rebuild in
place; every writer that meets a job helps it (one chunk per write, and the chunks its
key's chain needs), so the copies run on all threads at once. At the end the whole table is
compared with the union of the threads' models and the hot keys' totals, and every value
a thread read of its own keys while the table moved must have been the one it last wrote.

The negative control is PlainMap (the same kernels without the seqlock) in the same
harness, on a table big enough never to start a job (a job would refuse to run with other
threads inside: PlainMap is single-thread only): its races show as wrong answers and lost
adds. The controls of the resize steps themselves are the mutants of ``tests/mutants``
(``run_mutants.py``): each removes one step and this test fails.
"""
import numba
import numpy as np
import pytest

from conftest import run_threads, scaled
from seqmap_nb import _lifecycle as L
from seqmap_nb.seqmap import PlainMap, SeqMap

pytestmark = pytest.mark.timeout(600)

NHOT = 16
OWN_BITS = 32


@numba.njit(nogil=True, cache=True)
def _worker(m, t, nown, nops, hot, seed, model, present, hot_adds):
    """Thread t's operations. Its own keys are ``t << 32 | i`` (i < nown); ``model[i]`` and
    ``present[i]`` are its model of them. Returns the wrong answers (results that differ
    from the model). ``hot_adds[j]`` counts its adds to hot key j."""
    x = np.uint64(seed * 2 + 1)
    bad = 0
    base = np.int64(t) << OWN_BITS
    for step in range(nops):
        x ^= x << np.uint64(13)  # xorshift64
        x ^= x >> np.uint64(7)
        x ^= x << np.uint64(17)
        r = np.int64(x >> np.uint64(40))
        op = r & 7
        i = (r >> 3) % nown
        k = base + i
        v = (np.int64(t) << 40) | (np.int64(step) << 8) | 1
        if op <= 2:  # insert (the value says who wrote it, and when)
            old = m.insert(k, v)
            if present[i] != (old is not None) or (old is not None and old != model[i]):
                bad += 1
            model[i] = v
            present[i] = True
        elif op <= 4:  # remove
            old = m.remove(k)
            if present[i] != (old is not None) or (old is not None and old != model[i]):
                bad += 1
            present[i] = False
        elif op == 5:  # add to an own key
            new = m.add(k, 256)
            want = model[i] + 256 if present[i] else 256
            if new != want:
                bad += 1
            model[i] = want
            present[i] = True
        elif op == 6:  # read an own key
            got = m.get(k)
            if present[i] != (got is not None) or (got is not None and got != model[i]):
                bad += 1
        else:  # add to a hot key: every thread's adds meet there
            j = i % hot.shape[0]
            m.add(hot[j], 1)
            hot_adds[j] += 1
    return bad


def _run(cls, nthreads, nown, nops, capacity):
    m = cls(np.int64, np.int64, capacity=capacity)
    hot = (np.arange(NHOT, dtype=np.int64) + 1) << 56
    models = [np.zeros(nown, np.int64) for _ in range(nthreads)]
    present = [np.zeros(nown, np.bool_) for _ in range(nthreads)]
    hot_adds = [np.zeros(NHOT, np.int64) for _ in range(nthreads)]
    _worker(cls(np.int64, np.int64), 0, 4, 16, hot, 1, np.zeros(4, np.int64), np.zeros(4, np.bool_),
            np.zeros(NHOT, np.int64))
    bad = run_threads([lambda t=t: _worker(m, t, nown, nops, hot, 1000 + t, models[t], present[t], hot_adds[t])
                       for t in range(nthreads)], timeout=400)
    expect = {}
    for t in range(nthreads):
        for i in np.flatnonzero(present[t]):
            expect[(t << OWN_BITS) + int(i)] = int(models[t][i])
    totals = np.sum(hot_adds, axis=0)
    for j in range(NHOT):
        if totals[j]:
            expect[int(hot[j])] = int(totals[j])
    return m, bad, expect


def _differences(m, expect):
    ks, vs = m.items()
    got = dict(zip(ks.tolist(), vs.tolist()))
    raw = m._snapshot(dedupe=False)[0][:, 0]  # quiescent: no key may appear twice
    return {
        "keys twice": len(raw) - len(np.unique(raw)),
        "lost": sum(k not in got for k in expect),
        "resurrected or foreign": sum(k not in expect for k in got),
        "wrong value": sum(k in got and got[k] != v for k, v in expect.items()),
        "len": len(m) - len(expect),
    }


def test_64_threads_insert_remove_add_across_cooperative_resizes():
    nthreads = 64
    nown = scaled(512, 64)
    nops = scaled(40_000, 2000)
    m, bad, expect = _run(SeqMap, nthreads, nown, nops, capacity=16)
    resizes = m.stats()["resizes"]
    assert resizes >= 10, f"only {resizes} jobs ran"
    assert sum(bad) == 0, f"wrong answers while the table moved: {sum(bad)} (per thread: {bad})"
    diff = _differences(m, expect)
    assert not any(diff.values()), f"final state against the model ({len(expect)} keys, {resizes} jobs): {diff}"
    assert int(m._h[L.H_EPOCH]) % 2 == 0  # no job left half done


def test_plainmap_in_the_same_harness_shows_its_races_control(capsys):
    """The control: PlainMap, on a table that never starts a job, in the same harness.
    Its unsynchronised writers lose updates and read torn state: the harness must see
    that (a few tries: a run in which the scheduler never overlapped two writers of one
    line would show nothing)."""
    nthreads = 64
    nown = scaled(512, 64)
    nops = scaled(40_000, 2000)
    seen = []
    for _ in range(3):
        m, bad, expect = _run(PlainMap, nthreads, nown, nops, capacity=1 << 17)
        assert m.stats()["resizes"] == 0
        diff = _differences(m, expect)
        seen.append((sum(bad), diff))
        if sum(bad) or any(diff.values()):
            break
    with capsys.disabled():
        print(f"\n[negative control] PlainMap, 64 threads: {seen[-1][0]} wrong answers; final state {seen[-1][1]}")
    assert sum(bad) or any(diff.values()), "the control never showed a race: the harness cannot see one"
