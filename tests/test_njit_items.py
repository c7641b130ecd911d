"""Every accepted dtype inside user njit code: SeqMap keys and values, SeqArray cells.

One njit kernel per structure runs every operation of the njit surface (methods and dict
syntax) over items that Python put into numpy arrays of the dtype; Python then checks
what the kernel returned and what the structure holds, byte for byte, against the items.
Dtypes numba has no type for (float16, longdouble, raw void) cannot be put in an array
that njit code takes: their items reach njit code as ItemCopy values read from another map.
"""
import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

from seqmap_nb import PlainMap, SeqArray, SeqMap, UninitializedError

pytestmark = pytest.mark.timeout(600)

REC4 = np.dtype([("price", "<f8"), ("qty", "<i8"), ("ts", "<M8[ns]"), ("tag", "S8")])
NESTED = np.dtype([("x", "<f4"), ("v", "<u2", (3,)), ("inner", [("a", "u1"), ("b", "<c8")]), ("s", "<U2")])
SUB = np.dtype(("<u2", (3,)))
SUB2D = np.dtype(("<f4", (2, 2)))

#: every kind the codec accepts; the word counts 1, 2 and 4 cover three layouts
TYPED = [np.bool_, np.int8, np.uint16, np.int32, np.uint64, np.float32, np.float64, np.complex64,
         np.complex128, "M8[ns]", "m8[s]", "S5", "U3", REC4, NESTED, SUB, SUB2D]
OPAQUE = [np.float16, np.longdouble, "V8"]


