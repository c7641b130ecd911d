"""copy, deepcopy and pickle give independent maps and arrays, never aliased raw memory.

Every structure here keeps its table in raw memory whose address lives in a numpy header
array. Copying the Python object attribute by attribute would copy the *address*: the copy
would share the original's table (silently shared state), outlive it (use after free once
the original is collected) or, unpickled in another process, point at nothing. The
contract: ``m.copy()``, ``copy.copy(m)`` and ``copy.deepcopy(m)`` are independent copies
of the contents, and pickling round-trips the contents (a snapshot), so a map can be sent
to a multiprocessing worker.
"""
import copy
import gc
import multiprocessing as mp
import pickle

import numpy as np
import pytest

from seqmap_nb import SeqArray
from seqmap_nb.baselines import REGISTRY, make_map

MAPS = sorted(REGISTRY)


def _filled(name, n=300):
    m = make_map(name, np.int64, np.int64, capacity=1024)
    keys = np.arange(1, n + 1, dtype=np.int64)
    m.insert_many(keys, keys * 10)
    return m, keys


def _contents(m):
    k, v = m.items()
    order = np.argsort(k)
    return dict(zip(np.asarray(k)[order].tolist(), np.asarray(v)[order].tolist()))


COPIERS = {
    "method": lambda m: m.copy(),
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    "pickle": lambda m: pickle.loads(pickle.dumps(m)),
}


@pytest.mark.parametrize("how", sorted(COPIERS))
@pytest.mark.parametrize("name", MAPS)
def test_map_copies_are_independent(name, how):
    m, keys = _filled(name)
    want = _contents(m)
    c = COPIERS[how](m)
    assert type(c) is type(m)
    assert _contents(c) == want and len(c) == len(m)
    assert (c.key_dtype, c.value_dtype) == (m.key_dtype, m.value_dtype)
    c.insert(100_000, 7)  # writes to the copy do not reach the original ...
    m.insert(200_000, 8)  # ... nor the other way round
    assert 100_000 not in m and m.get(100_000) is None
    assert 200_000 not in c and c.get(200_000) is None
    assert c.get(100_000) == 7 and m.get(200_000) == 8
    del m
    gc.collect()  # the original's memory is gone: the copy must not have pointed into it
    assert c.get(int(keys[5])) == int(keys[5]) * 10
    c.insert(300_000, 9)
    assert c.get(300_000) == 9 and len(c) == len(keys) + 2


@pytest.mark.parametrize("how", sorted(COPIERS))
def test_seqarray_copies_are_independent(how):
    rec = np.dtype([("a", "<u8"), ("b", "<f8")])
    for dt, vals in ((np.int64, [5, -1, 7]), (rec, [(1, 2.5), (3, 4.5), (5, 6.5)])):
        a = SeqArray(dt, capacity=10)
        for i, v in zip((0, 3, 9), vals):
            a.set(i, v)
        c = COPIERS[how](a)
        assert type(c) is SeqArray and c.dtype == a.dtype and c.capacity == 10 and len(c) == 3
        np.testing.assert_array_equal(np.ma.getmaskarray(c.to_numpy()), np.ma.getmaskarray(a.to_numpy()))
        for i, v in zip((0, 3, 9), vals):
            assert c.get(i) == a.get(i)
        c.set(1, vals[0])
        assert a.get(1, default=None) is None  # the original did not see the write
        a.set(2, vals[1])
        assert c.get(2, default=None) is None
        del a
        gc.collect()
        assert c.get(9) == np.array(vals[2], dtype=dt)[()]
        c.resize(100)
        c.set(99, vals[0])
        assert len(c) == 5


def _worker(payload):
    m, arr, keys = pickle.loads(payload)
    vals, found = m.get_many(keys)
    return bool(found.all()), vals.tolist(), int(arr.get(3)), len(m)


def test_pickled_structures_work_in_another_process():
    """What multiprocessing does with an argument: pickle here, unpickle in a fresh
    interpreter (spawn: no memory shared with this process), use it there."""
    from seqmap_nb import SeqMap

    m = SeqMap(np.uint64, np.float64)
    keys = np.arange(50, dtype=np.uint64)
    m.insert_many(keys, keys * 0.5)
    arr = SeqArray(np.int32, capacity=8)
    arr.set(3, -4)
    payload = pickle.dumps((m, arr, keys))
    with mp.get_context("spawn").Pool(1) as pool:
        ok, vals, cell, n = pool.apply(_worker, (payload,))
    assert ok and vals == (keys * 0.5).tolist() and cell == -4 and n == 50
