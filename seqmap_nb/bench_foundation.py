"""Foundation benchmarks: false sharing made visible, and what a seqlocked cell costs.

``seqmap-nb foundation [--quick] [--json PATH]`` (or ``python -m seqmap_nb.bench_foundation``)
prints, in one run:

1. **False sharing.** Two threads each bump their *own* counter N times, once with the
   two counters in adjacent words of one cache line and once 128 bytes apart (their own
   line pair, ``config.CACHE_LINE``); both with an atomic ``fetch_add`` and with plain
   stores (a relaxed load and store: one ``mov`` each, no ``lock`` prefix). The ratio
   adjacent / padded is the price of sharing a line that neither thread shares data on.
2. **Single-thread cell cost.** ``arr.get(i)`` / ``arr.set(i, v)`` on uint64 cells from
   ``@njit`` code against the same loop over a plain numpy array, both over the same
   number of cells (in cache), in the same run. The plain loop is the speed reference:
   LLVM vectorises it, whereas every seqlocked access is a header load, a generation
   check and two sequence loads (get) or a CAS and a release store (set). A third row
   reads the cells in a random permutation order, where the plain loop cannot be
   vectorised either: that ratio is the per-access cost of the seqlock.
3. **Python fast path.** One Python-level ``arr.get`` / ``arr.set`` (one kernel call
   each) against numpy's scalar ``a[i]`` / ``a[i] = v``.

Every figure is the median of several repetitions after a warm-up (compilation is
reported apart); timings are taken inside the kernels with ``CLOCK_MONOTONIC`` so thread
start-up and dispatch are not timed. Timings on a shared machine are noisy: read the
ratios, which compare measurements taken moments apart.
"""
import argparse
import os
import platform
import statistics
import sys
import threading
import time

import numba
import numpy as np

from ._unsafe import atomic_fetch_add, atomic_load, atomic_store, backoff, monotonic_ns
from .config import JIT, LINE_WORDS
from .seqarray import SeqArray

# ------------------------------------------------------------------ false sharing


@numba.njit(**JIT)
def _bump_counter(counters, idx, n, atomic, gate, threads, times, tid):
    """n increments of counters[idx]; records this thread's start and end times."""
    atomic_fetch_add(gate, 0, 1, "acq_rel")
    step = 0
    while atomic_load(gate, 0, "acquire") < threads:  # start together
        step = backoff(step)
    t0 = monotonic_ns()
    if atomic:
        for _ in range(n):
            atomic_fetch_add(counters, idx, 1, "relaxed")
    else:
        for _ in range(n):  # a plain load and store each time (relaxed: nothing fused)
            atomic_store(counters, idx, atomic_load(counters, idx, "relaxed") + 1, "relaxed")
    times[2 * tid] = t0
    times[2 * tid + 1] = monotonic_ns()


def _aligned_words(n):
    raw = np.zeros(n + LINE_WORDS, np.int64)
    off = (-raw.ctypes.data % (LINE_WORDS * 8)) // 8
    return raw[off : off + n]


def false_sharing_once(n, padded, atomic, threads=2):
    """Seconds for `threads` threads (1 or 2) to do n increments each on their own counter."""
    counters = _aligned_words(4 * LINE_WORDS)
    gate = np.zeros(2, np.int64)
    times = np.zeros(4, np.int64)
    idx = (0, LINE_WORDS) if padded else (0, 1)
    ts = [
        threading.Thread(target=_bump_counter, args=(counters, idx[t], n, atomic, gate, threads, times, t))
        for t in range(threads)
    ]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(counters[idx[t]] == n for t in range(threads))  # each thread owns its counter
    return (times[1 : 2 * threads : 2].max() - times[0 : 2 * threads : 2].min()) / 1e9


