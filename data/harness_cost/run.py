"""Where a harness op's time goes: read_heavy, 1 thread, a table of 2^20 slots.

    python data/harness_cost/run.py [rounds] [ops]      # default 7 rounds of 4M ops

Every figure is ns per op, the median over interleaved rounds (each round measures every
row once, so a slow spell of a shared machine moves all rows alike):

1. ``micro-style get``: an njit loop of ``m.get(k)`` over keys that are all present, in a
   table at load 0.5 (what ``seqmap-nb micro`` times): the cheapest lookup there is.
2. ``bare get, read_heavy keys``: the same loop over the keys of the read_heavy stream, on
   the map the harness builds (capacity 2^20, prefilled to 0.75, many reads miss): the
   workload's own cost, no harness at all.
3. ``stream ops, direct``: the harness's per-op body (``_apply``: load op/key/value/
   expectation, dispatch on the op, check the outcome) in a plain njit loop, no threads;
   rows 1-3 reuse one map and one set of streams, built once; ``... on a new map and new
   streams`` builds both anew before each timing, as ``harness.run`` does.
4. ``harness, sampling off`` / ``harness, every 64th`` : ``harness.run`` itself (a thread, the
   start barrier, the kernel; sample_every 0 and 64).
5. ``null map, ...``: the same two with the null map: the harness alone.

Differences between rows say where the time goes: 1 -> 2 the workload (misses, fill),
2 -> 3 the per-op checks, 3 -> "new map" the memory being new, "new map" -> 4 the runner
(a thread, the start barrier), off -> 64 the sampling; row 5 is the part of row 4 that
is the harness's own work.
"""
import statistics
import sys
import time
import warnings

import numba
import numpy as np

warnings.filterwarnings("ignore")

from seqmap_nb import harness  # noqa: E402
from seqmap_nb import workloads as W  # noqa: E402
from seqmap_nb.seqmap import SeqMap  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 7
OPS = int(float(sys.argv[2])) if len(sys.argv) > 2 else 4_000_000
CAP = 1 << 20


@numba.njit(nogil=True)
def get_loop(m, keys):
    hits = 0
    for k in keys:
        if m.get(k) is not None:
            hits += 1
    return hits


@numba.njit(nogil=True)
def stream_loop(m, ops, keys, vals, exp, vmask, tmask, lenient):
    bad = 0
    for i in range(ops.shape[0]):
        if not harness._apply(m, ops[i], keys[i], vals[i], exp[i], vmask, tmask, lenient):
            bad += 1
    return bad


def main():
    s = W.bustle_streams(W.WORKLOADS["read_heavy"].mix, 1, OPS, CAP, 0.75, 0)
    m = SeqMap(np.uint64, np.uint64, capacity=CAP)
    m.insert_many(s.prefill_keys, s.prefill_vals)
    rng = np.random.default_rng(1)
    hits = np.unique(rng.integers(0, 2**63, CAP // 2 + 1024, dtype=np.uint64))[: CAP // 2]
    half = SeqMap(np.uint64, np.uint64, capacity=CAP)
    half.insert_many(hits, hits)
    probe = np.resize(rng.permutation(hits), OPS)
    ops, keys, vals, exp = s.ops[0], s.keys[0].copy(), s.vals[0], s.exp[0]
    vm, tm = np.uint64(s.vmask), np.uint64(W.TAG_MASK)

    def run(name, every):
        return lambda: harness.run(name, workload="read_heavy", threads=1, capacity=CAP, ops=OPS,
                                   repeats=1, sample_every=every)["ns_per_op"].iloc[0]

    def timed(fn):
        def f():
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) / OPS * 1e9
        return f

    def fresh_direct():
        # what harness.run does before its clock: new streams, a new map, the prefill
        f = W.bustle_streams(W.WORKLOADS["read_heavy"].mix, 1, OPS, CAP, 0.75, 0)
        fm = SeqMap(np.uint64, np.uint64, capacity=CAP)
        fm.insert_many(f.prefill_keys, f.prefill_vals)
        t0 = time.perf_counter()
        stream_loop(fm, f.ops[0], f.keys[0], f.vals[0], f.exp[0], vm, tm, False)
        return (time.perf_counter() - t0) / OPS * 1e9

    rows = {
        "1 micro-style get (all hits, load 0.5)": timed(lambda: get_loop(half, probe)),
        "2 bare get, read_heavy keys (load 0.75)": timed(lambda: get_loop(m, keys)),
        "3 stream ops, direct (_apply, no threads)": timed(
            lambda: stream_loop(m, ops, keys, vals, exp, vm, tm, False)),
        "3 ... on a new map and new streams": fresh_direct,
        "4 harness, seqmap, sampling off": run("seqmap", 0),
        "4 harness, seqmap, every 64th op": run("seqmap", 64),
        "5 harness, null map, sampling off": run("null", 0),
        "5 harness, null map, every 64th op": run("null", 64),
    }
    for fn in rows.values():  # compile and warm up outside the rounds
        fn()
    got = {k: [] for k in rows}
    for _ in range(ROUNDS):
        for k, fn in rows.items():
            got[k].append(fn())
    print(f"read_heavy, 1 thread, capacity {CAP:,}, {OPS:,} ops, median of {ROUNDS} interleaved "
          f"rounds [min-max], ns per op:")
    med = {}
    for k, v in got.items():
        med[k] = statistics.median(v)
        print(f"  {k:44s} {med[k]:7.1f}  [{min(v):.1f}-{max(v):.1f}]")
    for every in ("sampling off", "every 64th op"):
        n, sm = med[f"5 harness, null map, {every}"], med[f"4 harness, seqmap, {every}"]
        print(f"null / seqmap, {every}: {100 * n / sm:.0f}% (the harness's share of seqmap's ns/op)")


if __name__ == "__main__":
    main()
