"""The numba-extension layer: how a structure reaches a user's njit function.

Calling a jitted function types every argument. numba's C dispatcher types ints, floats
and arrays itself; for other objects it reads a ``_numba_type_`` attribute when there is
one, and otherwise calls back into Python (``Dispatcher.typeof_pyval``), which cost a
SeqMap argument about 2 us per call. These tests pin the fast path down (no call back
into Python), with a negative control that the counting sees the slow path.
"""
import numba
import numpy as np
import pytest
from numba.extending import typeof_impl

from seqmap_nb import PlainMap, SeqArray, SeqMap


@numba.njit(nogil=True)
def _first(a, b, k):
    return k + len(a) + len(b)


class _Typed:
    """A stand-in whose numba type comes from a typeof hook only (no ``_numba_type_``)."""

    def __init__(self, m):
        self._hdr_addr = m._hdr_addr
        self._map = m


@typeof_impl.register(_Typed)
def _typeof_typed(val, c):
    return numba.typeof(val._map)


def _python_typeof_calls(monkeypatch, fn, *args):
    calls = []
    original = type(fn).typeof_pyval

    def counting(self, val):
        calls.append(type(val).__name__)
        return original(self, val)

    monkeypatch.setattr(type(fn), "typeof_pyval", counting)
    fn(*args)
    monkeypatch.undo()
    return calls


def test_structures_are_typed_without_calling_back_into_python(monkeypatch):
    m = SeqMap(np.uint64, np.uint64)
    p = PlainMap(np.int32, np.float32)
    arr = SeqArray(np.uint8, capacity=3)
    m.insert(1, 2)
    assert _first(m, arr, 5) == 6 and _first(p, m, 1) == 2  # compiled, and right
    assert _python_typeof_calls(monkeypatch, _first, m, arr, 5) == []
    assert _python_typeof_calls(monkeypatch, _first, p, m, 1) == []
    assert numba.typeof(m) is m._numba_type_ and numba.typeof(arr) is arr._numba_type_


def test_the_count_sees_the_python_typeof_path(monkeypatch):
    """Negative control: the same map type reached through a typeof hook alone makes the
    dispatcher call back into Python on every call."""
    m = SeqMap(np.uint64, np.uint64)
    m.insert(1, 2)
    t = _Typed(m)
    arr = SeqArray(np.uint8, capacity=3)
    assert _first(t, arr, 5) == 6
    assert _python_typeof_calls(monkeypatch, _first, t, arr, 5) == ["_Typed"]


@numba.njit
def _get_from_all(a, b, c, k):
    return a.get(k), b.get(k), c.get(k)


def test_several_structures_in_one_call_unbox_their_own_headers():
    """The unboxer's attribute name is made once per compiled module and shared by every
    argument it unboxes: each still reads its own object's header."""
    maps = [SeqMap(np.uint64, np.uint64) for _ in range(3)]
    for i, m in enumerate(maps):
        m.insert(7, 100 + i)
    assert _get_from_all(*maps, 7) == (100, 101, 102)
    assert _get_from_all(maps[2], maps[0], maps[1], 7) == (102, 100, 101)


def test_an_object_without_a_header_is_refused():
    m = SeqMap(np.uint64, np.uint64)
    t = _Typed(m)
    del t._hdr_addr
    with pytest.raises(AttributeError, match="_hdr_addr"):
        _first(t, m, 1)


# ------------------------------------------------------------------ compile notices


def _slow(seconds):
    import time

    time.sleep(seconds)
    return seconds


def test_a_call_that_compiles_for_long_says_so(monkeypatch, capfd):
    from seqmap_nb import _nbext

    monkeypatch.setattr(_nbext, "COMPILE_NOTICE_S", 0.05)
    slow = _nbext.Announced(_slow, "the test kernel")
    assert slow(0.5) == 0.5
    err = capfd.readouterr().err
    assert "seqmap_nb: compiling the test kernel: once per machine" in err
    assert "seqmap_nb: ... the test kernel ready in 0.5 s" in err
    assert slow(0.5) == 0.5  # only its first call can compile
    assert capfd.readouterr().err == ""


def test_a_quick_call_is_silent(monkeypatch, capfd):
    from seqmap_nb import _nbext

    monkeypatch.setattr(_nbext, "COMPILE_NOTICE_S", 0.5)
    assert _nbext.Announced(_slow, "the test kernel")(0.0) == 0.0
    monkeypatch.setattr(_nbext, "COMPILE_NOTICE_S", 0)  # 0: never, however long
    assert _nbext.Announced(_slow, "the test kernel")(0.2) == 0.2
    import time

    time.sleep(0.6)  # a cancelled notice stays cancelled
    assert capfd.readouterr().err == ""


def test_entry_points_announce_their_compile(monkeypatch, capfd):
    """The scalar methods' first call of a type compiles (or loads) its kernel under the
    notice: a kernel that takes long to come is named."""
    from seqmap_nb import _nbext

    monkeypatch.setattr(_nbext, "COMPILE_NOTICE_S", 0.05)

    class SlowKernel:
        __name__ = "slow"

        def compile(self, sig):
            _slow(0.3)
            return "entry point"

    eps = _nbext.EntryPoints(SlowKernel(), frozenset({int}), what="SeqMap(int8 -> int8).get")
    assert eps[int] == "entry point" and eps[float] is None
    err = capfd.readouterr().err
    assert "compiling SeqMap(int8 -> int8).get" in err and err.count("\n") == 2
