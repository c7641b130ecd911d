"""SeqArray: the API contract, bad input, use from njit, and a model test against NaiveArray."""
import gc
import threading

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba.core.errors import TypingError

from conftest import run_threads
from naive import NaiveArray
from seqmap_nb.seqarray import SeqArray, UninitializedError

pytestmark = pytest.mark.timeout(300)

REC = np.dtype([("x", "<f8"), ("n", "<u4"), ("tag", "S3")])
SUB = np.dtype(("<u2", (3,)))


# ------------------------------------------------------------------ the seed example


def test_seed_example_two_threads():
    arr = SeqArray(np.uint32, capacity=4)
    arr.set(0, 1)
    arr.set(1, 2)

    def one(cell, value):
        def run():
            assert arr.get(0) == 1 and arr.get(1) == 2
            arr.set(cell, value)

        return run

    run_threads([one(2, 3), one(3, 4)])
    assert [arr.get(i) for i in range(4)] == [1, 2, 3, 4]
    assert sorted([arr.get(2), arr.get(3)]) == [3, 4]
    assert len(arr) == 4


# ------------------------------------------------------------------ basics


def test_get_set_len_capacity_uninitialised():
    arr = SeqArray(np.uint32, capacity=4)
    assert arr.capacity == 4 and len(arr) == 0 and arr.is_empty()
    arr.set(0, 1)
    arr.set(0, 5)  # only the first set of a cell counts
    arr.set(3, 7)
    v = arr.get(0)
    assert v == 5 and type(v) is np.uint32
    assert len(arr) == 2 and not arr.is_empty()
    with pytest.raises(UninitializedError, match="cell 1 was never set"):
        arr.get(1)
    assert issubclass(UninitializedError, LookupError)
    assert arr.get(1, default=0) == 0
    assert arr.get(1, None) is None
    with pytest.raises(IndexError, match="index 7 out of range .capacity 4"):
        arr.get(7)
    assert SeqArray.with_capacity(np.int8, 3).capacity == 3
    assert not arr.resizing


@pytest.mark.parametrize(
    "dtype, value",
    [
        (np.bool_, True),
        (np.int8, -128),
        (np.uint16, 65535),
        (np.int32, -(2**31)),
        (np.uint64, 2**64 - 1),
        (np.int64, -(2**63)),
        (np.float32, 1.5),
        (np.float64, -0.0),
    ],
)
def test_scalar_dtypes_round_trip_exact_bits(dtype, value):
    arr = SeqArray(dtype, capacity=2)
    arr.set(1, value)
    got = arr.get(1)
    assert type(got) is np.dtype(dtype).type
    assert np.array(got).tobytes() == np.array(value, dtype).tobytes()  # -0.0 stays -0.0


def test_record_subarray_and_complex_cells():
    r = SeqArray(REC, capacity=3)
    r.set(2, (1.5, 7, b"abc"))
    got = r.get(2)
    assert got["x"] == 1.5 and got["n"] == 7 and got["tag"] == b"abc"
    got["n"] = 99  # a copy: the cell is unchanged
    assert r.get(2)["n"] == 7
    s = SeqArray(SUB, capacity=2)
    s.set(0, [1, 2, 65535])
    assert s.get(0).tolist() == [1, 2, 65535]
    c = SeqArray(np.complex128, capacity=2)
    c.set(1, 1 + 2j)
    assert c.get(1) == 1 + 2j
    assert c.get(0, default="none") == "none"


def test_to_numpy_masks_uninitialised_cells():
    arr = SeqArray(np.int16, capacity=5)
    arr.set(1, -3)
    arr.set(4, 9)
    snap = arr.to_numpy()
    assert isinstance(snap, np.ma.MaskedArray) and snap.dtype == np.int16
    assert snap.mask.tolist() == [True, False, True, True, False]
    assert snap.compressed().tolist() == [-3, 9]
    arr.set(0, 1)
    assert snap.mask[0]  # a copy, not a view
    rec = SeqArray(REC, capacity=2)
    rec.set(1, (2.0, 3, b"x"))
    snap = rec.to_numpy()
    assert np.ma.getmaskarray(snap)["x"].tolist() == [True, False]
    assert snap.data[1]["n"] == 3
    sub = SeqArray(SUB, capacity=2)
    sub.set(0, [4, 5, 6])
    snap = sub.to_numpy()
    assert snap.shape == (2, 3) and snap[0].tolist() == [4, 5, 6] and snap.mask[1].all()


