"""Workloads: mixes, key distributions and the generated operation streams."""
import json
import math

import numpy as np
import pytest

from seqmap_nb import workloads as W

pytestmark = pytest.mark.timeout(120)

# ============================================================== mixes


@pytest.mark.parametrize("name", sorted(W.WORKLOADS))
def test_named_mixes_sum_to_100(name):
    mix = W.WORKLOADS[name].mix
    assert sum(mix.values()) == 100
    assert set(mix) == set(W.OP_NAMES)


def test_mix_table_matches_the_sources():
    m = {n: tuple(W.WORKLOADS[n].mix[o] for o in W.OP_NAMES) for n in W.WORKLOADS}
    assert m["read_heavy"] == (98, 1, 1, 0, 0, 0)
    assert m["exchange"] == (10, 40, 40, 10, 0, 0)
    assert m["rapid_grow"] == (5, 80, 5, 10, 0, 0)
    assert m["bustle_read_heavy"] == (94, 2, 1, 3, 0, 0)
    assert m["insert_heavy"] == (10, 80, 0, 10, 0, 0)
    assert m["update_heavy"] == (35, 5, 5, 50, 5, 0)
    assert m["uniform"] == (20, 20, 20, 20, 20, 0)
    assert m["ycsb_a"] == (50, 0, 0, 50, 0, 0)
    assert m["ycsb_b"] == (95, 0, 0, 5, 0, 0)
    assert m["ycsb_c"] == (100, 0, 0, 0, 0, 0)
    assert m["ycsb_d"] == (95, 5, 0, 0, 0, 0)
    assert m["ycsb_f"] == (50, 0, 0, 0, 0, 50)
    assert m["grow"] == (0, 100, 0, 0, 0, 0)
    assert W.WORKLOADS["ycsb_d"].keys == "latest"
    # only grow builds its map at the map's own default capacity
    assert [n for n, w in W.WORKLOADS.items() if w.default_capacity] == ["grow"]
    assert W.WORKLOADS["grow"].keys == "bustle" and W.WORKLOADS["grow"].prefill == 0.0
    assert [W.WORKLOADS[n].prefill for n in ("read_heavy", "exchange", "rapid_grow")] == [0.75, 0.75, 0.0]


@pytest.mark.parametrize("bad, match", [
    (dict(read=50, insert=40), "sum to 100"),
    (dict(read=90, delete=10), "unknown operation"),
    (dict(read=110, insert=-10), ">= 0"),
    (dict(read="lots"), "not a number"),
    (dict(read=float("nan")), "finite"),
    ([("read", 100)], "dict"),
    ("{not json", "JSON"),
])
def test_custom_mix_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        W.validate_mix(bad)


def test_custom_mix_accepts_json_and_fractions():
    assert W.validate_mix('{"read": 99.5, "update": 0.5}')["update"] == 0.5
    assert json.loads(W.mix_json(dict(read=50, rmw=50))) == dict(
        read=50, insert=0, remove=0, update=0, upsert=0, rmw=50)
    assert json.loads(W.mix_json(W.WORKLOADS["exchange"].mix)) == dict(
        read=10, insert=40, remove=40, update=10, upsert=0)


def test_op_pattern_has_exactly_the_mix():
    rng = np.random.default_rng(0)
    p = W.op_pattern(W.WORKLOADS["update_heavy"].mix, rng)
    assert len(p) == 100
    assert np.bincount(p, minlength=6).tolist() == [35, 5, 5, 50, 5, 0]
    p = W.op_pattern(dict(read=99.5, remove=0.25, rmw=0.25), rng)
    assert len(p) == 10_000 and np.bincount(p, minlength=6).tolist() == [9950, 0, 25, 0, 0, 25]
    with pytest.raises(ValueError, match="multiples of 0.01"):
        W.op_pattern(dict(read=99.999, insert=0.001), rng)


