"""Harness: the runner, verification, metrics and sweeps.

Besides the registry's maps, these tests drive a small stand-in map defined here (uint64
keys and values, linear probing over numpy arrays, one spinlock or none, with a switch
that makes insert silently drop every N-th new key): the deliberately broken map that
proves verification can fail, and a map with the full interface that does not depend
on the other modules.
"""
import math
import threading

import numba
import numpy as np
import pandas as pd
import pytest
from numba import types
from numba.core import cgutils
from numba.extending import (
    NativeValue,
    make_attribute_wrapper,
    models,
    overload,
    overload_method,
    register_model,
    typeof_impl,
    unbox,
)

from seqmap_nb import harness, results
from seqmap_nb import workloads as W
from seqmap_nb._unsafe import atomic_cas, atomic_store, cpu_relax, monotonic_ns

pytestmark = pytest.mark.timeout(300)

# ============================================================== the stand-in map

M_LOCK, M_LEN, M_NEW, M_DROP, M_SYNC, M_STALL_AT, M_STALL_NS = range(7)
_NJ = dict(nogil=True)  # not cached: the type lives in a test module


class StandinMap:
    """uint64 -> uint64 linear probing, fixed capacity (2x the request, >= 2**15 slots).

    ``sync=True``: one spinlock around every op (correct under threads). ``drop_every=N``:
    every N-th insert of a new key reports success but stores nothing (broken on purpose).
    ``stall_at=N, stall_ms=X``: the N-th insert of a new key spins X ms first (a stall the
    harness must see).
    """

    def __init__(self, key_dtype, value_dtype, capacity=64, sync=True, drop_every=0, max_load=None,
                 stall_at=0, stall_ms=0):
        if np.dtype(key_dtype) != np.uint64 or np.dtype(value_dtype) != np.uint64:
            raise TypeError("StandinMap holds uint64 keys and values only")
        # fixed capacity, roomy enough for every test's growth (no resize to get wrong)
        cap = 1 << max(15, int(2 * capacity - 1).bit_length())
        self._st = np.zeros(cap, np.uint64)
        self._ks = np.zeros(cap, np.uint64)
        self._vs = np.zeros(cap, np.uint64)
        self._meta = np.zeros(16, np.uint64)
        self._meta[M_DROP] = drop_every
        self._meta[M_SYNC] = 1 if sync else 0
        self._meta[M_STALL_AT] = stall_at
        self._meta[M_STALL_NS] = int(stall_ms * 1e6)

    # the Python interface every map of the registry has
    capacity = property(lambda self: len(self._st))
    load_factor = property(lambda self: len(self) / self.capacity)

    def __len__(self):
        return int(self._meta[M_LEN])

    def insert_many(self, keys, vals):
        for k, v in zip(np.asarray(keys, np.uint64), np.asarray(vals, np.uint64)):
            _insert(self._st, self._ks, self._vs, self._meta, k, v)

    def get(self, k, default=None):
        f, v = _find(self._st, self._ks, self._vs, self._meta, np.uint64(k))
        return v if f else default

    def insert(self, k, v):
        f, p = _insert(self._st, self._ks, self._vs, self._meta, np.uint64(k), np.uint64(v))
        return p if f else None

    def remove(self, k):
        f, p = _remove(self._st, self._ks, self._vs, self._meta, np.uint64(k))
        return p if f else None

    def add(self, k, d):
        return _add(self._st, self._ks, self._vs, self._meta, np.uint64(k), np.uint64(d))

    def __contains__(self, k):
        return bool(_find(self._st, self._ks, self._vs, self._meta, np.uint64(k))[0])

    def items(self):
        full = self._st == 1
        return self._ks[full].copy(), self._vs[full].copy()

    def stats(self):
        return {"read_retries": 0, "write_waits": 0, "resizes": 0}

    def reset_stats(self):
        pass

    def memory_bytes(self):
        return self._st.nbytes * 3 + self._meta.nbytes

    def probe_lengths(self):
        raise NotImplementedError


@numba.njit(inline="always", **_NJ)
def _lock(meta):
    if meta[M_SYNC]:
        while atomic_cas(meta, M_LOCK, numba.uint64(0), numba.uint64(1), "acquire") != 0:
            cpu_relax()