def test_resize_grow_shrink_and_recycled():
    arr = SeqArray(np.int64, capacity=10)
    for i in range(10):
        arr.set(i, i * 10)
    arr.resize(100)  # new size class: copy
    assert arr.capacity == 100 and len(arr) == 10
    assert arr.to_numpy().compressed().tolist() == [i * 10 for i in range(10)]
    arr.set(99, -1)
    arr.resize(6)  # shrink into the retired class-16 buffer (recycled), drops 5 cells
    assert arr.capacity == 6 and len(arr) == 6
    with pytest.raises(IndexError):
        arr.set(6, 1)  # beyond the new capacity
    with pytest.raises(IndexError):
        arr.get(99)
    arr.resize(8)  # same size class (the other buffer of it); the new cells are uninitialised
    assert arr.get(7, default=None) is None and arr.get(5) == 50
    arr.resize(5)  # shrink within the class
    assert len(arr) == 5
    arr.resize(128)  # back to the retired class-128 buffer: old cells must not reappear
    assert arr.get(99, default=None) is None and arr.get(6, default=None) is None
    assert arr.to_numpy().compressed().tolist() == [0, 10, 20, 30, 40]
    assert arr.stats()["resizes"] == 5


def test_memory_is_bounded_by_two_buffers_per_size_class():
    """A resize moves the cells into another buffer of the target's size class (a retired
    one if the pool has it, recycled), so at most two buffers per class ever exist: the
    memory stops growing after the first round of resizes, however many follow."""
    from seqmap_nb import _array_kernels as A

    arr = SeqArray(np.uint64, capacity=3)
    sizes = [3, 40, 1000, 17, 600, 5, 1000, 2, 999, 33]
    for n in sizes:
        arr.resize(n)
    first = arr.memory_bytes()
    for _ in range(5):
        for n in sizes:
            arr.resize(n)
    assert arr.memory_bytes() == first  # recycled, never grows with the number of resizes
    classes = {4, 64, 1024, 32, 8}  # the power-of-two classes used
    one_each = arr._hdr.nbytes + sum(A.buffer_words(c, 2) * 8 for c in classes)
    assert one_each < first <= arr._hdr.nbytes + 2 * (one_each - arr._hdr.nbytes)


def test_buffers_are_freed_when_the_array_dies():
    arr = SeqArray(np.uint64, capacity=100)
    arr.resize(1000)
    fin = arr._finalizer
    assert fin.alive
    del arr
    gc.collect()
    assert not fin.alive


def test_stats_count_and_reset():
    arr = SeqArray(np.uint8, capacity=4)
    arr.resize(40)
    assert arr.stats() == {"read_retries": 0, "write_waits": 0, "resizes": 1}
    arr.reset_stats()
    assert arr.stats()["resizes"] == 0


# ------------------------------------------------------------------ bad input


def _state(arr):
    snap = arr.to_numpy()
    return arr.capacity, len(arr), np.ma.getmaskarray(snap).tobytes(), snap.data.tobytes()


@pytest.mark.parametrize(
    "dtype, capacity, exc",
    [
        (object, 4, TypeError),
        ("U", 4, TypeError),
        ("not a dtype", 4, TypeError),
        (np.uint8, 0, ValueError),
        (np.uint8, -3, ValueError),
        (np.uint8, 2**41, ValueError),
        (np.uint8, 1.5, TypeError),
        (np.uint8, "3", TypeError),
        (np.uint8, True, TypeError),
        (np.uint8, None, TypeError),
        (np.uint64, 2**39, MemoryError),  # 8 TB: more than this machine has
    ],
)
def test_bad_construction(dtype, capacity, exc):
    with pytest.raises(exc) as info:
        SeqArray(dtype, capacity)
    assert str(info.value)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda a: a.get(-1), IndexError, "-1 out of range"),
        (lambda a: a.get(4), IndexError, "out of range"),
        (lambda a: a.get(2**70), IndexError, "out of range"),
        (lambda a: a.get(1.0), TypeError, "integer"),
        (lambda a: a.get("0"), TypeError, "integer"),
        (lambda a: a.get(None), TypeError, "integer"),
        (lambda a: a.get(True), TypeError, "integer"),
        (lambda a: a.get(2), UninitializedError, "never set"),
        (lambda a: a.set(-1, 1), IndexError, "out of range"),
        (lambda a: a.set(4, 1), IndexError, "out of range"),
        (lambda a: a.set(2**64, 1), IndexError, "out of range"),
        (lambda a: a.set(np.float64(1), 1), TypeError, "integer"),
        (lambda a: a.set(0, 256), OverflowError, "does not fit"),
        (lambda a: a.set(0, -1), OverflowError, "does not fit"),
        (lambda a: a.set(0, 2**70), OverflowError, "does not fit"),
        (lambda a: a.set(0, 1.5), TypeError, "integer"),
        (lambda a: a.set(0, "7"), TypeError, "integer"),
        (lambda a: a.set(0, None), TypeError, "integer"),
        (lambda a: a.set(0, [1]), TypeError, "integer"),
        (lambda a: a.set(0, 1 + 0j), TypeError, "integer"),
        (lambda a: a.resize(0), ValueError, "positive"),
        (lambda a: a.resize(-4), ValueError, "positive"),
        (lambda a: a.resize(2**41), ValueError, "absurd"),
        (lambda a: a.resize(2.5), TypeError, "integer"),
        (lambda a: a.resize(2**38), MemoryError, "bytes"),
    ],
)
def test_bad_input_raises_and_leaves_the_array_intact(call, exc, match):
    arr = SeqArray(np.uint8, capacity=4)
    arr.set(0, 200)
    arr.set(3, 1)
    before = _state(arr)
    with pytest.raises(exc, match=match):
        call(arr)
    assert _state(arr) == before
    arr.set(1, 5)  # still usable
    assert arr.get(1) == 5