def false_sharing(n, reps):
    _bump_counter(_aligned_words(32), 0, 1, True, np.ones(2, np.int64), 1, np.zeros(4, np.int64), 0)
    _bump_counter(_aligned_words(32), 0, 1, False, np.ones(2, np.int64), 1, np.zeros(4, np.int64), 0)
    out = {}
    for atomic in (True, False):
        kind = "fetch_add" if atomic else "plain store"
        adj, pad, solo = [], [], []
        for _ in range(reps):  # interleaved, so all three see the same machine load
            adj.append(false_sharing_once(n, False, atomic))
            pad.append(false_sharing_once(n, True, atomic))
            solo.append(false_sharing_once(n, True, atomic, threads=1))
        a, p, o = statistics.median(adj), statistics.median(pad), statistics.median(solo)
        # padded / solo near 1: the two threads really ran on two cores at once; near 2:
        # the scheduler time-sliced them on one core and nothing could be shared falsely
        out[kind] = dict(adjacent_s=a, padded_s=p, solo_s=o, ratio=a / p, parallelism=2 * o / p,
                         adjacent_ns_per_op=a / n * 1e9, padded_ns_per_op=p / n * 1e9,
                         solo_ns_per_op=o / n * 1e9)
    return out


# ------------------------------------------------------------------ single-thread cell cost


@numba.njit(**JIT)
def _sa_set(arr, n, reps):
    t0 = monotonic_ns()
    for r in range(reps):
        for i in range(n):
            arr.set(i, numba.uint64(i + r))
    return monotonic_ns() - t0


@numba.njit(**JIT)
def _sa_get(arr, n, reps):
    t0 = monotonic_ns()
    s = numba.uint64(0)
    for r in range(reps):
        for i in range(n):
            s += arr.get(i)
    return monotonic_ns() - t0, s


@numba.njit(**JIT)
def _np_set(a, n, reps):
    t0 = monotonic_ns()
    for r in range(reps):
        for i in range(n):
            a[i] = numba.uint64(i + r)
    return monotonic_ns() - t0


@numba.njit(**JIT)
def _np_get(a, n, reps):
    t0 = monotonic_ns()
    s = numba.uint64(0)
    for r in range(reps):
        for i in range(n):
            s += a[i]
    return monotonic_ns() - t0, s


@numba.njit(**JIT)
def _sa_get_idx(arr, idx, reps):
    t0 = monotonic_ns()
    s = numba.uint64(0)
    for r in range(reps):
        for k in range(idx.shape[0]):
            s += arr.get(idx[k])
    return monotonic_ns() - t0, s


@numba.njit(**JIT)
def _np_get_idx(a, idx, reps):
    t0 = monotonic_ns()
    s = numba.uint64(0)
    for r in range(reps):
        for k in range(idx.shape[0]):
            s += a[idx[k]]
    return monotonic_ns() - t0, s


def cell_cost(n, reps, trials):
    arr = SeqArray(np.uint64, capacity=n)
    a = np.zeros(n, np.uint64)
    t = time.perf_counter()
    _sa_set(arr, n, 1), _sa_get(arr, n, 1), _np_set(a, n, 1), _np_get(a, n, 1)
    warm_s = time.perf_counter() - t
    idx = np.random.default_rng(1).permutation(n).astype(np.int64)
    _sa_get_idx(arr, idx, 1), _np_get_idx(a, idx, 1)
    rows = {"set": ([], []), "get": ([], []), "get, random order": ([], [])}
    for _ in range(trials):
        ns, s1 = _sa_get_idx(arr, idx, reps)
        rows["get, random order"][0].append(ns)
        ns, s2 = _np_get_idx(a, idx, reps)
        rows["get, random order"][1].append(ns)
        assert s1 == s2
        rows["set"][0].append(_sa_set(arr, n, reps))
        rows["set"][1].append(_np_set(a, n, reps))
        ns, s1 = _sa_get(arr, n, reps)
        rows["get"][0].append(ns)
        ns, s2 = _np_get(a, n, reps)
        rows["get"][1].append(ns)
        assert s1 == s2  # same data, same sum: the loops did the same work
    out = {"warmup_s": warm_s}
    for op, (sa, npl) in rows.items():
        s, p = statistics.median(sa) / (n * reps), statistics.median(npl) / (n * reps)
        out[op] = dict(seqarray_ns=s, numpy_ns=p, ratio=s / p)
    return out