@numba.njit(inline="always", **_NJ)
def _unlock(meta):
    if meta[M_SYNC]:
        atomic_store(meta, M_LOCK, numba.uint64(0), "release")


@numba.njit(inline="always", **_NJ)
def _slot(st, ks, k):
    """(index of k's slot or -1, first empty-or-tombstone index on its chain)."""
    mask = st.shape[0] - 1
    h = k * numba.uint64(0x9E3779B97F4A7C15)
    i = numba.int64(h >> numba.uint64(40)) & mask
    free = -1
    for _ in range(st.shape[0]):
        s = st[i]
        if s == 0:
            return -1, (i if free < 0 else free)
        if s == 2:
            if free < 0:
                free = i
        elif ks[i] == k:
            return i, free
        i = (i + 1) & mask
    return -1, free


@numba.njit(**_NJ)
def _find(st, ks, vs, meta, k):
    _lock(meta)
    i, _ = _slot(st, ks, k)
    v = vs[i] if i >= 0 else numba.uint64(0)
    _unlock(meta)
    return i >= 0, v


@numba.njit(**_NJ)
def _insert(st, ks, vs, meta, k, v):
    _lock(meta)
    i, free = _slot(st, ks, k)
    if i >= 0:
        p = vs[i]
        vs[i] = v
        _unlock(meta)
        return True, p
    meta[M_NEW] += 1
    if meta[M_STALL_AT] != 0 and meta[M_NEW] == meta[M_STALL_AT]:  # the injected stall
        t0 = monotonic_ns()
        while monotonic_ns() - t0 < numba.int64(meta[M_STALL_NS]):
            cpu_relax()
    if free < 0:
        _unlock(meta)
        raise MemoryError("StandinMap is full")
    if meta[M_DROP] == 0 or meta[M_NEW] % meta[M_DROP] != 0:  # the broken switch
        ks[free] = k
        vs[free] = v
        st[free] = 1
        meta[M_LEN] += 1
    _unlock(meta)
    return False, numba.uint64(0)


@numba.njit(**_NJ)
def _remove(st, ks, vs, meta, k):
    _lock(meta)
    i, _ = _slot(st, ks, k)
    p = numba.uint64(0)
    if i >= 0:
        p = vs[i]
        st[i] = 2
        meta[M_LEN] -= 1
    _unlock(meta)
    return i >= 0, p


@numba.njit(**_NJ)
def _add(st, ks, vs, meta, k, d):
    _lock(meta)
    i, free = _slot(st, ks, k)
    if i >= 0:
        vs[i] += d
        r = vs[i]
    elif free < 0:
        _unlock(meta)
        raise MemoryError("StandinMap is full")
    else:
        ks[free] = k
        vs[free] = d
        st[free] = 1
        meta[M_LEN] += 1
        r = d
    _unlock(meta)
    return r


class StandinType(types.Type):
    def __init__(self):
        super().__init__(name="StandinMap")


_ARR = types.Array(types.uint64, 1, "C")
_FIELDS = ("st", "ks", "vs", "meta")


@typeof_impl.register(StandinMap)
def _typeof(val, c):
    return StandinType()


@register_model(StandinType)
class _Model(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [(f, _ARR) for f in _FIELDS])


for _f in _FIELDS:
    make_attribute_wrapper(StandinType, _f, _f)


@unbox(StandinType)
def _unbox(typ, obj, c):
    s = cgutils.create_struct_proxy(typ)(c.context, c.builder)
    err = cgutils.alloca_once_value(c.builder, cgutils.false_bit)
    for f in _FIELDS:
        a = c.pyapi.object_getattr_string(obj, "_" + f)
        native = c.unbox(_ARR, a)
        c.pyapi.decref(a)
        setattr(s, f, native.value)
        with c.builder.if_then(native.is_error):
            c.builder.store(cgutils.true_bit, err)
    return NativeValue(s._getvalue(), is_error=c.builder.load(err))


@overload_method(StandinType, "get", jit_options=_NJ)
def _ov_get(m, k):
    def impl(m, k):
        f, v = _find(m.st, m.ks, m.vs, m.meta, numba.uint64(k))
        return v if f else None
    return impl


