"""SeqMap single-thread behaviour: the public contract's semantics, bad input, njit use, probe lengths
against Knuth, churn, memory errors. (Model-based tests: test_seqmap_model.py; threads:
test_seqmap_concurrency.py.)"""
import re
import threading
import time

import numba
import numpy as np
import pytest

from seqmap_nb.baselines import make_map

from numba.extending import overload_method

from seqmap_nb import seqmap as seqmap_module
from seqmap_nb.seqmap import PlainMap, SeqMap, SeqMapType

from conftest import run_threads

pytestmark = pytest.mark.timeout(600)


def state(m):
    ks, vs = m.items()
    order = np.argsort(ks, kind="stable") if ks.dtype.fields is None and ks.ndim == 1 else slice(None)
    return ks[order].tobytes(), vs[order].tobytes(), len(m)


# ----------------------------------------------------------------- the seed example


def test_seed_example_two_threads():
    m = SeqMap(np.uint64, np.uint8)
    m.insert(1, 42)
    m.insert(2, 43)

    def a():
        assert m.get(1) == 42
        m.insert(3, 100)

    def b():
        assert m.get(2) == 43
        m.insert(4, 101)

    run_threads([a, b], timeout=60)
    assert [m.get(k) for k in (1, 2, 3, 4)] == [42, 43, 100, 101]
    assert isinstance(m.get(1), np.uint8)


def test_dict_style_api():
    m = SeqMap(np.uint64, np.uint8)
    assert m.is_empty() and len(m) == 0
    assert m.insert(0, 1) is None  # 0 is an ordinary key
    assert m.insert(2**64 - 1, 2) is None  # so is the all-ones pattern
    assert m.insert(0, 3) == 1
    m[5] = 7
    assert m[5] == 7 and 5 in m and 6 not in m
    assert m.get(6) is None and m.get(6, "d") == "d"
    with pytest.raises(KeyError):
        m[6]
    del m[5]
    with pytest.raises(KeyError):
        del m[5]
    assert m.remove(0) == 3 and m.remove(0) is None
    assert m.add(9, 3) == 3 and m.add(9, 4) == 7
    assert len(m) == 2 and m.capacity >= 16 and m.slots == 32  # capacity: entries before growth
    ks, vs = m.items()
    assert sorted(zip(ks.tolist(), vs.tolist())) == [(9, 7), (2**64 - 1, 2)]
    assert m.keys().dtype == np.uint64 and m.values().dtype == np.uint8
    df = m.to_pandas()
    assert list(df.columns) == ["key", "value"] and len(df) == 2
    m.clear()
    assert len(m) == 0 and m.get(9) is None and m.slots == 32  # clear keeps the table
    m.insert(9, 1)
    assert m[9] == 1
    assert m.bytes_per_slot == 32 and m.memory_bytes() > 16 * 32


def test_scalar_results_are_numpy_scalars_of_the_value_dtype():
    """Every scalar method returns what ``a[i]`` returns a numpy user: a numpy scalar of
    the value dtype, for Python and numpy scalar keys alike. (The layout of other tests,
    to share their compiled kernels; float maps: test_float_keys_by_value; every dtype's
    boxing: test_npscalar.py.)"""
    kdt, vdt, k, v = np.uint64, np.uint8, 2**64 - 1, 200
    m = SeqMap(kdt, vdt)
    vt = np.dtype(vdt).type
    assert m.insert(k, v) is None
    r = m.insert(k, v)
    assert type(r) is vt and r == vt(v)
    for key in (k, np.dtype(kdt).type(k)):
        assert type(m.get(key)) is vt and m.get(key) == vt(v)
        assert type(m[key]) is vt
    assert k in m and m.contains(k) is True
    m.insert(k, 1)
    assert type(m.add(k, 2)) is vt and m[k] == 3
    assert type(m.remove(k)) is vt and m.get(k) is None and k not in m


