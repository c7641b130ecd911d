"""Workloads: operation mixes, key distributions, and the per-thread operation streams.

Everything a benchmark run executes is generated here, *before* the clock starts
(compilation and key generation in the clock are how benchmarks lie): one stream per thread of numpy arrays (kernel op code, key, value, expected
outcome) that the runner's kernel walks front to back. Generation is vectorised numpy or
cached njit, so it costs little of a sweep's time budget.

Mixes
=====
Percentages of read / insert / remove / update / upsert (and ``rmw`` for YCSB F):

============================  ====================  ==============================
name                          source                read/insert/remove/update/upsert
============================  ====================  ==============================
``read_heavy``                conc-map-bench        98 / 1 / 1 / 0 / 0
``exchange``                  conc-map-bench        10 / 40 / 40 / 10 / 0
``rapid_grow``                conc-map-bench        5 / 80 / 5 / 10 / 0
``bustle_read_heavy``         bustle preset         94 / 2 / 1 / 3 / 0
``insert_heavy``              bustle preset         10 / 80 / 0 / 10 / 0
``update_heavy``              bustle preset         35 / 5 / 5 / 50 / 5
``uniform``                   bustle preset         20 / 20 / 20 / 20 / 20
``ycsb_a``                    YCSB                  50 read / 50 update
``ycsb_b``                    YCSB                  95 read / 5 update
``ycsb_c``                    YCSB                  100 read
``ycsb_d``                    YCSB                  95 read / 5 insert, "latest" keys
``ycsb_f``                    YCSB                  50 read / 50 read-modify-write
``grow``                      this harness          0 / 100 / 0 / 0 / 0
============================  ====================  ==============================

``grow`` measures growth on purpose: every thread inserts fresh keys (disjoint per
thread, bustle semantics) into a map built at the map's own default (small) capacity,
``ops`` inserts in all, so the map ends holding ``ops`` entries and every doubling happens
inside the clock (``Workload.default_capacity``). Elsewhere a 75% prefill of a map sized
for the run measures reads and churn, not a resize.

A custom mix is a dict of percentages over ``read, insert, remove, update, upsert, rmw``
summing to 100 (missing names are 0). As in bustle, the mix becomes a pattern of 100
operations (or 10 000 for fractional percentages) shuffled once per run and cycled by
every thread.

Operation meanings: *read* = ``get``; *insert* = insert a key that is not in the map (a
fresh key); *remove* = ``remove``; *update* = overwrite the value of a key that is present;
*upsert* = insert-or-overwrite; *rmw* (YCSB F's read-modify-write) = ``add(k, 1)``, one
atomic read-modify-write.

Key semantics
=============
``bustle`` (the conc-map-bench and bustle mixes; bustle's ``run_thread`` reproduced)
    Each thread owns a disjoint sequence of ``nkeys`` random 64-bit keys (``nkeys`` a power
    of two: enough for the prefill plus every insert the run can make). A prefill fraction
    of the *capacity* is inserted untimed (0.75 for read_heavy and exchange, 0 for
    rapid_grow and bustle's presets), split evenly over the threads. Counters per thread:
    ``insert_seq`` (next fresh key), ``erase_seq`` (oldest live key), ``find_seq`` (an LCG
    over ``[0, nkeys)`` with ``a = nkeys/2 + 1, c = nkeys/4 - 1``: full period, so reads
    visit keys not yet inserted or already removed and many miss). Insert takes
    ``keys[insert_seq++]``; remove takes ``keys[erase_seq++]`` (or a ``find_seq`` key when
    the thread holds none); read/update use ``keys[find_seq]``; upsert uses
    ``keys[min(find_seq, insert_seq)]``. Because each thread's keys are its own, its
    operations on them are sequential, so the result of *every* operation and the final
    state are known exactly: the generator computes them (an expected hit/miss per op and
    the exact value a hit must return), the kernel counts disagreements, and the runner
    compares the final table with the expected one. An update of an absent key is a
    lookup (``contains``), as bustle's ``update`` returns false without inserting.

``uniform`` / ``zipf`` / ``hotset`` / ``latest`` (shared key space, contention studies)
    ``records`` keys (``prefill`` of the capacity, default 0.5) are loaded untimed; every
    thread draws its keys from all of them. ``zipf``: YCSB's Zipfian generator (Gray et
    al., "Quickly generating billion-record synthetic databases", SIGMOD 1994) with
    exponent ``theta`` (default 0.99; 0 is uniform; any theta >= 0 works: the closed form
    holds for theta != 1; for ``|theta - 1| < 1e-6``, where it divides by ``1 - theta``,
    and for tables of <= 2 keys, ranks are drawn by exact inverse-CDF sampling from the
    cumulative ``1/i**theta`` table instead). Rank ``r`` is the key of index ``r``; key
    values are a bijective 64-bit mix of the index, so popular ranks are already scattered
    over the hash space (YCSB's "scrambled" step, which hashes the rank into the key
    space, is built in; unlike YCSB's FNV-mod-n scramble no two ranks merge, so the
    measured frequencies follow the theory exactly). ``hotset``: a fraction ``hot_ops``
    of the operations pick uniformly among the first ``hot_keys`` fraction of the keys,
    the rest uniformly among the others (YCSB's hotspot generator). ``latest`` (YCSB D):
    reads pick ``newest - Z``, Z Zipfian over the records, ``newest`` the most recent
    insert as this thread sees it (its own inserts times the thread count: threads insert
    at about the same rate), so reads chase recent inserts and some miss. Inserts take
    fresh indices past the records, interleaved by thread (``records + j*T + t``), so no
    two threads insert the same fresh key. Update and upsert are ``insert`` (every loaded
    key is present; with removes in the mix an update may re-insert a removed key: the
    interface has no atomic update-if-present), rmw is ``add(k, 1)``.

Values encode their key
=======================
Every value written is ``tag(key) | stamp``: the high 32 bits are a hash of the key (bit
63 always set, so never 0), the low 32 bits a stamp (the op index + 1 for overwrites, 0
for loads and fresh inserts, +1 per rmw). A read of any key can check that the value
belongs to that key, in any key mode; in bustle mode the expected value is exact.

Load-factor sweeps: with ``load_factor`` set, the prefill (bustle) or the record count
(shared) is ``load_factor`` times the map's real capacity, on a table built not to grow.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field

import numba
import numpy as np

from .config import JIT

# ------------------------------------------------------------------ operation names

#: workload-level operations, in the order of the mix JSON
OP_NAMES = ("read", "insert", "remove", "update", "upsert", "rmw")
READ, INSERT, REMOVE, UPDATE, UPSERT, RMW = range(6)
#: the five percentages every mix JSON carries (rmw added when non-zero)
MIX_COLUMNS = OP_NAMES[:5]

#: what the kernel does per op (stream op codes)
K_GET, K_INSERT, K_REMOVE, K_ADD, K_CONTAINS = range(5)
K_NAMES = ("get", "insert", "remove", "add", "contains")

#: expected outcome codes (``exp`` stream): key must be absent / present / either
EXP_ABSENT, EXP_PRESENT, EXP_ANY = 0, 1, -1

#: value layout: high 32 bits identify the key, low 32 bits are the stamp
TAG_MASK = np.uint64(0xFFFFFFFF00000000)
STAMP_MASK = np.uint64(0x00000000FFFFFFFF)
ALL_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)

KEY_KINDS = ("bustle", "uniform", "zipf", "hotset", "latest")
SHARED_KINDS = ("uniform", "zipf", "hotset", "latest")


def _mix(read=0, insert=0, remove=0, update=0, upsert=0, rmw=0):
    return dict(read=read, insert=insert, remove=remove, update=update, upsert=upsert, rmw=rmw)


@dataclass(frozen=True)
class Workload:
    """A named workload: its mix, its default key semantics and prefill."""

    name: str
    mix: dict
    keys: str
    prefill: float
    source: str
    description: str = field(default="", compare=False)
    #: build the map at the map's own default capacity (``capacity`` not passed), not at
    #: the run's: the table grows from small inside the clock
    default_capacity: bool = False


WORKLOADS = {
    w.name: w
    for w in (
        Workload("read_heavy", _mix(98, 1, 1, 0, 0), "bustle", 0.75, "conc-map-bench",
                 "98% reads over a 75%-full table, a trickle of inserts and removes"),
        Workload("exchange", _mix(10, 40, 40, 10, 0), "bustle", 0.75, "conc-map-bench",
                 "inserts and removes in balance: constant size, heavy churn"),
        Workload("rapid_grow", _mix(5, 80, 5, 10, 0), "bustle", 0.0, "conc-map-bench",
                 "80% inserts from empty: the table resizes again and again"),
        Workload("bustle_read_heavy", _mix(94, 2, 1, 3, 0), "bustle", 0.0, "bustle",
                 "bustle's Mix::read_heavy"),
        Workload("insert_heavy", _mix(10, 80, 0, 10, 0), "bustle", 0.0, "bustle",
                 "bustle's Mix::insert_heavy"),
        Workload("update_heavy", _mix(35, 5, 5, 50, 5), "bustle", 0.0, "bustle",
                 "bustle's Mix::update_heavy"),
        Workload("uniform", _mix(20, 20, 20, 20, 20), "bustle", 0.0, "bustle",
                 "bustle's Mix::uniform"),
        Workload("ycsb_a", _mix(read=50, update=50), "zipf", 0.5, "YCSB",
                 "YCSB A: update heavy (session store)"),
        Workload("ycsb_b", _mix(read=95, update=5), "zipf", 0.5, "YCSB",
                 "YCSB B: read mostly (photo tagging)"),
        Workload("ycsb_c", _mix(read=100), "zipf", 0.5, "YCSB", "YCSB C: read only"),
        Workload("ycsb_d", _mix(read=95, insert=5), "latest", 0.5, "YCSB",
                 "YCSB D: read latest (status updates)"),
        Workload("ycsb_f", _mix(read=50, rmw=50), "zipf", 0.5, "YCSB",
                 "YCSB F: read-modify-write (user database)"),
        Workload("grow", _mix(insert=100), "bustle", 0.0, "this harness",
                 "fresh keys into a map at its default capacity: every doubling timed",
                 default_capacity=True),
    )
}

#: prefill (fraction of capacity loaded) of a custom mix in a shared key space
SHARED_PREFILL = 0.5


def validate_mix(mix):
    """A mix dict -> a complete dict of floats over OP_NAMES; ValueError if malformed.

    Accepts a dict of percentages (names from OP_NAMES, missing = 0) summing to 100, or a
    JSON string of one.
    """
    if isinstance(mix, str):
        try:
            mix = json.loads(mix)
        except ValueError as exc:
            raise ValueError(f"mix: not a JSON object: {mix!r}") from exc
    if not isinstance(mix, dict):
        raise ValueError(f"mix: expected a dict of percentages over {OP_NAMES}, got {type(mix).__name__}")
    unknown = sorted(set(mix) - set(OP_NAMES))
    if unknown:
        raise ValueError(f"mix: unknown operation name(s) {unknown}; known: {list(OP_NAMES)}")
    out = {}
    for name in OP_NAMES:
        v = mix.get(name, 0)
        try:
            v = float(v)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"mix: {name}={v!r} is not a number") from exc
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"mix: {name}={v!r} must be a finite percentage >= 0")
        out[name] = v
    total = sum(out.values())
    if abs(total - 100.0) > 1e-6:
        raise ValueError(f"mix: percentages must sum to 100, got {total:g} ({mix})")
    return out


def mix_json(mix):
    """The mix as the JSON string of the results schema (five columns; rmw when non-zero)."""
    mix = validate_mix(mix)
    d = {k: _num(mix[k]) for k in MIX_COLUMNS}
    if mix["rmw"]:
        d["rmw"] = _num(mix["rmw"])
    return json.dumps(d)


def _num(v):
    return int(v) if float(v).is_integer() else float(v)


def op_pattern(mix, rng):
    """bustle's op mix: the percentages as a shuffled pattern of 100 ops (10 000 if fractional)."""
    mix = validate_mix(mix)
    for length in (100, 10_000):
        counts = [mix[n] * length / 100.0 for n in OP_NAMES]
        if all(abs(c - round(c)) < 1e-6 for c in counts):
            break
    else:
        raise ValueError(f"mix: percentages must be multiples of 0.01, got {mix}")
    pattern = np.repeat(np.arange(len(OP_NAMES), dtype=np.int8), [int(round(c)) for c in counts])
    rng.shuffle(pattern)
    return pattern