@overload_method(StandinType, "insert", jit_options=_NJ)
def _ov_insert(m, k, v):
    def impl(m, k, v):
        f, p = _insert(m.st, m.ks, m.vs, m.meta, numba.uint64(k), numba.uint64(v))
        return p if f else None
    return impl


@overload_method(StandinType, "remove", jit_options=_NJ)
def _ov_remove(m, k):
    def impl(m, k):
        f, p = _remove(m.st, m.ks, m.vs, m.meta, numba.uint64(k))
        return p if f else None
    return impl


@overload_method(StandinType, "add", jit_options=_NJ)
def _ov_add(m, k, d):
    return lambda m, k, d: _add(m.st, m.ks, m.vs, m.meta, numba.uint64(k), numba.uint64(d))


@overload_method(StandinType, "contains", jit_options=_NJ)
def _ov_contains(m, k):
    return lambda m, k: _find(m.st, m.ks, m.vs, m.meta, numba.uint64(k))[0]


@overload(len, jit_options=_NJ)
def _ov_len(m):
    if isinstance(m, StandinType):
        return lambda m: numba.int64(m.meta[M_LEN])


class Spec:
    """A MapSpec-like description of the stand-in (the harness duck-types specs)."""

    njit = True
    grows = False
    thread_safe = True
    max_threads = None

    def __init__(self, name="standin", **options):
        self.name = name
        self.options = options

    def factory(self, key_dtype, value_dtype, capacity=64, **opts):
        return StandinMap(key_dtype, value_dtype, capacity, **{**self.options, **opts})

    def check(self, needs, threads):
        if self.options.get("sync") is False and threads > 1:
            raise ValueError("unsynchronised: one thread only")


GOOD = Spec()
BROKEN = Spec("broken", drop_every=1000)

# ============================================================== runner and metrics


def test_run_returns_every_schema_column_with_provenance():
    df = harness.run(GOOD, workload="read_heavy", threads=2, capacity=4096, ops=20_000,
                     repeats=2, seed=3)
    assert list(df.columns[: len(results.COLUMNS)]) == list(results.COLUMNS)
    assert len(df) == 2 and list(df["repeat"]) == [0, 1]
    assert df["verified"].all(), df["verify_detail"].tolist()
    assert (df["verify_detail"] == "").all()
    r = df.iloc[0]
    assert r["map"] == "standin" and r["workload"] == "read_heavy" and r["keys"] == "bustle"
    assert r["threads"] == 2 and r["ops"] == 20_000 and r["ops_per_thread"] == 10_000
    assert r["prefill"] == 0.75 and math.isnan(r["theta"]) and math.isnan(r["load_factor"])
    assert r["mix"] == '{"read": 98, "insert": 1, "remove": 1, "update": 0, "upsert": 0}'
    assert r["seconds"] > 0 and r["mops"] == pytest.approx(20_000 / r["seconds"] / 1e6)
    assert r["ns_per_op"] == pytest.approx(r["seconds"] * 1e9 * 2 / 20_000)
    assert 0 < r["p50_ns"] <= r["p99_ns"] <= r["p999_ns"]
    assert 0 < r["cpu_share"] <= 1.1
    # bustle read_heavy: prefill 0.75 * 4096, +1% inserts, -1% removes: size unchanged
    assert r["final_len"] == 3072
    # the stand-in has no `slots`: its capacity (in slots) is the table size
    assert r["slots"] == r["final_slots"] == r["final_capacity"] == 1 << 15
    assert r["sample_every"] == 64
    # the clock's resolution is measured; percentiles never sit below it, and the longest
    # interval between clock reads covers every sampled op, so it is at least the p99.9
    assert r["timer_res_ns"] > 0 and r["p50_ns"] >= r["timer_res_ns"]
    assert set(filter(None, r["lat_below_res"].split(","))) <= {"p50", "p99", "p99.9"}
    assert r["max_stall_ns"] >= r["p999_ns"]
    assert r["schema_version"] == results.SCHEMA_VERSION
    for col in ("cpu_model", "os", "python", "numba", "numpy", "utc_time", "machine", "package_version"):
        assert isinstance(r[col], str) and r[col], col
    assert r["logical_cores"] >= 1
    assert r["compile_s"] > 0 and df.iloc[1]["compile_s"] == 0


