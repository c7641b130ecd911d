"""The ``seqmap-nb`` command.

``seqmap-nb bench``
    The default sweep: every map that can run each point (seqmap, dashmap, global_lock,
    cas where its limits allow, plain and typed_dict at one thread, dict_lock with fewer
    ops since it runs Python loops), the three conc-map-bench workloads, threads 1, 2, 4, 8
    and 256 (far past the cores: oversubscription), 3 repetitions (interleaved: round by
    round over all points). Writes ``results.csv`` and the PNG charts into ``--out``
    (default ``results/<UTC stamp>/``) and prints the throughput ratio seqmap / dashmap
    per workload and thread count. ``--quick`` is a smoke run of well under a minute.
``seqmap-nb micro``
    The single-thread ratio table of SeqMap against its references (``seqmap_nb.micro``).
``seqmap-nb foundation``
    The foundation benchmark (``seqmap_nb.bench_foundation``), where installed.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import inspect
import os
import sys
import time
import warnings

#: the embedded default sweep
DEFAULTS = dict(
    maps=("seqmap", "dashmap", "global_lock", "cas", "plain", "typed_dict", "dict_lock"),
    workloads=("read_heavy", "exchange", "rapid_grow"),
    threads=(1, 2, 4, 8, 256),
    capacity=1 << 16,
    # 2M ops: a read_heavy point at 1 thread then lasts ~70 ms; at 1M (33 ms) the spread
    # between repeats on this shared 2-core machine was as large as the effects measured
    ops=2_000_000,
    repeats=3,
)
QUICK = dict(
    maps=("seqmap", "dashmap", "global_lock", "plain", "dict_lock"),
    workloads=("read_heavy", "exchange", "rapid_grow"),
    threads=(1, 2, 16),
    capacity=1 << 12,
    ops=20_000,
    repeats=2,
)
#: Python-level maps (registry njit=False) run this share of the ops: a Python loop does
#: ~0.05 Mop/s, and the point of that baseline is its order of magnitude, not its decimals
PY_OPS_SHARE = 0.01


def _csv(kind):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        if kind is int:
            try:
                return tuple(int(t) for t in items)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected integers, got {text!r}") from None
        return tuple(items)
    return parse


def _int(text):
    try:
        return int(float(text)) if "e" in text.lower() else int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _parser():
    p = argparse.ArgumentParser(prog="seqmap-nb", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="run the default benchmark sweep, write results.csv and charts")
    b.add_argument("--maps", type=_csv(str), help=f"comma-separated map names (default: {','.join(DEFAULTS['maps'])})")
    b.add_argument("--workloads", type=_csv(str), help=f"comma-separated workloads (default: {','.join(DEFAULTS['workloads'])})")
    b.add_argument("--threads", type=_csv(int), help="comma-separated thread counts (default: 1,2,4,8,256)")
    b.add_argument("--capacity", type=_int, help=f"initial capacity in slots (default: {DEFAULTS['capacity']})")
    b.add_argument("--ops", type=_int, help=f"timed ops per run, all threads (default: {DEFAULTS['ops']})")
    b.add_argument("--repeats", type=_int, help="repetitions per point (default: 3)")
    b.add_argument("--seed", type=_int, default=0, help="stream seed (default: 0)")
    b.add_argument("--out", help="output folder (default: results/<UTC stamp>/)")
    b.add_argument("--machine", help="label for the machine column (default: cpu model/cores)")
    b.add_argument("--quick", action="store_true", help="a smoke run of well under a minute")
    b.add_argument("--no-charts", action="store_true", help="write results.csv only")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    m = sub.add_parser("micro", help="single-thread ratio table of SeqMap against its references")
    m.add_argument("args", nargs=argparse.REMAINDER, help="passed to seqmap_nb.micro")
    f = sub.add_parser("foundation", help="the foundation benchmark")
    f.add_argument("args", nargs=argparse.REMAINDER, help="passed to seqmap_nb.bench_foundation")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "bench":
        return bench(args)
    return _delegate({"micro": "seqmap_nb.micro", "foundation": "seqmap_nb.bench_foundation"}[args.command],
                     args.args)


def _delegate(module, argv):
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        print(f"seqmap-nb: {module} is not available in this installation ({exc})", file=sys.stderr)
        return 2
    fn = mod.main
    try:
        takes_argv = len(inspect.signature(fn).parameters) > 0
    except (TypeError, ValueError):
        takes_argv = False
    rc = fn(list(argv)) if takes_argv else fn()
    return int(rc or 0)


def _quiet_numba():
    from numba.core.errors import NumbaIRAssumptionWarning, NumbaPerformanceWarning

    for w in (NumbaIRAssumptionWarning, NumbaPerformanceWarning):
        warnings.filterwarnings("ignore", category=w)


def _ops_for(spec, ops, threads):
    return ops if spec.njit else max(threads, int(ops * PY_OPS_SHARE))


def plan(conf):
    """The points of a bench sweep: [(map, workload, threads, ops)] a map can run, and
    [(map, workload, threads, reason)] for the ones it cannot."""
    from .baselines import REGISTRY

    from . import harness

    for name in conf["maps"]:
        if name not in REGISTRY:
            raise SystemExit(f"seqmap-nb: unknown map {name!r}; known: {', '.join(REGISTRY)}")
    for wl in conf["workloads"]:
        if wl not in harness.W.WORKLOADS:
            raise SystemExit(f"seqmap-nb: unknown workload {wl!r}; known: {', '.join(harness.W.WORKLOADS)}")
    for n in conf["threads"]:
        if not 1 <= n <= harness.MAX_THREADS:
            raise SystemExit(f"seqmap-nb: thread counts must be in 1..{harness.MAX_THREADS}, got {n}")
    points, skipped = [], []
    for name in conf["maps"]:
        for wl in conf["workloads"]:
            for n in conf["threads"]:
                ops = _ops_for(REGISTRY[name], conf["ops"], n)
                ok, why = harness.supported(name, workload=wl, threads=n, capacity=conf["capacity"], ops=ops)
                if ok:
                    points.append((name, wl, n, ops))
                else:
                    skipped.append((name, wl, n, why))
    return points, skipped


def bench(args):
    """Run the sweep of `args` (see the module docstring); returns an exit status."""
    _quiet_numba()
    t_start = time.perf_counter()
    conf = dict(QUICK if args.quick else DEFAULTS)
    for key in ("maps", "workloads", "threads", "capacity", "ops", "repeats"):
        v = getattr(args, key)
        if v is not None:
            conf[key] = v
    if conf["ops"] < 1 or conf["capacity"] < 1 or conf["repeats"] < 1:
        raise SystemExit("seqmap-nb: --ops, --capacity and --repeats must be positive")
    out = args.out or os.path.join("results", _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))

    from . import harness, results

    points, skipped = plan(conf)
    print(f"seqmap-nb bench: {len(conf['maps'])} maps x {len(conf['workloads'])} workloads x "
          f"threads {','.join(map(str, conf['threads']))}, {conf['ops']:,} ops per run, "
          f"capacity {conf['capacity']:,}, {conf['repeats']} repeats -> {out}", flush=True)
    t_pre = time.perf_counter()
    pre = harness.precompile(list(dict.fromkeys(p[0] for p in points)))
    if pre:
        print(f"compiled or loaded the kernels of {len(pre)} maps in parallel: "
              f"{time.perf_counter() - t_pre:.0f} s", flush=True)
    frames = []
    from tqdm.auto import tqdm

    # repeats are the outer loop: every point is measured once per round, so a slow spell of
    # a shared machine lands on one repetition of many points (the median absorbs it), not
    # on all repetitions of one point (which would bias that map's ratio)
    runs = [(rep, pt) for rep in range(conf["repeats"]) for pt in points]
    bar = tqdm(runs, desc="bench", disable=args.no_progress, file=sys.stderr)
    refused = set()
    for rep, (name, wl, n, ops) in bar:
        if (name, wl, n) in refused:
            continue
        bar.set_postfix_str(f"round {rep + 1}: {name} {wl} {n}t", refresh=False)
        try:
            df1 = harness.run(name, workload=wl, threads=n, capacity=conf["capacity"],
                              ops=ops, repeats=1, seed=args.seed, machine=args.machine)
        except harness.UnsupportedRun as exc:
            skipped.append((name, wl, n, str(exc)))
            refused.add((name, wl, n))
            continue
        df1["repeat"] = rep  # the same streams every round (same seed), as harness.run repeats
        frames.append(df1)
    bar.close()
    if not frames:
        print("seqmap-nb: no map could run any point", file=sys.stderr)
        return 1
    import pandas as pd

    df = pd.concat(frames, ignore_index=True)
    paths = results.save(df, out)
    charts = [] if args.no_charts else _charts(df, out)
    elapsed = time.perf_counter() - t_start
    _report(df, skipped, paths + charts, elapsed)
    return 0 if df["verified"].all() else 3


def _charts(df, out):
    from . import plotting

    figs = plotting.default_figures(df)
    return plotting.save_figures(figs, out)


def _reasons(skipped):
    by_map = {}
    for name, wl, n, why in skipped:
        short = why.split("cannot run this workload: ")[-1]
        by_map.setdefault((name, short), []).append(f"{wl}/{n}t")
    return by_map


def _report(df, skipped, paths, elapsed):
    import pandas as pd

    from . import plotting

    ok = int(df["verified"].sum())
    print(f"\n{len(df)} runs in {elapsed:.0f} s (compile/warm-up {df['compile_s'].sum():.1f} s), "
          f"{ok} of {len(df)} verified")
    bad = df[~df["verified"]]
    for _, r in bad.head(10).iterrows():
        print(f"  NOT VERIFIED: {r['map']} {r['workload']} {r['threads']}t rep {r['repeat']}: {r['verify_detail']}")
    if skipped:
        print(f"skipped {len(skipped)} point(s) a map cannot run:")
        for (name, why), where in _reasons(skipped).items():
            print(f"  {name}: {why} ({len(where)} points)")
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        med = df[df["verified"]].pivot_table(index=["workload", "threads"], columns="map",
                                             values="mops", aggfunc="median")
        if not med.empty:
            order = [m for m in ("seqmap", "dashmap", "global_lock", "cas", "plain", "typed_dict",
                                 "dict_lock") if m in med.columns]
            med = med[order + [c for c in med.columns if c not in order]]
            print("\nmedian throughput, Mop/s (all threads):")
            print(med.round(2).to_string())
        if {"seqmap", "dashmap"} <= set(df["map"]):
            try:
                ratios = plotting.ratio_table(df, baseline="dashmap")
            except ValueError as exc:
                print(f"\n(no ratio table: {exc})")
            else:
                if "seqmap" in ratios.columns:
                    t = ratios["seqmap"].unstack("threads")
                    t.columns = [f"{c} thr" for c in t.columns]
                    print("\nseqmap / dashmap, median throughput ratio (>1: seqmap faster):")
                    print(t.round(2).to_string())
    print("\nwritten:")
    for p in paths:
        print(f"  {p}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