@pytest.mark.parametrize("name", ["read_heavy", "exchange", "rapid_grow", "update_heavy", "uniform"])
def test_bustle_streams_follow_the_mix(name):
    mix = W.WORKLOADS[name].mix
    s = W.bustle_streams(mix, 3, 10_000, 4096, W.WORKLOADS[name].prefill, seed=1)
    total = 3 * 10_000
    for op in W.OP_NAMES:
        assert s.counts[op] == pytest.approx(total * mix[op] / 100, abs=3 * 100)
    # kernel op codes: reads are gets; inserts, upserts and updates of present keys inserts
    k = np.bincount(s.ops.ravel(), minlength=5)
    assert k[W.K_REMOVE] == s.counts["remove"]
    assert k[W.K_GET] == s.counts["read"]
    assert k[W.K_INSERT] + k[W.K_CONTAINS] == s.counts["insert"] + s.counts["upsert"] + s.counts["update"]


@pytest.mark.parametrize("name", ["ycsb_a", "ycsb_b", "ycsb_d", "ycsb_f"])
def test_shared_streams_follow_the_mix(name):
    wl = W.WORKLOADS[name]
    s = W.shared_streams(wl.mix, wl.keys, 2, 20_000, 4096, seed=2)
    k = np.bincount(s.ops.ravel(), minlength=5) / s.ops.size * 100
    mix = wl.mix
    assert k[W.K_GET] == pytest.approx(mix["read"], abs=1.0)
    assert k[W.K_INSERT] == pytest.approx(mix["insert"] + mix["update"] + mix["upsert"], abs=1.0)
    assert k[W.K_ADD] == pytest.approx(mix["rmw"], abs=1.0)


# ============================================================== bustle key semantics


def _oracle_replay(s, t):
    """Replay thread t's stream on a dict (prefill included); return the mismatches."""
    d = {int(k): int(v) for k, v in zip(s.prefill_keys, s.prefill_vals)}
    bad = []
    for i, (op, k, v, e) in enumerate(zip(s.ops[t], s.keys[t], s.vals[t], s.exp[t])):
        k, v = int(k), int(v)
        present = k in d
        if e != W.EXP_ANY and present != bool(e):
            bad.append((i, "presence"))
        if op == W.K_GET and present and d[k] != v:
            bad.append((i, "value"))
        if op == W.K_INSERT:
            d[k] = v
        elif op == W.K_REMOVE:
            d.pop(k, None)
        elif op == W.K_ADD:
            d[k] = d.get(k, 0) + v
    return bad, d


@pytest.mark.parametrize("name", ["read_heavy", "exchange", "update_heavy", "uniform"])
def test_bustle_expectations_match_a_dict_replay(name):
    """Every op's expected presence and value, and the final state, agree with replaying
    the streams on a Python dict: the generator's simulation is right."""
    wl = W.WORKLOADS[name]
    mix = dict(wl.mix)
    if name == "uniform":  # also cover rmw (add on present and absent keys)
        mix.update(upsert=10, rmw=10)
    s = W.bustle_streams(mix, 2, 3000, 512, 0.5, seed=3)
    prefills = s.prefill_keys.reshape(2, -1)
    replayed = {}
    for t in range(2):
        bad, d = _oracle_replay(s, t)
        assert bad == []
        mine = set(map(int, s.keys[t])) | set(map(int, prefills[t]))
        replayed.update({k: v for k, v in d.items() if k in mine})
    assert replayed == dict(zip(map(int, s.final_keys), map(int, s.final_vals)))


def test_bustle_inserts_take_fresh_keys_and_removes_the_oldest():
    s = W.bustle_streams(W.WORKLOADS["exchange"].mix, 2, 20_000, 1024, 0.75, seed=4)
    pre = s.prefill_keys.reshape(2, -1)
    for t in range(2):
        seen = set(map(int, pre[t]))
        order = list(map(int, pre[t]))  # insertion order of this thread's keys
        removed = []
        for op, k, e in zip(s.ops[t], s.keys[t], s.exp[t]):
            k = int(k)
            if op == W.K_INSERT and e == W.EXP_ABSENT:  # a plain insert
                assert k not in seen, "insert reused a key"
                seen.add(k)
                order.append(k)
            elif op == W.K_REMOVE and e == W.EXP_PRESENT:
                removed.append(k)
        # removes walk the insertion order from the oldest key on
        assert removed == order[: len(removed)]
        assert len(removed) > 1000


