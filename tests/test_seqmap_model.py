"""Model-based tests: SeqMap (and PlainMap) against tests/naive.py's dict-backed NaiveMap.

A hypothesis state machine drives every operation (scalar and batch, clear, views) from
capacity 1 through many growths, for integer, float and record keys, and compares every
result and the whole content with the oracle. Example counts are modest; each dtype
combination compiles once (cached).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from seqmap_nb.seqmap import PlainMap, SeqMap

from naive import NaiveMap

pytestmark = pytest.mark.timeout(900)

REC = np.dtype([("x", "f8"), ("n", "u4")])
SUB3 = np.dtype(("u8", 3))

SETTINGS = settings(max_examples=15, stateful_step_count=40, deadline=None,
                    suppress_health_check=list(HealthCheck))


def _same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


def make_machine(cls, kdt, vdt, keys, values, deltas):
    kdt, vdt = np.dtype(kdt), np.dtype(vdt)

    def kconv(k):
        return np.array(k, dtype=kdt)[()] if kdt.fields else k

    def vconv(v):
        a = np.empty((), dtype=vdt)
        a[()] = v
        return a[()].copy() if vdt.subdtype else a[()]

    class Machine(RuleBasedStateMachine):
        @initialize(cap=st.sampled_from([1, 2, 16]))
        def setup(self, cap):
            self.m = cls(kdt, vdt, capacity=cap)
            self.o = NaiveMap(kdt, vdt)

        @rule(k=keys, v=values)
        def insert(self, k, v):
            assert _same(self.m.insert(kconv(k), v), self.o.insert(kconv(k), vconv(v)))

        @rule(k=keys)
        def get(self, k):
            assert _same(self.m.get(kconv(k)), self.o.get(kconv(k)))
            assert (kconv(k) in self.m) == (kconv(k) in self.o)

        @rule(k=keys)
        def remove(self, k):
            assert _same(self.m.remove(kconv(k)), self.o.remove(kconv(k)))

        if deltas is not None:

            @rule(k=keys, d=deltas)
            def add(self, k, d):
                try:
                    expect = self.o.get(kconv(k))
                    with np.errstate(all="ignore"):
                        expect = vconv(d) if expect is None else expect + vconv(d)
                    overflow = vdt.kind in "iu" and int(expect) != (
                        int(d) + (0 if self.o.get(kconv(k)) is None else int(self.o.get(kconv(k)))))
                except OverflowError:
                    overflow = True
                if overflow:
                    before = self.m.get(kconv(k))
                    with pytest.raises(OverflowError):
                        self.m.add(kconv(k), d)
                    assert _same(self.m.get(kconv(k)), before)
                else:
                    assert _same(self.m.add(kconv(k), d), self.o.add(kconv(k), vconv(d)))

        @rule(ks=st.lists(keys, max_size=120), data=st.data())
        def insert_many(self, ks, data):
            vs = data.draw(st.lists(values, min_size=len(ks), max_size=len(ks)))
            karr = np.array([kconv(k) for k in ks], dtype=kdt)
            if vdt.subdtype:  # numpy has no arrays of sub-array items: shape (n, *item)
                varr = np.array(vs, dtype=vdt.base).reshape((len(vs),) + vdt.shape)
            else:
                varr = np.array([vconv(v) for v in vs], dtype=vdt)
            found = self.m.insert_many(karr, varr)
            for k, v, f in zip(ks, vs, found):
                assert f == (kconv(k) in self.o)
                self.o.insert(kconv(k), vconv(v))

        @rule(ks=st.lists(keys, max_size=40))
        def get_many(self, ks):
            karr = np.array([kconv(k) for k in ks], dtype=kdt)
            vals, found = self.m.get_many(karr)
            for i, k in enumerate(ks):
                e = self.o.get(kconv(k))
                assert found[i] == (e is not None)
                if e is not None:
                    assert _same(vals[i], e)

        @rule(ks=st.lists(keys, max_size=60))
        def remove_many(self, ks):
            karr = np.array([kconv(k) for k in ks], dtype=kdt)
            found = self.m.remove_many(karr)
            for k, f in zip(ks, found):
                assert f == (self.o.remove(kconv(k)) is not None)

        @rule()
        def clear(self):
            self.m.clear()
            self.o = NaiveMap(kdt, vdt)

        @invariant()
        def same_content(self):
            if not hasattr(self, "m"):
                return
            assert len(self.m) == len(self.o)
            ks, vs = self.m.items()
            assert len(ks) == len(self.o)
            got = {np.asarray(k).tobytes(): np.asarray(v).tobytes() for k, v in zip(ks, vs)}
            assert len(got) == len(ks), "a key is present twice"
            for k, v in self.o.items():
                kb = np.asarray(np.array(k, dtype=kdt) if not kdt.fields else k).tobytes()
                if kdt.kind == "f":
                    kb = np.asarray(np.array(k, dtype=kdt) + kdt.type(0)).tobytes()  # -0.0 stored as +0.0
                assert got.get(kb) == np.asarray(v).tobytes()
            # exact growth trigger below K.EXACT_BELOW (these tables stay far below it)
            assert self.m.load_factor <= self.m.max_load + 1e-9 or self.m.capacity <= 2

    Machine.TestCase.settings = SETTINGS
    return Machine


small_ints = st.integers(-40, 40) | st.sampled_from([-(2**63), 2**63 - 1, 0, -1])
i64_vals = st.integers(-(2**62), 2**62) | st.sampled_from([2**63 - 1, -(2**63)])
floats = st.floats(allow_nan=False, width=64, min_value=-50, max_value=50).map(lambda x: float(round(x, 1))) | st.sampled_from([0.0, -0.0, np.inf, -np.inf])
f32_vals = st.floats(allow_nan=False, width=32, min_value=-1e6, max_value=1e6)
rec_keys = st.tuples(st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.5]), st.integers(0, 8))
sub_vals = st.lists(st.integers(0, 2**64 - 1), min_size=3, max_size=3)

TestIntKeys = make_machine(SeqMap, np.int64, np.int64, small_ints, i64_vals, i64_vals).TestCase
TestIntKeysPlain = make_machine(PlainMap, np.int64, np.int64, small_ints, i64_vals, i64_vals).TestCase
TestFloatKeys = make_machine(SeqMap, np.float64, np.float32, floats, f32_vals, st.floats(-100, 100, width=32)).TestCase
TestRecordKeys = make_machine(SeqMap, REC, SUB3, rec_keys, sub_vals, None).TestCase