def needs_of(mix, keys):
    """Capabilities a mix needs from a map (for ``MapSpec.check``)."""
    mix = validate_mix(mix)
    needs = set()
    if mix["remove"] > 0 or (keys == "bustle" and mix["remove"] > 0):
        needs.add("remove")
    if mix["rmw"] > 0:
        needs.add("add")
    if mix["insert"] > 0 or mix["upsert"] > 0:
        needs.add("insert")
    return needs


# ------------------------------------------------------------------ key values


def key_of(index, salt):
    """The 64-bit key of `index` in the key namespace `salt`: splitmix64 of the index.

    A bijection on uint64 (golden-ratio increment, then two xor-shift-multiply rounds and
    a final xor-shift, each invertible), so distinct indices give distinct keys, spread
    over the whole 64-bit range (and over every hash bit the maps use).
    """
    x = np.asarray(index, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def tag_of(keys):
    """High 32 bits that identify a key in its value (bit 63 set: never 0)."""
    k = np.asarray(keys, dtype=np.uint64)
    x = (k ^ (k >> np.uint64(33))) * np.uint64(0x62A9D9ED799705F5)
    x = x ^ (x >> np.uint64(28))
    return (x | np.uint64(1 << 63)) & TAG_MASK


def salt_of(seed, stream):
    """A 64-bit key-namespace salt from the run seed (independent per `stream`)."""
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, np.uint64)[0])