def test_bustle_keys_are_disjoint_and_many_reads_miss():
    s = W.bustle_streams(W.WORKLOADS["read_heavy"].mix, 4, 5000, 4096, 0.75, seed=5)
    per_thread = [set(map(int, s.keys[t])) for t in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not per_thread[a] & per_thread[b]
    reads = s.ops == W.K_GET
    miss = (s.exp[reads] == W.EXP_ABSENT).mean()
    assert 0.2 < miss < 0.9  # the full-period LCG walks keys not (yet / any more) inserted
    assert len(s.prefill_keys) == 4 * (3072 // 4)


def test_lcg_visits_every_key():
    """bustle's LCG (a = n/2 + 1, c = n/4 - 1) has full period over a power of two."""
    # capacity 16, no prefill, reads only: 16 keys per thread, so the reads cycle with period 16
    s = W.bustle_streams(dict(read=100), 1, 64, 16, 0.0, seed=6)
    keys = s.keys[0]
    assert len(set(map(int, keys[:16]))) == 16
    assert np.array_equal(keys[:16], keys[16:32])
    assert (s.exp[0] == W.EXP_ABSENT).all()  # nothing inserted: every read misses


# ============================================================== key values


def test_key_of_is_distinct_and_salted():
    k = W.key_of(np.arange(1 << 16), 123)
    assert len(np.unique(k)) == 1 << 16
    assert not np.array_equal(k, W.key_of(np.arange(1 << 16), 124))
    # spread over the high and low bits alike
    assert 0.45 < np.mean((k >> np.uint64(63)) == 1) < 0.55
    assert 0.45 < np.mean((k & np.uint64(1)) == 1) < 0.55


def test_tags_have_bit_63_and_no_stamp_bits():
    t = W.tag_of(W.key_of(np.arange(1000), 1))
    assert np.all(t >> np.uint64(63) == 1)
    assert np.all(t & W.STAMP_MASK == 0)


# ============================================================== zipf


def _ks(freq, p):
    """Kolmogorov distance between two distributions over ranks."""
    return float(np.abs(np.cumsum(freq) - np.cumsum(p)).max())


#: Gray et al.'s closed form is exact for ranks 0 and 1 and approximates the CDF beyond
#: (YCSB's generator has the same error): measured Kolmogorov distance to exact Zipf
#: 0.013-0.022 over theta 0.5..2 and n 1e3..1e5. Sampling noise alone is ~0.002.
GRAY_KS = 0.025


@pytest.mark.parametrize("theta", [0.0, 0.5, 0.99, 1.0, 1.2, 1.5])
def test_zipf_frequencies_match_theory(theta):
    n, size = 1000, 400_000
    rng = np.random.default_rng(7)
    r = W.zipf_ranks(rng, n, theta, size)
    assert r.min() >= 0 and r.max() < n
    f = np.bincount(r, minlength=n) / size
    p = W.zipf_probabilities(n, theta)
    # ranks 0 and 1 are exact in Gray's generator (and in the exact path): 5 sigma
    for i in (0, 1):
        sd = math.sqrt(p[i] * (1 - p[i]) / size)
        assert abs(f[i] - p[i]) < 5 * sd + 1e-12, (i, f[i], p[i])
    exact = theta in (0.0, 1.0)  # uniform, and theta = 1 sampled from the exact CDF
    assert _ks(f, p) < (0.005 if exact else GRAY_KS)
    # the tail decays with slope -theta on log-log axes (ranks 10..n/2, binned)
    if theta > 0:
        edges = np.unique(np.logspace(1, math.log10(n / 2), 12).astype(int))
        mass = np.add.reduceat(f, edges)[:-1] / np.diff(edges)
        theory = np.add.reduceat(p, edges)[:-1] / np.diff(edges)
        mid = np.sqrt(edges[:-1] * edges[1:])
        slope = np.polyfit(np.log(mid), np.log(mass), 1)[0]
        slope_t = np.polyfit(np.log(mid), np.log(theory), 1)[0]
        assert slope == pytest.approx(slope_t, abs=0.1)


def test_zipf_theta_matters():
    """Negative control for the test above: a skewed theory does not fit uniform ranks,
    nor theta = 0.99 ranks the theory of theta = 1.2."""
    n = 1000
    f = np.bincount(W.zipf_ranks(np.random.default_rng(8), n, 0.0, 200_000), minlength=n) / 200_000
    assert _ks(f, W.zipf_probabilities(n, 0.99)) > 0.3
    f = np.bincount(W.zipf_ranks(np.random.default_rng(8), n, 0.99, 200_000), minlength=n) / 200_000
    assert _ks(f, W.zipf_probabilities(n, 1.2)) > 2 * GRAY_KS


def test_zipf_near_one_is_continuous():
    """theta = 1 itself (exact sampling) and its neighbours (closed form) agree with the
    theory of theta = 1 and with each other."""
    n, size = 5000, 300_000
    p = W.zipf_probabilities(n, 1.0)
    for th in (1.0, 1.0 - 2e-6, 1.0 + 2e-6, 0.9999, 1.0001):
        f = np.bincount(W.zipf_ranks(np.random.default_rng(10), n, th, size), minlength=n) / size
        assert _ks(f, p) < GRAY_KS, th
        assert f[0] == pytest.approx(p[0], rel=0.03)


def test_zipf_small_and_bad():
    rng = np.random.default_rng(11)
    assert set(W.zipf_ranks(rng, 1, 0.99, 100)) == {0}
    r = W.zipf_ranks(rng, 2, 0.99, 100_000)
    assert set(r) == {0, 1} and np.mean(r == 0) == pytest.approx(1 / (1 + 2 ** -0.99), abs=0.01)
    with pytest.raises(ValueError):
        W.zipf_ranks(rng, 10, -0.5, 10)
    with pytest.raises(ValueError):
        W.zipf_ranks(rng, 0, 0.5, 10)


def test_hotset_shares():
    rng = np.random.default_rng(12)
    idx = W.hotset_indices(rng, 10_000, 0.9, 0.01, 200_000)
    hot = idx < 100
    assert hot.mean() == pytest.approx(0.9, abs=0.005)
    assert len(np.unique(idx[hot])) == 100 and idx.max() < 10_000


def test_shared_fresh_inserts_unique_and_latest_reads_recent():
    s = W.shared_streams(W.WORKLOADS["ycsb_d"].mix, "latest", 4, 20_000, 10_000, seed=13)
    ins = s.ops == W.K_INSERT
    fresh = s.keys[ins]
    assert len(np.unique(fresh)) == len(fresh)
    assert not np.isin(fresh, s.prefill_keys).any()
    assert len(s.universe) == 10_000 + len(fresh)
    # under "latest" most reads hit the newest keys: 1% of the records get a large share
    newest = W.key_of(np.arange(10_000 - 100, 10_000 + len(fresh)), W.salt_of(13, 0))
    reads = s.keys[s.ops == W.K_GET]
    assert np.isin(reads, newest).mean() > 0.3


def test_streams_are_deterministic_per_seed():
    a = W.shared_streams(W.WORKLOADS["ycsb_a"].mix, "zipf", 2, 1000, 500, seed=14)
    b = W.shared_streams(W.WORKLOADS["ycsb_a"].mix, "zipf", 2, 1000, 500, seed=14)
    c = W.shared_streams(W.WORKLOADS["ycsb_a"].mix, "zipf", 2, 1000, 500, seed=15)
    assert np.array_equal(a.keys, b.keys) and np.array_equal(a.ops, b.ops)
    assert not np.array_equal(a.keys, c.keys)


def test_grow_streams_insert_fresh_disjoint_keys_and_end_holding_all():
    wl = W.WORKLOADS["grow"]
    s = W.bustle_streams(wl.mix, 3, 4000, 16, wl.prefill, seed=9)
    assert len(s.prefill_keys) == 0
    assert (s.ops == W.K_INSERT).all() and (s.exp == W.EXP_ABSENT).all()
    keys = s.keys.ravel()
    assert len(np.unique(keys)) == keys.size  # fresh, and disjoint between threads
    assert sorted(map(int, s.final_keys)) == sorted(map(int, keys))  # the map ends holding every key
