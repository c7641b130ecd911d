"""Cold start: how long the first use of a map takes with an empty numba cache, and warm.

    python data/cold_start/run.py [--rounds R] [--bench] [--json PATH]

Each round runs the same script twice in fresh subprocesses that share one new, empty
``NUMBA_CACHE_DIR``: the first compiles every kernel it reaches (cold), the second loads
them from that cache (warm). Every step is timed from the call to its result:

1. ``import seqmap_nb`` (the package only: it compiles nothing);
2. first use of a dtype pair, the five calls of the issue: ``SeqMap(np.uint64,
   np.uint64)``, ``insert``, ``get``, ``del m[k]``, ``get_many``, ``insert_many``;
3. each further kind of operation on that map, one after another: ``add``, ``remove``,
   ``k in m``, ``len``, ``items``, ``add_many``, ``remove_many``, ``clear``; then a user's
   ``@njit`` function that loops over ``m.get`` and ``m.insert`` (numba compiles it in every
   session, since a function defined in ``-c`` code cannot be cached: the figure is that
   compile, which links the map's cached word code);
4. the same five calls for a second dtype pair of the same word layout (int64 -> float64)
   and for one of another layout (uint64 -> a 4-word record);
5. first use of a SeqArray (constructor, set, get).

``--bench`` also times ``seqmap-nb bench --quick`` with its own empty cache until its
kernels are compiled (the lines it prints per map), which takes a few minutes.

Goals of issue 18: cold first use of a dtype pair <= 3 s, each further kind of operation
<= 0.5 s, warm <= 0.3 s, ``seqmap-nb bench`` cold compile <= 30 s on 2 cores. Compile
notices are switched off in the subprocesses (they would only add lines). Compilation is
CPU-bound and single-threaded: on a shared machine it takes as long as the share of a core
it gets, so every round records the load average before and after it.
"""
import argparse
import datetime as _dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

CHILD = r'''
import json, sys, time
marks = []
t_start = time.perf_counter()
def step(name, fn):
    t0 = time.perf_counter()
    fn()
    marks.append((name, time.perf_counter() - t0))

step("import seqmap_nb", lambda: __import__("seqmap_nb"))
import numba
import numpy as np
from seqmap_nb import SeqArray, SeqMap

keys = np.arange(100, dtype=np.uint64)
box = {}

def five(prefix, kdt, vdt, k, v, ks, vs):
    step(prefix + "SeqMap()", lambda: box.__setitem__("m", SeqMap(kdt, vdt)))
    m = box["m"]
    step(prefix + "insert", lambda: m.insert(k, v))
    step(prefix + "get", lambda: m.get(k))
    step(prefix + "del m[k]", lambda: m.__delitem__(k))
    step(prefix + "get_many", lambda: m.get_many(ks))
    step(prefix + "insert_many", lambda: m.insert_many(ks, vs))
    return m

m = five("", np.uint64, np.uint64, 1, 2, keys, keys)

@numba.njit(nogil=True)
def user_loop(m, keys):
    s = 0
    for k in keys:
        v = m.get(k)
        if v is not None:
            s += v
        m.insert(k, k)
    return s

step("add", lambda: m.add(3, 4))
step("remove", lambda: m.remove(3))
step("k in m", lambda: 5 in m)
step("len", lambda: len(m))
step("items", lambda: m.items())
step("add_many", lambda: m.add_many(keys, keys))
step("remove_many", lambda: m.remove_many(keys[:10]))
step("clear", lambda: m.clear())
step("user njit loop", lambda: user_loop(m, keys))
five("i64->f64 ", np.int64, np.float64, -1, 2.5, keys.astype(np.int64), keys.astype(np.float64))
REC = np.dtype([("price", "f8"), ("qty", "i8"), ("ts", "u8"), ("flags", "u8")])
recs = np.zeros(100, REC)
five("u64->record ", np.uint64, REC, 1, (1.5, 2, 3, 4), keys, recs)
step("SeqArray()", lambda: box.__setitem__("a", SeqArray(np.uint32, 16)))
step("SeqArray set", lambda: box["a"].set(1, 7))
step("SeqArray get", lambda: box["a"].get(1))
print(json.dumps(marks))
'''

FIVE = ("SeqMap()", "insert", "get", "del m[k]", "get_many", "insert_many")
FURTHER = ("add", "remove", "k in m", "len", "items", "add_many", "remove_many", "clear")