@pytest.mark.parametrize(
    "dtype, value, exc",
    [
        (np.float32, 1e39, OverflowError),
        (np.float32, "1.0", TypeError),
        (np.float64, True, TypeError),
        (np.bool_, 2, TypeError),
        (np.int64, 2**63, OverflowError),
        (np.int64, np.uint64(2**63), OverflowError),
        (REC, (1.0, -1, b"a"), OverflowError),
        (REC, "nonsense", TypeError),
        (SUB, [1, 2], TypeError),
        (SUB, [1, 2, 70000], OverflowError),
        (SUB, [1.5, 2, 3], TypeError),
    ],
)
def test_bad_values_per_dtype(dtype, value, exc):
    arr = SeqArray(dtype, capacity=2)
    with pytest.raises(exc):
        arr.set(0, value)
    assert len(arr) == 0 and arr.get(0, default="unset") == "unset"


def test_scalar_get_set_call_the_kernels_entry_points_for_exact_types_only():
    """get/set of number cells call the compiled njit methods directly (no dispatcher) for
    an int index and the dtype's own scalar types; everything else takes the general path,
    which converts or refuses exactly as before, and compiles nothing."""
    from numba import types

    arr = SeqArray(np.uint16, capacity=4)
    arr.set(0, 7)
    arr.set(1, np.uint16(8))
    assert arr.get(0) == 7 and type(arr.get(0)) is np.uint16
    k = arr._scalar
    assert arr._get_ep[int] is k.get1.overloads[(types.intp, types.int64)].entry_point
    assert arr._set_ep[int, int] is k.set1.overloads[(types.intp, types.int64, types.int64)].entry_point
    assert arr._set_ep[int, np.uint16] is k.set1.overloads[(types.intp, types.int64, types.uint16)].entry_point
    before = (set(k.get1.overloads), set(k.set1.overloads))
    arr.set(np.int8(2), 9.0)  # an integral float is its integer, on the general path
    assert arr.get(np.uint8(2)) == 9 and arr._set_ep[np.int8, float] is None
    with pytest.raises(OverflowError, match="70000 does not fit in uint16"):
        arr.set(3, 70000)  # the kernel refuses, the general path says why
    with pytest.raises(TypeError, match="expected an integer"):
        arr.set(3, 1.5)
    with pytest.raises(IndexError, match="index 18446744073709551616 out of range"):
        arr.get(2**64)  # no int64: the general path
    with pytest.raises(IndexError, match="index -1 out of range .capacity 4"):
        arr.get(-1)
    with pytest.raises(TypeError, match="must be an integer"):
        arr.get(True)
    assert arr.get(3, None) is None and len(arr) == 3
    assert (set(k.get1.overloads), set(k.set1.overloads)) == before


# ------------------------------------------------------------------ from njit code


@numba.njit(nogil=True, cache=True)
def _fill_and_sum(arr, n):
    for i in range(n):
        arr.set(i, i * 3)
    s = 0
    for i in range(n):
        s += arr.get(i)
    return s, len(arr), arr.capacity


@numba.njit(nogil=True, cache=True)
def _njit_get(arr, i):
    return arr.get(i)


@numba.njit(nogil=True, cache=True)
def _njit_set(arr, i, v):
    arr.set(i, v)


def test_njit_get_set_len_capacity():
    arr = SeqArray(np.int64, capacity=10)
    assert _fill_and_sum(arr, 10) == (135, 10, 10)
    assert arr.get(9) == 27  # visible from Python