def test_scalar_methods_call_the_kernels_entry_points_for_exact_types_only():
    """The fast path calls the compiled function for (address, int64) or (address,
    uint64) directly; any other key type takes the general path, which converts or
    refuses it exactly as before."""
    from numba import types

    m = SeqMap(np.uint64, np.uint64)
    m.insert(5, 6)
    assert m.get(5) == 6 and m.get(np.uint64(5)) == 6
    assert m._get_ep[int] is m._scalar.get1.overloads[(types.intp, types.int64)].entry_point
    assert m._get_ep[np.uint64] is m._scalar.get1.overloads[(types.intp, types.uint64)].entry_point
    assert m.get(np.int64(5)) == 6 and m._get_ep[np.int64] is None  # converted by the codec
    assert m.get(2**64 - 1) is None  # beyond int64: the entry point refuses, the codec takes it
    m.insert(2**64 - 1, 1)
    assert m.get(2**64 - 1) == 1
    with pytest.raises(OverflowError):
        m.get(-1)
    before = set(m._scalar.get1.overloads)
    assert m.get(1.0) is None and m.get(np.int8(5)) == 6  # an integral float is its integer
    with pytest.raises(TypeError, match="expected an integer"):
        m.get(1.5)
    with pytest.raises(TypeError, match="expected an integer"):
        m["x"]
    assert m._get_ep[float] is None and m._get_ep[str] is None
    assert set(m._scalar.get1.overloads) == before  # nothing compiled for other types


def test_growth_from_capacity_one_keeps_everything():
    m = SeqMap(np.int64, np.int64, capacity=1)
    assert m.capacity == 1
    for i in range(-500, 500):
        m.insert(i, i * i)
    assert len(m) == 1000 and m.capacity >= 1000 / 0.75
    assert all(m.get(i) == i * i for i in range(-500, 500))
    assert m.load_factor <= 0.75
    s = m.stats()
    assert s["resizes"] >= 8 and s["tombstones"] == 0


def test_float_keys_by_value():
    m = SeqMap(np.float64, np.float32)
    m.insert(-0.0, 1.5)
    assert m.get(0.0) == np.float32(1.5) and 0.0 in m and -0.0 in m
    assert type(m.get(0.0)) is np.float32 and type(m.insert(0.0, 1.5)) is np.float32
    assert len(m) == 1
    m.insert(np.inf, 2.0)
    m.insert(1, 3.0)  # an int key for a float map is the float 1.0
    assert m.get(1.0) == 3.0
    m.insert(2.0, -0.0)  # values keep their exact bits
    assert np.signbit(m.get(2.0))


@pytest.mark.skipif(np.finfo(np.longdouble).nmant != 63, reason="x87 extended longdouble only")
@pytest.mark.parametrize("dt", [np.longdouble, np.clongdouble])
def test_extended_precision_keys_ignore_padding_bytes(dt):
    """An x87 long double is 10 bytes of value in 16; numpy copies the other 6 from
    wherever the number was (a C stack slot: garbage). Equal numbers whose padding differs
    must be one key, and values must come back the same."""
    clean = np.array([1.5, -2.25, 3.0, 4.0], dt)
    raw = bytearray(clean.tobytes())
    part = np.dtype(dt).itemsize // (2 if np.dtype(dt).kind == "c" else 1)
    for start in range(0, len(raw), part):
        raw[start + 10:start + part] = b"\xab" * (part - 10)
    dirty = np.frombuffer(bytes(raw), dt)
    assert dirty.tobytes() != clean.tobytes() and (dirty == clean).all()  # the premise
    m = SeqMap(dt, dt)
    m.insert(dirty[0], dirty[1])
    m.insert_many(dirty[2:], dirty[2:])
    assert m.get(clean[0]) == clean[1] and m[clean[2]] == clean[2] and m[clean[3]] == clean[3]
    assert m.insert(clean[0], clean[0]) is not None and len(m) == 3
    assert len(m.remove_many(clean[1:3])) == 2 and len(m) == 2  # found by the batch path too