# ------------------------------------------------------------------ Zipf (Gray et al. / YCSB)


@functools.lru_cache(maxsize=64)
def zeta(n, theta):
    """sum_{i=1..n} i**-theta (YCSB's zeta), summed in chunks; cached per (n, theta)."""
    total = 0.0
    chunk = 1 << 20
    for lo in range(1, n + 1, chunk):
        i = np.arange(lo, min(n, lo + chunk - 1) + 1, dtype=np.float64)
        total += float(np.sum(i ** -theta))
    return total


def zipf_probabilities(n, theta):
    """Exact Zipf probabilities of ranks 0..n-1: (i+1)**-theta / zeta(n, theta)."""
    p = np.arange(1, n + 1, dtype=np.float64) ** -float(theta)
    return p / p.sum()


#: below this distance from theta = 1, Gray's closed form (which divides by 1 - theta) is
#: replaced by exact inverse-CDF sampling
THETA_ONE_EPS = 1e-6


def zipf_ranks(rng, n, theta, size):
    """`size` Zipfian ranks in [0, n) (0 most popular), exponent theta >= 0.

    Gray et al.'s closed form as in YCSB's ``ZipfianGenerator``: ranks 0 and 1 exactly,
    the rest by inverting a continuous approximation of the CDF. Exact inverse-CDF
    sampling (a cumulative table and a binary search) where that form is undefined:
    ``|theta - 1| < THETA_ONE_EPS`` and ``n <= 2``.
    """
    n = int(n)
    theta = float(theta)
    if n < 1:
        raise ValueError(f"zipf: need at least one key, got n={n}")
    if not math.isfinite(theta) or theta < 0:
        raise ValueError(f"zipf: theta must be a finite number >= 0, got {theta}")
    if n <= 2 or abs(theta - 1.0) < THETA_ONE_EPS:
        cdf = np.cumsum(zipf_probabilities(n, theta))
        cdf[-1] = 1.0
        return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n - 1).astype(np.int64)
    zetan = zeta(n, theta)
    zeta2 = 1.0 + 0.5 ** theta
    alpha = 1.0 / (1.0 - theta)
    eta = (1.0 - (2.0 / n) ** (1.0 - theta)) / (1.0 - zeta2 / zetan)
    u = rng.random(size)
    uz = u * zetan
    with np.errstate(over="ignore", invalid="ignore"):
        r = n * np.power(eta * u - eta + 1.0, alpha)
    r = np.where(np.isfinite(r), r, n - 1)
    ranks = np.minimum(r, n - 1).astype(np.int64)
    ranks[uz < zeta2] = 1
    ranks[uz < 1.0] = 0
    return ranks