def _child(cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, SEQMAP_NB_COMPILE_NOTICE="0")
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"the measured script failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _bench_cold():
    """``seqmap-nb bench --quick`` with an empty cache: seconds until each map's kernels
    are ready (its own lines), and the precompile total."""
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "seqmap_nb.cli", "bench", "--quick", "--no-charts",
                              "--no-progress", "--out", out], env=env, cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready, compiled_at = {}, None
        for line in p.stdout:
            m = re.match(r"\s+(.+?): ready, (\d+) s \(elapsed (\d+) s\)", line)
            if m:
                ready[m.group(1)] = int(m.group(2))
                compiled_at = time.perf_counter() - t0
        p.wait()
        return dict(ready_s=ready, compiled_after_s=compiled_at, total_s=time.perf_counter() - t0,
                    returncode=p.returncode)


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on Linux
        return float("nan")


def _provenance():
    import numba
    import numpy as np

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "seqmap_nb"], capture_output=True,
                                text=True, cwd=ROOT).stdout.strip())
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), python=platform.python_version(), numba=numba.__version__,
                numpy=np.__version__, git_commit=commit, package_modified=dirty,
                utc=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=1, help="cold+warm pairs, each with a new cache (default 1)")
    ap.add_argument("--bench", action="store_true", help="also time seqmap-nb bench --quick from an empty cache")
    ap.add_argument("--json", metavar="PATH", help="write every figure and the provenance as JSON")
    args = ap.parse_args(argv)

    rounds = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as cache:
            load0 = _load()
            cold = _child(cache)
            warm = _child(cache)
            rounds.append(dict(cold=cold, warm=warm, load_before=load0, load_after=_load()))
        print(f"round {r + 1}: load average {rounds[-1]['load_before']:.1f} -> {rounds[-1]['load_after']:.1f}",
              flush=True)
    bench = _bench_cold() if args.bench else None

    def med(which, name):
        return statistics.median(rd[which][name] for rd in rounds)

    names = list(rounds[0]["cold"])
    print(f"\n{'step':30s} {'cold':>8s} {'warm':>8s}   (seconds, median of {len(rounds)} round(s))")
    for name in names:
        print(f"{name:30s} {med('cold', name):8.2f} {med('warm', name):8.3f}")
    first = [sum(rd[w][n] for n in FIVE) for rd in rounds for w in ("cold",)]
    warm5 = [sum(rd["warm"][n] for n in FIVE) for rd in rounds]
    further = {n: med("cold", n) for n in FURTHER}
    same = [sum(rd["cold"]["i64->f64 " + n] for n in FIVE) for rd in rounds]
    other = [sum(rd["cold"]["u64->record " + n] for n in FIVE) for rd in rounds]
    summary = dict(
        cold_first_use_s=statistics.median(first), warm_first_use_s=statistics.median(warm5),
        further_kinds_cold_s=further, slowest_further_kind=max(further, key=further.get),
        second_pair_same_layout_cold_s=statistics.median(same),
        pair_of_another_layout_cold_s=statistics.median(other))
    print(f"\nfirst use of a dtype pair (the five calls, import excluded): cold {summary['cold_first_use_s']:.1f} s "
          f"(goal <= 3), warm {summary['warm_first_use_s']:.2f} s (goal <= 0.3)")
    print(f"further kinds of operation, cold: slowest {summary['slowest_further_kind']} "
          f"{further[summary['slowest_further_kind']]:.1f} s (goal <= 0.5 each); "
          f"{sum(v > 0.5 for v in further.values())} of {len(further)} above 0.5 s")
    print(f"a user's njit loop over m.get/m.insert: {med('cold', 'user njit loop'):.1f} s cold, "
          f"{med('warm', 'user njit loop'):.1f} s warm (its own compile)")
    print(f"a second dtype pair of the same layout (i64 -> f64): {summary['second_pair_same_layout_cold_s']:.1f} s; "
          f"one of another layout (u64 -> 4-word record): {summary['pair_of_another_layout_cold_s']:.1f} s")
    if bench:
        print(f"seqmap-nb bench --quick from an empty cache: kernels of every map ready after "
              f"{bench['compiled_after_s']:.0f} s (goal <= 30), per map {bench['ready_s']}; "
              f"whole command {bench['total_s']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(provenance=_provenance(), summary=summary, rounds=rounds, bench=bench), f, indent=1)
        print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