def test_record_and_subarray_dtypes():
    rec = np.dtype([("x", "f8"), ("n", "u4")])
    m = SeqMap(rec, np.dtype(("u8", 3)), capacity=1)
    for i in range(40):
        m.insert(np.array((i * 0.5, i), dtype=rec)[()], [i, i + 1, i + 2])
    got = m.get(np.array((2.0, 4), dtype=rec)[()])
    np.testing.assert_array_equal(got, [4, 5, 6])
    assert m.get(np.array((2.0, 5), dtype=rec)[()]) is None
    vals, found = m.get_many(np.array([(0.0, 0), (1.0, 1), (9.0, 9)], dtype=rec))
    assert found.tolist() == [True, False, False]
    np.testing.assert_array_equal(vals[0], [0, 1, 2])
    df = m.to_pandas()
    assert list(df.columns) == ["key.x", "key.n", "value[0]", "value[1]", "value[2]"]
    with pytest.raises(TypeError):
        m.add(np.array((0.0, 0), dtype=rec)[()], [1, 1, 1])
    # lists of Python ints convert exactly (numpy alone would go through float64) ...
    k0 = np.array((0.0, 0), dtype=rec)[()]
    m.insert(k0, [0, 1, 2**63 + 1])
    assert m.get(k0).tolist() == [0, 1, 2**63 + 1]
    before = state(m)
    # ... and never wrap: a negative or too large int is an error, the map unchanged
    for bad in ([0, 0, -1], [0, 0, 2**64], [0, 0, 1.5]):
        with pytest.raises((OverflowError, TypeError)):
            m.insert(k0, bad)
    with pytest.raises(OverflowError):
        m.insert_many(np.array([(9.0, 9)], dtype=rec), np.array([[0, 0, -1]]))
    assert state(m) == before
    u = SeqMap(np.uint64, np.uint8)
    assert u.insert_many([2**63 + 1, 1], [1, 2]).tolist() == [False, False]
    assert u.get(2**63 + 1) == 1


def test_batch_calls():
    m = SeqMap(np.uint64, np.uint64, capacity=4)
    keys = np.arange(1000, dtype=np.uint64) * np.uint64(7919)
    found = m.insert_many(keys, keys + np.uint64(1))
    assert not found.any() and len(m) == 1000
    assert m.insert_many(keys[:10], keys[:10]).all()
    vals, found = m.get_many(np.concatenate([keys, keys + np.uint64(1)]))
    assert found[:1000].all() and not found[1000:].any()
    np.testing.assert_array_equal(vals[:10], keys[:10])
    np.testing.assert_array_equal(vals[10:1000], keys[10:1000] + np.uint64(1))
    assert (vals[1000:] == 0).all()
    rem = m.remove_many(keys[::2])
    assert rem.all() and len(m) == 500 and not m.remove_many(keys[::2]).any()
    new = m.add_many(keys[:4], np.array([1, 1, 1, 1], np.uint64))
    np.testing.assert_array_equal(new, [1, keys[1] + np.uint64(1), 1, keys[3] + np.uint64(1)])  # keys[:10] hold value = key
    # lists work too
    v, f = m.get_many([int(keys[1])])
    assert f[0] and v[0] == keys[1] + np.uint64(1)


@pytest.mark.parametrize("vdt", [np.uint64, np.int32, np.dtype([("a", "f8"), ("b", "i8")]), np.dtype(("f8", (3,)))])
def test_get_many_fills_given_arrays(vdt):
    """out= / found= (numpy's convention): filled in place and returned, for a value dtype
    that is its own words (written by the kernel directly), one that is widened, a record
    and a sub-array; a non-contiguous out and out overlapping the keys give the same answer."""
    m = SeqMap(np.int64, vdt)
    keys = np.arange(0, 200, 2, dtype=np.int64)
    dt = np.dtype(vdt)
    if dt.subdtype is not None:
        vals = np.arange(300, dtype=np.float64).reshape(100, 3)
    else:
        vals = (np.arange(100 * dt.itemsize, dtype=np.uint8) % 7 + 1).view(dt)
    m.insert_many(keys, vals)
    probe = np.arange(200, dtype=np.int64)
    want_v, want_f = m.get_many(probe)
    out = np.full_like(want_v, 1)
    found = np.ones(200, np.bool_)
    got_v, got_f = m.get_many(probe, out=out, found=found)
    assert got_v is out and got_f is found
    np.testing.assert_array_equal(out, want_v)
    np.testing.assert_array_equal(found, want_f)
    assert found.sum() == 100 and np.array_equal(found, probe % 2 == 0)
    # a strided out and found
    big = np.zeros((400,) + want_v.shape[1:], want_v.dtype)
    fb = np.zeros(400, np.bool_)
    m.get_many(probe, out=big[::2], found=fb[::2])
    np.testing.assert_array_equal(big[::2], want_v)
    np.testing.assert_array_equal(fb[::2], want_f)
    assert not fb[1::2].any()


def test_get_many_out_may_be_the_keys_array():
    m = SeqMap(np.uint64, np.uint64)
    keys = np.arange(1, 5000, dtype=np.uint64)
    m.insert_many(keys, keys * np.uint64(3))
    k = keys.copy()
    m.get_many(k, out=k)  # every key read before its slot of out is written
    np.testing.assert_array_equal(k, keys * np.uint64(3))