def hotset_indices(rng, n, hot_ops, hot_keys, size):
    """YCSB's hotspot generator: a `hot_ops` share of draws uniform over the first
    ``hot_keys * n`` indices (at least one), the rest uniform over the others."""
    if not (0.0 <= hot_ops <= 1.0) or not (0.0 < hot_keys <= 1.0):
        raise ValueError(f"hotset: need 0 <= hot_ops <= 1 and 0 < hot_keys <= 1, got {hot_ops}, {hot_keys}")
    nhot = min(n, max(1, int(round(hot_keys * n))))
    hot = rng.random(size) < hot_ops
    out = rng.integers(0, nhot, size, dtype=np.int64)
    if nhot < n:
        cold = rng.integers(nhot, n, size, dtype=np.int64)
        out = np.where(hot, out, cold)
    return out


# ------------------------------------------------------------------ streams


@dataclass
class Streams:
    """Pre-generated work of one run: row t of each 2-D array is thread t's stream.

    ``ops`` (uint8 kernel op codes K_*), ``keys`` and ``vals`` (uint64; for a get, the value
    expected back under ``vmask``; for an add, the delta), ``exp`` (int8 EXP_*), plus the
    untimed prefill (``prefill_keys``/``prefill_vals``) and what verification needs.
    """

    ops: np.ndarray
    keys: np.ndarray
    vals: np.ndarray
    exp: np.ndarray
    vmask: int
    lenient: bool
    prefill_keys: np.ndarray
    prefill_vals: np.ndarray
    keys_kind: str
    mix: dict
    # bustle: the exact final state; shared: the key universe and checks that apply
    final_keys: np.ndarray | None = None
    final_vals: np.ndarray | None = None
    universe: np.ndarray | None = None
    all_present: bool = False
    add_total: int | None = None
    counts: dict = field(default_factory=dict)

    @property
    def threads(self):
        return self.ops.shape[0]

    @property
    def ops_per_thread(self):
        return self.ops.shape[1]

    def slice(self, n):
        """The first `n` ops of every thread (the same prefill): for quick checks."""
        return Streams(self.ops[:, :n].copy(), self.keys[:, :n].copy(), self.vals[:, :n].copy(),
                       self.exp[:, :n].copy(), self.vmask, self.lenient, self.prefill_keys,
                       self.prefill_vals, self.keys_kind, self.mix)