def _samples(dt, n=4):
    """`n` distinct items of `dt` as a numpy array (distinct as keys too: no -0.0 / 0.0 pair)."""
    dt = np.dtype(dt)
    if dt.subdtype is not None:
        base = _samples(dt.base, n * int(np.prod(dt.shape)) + 1)[1:]
        return base[: n * int(np.prod(dt.shape))].reshape((n,) + dt.shape)
    if dt.fields is not None:
        out = np.zeros(n, dt)
        for name in dt.names:
            sub = dt.fields[name][0]
            if sub.subdtype is not None:
                out[name] = _samples(sub, n)
            else:
                out[name] = _samples(sub, n)
        return out
    k = dt.kind
    if k == "b":
        return np.array([True, False] * n, dt)[:n]
    if k in "iu":
        info = np.iinfo(dt)
        vals = [info.max, 1, info.min, 42] + [5 + i for i in range(n)]
        return np.array(vals[:n], dt)
    if k == "f":
        return np.array(([1.5, -2.25, np.inf, 1e-3] + [7.5 + i for i in range(n)])[:n], dt)
    if k == "c":
        return np.array(([1 + 2j, complex(0.0, -0.5), complex(np.inf, 1), 3.0] + [4 + 1j * i for i in range(n)])[:n], dt)
    if k == "M":
        return np.array([5, -3, 2**40, 0, 17, 19, 23, 29][:n], "i8").astype(dt)
    if k == "m":
        return np.array([5, -3, 2**40, 0, 17, 19, 23, 29][:n], "i8").astype(dt)
    if k == "S":
        return np.array([b"", b"ab", b"hello"[: dt.itemsize], b"\x00x", b"q", b"zz", b"y", b"w"][:n], dt)
    if k == "U":
        return np.array(["", "ab", "xyz"[: dt.itemsize // 4], "\u00e9", "q", "zz", "y", "w"][:n], dt)
    if k == "V":
        return np.frombuffer(bytes(range(1, 1 + n * dt.itemsize)), dt).copy()
    raise AssertionError(dt)


def _raw(v, dt):
    """The item's bytes in `dt` (how njit results and Python results are compared)."""
    return np.asarray(v, dtype=dt).tobytes()


# ------------------------------------------------------------------ SeqMap: every dtype


@numba.njit(nogil=True, cache=True)
def _map_surface(m, ks, vs):
    """Every map operation over the pairs ks[i] -> vs[i]; returns what Python checks."""
    n = len(ks)
    fresh = 0
    for i in range(n):
        if m.insert(ks[i], vs[n - 1 - i]) is None:
            fresh += 1
    for i in range(n):
        m[ks[i]] = vs[i]  # overwrite through dict syntax
    hits = 0
    for i in range(n):
        if ks[i] in m and m.contains(ks[i]) and m.get(ks[i]) is not None:
            hits += 1
    first = m[ks[0]]
    second = m.get(ks[1])
    dflt = m.get(ks[1], vs[0])
    removed = m.remove(ks[2])
    again = m.remove(ks[2])
    del m[ks[3]]
    missing = 0
    try:
        m[ks[3]]
    except Exception:  # numba catches Exception only: the type is checked from Python below
        missing += 1
    try:
        del m[ks[3]]
    except Exception:
        missing += 1
    return fresh, hits, first, second, dflt, removed, again is None, missing, len(m)


@numba.njit(cache=True)
def _getitem(m, ks, i):
    return m[ks[i]]  # the key from an array: numba cannot unbox every numpy scalar (np.bytes_)


@numba.njit(cache=True)
def _delitem(m, ks, i):
    del m[ks[i]]


def _check_map(m, kdt, vdt, ks, vs):
    fresh, hits, first, second, dflt, removed, again_none, missing, n = _map_surface(m, ks, vs)
    assert (fresh, hits, again_none, missing, n) == (4, 4, True, 2, 2)
    for got, want in ((first, vs[0]), (second, vs[1]), (dflt, vs[1]), (removed, vs[2])):
        assert _raw(got, vdt) == _raw(want, vdt)
    # what Python reads back: two keys left, with their values, the others gone
    for i, present in ((0, True), (1, True), (2, False), (3, False)):
        got = m.get(ks[i])
        assert (got is not None) == present
        if present:
            assert _raw(got, vdt) == _raw(vs[i], vdt)
    keys, values = m.items()
    assert sorted(_raw(k, kdt) for k in keys) == sorted(_raw(k, kdt) for k in ks[:2])
    with pytest.raises(KeyError):
        _getitem(m, ks, 3)
    with pytest.raises(KeyError):
        _delitem(m, ks, 2)
    _delitem(m, ks, 1)
    assert len(m) == 1 and _raw(_getitem(m, ks, 0), vdt) == _raw(vs[0], vdt)


@pytest.mark.parametrize("vdt", TYPED, ids=str)
def test_every_value_dtype_in_njit(vdt):
    vs = _samples(vdt)
    ks = np.array([3, 1, 4, 15], np.uint64)
    _check_map(SeqMap(np.uint64, vdt), np.uint64, vdt, ks, vs)


@pytest.mark.parametrize("kdt", TYPED[1:], ids=str)  # bool has two keys only: below
def test_every_key_dtype_in_njit(kdt):
    ks = _samples(kdt)
    vs = np.array([10, 20, 30, 40], np.uint8)
    _check_map(SeqMap(kdt, np.uint8), kdt, np.uint8, ks, vs)


@numba.njit(cache=True)
def _bool_keys(m):
    m[True] = 1
    m[False] = 2
    del m[True]
    return m[False], True in m, len(m)


def test_bool_keys_in_njit():
    assert _bool_keys(SeqMap(np.bool_, np.uint8)) == (2, False, 1)


@numba.njit(cache=True)
def _opaque_copy(src, dst, idx, n):
    """dst[idx[i]] = src[i] for the opaque items src holds (keys of dst read from idx)."""
    same = 0
    for i in range(n):
        v = src[i]  # an ItemCopy: numba has no type for these dtypes
        dst[idx[i]] = v
        if dst[idx[i]] == v:
            same += 1
    return dst.get(idx[0]), len(dst), same


@pytest.mark.parametrize("dt", OPAQUE, ids=str)
def test_dtypes_numba_cannot_type_pass_as_item_copies(dt):
    items = _samples(dt)
    src = SeqMap(np.uint64, dt)
    idx = SeqMap(np.uint64, dt)  # the keys of dst, as items too
    dst = SeqMap(dt, dt)
    for i, v in enumerate(items):
        src.insert(i, v)
        idx.insert(i, items[(i + 1) % 4])
    first, n, same = _opaque_copy(src, dst, idx, 4)
    assert n == 4 and same == 4 and _raw(first, dt) == _raw(items[0], dt) and type(first) is np.dtype(dt).type
    for i, v in enumerate(items):
        assert _raw(dst[items[(i + 1) % 4]], dt) == _raw(v, dt)


@numba.njit(cache=True)
def _opaque_bad(m):
    m[1] = 1.0


def test_opaque_items_accept_only_item_copies():
    with pytest.raises(TypingError, match="numba has no type for items of dtype float16"):
        _opaque_bad(SeqMap(np.uint64, np.float16))


# ------------------------------------------------------------------ records in njit code


@numba.njit(cache=True)
def _record_use(m, recs, out):
    m.insert(1, recs[0])  # a record: an element of a structured array
    m[2] = (2.5, 3, recs[0].ts, recs[0].tag)  # a tuple of the fields
    v = m[1]  # an ItemCopy
    m[3] = v  # an ItemCopy goes back in
    w = m.get(2)
    total = 0.0
    if w is not None:
        total = w.price * w.qty + v["price"] + v[1]
    out[0] = v  # stored into a structured array
    out[1] = m[2]
    return total, v == m[3], v != m[2], w.tag, v


def test_records_fields_tuples_and_copies():
    m = SeqMap(np.uint64, REC4)
    recs = _samples(REC4)
    out = np.zeros(2, REC4)
    total, same, differ, tag, v = _record_use(m, recs, out)
    assert total == 2.5 * 3 + recs[0]["price"] + recs[0]["qty"] and same and differ
    assert tag == recs[0]["tag"] and type(v) is np.void and v.dtype == REC4
    assert _raw(v, REC4) == _raw(recs[0], REC4) == _raw(out[0], REC4) == _raw(m[3], REC4)
    assert out[1]["qty"] == 3 and m[2]["price"] == 2.5


@numba.njit(cache=True)
def _nested_fields(m, k):
    v = m[k]
    return v.x, v.v, v.inner, v.inner.b, v.s


def test_nested_record_fields_and_subarray_fields():
    m = SeqMap(np.uint8, NESTED)
    item = _samples(NESTED)[2]
    m[7] = item
    x, sub, inner, b, s = _nested_fields(m, 7)
    assert x == item["x"] and s == item["s"] and b == item["inner"]["b"]
    assert sub.dtype == np.uint16 and sub.tolist() == item["v"].tolist()
    sub[0] = 999  # a new array: the map is not changed through it
    assert m[7]["v"].tolist() == item["v"].tolist()
    assert _raw(inner, NESTED.fields["inner"][0]) == _raw(item["inner"], NESTED.fields["inner"][0])


@numba.njit(cache=True)
def _tuple_record(m, p, q):
    m[1] = (p, q, m[0].ts, m[0].tag)


def test_record_tuple_checks_each_field():
    m = SeqMap(np.uint8, REC4)
    m[0] = _samples(REC4)[0]
    with pytest.raises(OverflowError, match="value does not fit in int64"):
        _tuple_record(m, 1.0, 2**63)
    assert 1 not in m
    with pytest.raises(TypingError, match="a tuple of 2 items for a record of 4 fields"):
        numba.njit(lambda m: m.insert(1, (1.0, 2)))(m)
    with pytest.raises(TypingError, match=r"a record of dtype .* is not one of dtype"):
        numba.njit(lambda m, a: m.insert(1, a[0]))(m, np.zeros(1, NESTED))


@numba.njit(cache=True)
def _subarray_put(m, k, x):
    m[k] = x
    return m[k]


def test_subarray_values_check_shape_and_range():
    m = SeqMap(np.uint8, SUB)
    got = _subarray_put(m, 1, np.array([1, 2, 3], np.int64))
    assert got.dtype == np.uint16 and got.tolist() == [1, 2, 3] and m[1].tolist() == [1, 2, 3]
    with pytest.raises(TypeError, match=r"expected an item of shape \(3,\)"):
        _subarray_put(m, 2, np.array([1, 2], np.int64))
    with pytest.raises(OverflowError):
        _subarray_put(m, 2, np.array([1, 2, 70000], np.int64))
    assert 2 not in m and len(m) == 1
    assert numba.njit(lambda m: m.get(1))(m).tolist() == [1, 2, 3]


@numba.njit(cache=True)
def _complex_keys(m):
    m[complex(0.0, -0.0)] = 1.5  # -0.0 parts fold into +0.0: one key
    m.add(0j, 2.0)
    m.add(1 + 1j, 1j)
    return m[0j], m[1 + 1j], len(m)


def test_complex_keys_fold_zeros_and_complex_values_add():
    m = SeqMap(np.complex64, np.complex128)
    assert _complex_keys(m) == (3.5, 1j, 2)
    assert m.get(-0.0 + 0j) == 3.5 and m.add(1 + 1j, 2) == 2 + 1j  # Python agrees
    with pytest.raises(ValueError, match="NaN cannot be a key"):
        numba.njit(lambda m: m.insert(complex(1.0, np.nan), 1.0))(m)


def test_add_needs_numbers():
    for vdt in (np.bool_, REC4, "S3", "M8[ns]"):
        with pytest.raises(TypingError, match="add needs integer, float or complex values"):
            numba.njit(lambda m: m.add(1, 1))(SeqMap(np.uint8, vdt))


# ------------------------------------------------------------------ SeqArray: every dtype


@numba.njit(nogil=True, cache=True)
def _array_surface(arr, vs):
    n = len(vs)
    for i in range(n):
        arr.set(i, vs[n - 1 - i])
    for i in range(n):
        arr[i] = vs[i]
    first = arr.get(0)
    last = arr[n - 1]
    dflt = arr.get(n, vs[1])  # cell n exists but was never set
    missing = 0
    try:
        arr.get(n)
    except Exception:  # numba catches Exception only: the types are checked below
        missing += 1
    try:
        arr[n + 1] = vs[0]
    except Exception:
        missing += 1
    return first, last, dflt, missing, len(arr), arr.capacity


@numba.njit(cache=True)
def _cell(arr, i):
    return arr[i]


@numba.njit(cache=True)
def _set_cell(arr, i, vs):
    arr.set(i, vs[0])


@pytest.mark.parametrize("dt", TYPED, ids=str)
def test_every_cell_dtype_in_njit(dt):
    vs = _samples(dt)
    arr = SeqArray(dt, capacity=5)
    first, last, dflt, missing, n, cap = _array_surface(arr, vs)
    assert (missing, n, cap) == (2, 4, 5)
    for got, want in ((first, vs[0]), (last, vs[3]), (dflt, vs[1])):
        assert _raw(got, dt) == _raw(want, dt)
    for i in range(4):
        assert _raw(arr.get(i), dt) == _raw(vs[i], dt)
    assert arr.get(4, None) is None
    with pytest.raises(UninitializedError):
        _cell(arr, 4)
    with pytest.raises(IndexError):
        _cell(arr, 5)
    with pytest.raises(IndexError):
        _set_cell(arr, 5, vs)


@pytest.mark.parametrize("dt", OPAQUE, ids=str)
def test_array_cells_numba_cannot_type(dt):
    items = _samples(dt)
    arr = SeqArray(dt, capacity=4)
    arr.set(0, items[1])
    copy = numba.njit(lambda a: a.set(1, a[0]) or a.get(1))
    assert _raw(copy(arr), dt) == _raw(items[1], dt) == _raw(arr.get(1), dt)


# ------------------------------------------------------------------ PlainMap: the same surface


def test_plain_map_has_the_same_surface():
    vs = _samples(REC4)
    ks = np.array([3, 1, 4, 15], np.uint64)
    _check_map(PlainMap(np.uint64, REC4), np.uint64, REC4, ks, vs)


# ------------------------------------------------------------------ the README's example


def test_the_readme_njit_example_runs():
    """The code block of the README's "Inside your own njit code" runs as printed."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Inside your own njit code", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ns = {}
    exec(compile(code, "README.md", "exec"), ns)
    tick = ns["tick"]
    ticks = np.zeros(3, tick)
    ticks["price"], ticks["qty"] = [1.0, 2.0, 3.0], [10, 20, 30]
    ns["update"](ns["book"], np.array([1, 2, 3], np.uint64), ticks)
    out = np.zeros(4, tick)
    total = ns["notional"](ns["book"], np.array([1, 2, 7, 9], np.uint64), out)
    assert total == 1.0 * 10 + 2.0 * 20 + 101.5 * 300
    assert out[2].tolist() == (101.5, 300, 1_700_000_000, 0) and out[3].tolist() == (0.0, 0, 0, 0)