def test_get_many_bad_out_is_refused_before_anything_is_written():
    m = SeqMap(np.uint64, np.uint64)
    m.insert_many(np.arange(10, dtype=np.uint64), np.arange(10, dtype=np.uint64))
    keys = np.arange(10, dtype=np.uint64)
    good_f = np.zeros(10, np.bool_)
    cases = [
        (TypeError, dict(out=[0] * 10)),
        (TypeError, dict(out=np.zeros(10, np.int64))),
        (ValueError, dict(out=np.zeros(9, np.uint64))),
        (ValueError, dict(out=np.zeros((10, 1), np.uint64))),
        (TypeError, dict(found=np.zeros(10, np.uint8))),
        (ValueError, dict(found=np.zeros(11, np.bool_))),
    ]
    ro = np.full(10, 7, np.uint64)
    ro.flags.writeable = False
    cases.append((ValueError, dict(out=ro)))
    for exc, kw in cases:
        sentinel_out = np.full(10, 7, np.uint64)
        kw = dict(kw)
        kw.setdefault("out", sentinel_out)
        kw.setdefault("found", good_f)
        with pytest.raises(exc):
            m.get_many(keys, **kw)
        assert (sentinel_out == 7).all() and not good_f.any(), f"{kw}: written before the error"
    assert len(m) == 10


def test_baselines_get_many_fill_given_arrays():
    for name in ("dashmap", "typed_dict", "dict_lock"):
        m = make_map(name, np.int64, np.float64)
        m.insert_many(np.arange(5, dtype=np.int64), np.arange(5, dtype=np.float64) / 2)
        out, found = np.zeros(8), np.zeros(8, np.bool_)
        v, f = m.get_many(np.arange(8, dtype=np.int64), out=out, found=found)
        assert v is out and f is found
        assert out.tolist() == [0, 0.5, 1, 1.5, 2, 0, 0, 0] and found.sum() == 5, name
        with pytest.raises(ValueError):
            m.get_many(np.arange(8, dtype=np.int64), out=np.zeros(7))


def test_add_overflow_is_an_error_not_a_wrap():
    m = SeqMap(np.int64, np.uint8)
    m.insert(1, 250)
    with pytest.raises(OverflowError):
        m.add(1, 10)
    assert m[1] == 250
    with pytest.raises(OverflowError):
        m.add_many(np.array([2, 1], np.int64), np.array([3, 10], np.uint8))
    assert m[1] == 250 and m[2] == 3  # stopped at item 1, item 0 applied (documented)
    big = SeqMap(np.int64, np.int64)
    big.insert(5, 2**63 - 1)
    with pytest.raises(OverflowError):
        big.add(5, 1)
    assert big[5] == 2**63 - 1
    f = SeqMap(np.int64, np.float64)
    assert f.add(1, 0.5) == 0.5 and f.add(1, 0.25) == 0.75
    b = SeqMap(np.int64, np.bool_)
    with pytest.raises(TypeError):
        b.add(1, True)


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize("dt", [object, "U", "S", np.dtype([("o", object)])])
def test_bad_dtypes(dt):
    with pytest.raises(TypeError):
        SeqMap(dt, np.uint8)
    with pytest.raises(TypeError):
        SeqMap(np.uint8, dt)


@pytest.mark.parametrize("cap, exc", [(0, ValueError), (-3, ValueError), (2**41, ValueError),
                                      (1.5, TypeError), ("8", TypeError), (True, TypeError)])
def test_bad_capacity(cap, exc):
    with pytest.raises(exc):
        SeqMap(np.uint64, np.uint8, capacity=cap)


@pytest.mark.parametrize("ml, exc", [(0, ValueError), (1, ValueError), (1.5, ValueError),
                                     (-0.1, ValueError), (float("nan"), ValueError), ("x", TypeError)])
def test_bad_max_load(ml, exc):
    with pytest.raises(exc):
        SeqMap(np.uint64, np.uint8, max_load=ml)


@pytest.mark.parametrize("name", ["seqmap", "plain", "dashmap", "global_lock"])
def test_max_load_outside_the_supported_range_is_refused_not_clamped(name):
    """A max_load of 1e-9 used to be clamped to 2**-16 silently (200 keys then allocated a
    GiB); values outside the supported range are a ValueError that names the range."""
    from seqmap_nb._codec import MAX_LOAD_RANGE

    lo, hi = MAX_LOAD_RANGE
    for bad in (1e-9, lo / 2, hi + (1 - hi) / 2):
        with pytest.raises(ValueError, match=r"max_load must be in \[0\.015625, 0\.99\]"):
            make_map(name, np.uint64, np.uint8, max_load=bad)
    for ok in (lo, 0.5, hi):
        m = make_map(name, np.uint64, np.uint8, capacity=64, max_load=ok)
        m.insert(1, 2)
        assert m.get(1) == 2 and m.max_load == ok


