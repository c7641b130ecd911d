"""Sanity benchmark: single-thread get throughput of every baseline against ``plain``.

    python -m seqmap_nb.baselines.bench [--n 262144] [--repeat 5] [--maps dashmap,cas,...]

One table of `n` int64 keys (random, distinct) per map, built untimed at load <= 0.5;
then, for each map, a jitted loop calls ``m.get(k)`` for every key in a shuffled order
(the way the harness drives maps: one nogil kernel, the map passed in), timed with
``perf_counter`` after a warm-up call that compiles it. Every run checks its result (the
sum of the values found must be the known total: a benchmark of a wrong map is worthless).
``dict_lock`` is driven from a Python loop, as the harness drives it.

Besides the registered maps, ``table-only`` runs dashmap's kernels on its shard tables
without taking the locks: dashmap minus table-only is what the reader-writer lock costs.
Printed: median ns per get, Mget/s, and the ratio to ``plain`` (or, if ``plain`` cannot be
imported, to ``table-only``). Timings on a shared machine are noisy: compare ratios
within one run.
"""
import argparse
import statistics
import sys
import time

import numba
import numpy as np

from . import REGISTRY, get_spec, make_map
from . import _table as T
from . import dashmap as D
from .._hash import mix64
from ..config import LINE_WORDS


@numba.njit(nogil=True)
def get_loop(m, keys):
    s = 0
    for i in range(keys.shape[0]):
        v = m.get(keys[i])
        if v is not None:
            s += v
    return s


@numba.njit(nogil=True)
def table_only_loop(hdr, keys):
    """dashmap's lookup without the shard lock: the table's own cost."""
    s = 0
    sw = hdr[D.H_SW]
    for i in range(keys.shape[0]):
        k0 = numba.uint64(keys[i])
        h = mix64(k0)
        b = D._shard(hdr, h)
        buf = T.buffer(hdr, b, sw)
        j = T.find(buf, hdr[b + T.M_CAP] - numba.uint64(1), sw, 1, h, k0, T.NO_WORDS, 0)
        if j >= 0:
            s += numba.int64(buf[numba.uint64(j) * sw + numba.uint64(2)])
    return s


def py_get_loop(m, keys):
    s = 0
    for k in keys.tolist():
        v = m.get(k)
        if v is not None:
            s += int(v)
    return s


def _time(fn, repeat):
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = fn()
        out.append((time.perf_counter() - t0, r))
    return out


def run(n=1 << 18, repeat=5, maps=None, out=sys.stdout):
    rng = np.random.default_rng(12345)
    keys = np.unique(rng.integers(-(2**62), 2**62, int(n * 1.1), dtype=np.int64))[:n]
    rng.shuffle(keys)
    vals = np.arange(n, dtype=np.int64)
    probe = rng.permutation(keys)
    expect = int(vals.sum())
    names = maps or [m for m in REGISTRY if m not in ("seqmap",)] + ["seqmap"]
    rows = []
    for name in names + ["table-only"]:
        if name == "table-only":
            m = make_map("dashmap", np.int64, np.int64, capacity=2 * n)
            m.insert_many(keys, vals)
            table_only_loop(m._hdr, probe[:100])
            fn, desc = (lambda m=m: table_only_loop(m._hdr, probe)), "dashmap's shard tables, no lock taken"
        else:
            spec = get_spec(name)
            if not spec.available():
                print(f"  {name}: skipped ({spec.factory} not importable)", file=out)
                continue
            m = make_map(name, np.int64, np.int64, capacity=2 * n)
            m.insert_many(keys, vals)
            desc = spec.description
            if spec.njit:
                get_loop(m, probe[:100])  # compile outside the clock
                fn = lambda m=m: get_loop(m, probe)
            else:
                py_get_loop(m, probe[:100])
                fn = lambda m=m: py_get_loop(m, probe)
        runs = _time(fn, repeat if name != "dict_lock" else max(1, repeat // 2))
        for _, r in runs:
            if r != expect:
                raise AssertionError(f"{name}: lookups returned sum {r}, expected {expect}: the map is wrong")
        t = statistics.median(x for x, _ in runs)
        rows.append((name, t / n * 1e9, n / t / 1e6, desc))
    ref = dict((r[0], r[1]) for r in rows)
    base = "plain" if "plain" in ref else "table-only"
    print(f"single-thread get, {n} int64 keys at load <= 0.5, median of {repeat} "
          f"(numba {numba.__version__}); ratio = ns/get over {base}'s", file=out)
    print(f"{'map':<12} {'ns/get':>8} {'Mget/s':>8} {'ratio':>7}  design", file=out)
    for name, ns, mops, desc in rows:
        print(f"{name:<12} {ns:8.1f} {mops:8.2f} {ns / ref[base]:7.2f}  {desc}", file=out)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1 << 18, help="keys in each table (default 262144)")
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions (median reported)")
    p.add_argument("--maps", default="", help="comma-separated registry names (default: all)")
    a = p.parse_args(argv)
    run(a.n, a.repeat, [m for m in a.maps.split(",") if m] or None)


if __name__ == "__main__":
    main()