def python_path(calls):
    arr = SeqArray(np.uint64, capacity=1024)
    a = np.zeros(1024, np.uint64)
    arr.set(1, 5)
    arr.get(1)
    res = {}
    for name, fn in [
        ("SeqArray.set", lambda: arr.set(1, 5)),
        ("numpy a[i] = v", lambda: a.__setitem__(1, 5)),
        ("SeqArray.get", lambda: arr.get(1)),
        ("numpy a[i]", lambda: a[1]),
    ]:
        best = []
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            best.append((time.perf_counter() - t) / calls * 1e9)
        res[name] = min(best)
    return res


# ------------------------------------------------------------------ report


def _metadata():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return dict(cpu=cpu, cores=os.cpu_count(), numba=numba.__version__, numpy=np.__version__,
                loadavg_1min=round(load, 2))


def add_arguments(p):
    """The command's options (shared by ``seqmap-nb foundation`` and ``python -m``)."""
    p.add_argument("--quick", action="store_true",
                   help="small sizes: a smoke run (the ratios are then rough)")
    p.add_argument("--json", metavar="PATH", help="also write every figure as JSON to PATH")
    return p


def parser(prog="seqmap-nb foundation"):
    return add_arguments(argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        epilog="Full size takes a few seconds on a 2-core VM (about 7 s on a first run, "
               "compilation included); every figure is the median of several repetitions."))


def run(quick=False):
    """Run all three benchmarks, print them, and return the figures as a dict."""
    n_fs, reps_fs = (200_000, 3) if quick else (5_000_000, 7)
    n_cells, reps_cells, trials = (1 << 12, 20, 3) if quick else (1 << 14, 200, 7)
    calls = 20_000 if quick else 200_000
    meta = _metadata()
    print(f"# seqmap_nb foundation benchmarks ({'quick' if quick else 'full'})")
    print("# " + ", ".join(f"{k}={v}" for k, v in meta.items()))

    fs = false_sharing(n_fs, reps_fs)
    print(f"\nfalse sharing: 2 threads x {n_fs} increments of their own counter (median of {reps_fs})")
    for kind, r in fs.items():
        print(f"  {kind:12s} adjacent {r['adjacent_ns_per_op']:7.2f} ns/op   padded {r['padded_ns_per_op']:7.2f} ns/op"
              f"   adjacent/padded = {r['ratio']:.2f}x   (1 thread alone {r['solo_ns_per_op']:.2f} ns/op:"
              f" parallel speed-up when padded {r['parallelism']:.2f} of 2)")

    cc = cell_cost(n_cells, reps_cells, trials)
    print(f"\nsingle thread, njit, uint64 cells: {n_cells} cells x {reps_cells} passes (median of {trials};"
          f" warm-up incl. compile {cc['warmup_s']:.2f} s)")
    for op in ("get", "set", "get, random order"):
        r = cc[op]
        print(f"  {op + ':':18s} SeqArray {r['seqarray_ns']:6.2f} ns/op   numpy loop {r['numpy_ns']:6.2f} ns/op"
              f"   SeqArray/numpy = {r['ratio']:.1f}x")

    py = python_path(calls)
    print(f"\nPython-level scalar calls (best of 3 x {calls}):")
    for name, ns in py.items():
        print(f"  {name:16s} {ns:7.0f} ns/call")
    return dict(meta=meta, false_sharing=fs, cell_cost=cc, python_path=py)


def main(argv=None):
    """Run from the command line; returns the exit status (0)."""
    args = parser().parse_args(argv)
    figures = run(quick=args.quick)
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2, default=float)
        print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