def _next_pow2(x):
    return 1 << max(0, int(x - 1).bit_length())


@numba.njit(**JIT)
def _bustle_sim(pattern, ops_per_thread, nkeys, prefilled, keys, tags, ops, kkeys, kvals, kexp,
                live, value):
    """bustle's run_thread for every thread, recording what each op does and must return.

    keys/tags/live/value: [T, nkeys]; ops/kkeys/kvals/kexp: [T, ops_per_thread].
    Returns [T, 6] counts of each workload op actually issued.
    """
    T = keys.shape[0]
    P = pattern.shape[0]
    counts = np.zeros((T, 6), np.int64)
    a = nkeys // 2 + 1
    c = nkeys // 4 - 1
    mask = nkeys - 1
    for t in range(T):
        for j in range(prefilled):
            live[t, j] = True
            value[t, j] = tags[t, j]
        erase_seq = 0
        insert_seq = prefilled
        find_seq = 0
        for i in range(ops_per_thread):
            op = pattern[i % P]
            counts[t, op] += 1
            stamp = np.uint64((i + 1) & 0xFFFFFFFF)
            if op == 0:  # read
                j = find_seq
                find_seq = (a * find_seq + c) & mask
                ops[t, i] = 0
                kkeys[t, i] = keys[t, j]
                kexp[t, i] = 1 if live[t, j] else 0
                kvals[t, i] = value[t, j]
            elif op == 1:  # insert a fresh key
                j = insert_seq
                insert_seq += 1
                ops[t, i] = 1
                kkeys[t, i] = keys[t, j]
                kexp[t, i] = 1 if live[t, j] else 0  # 0 unless an upsert got there first
                v = tags[t, j] | stamp
                kvals[t, i] = v
                live[t, j] = True
                value[t, j] = v
            elif op == 2:  # remove the oldest live key (bustle: a find_seq key when none)
                if erase_seq == insert_seq:
                    j = find_seq
                    find_seq = (a * find_seq + c) & mask
                else:
                    j = erase_seq
                    erase_seq += 1
                ops[t, i] = 2
                kkeys[t, i] = keys[t, j]
                kexp[t, i] = 1 if live[t, j] else 0
                kvals[t, i] = value[t, j]
                live[t, j] = False
            elif op == 3:  # update: overwrite when present, else a lookup that misses
                j = find_seq
                find_seq = (a * find_seq + c) & mask
                kkeys[t, i] = keys[t, j]
                if live[t, j]:
                    v = tags[t, j] | stamp
                    ops[t, i] = 1
                    kexp[t, i] = 1
                    kvals[t, i] = v
                    value[t, j] = v
                else:
                    ops[t, i] = 4
                    kexp[t, i] = 0
                    kvals[t, i] = 0
            elif op == 4:  # upsert keys[min(find_seq, insert_seq)]
                j = min(find_seq, insert_seq)
                find_seq = (a * find_seq + c) & mask
                if j == insert_seq:
                    insert_seq += 1
                v = tags[t, j] | stamp
                ops[t, i] = 1
                kkeys[t, i] = keys[t, j]
                kexp[t, i] = 1 if live[t, j] else 0
                kvals[t, i] = v
                live[t, j] = True
                value[t, j] = v
            else:  # rmw: add(k, 1) on a find_seq key (inserts 1 when absent)
                j = find_seq
                find_seq = (a * find_seq + c) & mask
                ops[t, i] = 3
                kkeys[t, i] = keys[t, j]
                kexp[t, i] = 1 if live[t, j] else 0
                kvals[t, i] = 1
                value[t, j] = value[t, j] + np.uint64(1) if live[t, j] else np.uint64(1)
                live[t, j] = True
    return counts