def test_sampling_off_gives_nan_percentiles_and_still_verifies():
    df = harness.run(GOOD, workload="exchange", threads=2, capacity=1024, ops=10_000, repeats=1,
                     sample_every=0)
    assert df["verified"].all(), df["verify_detail"].tolist()
    assert df[["p50_ns", "p99_ns", "p999_ns", "max_stall_ns", "timer_res_ns"]].isna().all().all()
    assert df.iloc[0]["sample_every"] == 0


@pytest.mark.parametrize("every", [1, 3, 64])
def test_an_injected_stall_is_the_longest_stall(every):
    """An insert that spins 150 ms: max_stall_ns sees it whether or not that op was one of
    the sampled ones (every 64th, op 1001 is not; every op; every 3rd), because the
    intervals between clock reads cover every op. A max over the sampled ops alone would
    report microseconds here."""
    stalling = Spec("stall", stall_at=1001, stall_ms=150)
    df = harness.run(stalling, workload="rapid_grow", threads=1, capacity=1 << 14, ops=20_000,
                     repeats=1, sample_every=every)
    r = df.iloc[0]
    assert r["verified"], r["verify_detail"]
    assert r["max_stall_ns"] >= 0.95 * 150e6
    # ... and it is an interval of this run, not more than the whole run
    assert r["max_stall_ns"] <= r["seconds"] * 1e9


@pytest.mark.parametrize("workload", ["read_heavy", "exchange", "rapid_grow", "update_heavy",
                                      "uniform", "ycsb_a", "ycsb_d", "ycsb_f"])
def test_every_workload_verifies_on_a_correct_map(workload):
    df = harness.run(GOOD, workload=workload, threads=3, capacity=2048, ops=12_000, repeats=1)
    assert df["verified"].all(), df["verify_detail"].tolist()


def test_shared_keys_zipf_and_hotset_rows():
    z = harness.run(GOOD, workload="ycsb_a", keys="zipf", theta=1.2, threads=2, capacity=1024,
                    ops=8000, repeats=1)
    assert z["verified"].all() and z.iloc[0]["theta"] == 1.2 and z.iloc[0]["keys"] == "zipf"
    h = harness.run(GOOD, workload="ycsb_b", keys="hotset", hot_ops=0.9, hot_keys=0.01, threads=2,
                    capacity=1024, ops=8000, repeats=1)
    assert h["verified"].all()
    assert (h.iloc[0]["hot_ops"], h.iloc[0]["hot_keys"]) == (0.9, 0.01) and math.isnan(h.iloc[0]["theta"])


def test_custom_mix_row():
    df = harness.run(GOOD, mix=dict(read=60, update=30, rmw=10), keys="uniform", threads=2,
                     capacity=1024, ops=6000, repeats=1)
    r = df.iloc[0]
    assert r["workload"] == "custom" and r["verified"]
    assert r["mix"] == '{"read": 60, "insert": 0, "remove": 0, "update": 30, "upsert": 0, "rmw": 10}'


# ============================================================== verification can fail


def test_broken_map_is_caught():
    """An insert that silently drops every 1000th new key: verified must be False."""
    df = harness.run(BROKEN, workload="rapid_grow", threads=2, capacity=1024, ops=20_000,
                     repeats=1)
    assert not df["verified"].any()
    assert "missing" in df.iloc[0]["verify_detail"]
    # the same run on the same map type without the defect verifies (positive control)
    ok = harness.run(GOOD, workload="rapid_grow", threads=2, capacity=1024, ops=20_000, repeats=1)
    assert ok["verified"].all(), ok["verify_detail"].tolist()


def test_broken_map_is_caught_in_a_shared_key_space():
    df = harness.run(BROKEN, workload="ycsb_d", threads=2, capacity=8192, ops=60_000, repeats=1)
    assert not df["verified"].any()
    assert "missing" in df.iloc[0]["verify_detail"]


def test_per_op_check_catches_wrong_values():
    """A map whose stored values are corrupted after the prefill: the reads' value checks
    (not only the final-state check) flag it."""

    class Corrupting(Spec):
        def factory(self, *a, **kw):
            m = super().factory(*a, **kw)
            orig = m.insert_many

            def insert_many(keys, vals):
                orig(keys, np.asarray(vals, np.uint64) ^ np.uint64(1 << 40))
            m.insert_many = insert_many
            return m

    df = harness.run(Corrupting("corrupt"), workload="read_heavy", threads=1, capacity=1024,
                     ops=5000, repeats=1)
    assert not df["verified"].any()
    assert "wrong outcome" in df.iloc[0]["verify_detail"]