def test_capacity_is_entries_and_the_table_a_power_of_two():
    """capacity = entries held before growing (as Rust's with_capacity); the table has
    the smallest power of two of slots whose max_load share holds them."""
    m = SeqMap(np.uint64, np.uint8, capacity=100)
    assert m.slots == 256 and m.capacity == 192  # 128 slots hold only 96 at 0.75
    m = SeqMap(np.uint64, np.uint8, capacity=96)
    assert m.slots == 128 and m.capacity == 96
    m = SeqMap(np.uint64, np.uint8, capacity=100, max_load=0.5)
    assert m.slots == 256 and m.capacity == 128
    keys = np.arange(96, dtype=np.uint64)
    m = SeqMap(np.uint64, np.uint8, capacity=96)
    m.insert_many(keys, np.ones(96, np.uint8))
    assert m.slots == 128 and m.stats()["resizes"] == 0  # holds its capacity without growing


def test_bad_keys_and_values_leave_the_map_unchanged():
    m = SeqMap(np.uint64, np.uint8)
    for i in range(20):
        m.insert(i, i)
    before = state(m)
    bad_calls = [
        (OverflowError, lambda: m.insert(-1, 1)),
        (OverflowError, lambda: m.insert(2**64, 1)),
        (OverflowError, lambda: m.insert(1, 256)),
        (OverflowError, lambda: m.insert(1, -1)),
        (TypeError, lambda: m.insert("a", 1)),
        (TypeError, lambda: m.insert(1.5, 1)),
        (TypeError, lambda: m.insert(1, 1.5)),
        (TypeError, lambda: m.insert(1, "x")),
        (TypeError, lambda: m.insert(None, 1)),
        (OverflowError, lambda: m.get(-1)),
        (TypeError, lambda: m.get("a")),
        (OverflowError, lambda: m.remove(-5)),
        (OverflowError, lambda: m.add(3, 300)),
        (OverflowError, lambda: m.add(19, 250)),  # 19 + 250 > 255
        (ValueError, lambda: m.insert_many(np.arange(3, dtype=np.uint64), np.arange(2, dtype=np.uint8))),
        (TypeError, lambda: m.insert_many(np.arange(3, dtype=np.float64), np.arange(3, dtype=np.uint8))),
        (OverflowError, lambda: m.insert_many(np.array([-1, 2]), np.array([1, 2]))),
        (OverflowError, lambda: m.insert_many(np.array([30, 31]), np.array([1, 999]))),
        (ValueError, lambda: m.get_many(np.zeros((2, 2), np.uint64))),
        (TypeError, lambda: m.get_many(["a", "b"])),
        (TypeError, lambda: m.remove_many(np.array([1.5]))),
        (ValueError, lambda: m.add_many(np.arange(3, dtype=np.uint64), np.arange(4, dtype=np.uint8))),
    ]
    for exc, call in bad_calls:
        with pytest.raises(exc) as info:
            call()
        assert str(info.value), "every error carries a message"
        assert state(m) == before
    with pytest.raises(KeyError):
        m[99]
    f = SeqMap(np.float64, np.float64)
    f.insert(1.0, 1.0)
    fb = state(f)
    for call in (lambda: f.insert(float("nan"), 1.0), lambda: f.get(float("nan")),
                 lambda: f.insert_many(np.array([1.0, np.nan]), np.array([1.0, 2.0]))):
        with pytest.raises(ValueError):
            call()
    f32 = SeqMap(np.float32, np.float32)
    with pytest.raises(OverflowError):
        f32.insert(1e300, 1.0)
    with pytest.raises(OverflowError):
        f32.insert(1.0, 1e300)
    assert len(f32) == 0 and state(f) == fb