def bustle_streams(mix, threads, ops_per_thread, capacity, prefill, seed):
    """Per-thread bustle streams (see the module docstring) with the exact final state."""
    mix = validate_mix(mix)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    rng = np.random.default_rng([int(seed), 1])
    pattern = op_pattern(mix, rng)
    prefill_total = int(capacity * prefill)
    prefilled = prefill_total // threads
    # bustle: keys for the prefill plus every insert/upsert the pattern can make, at least
    # the capacity, per thread rounded up to a power of two (the LCG needs one)
    P = len(pattern)
    cycles = -(-ops_per_thread // P)
    max_inserts_per_thread = cycles * int(np.count_nonzero((pattern == INSERT) | (pattern == UPSERT)))
    total_keys = max(capacity, max_inserts_per_thread * threads) + prefill_total
    nkeys = max(8, _next_pow2(-(-total_keys // threads)))
    nkeys = max(nkeys, _next_pow2(prefilled + max_inserts_per_thread + 1))
    if ops_per_thread >= 1 << 32:
        raise ValueError("ops per thread must stay below 2**32 (the value stamp is 32 bits)")
    salt = salt_of(seed, 0)
    idx = np.arange(threads * nkeys, dtype=np.uint64)
    keys = key_of(idx, salt).reshape(threads, nkeys)
    tags = tag_of(keys)
    ops = np.empty((threads, ops_per_thread), np.uint8)
    kkeys = np.empty((threads, ops_per_thread), np.uint64)
    kvals = np.empty((threads, ops_per_thread), np.uint64)
    kexp = np.empty((threads, ops_per_thread), np.int8)
    live = np.zeros((threads, nkeys), np.bool_)
    value = np.zeros((threads, nkeys), np.uint64)
    counts = _bustle_sim(pattern, ops_per_thread, nkeys, prefilled, keys, tags, ops, kkeys, kvals,
                         kexp, live, value)
    pkeys = keys[:, :prefilled].ravel().copy()
    pvals = tags[:, :prefilled].ravel().copy()
    # an rmw of an absent key inserts the bare delta (no tag): a later overwrite or remove
    # of that key sees a tagless previous value, which the lenient check accepts
    lenient = mix["rmw"] > 0
    return Streams(ops, kkeys, kvals, kexp, int(ALL_MASK), lenient, pkeys, pvals, "bustle", mix,
                   final_keys=keys[live].copy(), final_vals=value[live].copy(),
                   counts=dict(zip(OP_NAMES, counts.sum(axis=0).tolist())))


def shared_streams(mix, keys_kind, threads, ops_per_thread, records, seed, theta=0.99,
                   hot_ops=None, hot_keys=None):
    """Per-thread streams over one shared key space of `records` loaded keys."""
    mix = validate_mix(mix)
    if keys_kind not in SHARED_KINDS:
        raise ValueError(f"keys: expected one of {KEY_KINDS}, got {keys_kind!r}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    records = int(records)
    if records < 1:
        raise ValueError(f"a shared key space needs at least one loaded key (records={records}); "
                         "raise capacity or prefill")
    rng = np.random.default_rng([int(seed), 2])
    pattern = op_pattern(mix, rng)
    salt = salt_of(seed, 0)
    T, n = threads, ops_per_thread
    P = len(pattern)
    mops = np.resize(pattern, n)  # the pattern cycled, the same for every thread (bustle)
    is_ins = mops == INSERT
    ins_before = np.cumsum(is_ins) - is_ins  # inserts this thread made before op i
    ops = np.empty((T, n), np.uint8)
    kidx = np.empty((T, n), np.int64)
    for t in range(T):
        trng = np.random.default_rng([int(seed), 3, t])
        if keys_kind == "uniform":
            idx = trng.integers(0, records, n, dtype=np.int64)
        elif keys_kind == "zipf":
            idx = zipf_ranks(trng, records, theta, n)
        elif keys_kind == "hotset":
            idx = hotset_indices(trng, records, hot_ops, hot_keys, n)
        else:  # latest: newest as this thread sees it, minus a Zipfian distance
            newest = records - 1 + ins_before * T
            idx = np.maximum(newest - zipf_ranks(trng, records, theta, n), 0)
        fresh = records + ins_before * T + t
        kidx[t] = np.where(is_ins, fresh, idx)
    kop_of = np.array([K_GET, K_INSERT, K_REMOVE, K_INSERT, K_INSERT, K_ADD], np.uint8)
    ops[:] = kop_of[mops]
    keys = key_of(kidx.astype(np.uint64), salt)
    tags = tag_of(keys)
    stamp = (np.arange(1, n + 1, dtype=np.uint64) & STAMP_MASK)[None, :]
    overwrite = ((mops == UPDATE) | (mops == UPSERT))[None, :]
    vals = np.where(overwrite, tags | stamp, tags)  # get: tag to check; fresh insert: tag | 0
    vals = np.where((mops == RMW)[None, :], np.uint64(1), vals)
    exp = np.full((T, n), EXP_ANY, np.int8)
    if keys_kind != "latest":  # fresh inserts are unique and nobody else can touch them
        exp[:, is_ins] = EXP_ABSENT
    universe_idx = np.arange(records, dtype=np.int64)
    n_ins = int(is_ins.sum())
    if n_ins:
        universe_idx = np.concatenate([universe_idx, np.unique(kidx[:, is_ins])])
    universe = np.sort(key_of(universe_idx.astype(np.uint64), salt))
    pkeys = key_of(np.arange(records, dtype=np.uint64), salt)
    pvals = tag_of(pkeys)
    counts = {name: int(np.count_nonzero(mops == i)) * T for i, name in enumerate(OP_NAMES)}
    no_remove = mix["remove"] == 0
    add_total = None
    if mix["rmw"] > 0 and mix["update"] == 0 and mix["upsert"] == 0 and no_remove:
        add_total = counts["rmw"]  # every stamp starts at 0 and only rmw moves it
    return Streams(ops, keys, vals, exp, int(TAG_MASK), bool(mix["remove"] > 0 and mix["rmw"] > 0),
                   pkeys, pvals, keys_kind, mix, universe=universe, all_present=no_remove,
                   add_total=add_total, counts=counts)


def make_streams(mix, keys_kind, threads, ops_per_thread, capacity, prefill, seed, theta=0.99,
                 hot_ops=None, hot_keys=None):
    """Streams for any key kind: bustle prefills ``prefill * capacity`` keys split over the
    threads; a shared key space loads ``prefill * capacity`` records."""
    if keys_kind == "bustle":
        return bustle_streams(mix, threads, ops_per_thread, capacity, prefill, seed)
    return shared_streams(mix, keys_kind, threads, ops_per_thread, int(capacity * prefill), seed,
                          theta=theta, hot_ops=hot_ops, hot_keys=hot_keys)