def test_unsynchronised_map_refused_for_threads():
    with pytest.raises(harness.UnsupportedRun, match="one thread only"):
        harness.run(Spec("unsync", sync=False), threads=2, ops=100, repeats=1)
    ok, why = harness.supported(Spec("unsync", sync=False), threads=2)
    assert not ok and "one thread only" in why
    assert harness.supported(Spec("unsync", sync=False), threads=1) == (True, "")
    with pytest.raises(ValueError, match="unknown name"):  # bad parameters still raise
        harness.supported(GOOD, workload="nope")


# ============================================================== oversubscription


def test_64_threads_complete_and_verify():
    df = harness.run(GOOD, workload="exchange", threads=64, capacity=4096, ops=64 * 500, repeats=1)
    assert df["verified"].all(), df["verify_detail"].tolist()
    assert df.iloc[0]["threads"] == 64 and df.iloc[0]["ops"] == 64 * 500


def test_threads_out_of_range_refused():
    with pytest.raises(ValueError, match="threads"):
        harness.run(GOOD, threads=0, repeats=1)
    with pytest.raises(ValueError, match="threads"):
        harness.run(GOOD, threads=harness.MAX_THREADS + 1, repeats=1)


def test_bad_parameters_refused():
    with pytest.raises(ValueError, match="unknown name"):
        harness.run(GOOD, workload="nope", repeats=1)
    with pytest.raises(ValueError, match="sum to 100"):
        harness.run(GOOD, mix=dict(read=50), repeats=1)
    with pytest.raises(ValueError, match="theta"):
        harness.run(GOOD, workload="read_heavy", keys="uniform", theta=0.5, repeats=1)
    with pytest.raises(ValueError, match="sample_every"):
        harness.run(GOOD, sample_every=-1, repeats=1)
    with pytest.raises(ValueError, match="fixed table"):
        harness.run(GOOD, workload="grow", load_factor=0.5, repeats=1)
    with pytest.raises(ValueError, match="not both"):
        harness.run(GOOD, workload="exchange", mix=dict(read=100), repeats=1)


# ============================================================== sweep


def test_sweep_grid_skips_unsupported_points_with_a_warning():
    grid = dict(map=[GOOD, Spec("unsync", sync=False)], threads=[1, 2])
    with pytest.warns(RuntimeWarning, match="skipped 1 point"):
        df = harness.sweep(grid, workload="exchange", capacity=1024, ops=4000, repeats=2,
                           progress=False)
    # 3 runnable points x 2 repeats, and the null map (the harness alone) at every point
    assert len(df) == 10
    assert sorted(zip(df["map"], df["threads"])) == sorted(
        [("standin", 1)] * 2 + [("standin", 2)] * 2 + [("unsync", 1)] * 2
        + [("null", 1)] * 2 + [("null", 2)] * 2)
    assert df["verified"].all()
    assert len(df.attrs["skipped"]) == 1


def test_sweep_over_mixes_and_thetas():
    mixes = [dict(read=100 - w, update=w) for w in (0, 50)]
    df = harness.sweep(dict(mix=mixes, theta=[0.0, 0.99]), map=GOOD, keys="zipf", threads=2,
                       capacity=1024, ops=4000, repeats=1, progress=False, null=False)
    assert len(df) == 4 and set(df["workload"]) == {"custom"} and set(df["theta"]) == {0.0, 0.99}
    assert set(df["map"]) == {"standin"}  # null=False: no harness-cost rows


def test_load_factor_point_prefills_to_the_target():
    df = harness.run(GOOD, workload="read_heavy", load_factor=0.5, capacity=1024, ops=4000,
                     repeats=1)
    r = df.iloc[0]
    assert r["load_factor"] == 0.5 and r["verified"]
    # the stand-in rounds 1024 slots up; the fill is relative to the real slot count
    assert r["slots"] == r["final_slots"] == 1 << 15
    assert r["final_len"] == 1 << 14 and r["final_load_factor"] == pytest.approx(0.5)