def test_memory_error_leaves_map_usable():
    m = SeqMap(np.int64, np.int64, capacity=48)
    assert m.slots == 64
    m._set_alloc_limit(m.memory_bytes() - m._h.nbytes)  # no buffer larger than the current one
    inserted = []
    with pytest.raises(MemoryError):
        for i in range(1000):
            m.insert(i, -i)
            inserted.append(i)
    assert len(inserted) == 64 and m.slots == 64  # growth failed silently until full
    before = state(m)
    with pytest.raises(MemoryError):
        m.insert_many(np.array([5000, 5001]), np.array([1, 2]))
    assert state(m) == before
    assert all(m[i] == -i for i in inserted)
    assert m.insert(5, 7) == -5  # a full table still updates in place
    assert m.remove(3) == -3
    assert m.insert(3, 7) is None  # ... and reuses a freed slot for a new key
    with pytest.raises(MemoryError):
        m.insert(9999, 1)
    assert 9999 not in m and len(m) == 64 and m[3] == 7
    m._set_alloc_limit(0)
    m.insert(5000, 1)
    assert m.slots > 64 and len(m) == 65 and m[3] == 7 and m[5] == 7 and m[5000] == 1


# ----------------------------------------------------------------- njit use


@numba.njit(nogil=True, cache=True)
def _njit_ops(m, n):
    fresh = 0
    for i in range(n):
        if m.insert(i, i * 10) is None:
            fresh += 1
    prev = m.insert(3, 33)
    s = 0
    for i in range(n + 5):
        v = m.get(i)
        if v is not None:
            s += v
    a = m.add(3, 5)
    r = m.remove(4)
    r2 = m.remove(4)
    return fresh, s, len(m), 3 in m, m.contains(4), m.get(3, -1), m.get(4, -1), prev, a, r, r2 is None


@pytest.mark.parametrize("cls", [SeqMap, PlainMap])
def test_njit_methods(cls):
    m = cls(np.int64, np.int64, capacity=1)
    n = 300
    fresh, s, ln, c3, c4, g3, g4, prev, a, r, r2none = _njit_ops(m, n)
    assert fresh == n
    assert s == sum(i * 10 for i in range(n)) - 30 + 33
    assert (ln, c3, c4, g3, g4, prev, a, r, r2none) == (n - 1, True, False, 38, -1, 30, 38, 40, True)
    assert len(m) == n - 1 and m[3] == 38 and m.capacity >= 256


@numba.njit(nogil=True, cache=True)
def _njit_bad_key(m):
    return m.get(-1)


@numba.njit(nogil=True, cache=True)
def _njit_overflow(m):
    m.insert(1, 2**63 - 1)
    return m.add(1, 1)


@numba.njit(nogil=True)
def _njit_get_loop(m, keys):
    s = 0
    for k in keys:
        v = m.get(k)
        if v is not None:
            s += v
    return s


_REFCOUNT_CALL = re.compile(r"call void @(NRT_incref|NRT_decref)\((?:ptr|i8\*) ([^)]*)\)")


def _refcount_calls(fn):
    """(name, operand) of every NRT_incref/decref call in the body of `fn`'s compiled
    function (not its CPython wrapper, which drops the references unboxing took)."""
    ir = fn.inspect_llvm(fn.signatures[-1])
    heads = [(re.search(r"@[^(\s]+", d).group(0), d) for d in ir.split("\ndefine ")[1:]]
    bodies = [d for h, d in heads if fn.__name__ in h and "@_ZN" in h and "cpython" not in h]  # not cfunc.*
    assert len(bodies) == 1
    return _REFCOUNT_CALL.findall(bodies[0].split("\n}\n")[0])


@pytest.mark.parametrize("cls", [SeqMap, PlainMap])
def test_njit_methods_take_no_reference(cls):
    """A method call inside an njit loop must not incref/decref anything: the reference
    count of the map's header is one atomic counter that every thread shares, so a pair of
    atomic RMWs per op both slows one thread down and caps multi-thread scaling. In the
    optimised LLVM of the loop's function (the methods inlined into it), the only
    reference taken is the one on the `keys` array, once around the loop."""
    m = cls(np.int64, np.int64)
    m.insert(3, 30)
    keys = np.arange(8, dtype=np.int64)
    assert _njit_get_loop(m, keys) == 30
    calls = _refcount_calls(_njit_get_loop)
    assert [op for _, op in calls if op != "%arg.keys.0"] == [], calls
    assert len(calls) <= 2, calls


@numba.njit(nogil=True)
def _njit_array_of(a):
    return a[1:]  # a view that holds a new reference to a's meminfo


def test_refcount_detector_sees_a_reference():
    """Negative control of the test above: its IR scan finds a real incref/decref."""
    a = np.arange(4, dtype=np.int64)
    assert _njit_array_of(a)[0] == 1
    assert _refcount_calls(_njit_array_of)