def test_njit_errors():
    arr = SeqArray(np.uint8, capacity=4)
    _njit_set(arr, 0, 7)
    assert _njit_get(arr, 0) == 7
    with pytest.raises(IndexError):
        _njit_get(arr, 4)
    with pytest.raises(IndexError):
        _njit_get(arr, -1)
    with pytest.raises(UninitializedError):
        _njit_get(arr, 1)
    with pytest.raises(IndexError):
        _njit_set(arr, 4, 1)
    with pytest.raises(OverflowError):
        _njit_set(arr, 1, 256)
    with pytest.raises(OverflowError):
        _njit_set(arr, 1, -1)
    assert arr.get(1, default=None) is None and arr.get(0) == 7
    with pytest.raises(TypingError, match="must be an integer for uint8, got float64"):
        _njit_set(arr, 1, 1.5)  # a float never goes into an integer cell, not even 1.0
    with pytest.raises(TypingError, match="index must be an integer"):
        _njit_get(arr, 1.0)


def test_njit_float32_and_bool_cells():
    f = SeqArray(np.float32, capacity=2)
    _njit_set(f, 1, -0.0)  # values keep their exact bits (only keys fold -0.0)
    assert np.signbit(f.get(1))
    _njit_set(f, 0, 2.5)
    assert f.get(0) == np.float32(2.5) and _njit_get(f, 0) == 2.5
    with pytest.raises(OverflowError):
        _njit_set(f, 1, 1e300)
    b = SeqArray(np.bool_, capacity=2)
    _njit_set(b, 1, True)
    assert _njit_get(b, 1) is True and b.get(1) == np.True_


def test_numba_type_unboxes_the_header_only():
    arr = SeqArray(np.uint16, capacity=3)
    ty = numba.typeof(arr)
    assert ty.name.startswith("SeqArray(uint16)(src=")  # the source digest: see _nbext
    assert numba.typeof(SeqArray(np.uint16, capacity=9)) == ty  # one compilation per dtype


def test_njit_threads_share_one_array():
    arr = SeqArray(np.int64, capacity=64)
    results = run_threads([lambda k=k: _fill_and_sum(arr, 64) for k in range(4)])
    assert arr.to_numpy().tolist() == [3 * i for i in range(64)]
    assert all(r[0] == sum(3 * i for i in range(64)) for r in results) and len(arr) == 64


# ------------------------------------------------------------------ model test


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(-2, 45), st.integers(-(2**31), 2**31 - 1)),
        st.tuples(st.just("get"), st.integers(-2, 45), st.none()),
        st.tuples(st.just("resize"), st.integers(1, 44), st.none()),
        st.tuples(st.just("snapshot"), st.none(), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cap=st.integers(1, 40), ops=_ops)
def test_model_against_naive_array(cap, ops):
    arr = SeqArray(np.int32, capacity=cap)
    ref = NaiveArray(np.int32, cap)
    for op, i, v in ops:
        if op == "set":
            if 0 <= i < ref.capacity:
                arr.set(i, v)
                ref.set(i, v)
            else:
                with pytest.raises(IndexError):
                    arr.set(i, v)
        elif op == "get":
            if 0 <= i < ref.capacity:
                assert arr.get(i, default=None) == ref.get(i)
            else:
                with pytest.raises(IndexError):
                    arr.get(i)
        elif op == "resize":
            arr.resize(i)
            ref.resize(i)
        else:
            snap = arr.to_numpy()
            assert snap.tolist() == [ref.get(j) for j in range(ref.capacity)]
        assert arr.capacity == ref.capacity
        assert len(arr) == len(ref)


def test_python_threads_with_a_concurrent_resize_lose_nothing():
    """Python-level get/set from several threads while another thread resizes."""
    arr = SeqArray(np.int64, capacity=32)
    for i in range(32):
        arr.set(i, 0)
    stop = threading.Event()
    rounds = 200

    def writer(k):
        def run():
            for r in range(1, rounds + 1):
                for i in range(k, 32, 4):
                    arr.set(i, r)
            return True

        return run

    def resizer():
        n = 0
        while not stop.is_set() and n < 400:
            arr.resize([32, 300, 40, 1000, 33][n % 5])
            n += 1
        return n

    t = threading.Thread(target=resizer, daemon=True)
    t.start()
    run_threads([writer(k) for k in range(4)])
    stop.set()
    t.join(60)
    assert not t.is_alive()
    assert [arr.get(i) for i in range(32)] == [rounds] * 32
    assert len(arr) == 32