class EntriesStandin(StandinMap):
    """A stand-in with the other meaning of capacity: entries held without growing, the
    table (``slots``) the next power of two >= capacity / max_load (as SeqMap's will be)."""

    def __init__(self, key_dtype, value_dtype, capacity=64, max_load=0.75, **kw):
        slots = 1 << max(4, int(-(-capacity // max_load) - 1).bit_length())
        super().__init__(key_dtype, value_dtype, capacity=slots // 2, **kw)
        self._slots, self._max_load = slots, max_load

    capacity = property(lambda self: int(self._slots * self._max_load))
    slots = property(lambda self: self._slots)


class EntriesSpec(Spec):
    def factory(self, key_dtype, value_dtype, capacity=64, **opts):
        return EntriesStandin(key_dtype, value_dtype, capacity, **{**self.options, **opts})


@pytest.mark.parametrize("spec, slots", [(GOOD, 1 << 15), (EntriesSpec("entries"), 1 << 15),
                                         (EntriesSpec("entries", max_load=0.5), 1 << 15)])
def test_load_factor_point_builds_the_asked_slot_count_under_either_capacity_meaning(spec, slots):
    """A load-factor point of `capacity` slots: a map that doubles what it is asked for
    (the stand-in's own rule), one whose capacity means entries (and reports `slots`), and
    one of those that takes no max_load (it does not grow) all get a table of 2**15 slots
    filled to alpha of it, and the rows say so."""
    df = harness.run(spec, workload="read_heavy", load_factor=0.75, capacity=1 << 15, ops=4000,
                     repeats=1)
    r = df.iloc[0]
    assert r["verified"], r["verify_detail"]
    assert r["slots"] == r["final_slots"] == slots and r["capacity"] == 1 << 15
    assert r["final_len"] == round(0.75 * slots)
    # the ordinary (not load-factor) prefill stays 0.75 of the capacity, in entries
    d = harness.run(spec, workload="read_heavy", capacity=4096, ops=4000, repeats=1).iloc[0]
    assert d["final_len"] == 3072 and d["capacity"] == 4096


# ============================================================== results files


def test_two_runs_concatenate_and_mismatched_schema_is_refused(tmp_path):
    a = harness.run(GOOD, workload="exchange", threads=1, capacity=512, ops=2000, repeats=1,
                    machine="box-a")
    b = harness.run(GOOD, workload="exchange", threads=2, capacity=512, ops=2000, repeats=1,
                    machine="box-b")
    results.save(a, tmp_path / "a")
    results.save(b, tmp_path / "b")
    df = results.load(tmp_path / "a", tmp_path / "b" / "results.csv")
    assert len(df) == 2 and list(df["machine"]) == ["box-a", "box-b"]
    assert df["verified"].dtype == bool and df["verified"].all()
    assert list(df.columns[: len(results.COLUMNS)]) == list(results.COLUMNS)
    assert (df["verify_detail"] == "").all()
    pd.testing.assert_series_equal(df["mops"], pd.concat([a["mops"], b["mops"]], ignore_index=True),
                                   check_exact=False, rtol=1e-12)
    # a file from another schema version is refused with a message naming it
    old = b.copy()
    old["schema_version"] = results.SCHEMA_VERSION + 1
    old.to_csv(tmp_path / "old.csv", index=False)
    v = results.SCHEMA_VERSION
    with pytest.raises(ValueError, match=rf"old\.csv.*schema version \[{v + 1}\].*schema version {v}"):
        results.load(tmp_path / "a", tmp_path / "old.csv")
    with pytest.raises(ValueError, match="schema"):
        results.concat([a, old])
    # and a CSV that is not a results file at all
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(ValueError, match="no schema_version"):
        results.load(tmp_path / "other.csv")


def test_foreign_map_types_stay_out_of_the_kernel_cache():
    """The stand-in's numba type lives in this test module; if a cached harness function
    recorded it, every other process (the CLI, notebooks) would fail to unpickle that
    cache index. Run it through the harness, then read the harness's cache indexes."""
    import glob
    import os

    harness.run(GOOD, workload="exchange", threads=1, capacity=512, ops=500, repeats=1)
    harness.run(GOOD, workload="exchange", threads=1, capacity=512, ops=500, repeats=1,
                sample_every=0)
    dirs = [os.path.join(os.path.dirname(harness.__file__), "__pycache__")]
    if os.environ.get("NUMBA_CACHE_DIR"):
        dirs += glob.glob(os.path.join(os.environ["NUMBA_CACHE_DIR"], "**"), recursive=True)
    indexes = [p for d in dirs for p in glob.glob(os.path.join(d, "harness.*.nbi"))]
    assert indexes, "no harness cache index found: is caching off?"
    for p in indexes:
        with open(p, "rb") as f:
            assert b"test_harness" not in f.read(), p


# ============================================================== registry maps


def test_probe_study_frame_and_knuth():
    pytest.importorskip("seqmap_nb.seqmap")
    loads = (0.25, 0.5, 0.75)
    df = harness.probe_study("seqmap", loads=loads, capacity=1 << 14)
    assert {"map", "load_factor", "capacity", "probe_length", "count", "knuth_hit", "knuth_miss",
            "cpu_model", "schema_version"} <= set(df.columns)
    for a in loads:
        sub = df[df["load_factor"] == a]
        cap = int(sub["slots"].iloc[0])
        assert cap == 1 << 14  # built not to grow, even at 0.75 (the default max_load)
        assert sub["count"].sum() == round(a * cap)  # one probe length per key
        mean = (sub["probe_length"] * sub["count"]).sum() / sub["count"].sum()
        assert mean == pytest.approx(0.5 * (1 + 1 / (1 - a)), rel=0.1)
        assert sub["knuth_miss"].iloc[0] == pytest.approx(0.5 * (1 + 1 / (1 - a) ** 2))


@pytest.mark.parametrize("name", ["seqmap", "dashmap"])
def test_registry_maps_run_and_verify(name):
    pytest.importorskip("seqmap_nb.seqmap")
    df = harness.run(name, workload="exchange", threads=2, capacity=1024, ops=20_000, repeats=1)
    assert df["verified"].all(), df["verify_detail"].tolist()
    assert df.iloc[0]["map"] == name


def test_cas_refuses_removes_but_runs_ycsb():
    ok, why = harness.supported("cas", workload="read_heavy", threads=2)
    assert not ok and "no delete" in why
    df = harness.run("cas", workload="ycsb_b", threads=2, capacity=4096, ops=10_000, repeats=1)
    assert df["verified"].all(), df["verify_detail"].tolist()


def test_plain_map_under_threads_is_refused_not_run():
    ok, why = harness.supported("plain", workload="exchange", threads=2)
    assert not ok and "single-thread" in why


# ============================================================== the null map, grow, Python maps


@pytest.mark.parametrize("workload", ["read_heavy", "exchange", "grow", "ycsb_f"])
def test_null_map_verifies_by_its_predictable_mismatches(workload):
    df = harness.run("null", workload=workload, threads=2, capacity=1024, ops=20_000, repeats=1)
    r = df.iloc[0]
    assert r["verified"], r["verify_detail"]
    assert r["map"] == "null" and r["final_len"] == 0 and r["slots"] == 0
    assert r["mops"] > 0 and r["p50_ns"] > 0


def test_null_verification_can_fail():
    """The null map's check: exactly the ops that expect a present key disagree, and the
    map is empty. A kernel that skipped ops, or a map that holds something, fails it."""
    from seqmap_nb.baselines.null import NullMap

    s = W.bustle_streams(W.WORKLOADS["read_heavy"].mix, 1, 2000, 512, 0.75, seed=1)
    m = NullMap(np.uint64, np.uint64)
    want = int(np.count_nonzero((s.exp == W.EXP_PRESENT) & (s.ops != W.K_ADD)))
    assert want > 0
    out = dict(errors=[], bad=want, first=[(0, 0)])
    assert harness.verify(m, s, out) == (True, "")
    ok, why = harness.verify(m, s, dict(out, bad=want - 1))
    assert not ok and "did not run through the checks" in why

    class Holding(NullMap):
        def items(self):
            return np.ones(1, np.uint64), np.ones(1, np.uint64)
    ok, why = harness.verify(Holding(np.uint64, np.uint64), s, out)
    assert not ok and "holds 1 item" in why


def test_grow_starts_at_the_default_capacity_and_ends_holding_every_insert():
    pytest.importorskip("seqmap_nb.seqmap")
    df = harness.run("seqmap", workload="grow", threads=2, ops=50_000, repeats=1)
    r = df.iloc[0]
    assert r["verified"], r["verify_detail"]
    from seqmap_nb import SeqMap
    default = SeqMap(np.uint64, np.uint64)
    assert r["capacity"] == default.capacity and r["slots"] == harness._slots_of(default)
    assert r["final_len"] == 50_000 and r["final_slots"] > r["slots"] and r["resizes"] > 0
    assert r["prefill"] == 0 and r["max_stall_ns"] >= r["p999_ns"]
    # a fixed-capacity map cannot grow: refused, with the reason
    ok, why = harness.supported("cas", workload="grow", threads=2)
    assert not ok and "grow" in why
    # a capacity given explicitly is honoured (growth from there)
    d = harness.run("seqmap", workload="grow", threads=1, ops=5000, capacity=4096, repeats=1)
    assert d.iloc[0]["capacity"] == 4096 and d.iloc[0]["verified"]


def test_python_level_map_is_sampled_too():
    df = harness.run("dict_lock", workload="exchange", threads=2, capacity=1024, ops=4000,
                     repeats=1)
    r = df.iloc[0]
    assert r["verified"], r["verify_detail"]
    assert 0 < r["timer_res_ns"] and r["p50_ns"] >= r["timer_res_ns"]
    assert r["p50_ns"] <= r["p99_ns"] <= r["p999_ns"] <= r["max_stall_ns"]


def test_kernel_cache_guard_drops_stale_kernels(tmp_path):
    """An edit of any source of the package (here baselines/x.py) removes every cached
    kernel of the package: a kernel compiles in code of other files (the harness's kernel
    inlines the maps' methods), and numba checks only its own file's timestamp. An
    unchanged tree keeps them. (The package's one guard, ``_nbext.check_cache``.)"""
    from seqmap_nb import _nbext

    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "x.py").write_text("A = 1\n")
    (tmp_path / "harness.py").write_text("B = 1\n")
    _nbext.check_cache(str(tmp_path))  # first call records the digest
    kernel = tmp_path / "__pycache__" / "harness._kernel-1.py311.nbi"
    other = tmp_path / "baselines" / "__pycache__" / "dashmap.get1-1.py311.nbc"
    kernel.write_text("x")
    other.write_text("x")
    _nbext.check_cache(str(tmp_path))
    assert kernel.exists() and other.exists()  # nothing changed: kept
    (tmp_path / "baselines" / "x.py").write_text("A = 2\n")
    _nbext.check_cache(str(tmp_path))
    assert not kernel.exists() and not other.exists()


def test_results_of_schema_1_still_load(tmp_path):
    df = harness.run(GOOD, workload="exchange", threads=1, capacity=512, ops=2000, repeats=1)
    old = df.drop(columns=["slots", "final_slots", "max_stall_ns", "timer_res_ns",
                           "lat_below_res", "sample_every"]).assign(schema_version=1)
    old.to_csv(tmp_path / "old.csv", index=False)
    both = results.load(tmp_path / "old.csv", results.save(df, tmp_path / "new")[0])
    assert list(both["schema_version"]) == [1, results.SCHEMA_VERSION]
    assert math.isnan(both.iloc[0]["max_stall_ns"]) and both.iloc[1]["max_stall_ns"] > 0
    assert both.iloc[0]["lat_below_res"] == ""
    assert set(results.DOCS) == set(results.COLUMNS)  # every column is documented
    holey = pd.concat([df.assign(schema_version=1), df, df], ignore_index=True)
    holey.loc[2, "schema_version"] = math.nan  # versions 1 and 2, and a row without one
    with pytest.raises(ValueError, match="some rows have no schema_version"):
        results.concat([holey])


def test_null_rows_survive_a_csv_round_trip(tmp_path):
    """pandas reads the text "null" as NaN by default; results.load must not."""
    df = harness.run("null", workload="exchange", threads=1, capacity=512, ops=2000, repeats=1)
    results.save(df, tmp_path)
    back = results.load(tmp_path)
    assert list(back["map"]) == ["null"] and back["verify_detail"].iloc[0] == ""
    assert back["p50_ns"].iloc[0] == df["p50_ns"].iloc[0]
    assert pd.isna(back["theta"].iloc[0])  # numbers still read NaN as missing