_CALL = re.compile(r"call [^@\n]*@([\w.$]+)\(")


def _called(fn):
    """Names of the functions that the body of `fn`'s compiled function calls."""
    ir = fn.inspect_llvm(fn.signatures[-1])
    heads = [(re.search(r"@[^(\s]+", d).group(0), d) for d in ir.split("\ndefine ")[1:]]
    bodies = [d for h, d in heads if fn.__name__ in h and "@_ZN" in h and "cpython" not in h]
    assert len(bodies) == 1
    return _CALL.findall(bodies[0].split("\n}\n")[0])


@pytest.mark.parametrize("cls", [SeqMap, PlainMap])
def test_njit_get_is_inlined(cls):
    """m.get in an njit loop compiles into the loop (the method is force-inlined), not into
    a call per lookup: as a call through numba's exception ABI SeqMap's get loop ran ~1.5x
    slower than its inlined form, while every baseline's get was inlined."""
    m = cls(np.uint64, np.uint64)
    m.insert(3, 30)
    assert _njit_get_loop(m, np.arange(8, dtype=np.uint64)) == 30
    # neither the method nor what it is built of (the per-layout lookup, the conversions);
    # the one call allowed is the move-phase path, out of line on purpose (rare, and a
    # call in the hot path's registers' way costs more than it saves)
    calls = _called(_njit_get_loop)
    assert not [c for c in calls if ("_ov_get" in c or "seqmap_nb" in c) and "lookup_slow" not in c]


def _ov_get_not_forced(m, k, default=None):
    return seqmap_module._ov_get(m, k, default)  # the very same body, without forceinline


overload_method(SeqMapType, "_get_not_forced")(_ov_get_not_forced)


@numba.njit(nogil=True)
def _njit_get_loop_not_forced(m, keys):
    s = 0
    for k in keys:
        v = m._get_not_forced(k)
        if v is not None:
            s += v
    return s


def test_call_detector_sees_get_without_forceinline():
    """Negative control of the test above: the same get body registered without the flag
    stays a call per lookup in the same loop (LLVM does not inline it by itself)."""
    m = SeqMap(np.uint64, np.uint64)
    m.insert(3, 30)
    assert _njit_get_loop_not_forced(m, np.arange(8, dtype=np.uint64)) == 30
    assert [c for c in _called(_njit_get_loop_not_forced) if "_ov_get" in c]


def test_njit_errors():
    m = SeqMap(np.int64, np.int64)
    with pytest.raises(OverflowError):
        _njit_overflow(m)
    assert m[1] == 2**63 - 1
    u = SeqMap(np.uint64, np.uint8)
    with pytest.raises(OverflowError):
        _njit_bad_key(u)
    rec = SeqMap(np.dtype([("a", "u8")]), np.uint8)
    with pytest.raises(numba.core.errors.TypingError, match=r"key must be a record of dtype \[\('a', '<u8'\)\]"):
        _njit_bad_key(rec)  # an int is not a record (a 1-tuple would be)


def test_typeof_is_cheap_and_shared():
    a = SeqMap(np.int64, np.int64)
    b = SeqMap(np.int64, np.int64)
    assert numba.typeof(a) == numba.typeof(b)
    assert numba.typeof(a) != numba.typeof(PlainMap(np.int64, np.int64))


def test_buffers_freed_with_the_map():
    import gc
    import weakref

    m = SeqMap(np.int64, np.int64)
    fin = m._finalizer
    assert fin.alive
    r = weakref.ref(m)
    del m
    gc.collect()
    assert r() is None and not fin.alive


# ----------------------------------------------------------------- probe lengths


