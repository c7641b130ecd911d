"""Baselines, single-threaded: the dict-oracle model test for every registered map, the
njit interface, batch calls, records and floats, bad input, growth and the registry."""
import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from seqmap_nb.baselines import NEEDS, REGISTRY, get_spec, make_map, names

from naive import NaiveMap

pytestmark = pytest.mark.timeout(600)

ALL = names()
NJIT = [n for n in ALL if REGISTRY[n].njit]


def spec_or_skip(name):
    spec = get_spec(name)
    if not spec.available():
        pytest.skip(f"{spec.factory} is not importable yet")
    return spec


def new_map(name, kd=np.int64, vd=np.int64, capacity=None, **opts):
    spec = spec_or_skip(name)
    if capacity is None:
        capacity = 256 if not spec.grows else 1  # fixed-size maps: room for the key space
    return make_map(name, kd, vd, capacity=capacity, **opts)


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------ model test

KEYS = st.one_of(st.integers(-20, 40), st.sampled_from([0, -1, 2**62, -(2**63), 2**63 - 1]))
VALS = st.integers(-1000, 1000)
DELTAS = st.integers(-50, 50)


def machine_for(name, **opts):
    spec = get_spec(name)

    class Model(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.m = new_map(name, **opts)
            self.o = NaiveMap(np.int64, np.int64)

        @rule(k=KEYS, v=VALS)
        def insert(self, k, v):
            assert same(self.m.insert(k, v), self.o.insert(k, v))

        @rule(k=KEYS)
        def get(self, k):
            assert same(self.m.get(k), self.o.get(k))
            assert (k in self.m) == (k in self.o)

        @rule(k=KEYS)
        def getitem(self, k):
            if k in self.o:
                assert self.m[k] == self.o.get(k)
            else:
                with pytest.raises(KeyError):
                    self.m[k]

        @rule(k=KEYS, d=DELTAS)
        def add(self, k, d):
            assert self.m.add(k, d) == self.o.add(k, d)

        @rule(k=KEYS)
        def remove(self, k):
            if spec.supports_remove:
                assert same(self.m.remove(k), self.o.remove(k))
            else:
                with pytest.raises(NotImplementedError):
                    self.m.remove(k)

        @rule(k=KEYS)
        def delitem(self, k):
            if not spec.supports_remove:
                return
            if k in self.o:
                del self.m[k]
                self.o.remove(k)
            else:
                with pytest.raises(KeyError):
                    del self.m[k]

        @rule(ks=st.lists(KEYS, max_size=12), data=st.data())
        def batch(self, ks, data):
            vs = data.draw(st.lists(VALS, min_size=len(ks), max_size=len(ks)))
            self.m.insert_many(np.array(ks, np.int64), np.array(vs, np.int64))
            for k, v in zip(ks, vs):
                self.o.insert(k, v)
            probe = data.draw(st.lists(KEYS, max_size=12))
            got, found = self.m.get_many(np.array(probe, np.int64))
            for k, g, f in zip(probe, got, found):
                assert f == (k in self.o)
                if f:
                    assert g == self.o.get(k)
            ds = data.draw(st.lists(DELTAS, min_size=len(probe), max_size=len(probe)))
            new = self.m.add_many(np.array(probe, np.int64), np.array(ds, np.int64))
            for k, d, n in zip(probe, ds, new):
                assert n == self.o.add(k, d)
            if spec.supports_remove:
                rm = data.draw(st.lists(KEYS, max_size=12))
                found = self.m.remove_many(np.array(rm, np.int64))
                for k, f in zip(rm, found):
                    assert f == (self.o.remove(k) is not None)

        @invariant()
        def same_contents(self):
            assert len(self.m) == len(self.o)
            ks, vs = self.m.items()
            assert len(ks) == len(set(ks.tolist())) == len(self.o)
            for k, v in zip(ks.tolist(), vs.tolist()):
                assert self.o.get(k) == v

    return Model


@pytest.mark.parametrize("name", ALL)
def test_model_vs_dict_oracle(name):
    spec_or_skip(name)
    run_state_machine_as_test(
        machine_for(name),
        settings=settings(max_examples=25, stateful_step_count=40, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )


def test_model_dashmap_two_shards():
    """Few shards and capacity 1: many per-shard growths and tombstone rebuilds."""
    run_state_machine_as_test(
        machine_for("dashmap", shards=2),
        settings=settings(max_examples=20, stateful_step_count=60, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )


# ------------------------------------------------------------------ njit interface


@numba.njit(nogil=True)
def drive(m, keys, vals, removes):
    """Every njit method once per key; returns a checksum tuple."""
    acc = 0
    hits = 0
    for i in range(keys.shape[0]):
        p = m.insert(keys[i], vals[i])
        if p is not None:
            acc += p
    for i in range(keys.shape[0]):
        v = m.get(keys[i])
        if v is not None:
            acc += v
            hits += 1
        if m.contains(keys[i]) and keys[i] in m:
            hits += 1
        acc += m.add(keys[i], 3)
    if removes:
        for i in range(0, keys.shape[0], 2):
            r = m.remove(keys[i])
            if r is not None:
                acc += r
    return acc, hits, len(m)


def drive_oracle(keys, vals, removes):
    o = NaiveMap(np.int64, np.int64)
    acc = hits = 0
    for k, v in zip(keys.tolist(), vals.tolist()):
        p = o.insert(k, v)
        acc += 0 if p is None else p
    for k in keys.tolist():
        v = o.get(k)
        if v is not None:
            acc += v
            hits += 1
        hits += k in o
        acc += o.add(k, 3)
    if removes:
        for k in keys.tolist()[::2]:
            r = o.remove(k)
            acc += 0 if r is None else r
    return acc, hits, len(o)


@pytest.mark.parametrize("name", NJIT)
def test_njit_interface(name):
    spec = spec_or_skip(name)
    rng = np.random.default_rng(1)
    keys = rng.integers(-(2**40), 2**40, 300).astype(np.int64)
    keys[:10] = keys[10:20]  # duplicates: insert returns a previous value
    keys[20] = 0
    vals = rng.integers(-1000, 1000, 300).astype(np.int64)
    m = new_map(name, capacity=1024)
    assert drive(m, keys, vals, spec.supports_remove) == drive_oracle(keys, vals, spec.supports_remove)


@numba.njit
def njit_remove(m, k):
    return m.remove(k)


@numba.njit
def njit_insert(m, k, v):
    return m.insert(k, v)


def test_njit_errors():
    m = new_map("dashmap", np.uint8, np.int16)
    with pytest.raises(OverflowError):
        njit_insert(m, 300, 1)
    with pytest.raises(OverflowError):
        njit_insert(m, -1, 1)
    assert len(m) == 0
    c = new_map("cas")
    with pytest.raises(NotImplementedError):
        njit_remove(c, 1)
    r = new_map("dashmap", np.dtype([("a", "u8"), ("b", "u8")]), np.int64)
    with pytest.raises(numba.core.errors.TypingError, match="record"):
        njit_remove(r, 1)


# ------------------------------------------------------------------ dtypes


@pytest.mark.parametrize("name", ["dashmap", "dict_lock"])
def test_record_keys_and_subarray_values(name):
    kd = np.dtype([("x", "<f8"), ("n", "<u4")])
    vd = np.dtype(("<u8", 3))
    m = new_map(name, kd, vd, capacity=4)
    rng = np.random.default_rng(2)
    keys = np.zeros(500, kd)
    keys["x"] = rng.integers(0, 50, 500) * 0.5
    keys["n"] = rng.integers(0, 8, 500)
    vals = rng.integers(0, 2**63, (500, 3)).astype(np.uint64)
    oracle = {}
    for k, v in zip(keys, vals):
        oracle[k.tobytes()] = v
    m.insert_many(keys, vals)
    assert len(m) == len(oracle)
    got, found = m.get_many(keys)
    assert found.all()
    for k, g in zip(keys, got):
        assert np.array_equal(g, oracle[k.tobytes()])
    k0 = keys[0]
    assert np.array_equal(m.get(k0), oracle[k0.tobytes()])
    assert np.array_equal(m.remove(k0), oracle.pop(k0.tobytes()))
    assert m.get(k0) is None and len(m) == len(oracle)
    ks, vs = m.items()
    assert sorted(k.tobytes() for k in ks) == sorted(oracle)


@pytest.mark.parametrize("name", ["dashmap", "typed_dict", "dict_lock"])
def test_float_keys(name):
    m = new_map(name, np.float64, np.float32, capacity=4)
    assert m.insert(-0.0, 1.5) is None
    assert m.insert(0.0, 2.5) == np.float32(1.5)  # -0.0 and 0.0 are one key
    assert len(m) == 1 and m.get(-0.0) == np.float32(2.5)
    assert m.add(0.0, 0.25) == np.float32(2.75)
    with pytest.raises(ValueError):
        m.insert(float("nan"), 1.0)
    with pytest.raises(ValueError):
        m.get_many(np.array([1.0, np.nan]))
    assert len(m) == 1


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("name", ALL)
def test_bad_input_leaves_map_unchanged(name):
    spec = spec_or_skip(name)
    m = new_map(name, np.int64, np.int64, capacity=64)
    m.insert(5, 7)
    before = m.items()
    with pytest.raises(OverflowError):
        m.insert(2**63, 1)
    with pytest.raises(TypeError):
        m.insert("x", 1)
    with pytest.raises(TypeError):
        m.insert(1, "y")
    with pytest.raises(ValueError):
        m.insert_many(np.array([1, 2]), np.array([1]))
    with pytest.raises(TypeError):
        m.insert_many(np.array([1.5, 2.5]), np.array([1, 2]))
    with pytest.raises(TypeError):
        m.add(5, 1.5)
    with pytest.raises(KeyError):
        m[12345]
    after = m.items()
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    with pytest.raises((TypeError, ValueError)):
        make_map(name, object, np.int64, capacity=4)
    with pytest.raises(ValueError):
        make_map(name, np.int64, np.int64, capacity=0)


def test_add_overflow_raises_and_keeps_value():
    for name in ["dashmap", "global_lock", "typed_dict", "dict_lock"]:
        m = new_map(name, np.int64, np.int8, capacity=8)
        m.insert(1, 120)
        with pytest.raises(OverflowError):
            m.add(1, 10)
        assert m.get(1) == 120
        with pytest.raises(OverflowError):
            m.add(2, 200)  # absent key, delta does not fit: not inserted
        assert 2 not in m


def test_cas_wraps_on_add_and_refuses_wrong_dtypes():
    m = new_map("cas", np.int64, np.int64, capacity=8)
    m.insert(1, 2**63 - 1)
    assert m.add(1, 1) == -(2**63)  # fetch_add wraps, as documented
    with pytest.raises(TypeError):
        make_map("cas", np.int32, np.int64, capacity=8)
    with pytest.raises(TypeError):
        make_map("cas", np.int64, np.float64, capacity=8)


def test_cas_full_table():
    from seqmap_nb.baselines.cas import MapFullError

    m = new_map("cas", capacity=6)  # 6 entries at a load of 3/4: a table of 8 slots
    assert m.slots == 8 and m.capacity == 6
    m.insert_many(np.arange(1, 9), np.arange(1, 9))  # it takes more, until its slots are full
    assert len(m) == 8
    with pytest.raises(MapFullError):
        m.insert(100, 1)
    assert m.insert(3, 30) == 3  # existing keys still update
    assert len(m) == 8 and 100 not in m


# ------------------------------------------------------------------ dashmap specifics


def test_dashmap_grows_sheds_tombstones_and_spreads_keys():
    from seqmap_nb.baselines import dashmap as D

    m = new_map("dashmap", capacity=16, shards=8)
    n = 20_000
    keys = np.arange(n, dtype=np.int64)
    m.insert_many(keys, keys)
    assert len(m) == n and m.stats()["resizes"] > 0
    cap = m.slots
    assert n / cap <= 0.75 and m.capacity >= n
    per_shard = [int(m._hdr[D.LINE_WORDS * (s + 1) + D.T.M_LIVE]) for s in range(8)]
    assert sum(per_shard) == n and min(per_shard) > n / 8 * 0.8  # high hash bits spread keys
    # churn at constant size: tombstones are cleaned by rebuilds and the table stops
    # growing. Like hashbrown, a shard whose live keys fill more than half its threshold
    # doubles once instead of rebuilding in place, after that it only rebuilds in place.
    live = keys.copy()
    caps = []
    for r in range(20):
        out, live = live[:2000], np.concatenate([live[2000:], live[:2000] + 10 * n])
        m.remove_many(out)
        m.insert_many(live[-2000:], live[-2000:])
        caps.append(m.slots)
    assert len(m) == n and set(m.keys().tolist()) == set(live.tolist())
    assert caps[-1] <= 2 * cap and caps[10:] == [caps[-1]] * 10  # bounded, and stable
    pl = m.probe_lengths()
    assert pl.shape == (n,) and pl.min() == 1 and pl.mean() < 3
    mem = m.memory_bytes()
    assert mem >= cap * m.bytes_per_slot
    m.clear()
    assert len(m) == 0 and m.get(5) is None and m.items()[0].shape == (0,)


def test_global_lock_is_one_shard():
    m = new_map("global_lock", capacity=16)
    assert m.shards == 1
    m.insert_many(np.arange(1000), np.arange(1000))
    assert len(m) == 1000 and m.get(999) == 999


def test_one_hash_for_every_table():
    """``_hash`` is the only hash: SeqMap folds a key's words held in a tuple
    (``hash_words``), the baselines' row kernels the same words in an array
    (``mix_words``); both forms give the same value, so every table puts a key in the
    same home slot."""
    from seqmap_nb._hash import hash_words, mix64, mix_words

    @numba.njit
    def forms(w):
        return (mix64(w[0]), hash_words((w[0],)), mix_words(w[0], w, 0, 1),
                mix_words(w[0], w, 0, 3), hash_words((w[0], w[1], w[2])))

    for w in (np.array([0, 1, 2], np.uint64), np.array([2**64 - 1, 12345, 7], np.uint64)):
        a, b, c, d, e = forms(w)
        assert a == b == c and d == e and d != a


def test_stats_and_reset():
    m = new_map("dashmap", capacity=16, shards=1)
    m.insert_many(np.arange(100), np.arange(100))
    s = m.stats()
    assert set(s) >= {"read_retries", "write_waits", "resizes"} and s["resizes"] > 0
    m.reset_stats()
    assert m.stats() == {"read_retries": 0, "write_waits": 0, "resizes": 0}


# ------------------------------------------------------------------ registry


def test_registry_fields_and_refusals():
    assert set(ALL) == {"seqmap", "plain", "dashmap", "global_lock", "cas", "typed_dict", "dict_lock"}
    for spec in REGISTRY.values():
        assert spec.description and "\n" not in spec.description
        spec.check({"read", "insert"}, 1)
    assert REGISTRY["plain"].max_threads == 1 and REGISTRY["typed_dict"].max_threads == 1
    assert not REGISTRY["dict_lock"].njit
    with pytest.raises(ValueError, match="single-thread"):
        get_spec("plain").check({"read"}, 2)
    with pytest.raises(ValueError, match="single-thread"):
        get_spec("typed_dict").check({"read"}, 4)
    with pytest.raises(ValueError, match="no delete"):
        get_spec("cas").check({"read", "remove"}, 4)
    with pytest.raises(ValueError, match="grow"):
        get_spec("cas").check({"insert", "grow"}, 1)
    with pytest.raises(ValueError, match="record"):
        get_spec("typed_dict").check({"records"}, 1)
    with pytest.raises(ValueError, match="njit"):
        get_spec("dict_lock").check({"njit"}, 2)
    with pytest.raises(ValueError, match="int64"):
        get_spec("cas").check({"read"}, 1, key_dtype=np.float64)
    with pytest.raises(ValueError, match="unknown workload needs"):
        get_spec("dashmap").check({"reed"}, 1)
    with pytest.raises(ValueError):
        get_spec("dashmap").check({"read"}, 0)
    get_spec("dashmap").check(NEEDS, 1024, key_dtype=np.dtype([("a", "u8")]), value_dtype=np.uint8)
    with pytest.raises(KeyError, match="known"):
        get_spec("hashbrown")


def test_make_map_passes_options():
    m = make_map("dashmap", np.uint64, np.uint8, capacity=100, shards=4, max_load=0.5)
    assert m.shards == 4 and m.max_load == 0.5 and m.capacity >= 100
    with pytest.raises(ValueError):
        make_map("dashmap", np.uint64, np.uint8, capacity=100, shards=3)
    with pytest.raises(ValueError):
        make_map("dashmap", np.uint64, np.uint8, capacity=100, max_load=1.0)