@pytest.mark.parametrize("load", [0.25, 0.5, 0.7])
def test_probe_lengths_match_knuth(load):
    cap = 1 << 17
    m = SeqMap(np.uint64, np.uint64, capacity=cap * 3 // 4)  # cap slots at max_load 0.75
    rng = np.random.default_rng(int(load * 100))
    keys = np.unique(rng.integers(0, 2**63, int(cap * load) + 1000, dtype=np.uint64))[: int(cap * load)]
    m.insert_many(keys, keys)
    assert m.slots == cap and len(m) == len(keys)
    pl = m.probe_lengths()
    assert len(pl) == len(keys) and pl.min() == 1
    knuth = 0.5 * (1 + 1 / (1 - load))
    assert abs(pl.mean() / knuth - 1) < 0.05, (pl.mean(), knuth)


@pytest.mark.parametrize("load", [0.25, 0.5])
def test_churn_keeps_probes_short(load):
    cap = 1 << 14
    live = int(cap * load)
    m = SeqMap(np.uint64, np.uint64, capacity=cap * 3 // 4)  # cap slots
    rng = np.random.default_rng(3)
    stream = np.unique(rng.integers(0, 2**63, 12 * cap, dtype=np.uint64))
    rng.shuffle(stream)
    m.insert_many(stream[:live], stream[:live])
    # 10x capacity operations: insert a fresh key, remove the oldest, in batches of 64
    pos = live
    ops = 0
    while ops < 10 * cap:
        new = stream[pos: pos + 64]
        old = stream[pos - live: pos - live + 64]
        m.insert_many(new, new)
        assert m.remove_many(old).all()
        pos += 64
        ops += 128
    assert len(m) == live
    keys = stream[pos - live: pos]
    vals, found = m.get_many(keys)
    assert found.all() and (vals == keys).all()
    churned = m.probe_lengths().mean()
    fresh = SeqMap(np.uint64, np.uint64, capacity=m.capacity)
    fresh.insert_many(keys, keys)
    assert fresh.slots == m.slots
    ratio = churned / fresh.probe_lengths().mean()
    assert ratio < 1.5, (churned, ratio, m.stats())
    assert m.slots <= 2 * cap  # rebuilt in place, not grown without bound
    assert m.memory_bytes() < 4 * m.slots * m.bytes_per_slot + 65536


# ----------------------------------------------------------------- items() under concurrent writes


def _same_home_keys(m, n, home):
    """`n` uint64 keys whose home slot in `m`'s table is `home`."""
    from seqmap_nb._hash import hash_words

    @numba.njit(cache=True)
    def find(n, home, mask):
        out = np.empty(n, np.uint64)
        j = 0
        k = np.uint64(1)
        while j < n:
            if (hash_words((k,)) & np.uint64(mask)) == np.uint64(home):
                out[j] = k
                j += 1
            k += np.uint64(1)
        return out

    return find(n, home, m.slots - 1)


def test_items_lists_a_key_once_when_it_moves_during_the_copy():
    """A key removed and inserted again while the copy runs can be read at its old slot
    (before the remove) and at its new one (after the insert). Made to happen at a chosen
    moment: the copy pauses (a test hook of the snapshot kernel) after it read the first
    slots of a chain of keys with one home; the key at the head of the chain is removed,
    another key takes its freed slot, and the key goes back in at the end of the chain,
    past the pause. Without the de-duplication of the snapshot (``dedupe=False``) the raw
    copy holds it twice; items() holds every key once."""
    m = SeqMap(np.uint64, np.uint64, capacity=768)  # 1024 slots
    home = 100
    k = _same_home_keys(m, 7, home)
    m.insert_many(k[:6], k[:6] * np.uint64(10))  # slots home .. home+5, in this order
    pause_at = home + 3  # the copy has read k0 .. k2 when it stops

    def run(dedupe):
        pause = np.array([pause_at, 0], np.uint64)
        out = {}
        t = threading.Thread(target=lambda: out.update(r=m._snapshot(pause, dedupe=dedupe)), daemon=True)
        t.start()
        deadline = time.monotonic() + 20
        while pause[1] != 1:
            assert time.monotonic() < deadline, "the copy never reached the pause"
            time.sleep(0.001)
        m.remove(k[0])  # slot `home` becomes a tombstone ...
        m.insert(k[6], 1)  # ... which a new key of the same home takes
        m.insert(k[0], 2)  # k0 again: the chain's first free slot is home+6, past the pause
        pause[1] = 2
        t.join(20)
        assert not t.is_alive()
        m.remove(k[0])  # back to k0 .. k5 at home .. home+5 for the next run
        m.remove(k[6])
        m.insert(k[0], k[0] * np.uint64(10))
        assert m._snapshot()[0].shape[0] == 6
        return out["r"][0][:, 0]

    raw = run(dedupe=False)
    assert np.count_nonzero(raw == k[0]) == 2  # the race happened: read before and after it moved
    keys = run(dedupe=True)  # the same moves on the same chain (run() put it back)
    assert np.count_nonzero(keys == k[0]) == 1 and len(np.unique(keys)) == len(keys)
