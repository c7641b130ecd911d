"""The ``seqmap-nb`` command.

``seqmap-nb bench``
    The default sweep: every map that can run each point (seqmap, dashmap, global_lock,
    plain and typed_dict at one thread, dict_lock with fewer ops since it runs Python
    loops, and ``null``, the harness alone), the workloads read_heavy, exchange,
    rapid_grow and grow, threads 1, 2, 4, 8 and 256 (far past the cores:
    oversubscription), 3 repetitions (interleaved: round by round over all points).
    Writes ``results.csv`` and the PNG charts into ``--out`` (default
    ``results/<UTC stamp>/`` under the current directory) and prints the throughput ratio
    seqmap / dashmap per workload and thread count. ``--quick`` is a smoke run.
``seqmap-nb compare A B``
    Two result folders (before/after a change, or two machines): per matching point the
    ratio B / A with its 95% interval and a verdict (``seqmap_nb.compare``).
``seqmap-nb micro``
    The single-thread ratio table of SeqMap against its references (``seqmap_nb.micro``).
``seqmap-nb foundation``
    False sharing and the cost of a seqlocked cell (``seqmap_nb.bench_foundation``).
``seqmap-nb notebooks``
    Execute the notebooks of a source checkout in place against the recorded data, or
    ``--check`` whether the stored ones are stale (``seqmap_nb.notebook_runner``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import re
import sys
import time
import warnings

#: the embedded default sweep (its maps: the registry's list, see default_maps)
DEFAULTS = dict(
    maps=None,
    workloads=("read_heavy", "exchange", "rapid_grow", "grow"),
    threads=(1, 2, 4, 8, 256),
    capacity=1 << 16,
    # 2M ops: a read_heavy point at 1 thread then lasts ~70 ms; at 1M (33 ms) the spread
    # between repeats on this shared 2-core machine was as large as the effects measured
    ops=2_000_000,
    repeats=3,
)
QUICK = dict(
    maps=None,  # the default maps but typed_dict (quick: one map fewer to compile)
    workloads=("read_heavy", "exchange", "rapid_grow", "grow"),
    threads=(1, 2, 16),
    capacity=1 << 12,
    ops=20_000,
    repeats=2,
)
#: Python-level maps (registry njit=False) run this share of the ops: a Python loop does
#: ~0.05 Mop/s, and the point of that baseline is its order of magnitude, not its decimals
PY_OPS_SHARE = 0.01

#: Wall times measured on the reference machine: the one place to update them (the
#: ``--help`` text reads them; a test checks the README quotes the same figures).
#: "cold": a fresh checkout or numba cache, every kernel compiled; "warm": loaded from
#: the on-disk cache.
EXPECTED_TIMES = dict(
    machine="a 2-core x86-64 VM (Intel Xeon), numba 0.68",
    quick_cold="about 1 min",
    quick_warm="about 10 s",
    full_cold="about 3.5 min",
    full_warm="about 2.5 min",
    tests_cold="about 10 min",  # .ci/run on a fresh clone, 2 test processes: 9 min 44 s (2026-12-01)
    tests_warm="about 2.5 min",  # the same clone again: 2 min 15 s
)


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


def _fraction(text):
    try:
        v = float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction or a percentage, got {text!r}") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return v


def _times_epilog():
    t = EXPECTED_TIMES
    return (f"Expected wall time on {t['machine']}: --quick {t['quick_cold']} on a first run "
            f"(compiling every kernel), {t['quick_warm']} afterwards (kernels cached); the "
            f"default sweep {t['full_cold']} first, {t['full_warm']} afterwards. Results go to "
            "results/<UTC stamp>/ under the current directory unless --out says otherwise.")


def _parser():
    from . import bench_foundation, micro

    p = argparse.ArgumentParser(prog="seqmap-nb", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = sub.add_parser("bench", help="run the default benchmark sweep, write results.csv and charts",
                       description="Run a benchmark sweep (default: every map x read_heavy, exchange, "
                                   "rapid_grow, grow x threads 1..256, 3 interleaved rounds), "
                                   "verify every run, write results.csv and charts.",
                       epilog=_times_epilog())
    b.add_argument("--maps", type=_csv(str),
                   help=f"comma-separated map names (default: {','.join(default_maps())}; also cas)")
    b.add_argument("--workloads", type=_csv(str),
                   help=f"comma-separated workloads (default: {','.join(DEFAULTS['workloads'])})")
    b.add_argument("--threads", type=_csv(int), help="comma-separated thread counts (default: 1,2,4,8,256)")
    b.add_argument("--capacity", type=_int,
                   help=f"entries each map is built for (default: {DEFAULTS['capacity']}; grow "
                        "builds every map at its own default capacity)")
    b.add_argument("--ops", type=_int, help=f"timed ops per run, all threads (default: {DEFAULTS['ops']})")
    b.add_argument("--repeats", type=_int, help="rounds: every point once per round (default: 3)")
    b.add_argument("--seed", type=_int, default=0, help="stream seed (default: 0)")
    b.add_argument("--sample-every", type=_int, default=64,
                   help="time every N-th op: latency percentiles and the longest stall "
                        "(default: 64; 0: no clock code in the kernels at all)")
    b.add_argument("--out", help="output folder (default: results/<UTC stamp>/ under the current directory)")
    b.add_argument("--machine", help="label for the machine column (default: cpu model/cores)")
    b.add_argument("--quick", action="store_true",
                   help=f"a smoke run: 6 maps x 4 workloads x threads 1,2,16, 20k ops, 2 rounds "
                        f"({EXPECTED_TIMES['quick_cold']} on a first run, {EXPECTED_TIMES['quick_warm']} "
                        "once the kernels are cached)")
    b.add_argument("--no-charts", action="store_true", help="write results.csv only")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")

    c = sub.add_parser("compare", help="compare two result folders: ratios, intervals, verdicts",
                       description="Per point measured in both A and B: the ratio B / A of the metric, "
                                   "its 95%% interval (Welch's t on log values) and a verdict: "
                                   "faster, slower or not significant. Points whose run settings "
                                   "differ are listed, not compared.")
    c.add_argument("a", help="results folder or file A (the reference: 'before')")
    c.add_argument("b", help="results folder or file B ('after')")
    c.add_argument("--metric", default="mops",
                   help="results column to compare (default: mops; ns_per_op, p99_ns, "
                        "max_stall_ns, ...: lower is better)")
    c.add_argument("--min-change", type=_fraction, default=0.0, metavar="FRACTION",
                   help="report significant changes smaller than this as not significant "
                        "(e.g. 0.05 or 5%%; default 0)")
    c.add_argument("--labels", type=_csv(str), default=("A", "B"), metavar="A,B",
                   help="names of the two sides in the table and chart (default: A,B)")
    c.add_argument("--out", help="folder for compare.csv and compare.png "
                                 "(default: results/compare-<UTC stamp>/ under the current directory)")
    c.add_argument("--no-chart", action="store_true", help="print the table only, write nothing")

    m = sub.add_parser("micro", help="single-thread ratio table of SeqMap against its references",
                       description=micro.__doc__.split("\n\n")[0],
                       epilog=micro.parser().epilog)
    micro.add_arguments(m)
    f = sub.add_parser("foundation", help="false sharing and the cost of a seqlocked cell",
                       description=bench_foundation.__doc__.split("\n\n")[0],
                       epilog=bench_foundation.parser().epilog)
    bench_foundation.add_arguments(f)

    n = sub.add_parser("notebooks", help="execute the notebooks against the recorded data, or check them",
                       description="Execute every notebook of the source checkout in place, in full "
                                   "mode, rendering the recordings under data/ (each notebook names "
                                   "the ones it reads), and store with each a record of its inputs. "
                                   "--check only reports notebooks that are unexecuted or stale.")
    n.add_argument("names", nargs="*", help="notebooks to run (default: all), e.g. 02_thread_scaling")
    n.add_argument("--check", action="store_true",
                   help="execute nothing: list stale or unexecuted notebooks (exit 1 if any)")
    n.add_argument("--record", action="store_true",
                   help="measure and rewrite the recordings the notebooks own (data/<name>/ "
                        "results.csv) instead of reading them; the default sweep's recording "
                        "is written by seqmap-nb bench, never by a notebook")
    n.add_argument("--timeout", type=_int, default=1800, help="seconds per cell (default 1800)")
    return p


def main(argv=None):
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into head or a pager that quit: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv):
    args = _parser().parse_args(argv)
    if args.command == "bench":
        return bench(args)
    if args.command == "compare":
        return compare(args)
    if args.command == "micro":
        from . import micro

        return micro.main(_reargv(args, ("n", "reps", "scalar_calls", "json")))
    if args.command == "foundation":
        from . import bench_foundation

        return bench_foundation.main((["--quick"] if args.quick else [])
                                     + (["--json", args.json] if args.json else []))
    if args.command == "notebooks":
        return notebooks(args)
    raise AssertionError(args.command)  # pragma: no cover - argparse refuses others


def _reargv(args, names):
    """Parsed options back to an argv list for a module's own main()."""
    out = []
    for name in names:
        v = getattr(args, name)
        if v is not None:
            out += [f"--{name.replace('_', '-')}", str(v)]
    return out


def _quiet_numba():
    from numba.core.errors import NumbaIRAssumptionWarning, NumbaPerformanceWarning

    for w in (NumbaIRAssumptionWarning, NumbaPerformanceWarning):
        warnings.filterwarnings("ignore", category=w)


def _ops_for(spec, ops, threads):
    return ops if spec.njit else max(threads, int(ops * PY_OPS_SHARE))


def default_maps(quick=False):
    """The maps of the default sweep: the registry's list (``baselines.default_maps``)."""
    from .baselines import default_maps as registry_defaults

    maps = registry_defaults()
    return tuple(m for m in maps if m != "typed_dict") if quick else maps


def plan(conf):
    """The points of a bench sweep: [(map, workload, threads, ops, capacity)] a map can run,
    and [(map, workload, threads, reason)] for the ones it cannot. ``capacity`` is None for
    workloads that build the map at its own default (grow)."""
    from . import harness

    known = harness.known_maps()
    for name in conf["maps"]:
        if name not in known:
            raise SystemExit(f"seqmap-nb: unknown map {name!r}; known: {', '.join(known)}")
    for wl in conf["workloads"]:
        if wl not in harness.W.WORKLOADS:
            raise SystemExit(f"seqmap-nb: unknown workload {wl!r}; known: {', '.join(harness.W.WORKLOADS)}")
    for n in conf["threads"]:
        if not 1 <= n <= harness.MAX_THREADS:
            raise SystemExit(f"seqmap-nb: thread counts must be in 1..{harness.MAX_THREADS}, got {n}")
    points, skipped = [], []
    for name in conf["maps"]:
        for wl in conf["workloads"]:
            cap = None if harness.W.WORKLOADS[wl].default_capacity else conf["capacity"]
            for n in conf["threads"]:
                ops = _ops_for(known[name], conf["ops"], n)
                ok, why = harness.supported(name, workload=wl, threads=n, capacity=cap, ops=ops)
                if ok:
                    points.append((name, wl, n, ops, cap))
                else:
                    skipped.append((name, wl, n, why))
    return points, skipped


def _reason(why):
    return why.split("cannot run this workload: ")[-1]


_ASKED = re.compile(r", asked for \d+ threads")


def _reasons(skipped):
    """{(map, reason): (workloads, threads)} of the points a map cannot run."""
    by_map = {}
    for name, wl, n, why in skipped:
        wls, ths = by_map.setdefault((name, _ASKED.sub("", _reason(why))), ([], []))
        wls.append(wl) if wl not in wls else None
        ths.append(n) if n not in ths else None
    return by_map


def _print_skipped(skipped, stream=sys.stdout):
    if not skipped:
        return
    print(f"skipped {len(skipped)} point(s) a map cannot run:", file=stream)
    for (name, why), (wls, ths) in _reasons(skipped).items():
        print(f"  {name}: {why} (workloads {', '.join(wls)}; threads "
              f"{','.join(map(str, sorted(ths)))})", file=stream)


def bench(args):
    """Run the sweep of `args` (see the module docstring); returns an exit status."""
    _quiet_numba()
    t_start = time.perf_counter()
    conf = dict(QUICK if args.quick else DEFAULTS)
    conf["maps"] = default_maps(args.quick)
    for key in ("maps", "workloads", "threads", "capacity", "ops", "repeats"):
        v = getattr(args, key)
        if v is not None:
            conf[key] = v
    if conf["ops"] < 1 or conf["capacity"] < 1 or conf["repeats"] < 1 or args.sample_every < 0:
        raise SystemExit("seqmap-nb: --ops, --capacity and --repeats must be positive, "
                         "--sample-every >= 0")
    out = args.out or os.path.join("results", _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))

    from . import harness, results

    points, skipped = plan(conf)
    running = list(dict.fromkeys(p[0] for p in points))
    idle = [m for m in conf["maps"] if m not in running]
    print(f"seqmap-nb bench: {len(running)} map(s) ({', '.join(running) or 'none'}) x "
          f"{len(conf['workloads'])} workload(s) x threads {','.join(map(str, conf['threads']))}: "
          f"{len(points)} points, {conf['ops']:,} ops per run, capacity {conf['capacity']:,} "
          f"(grow: each map's default), {conf['repeats']} round(s) -> {os.path.abspath(out)}",
          flush=True)
    for name in idle:
        whys = sorted({_reason(w) for m, _, _, w in skipped if m == name})
        print(f"  {name} runs no point of this sweep: {'; '.join(whys)}", flush=True)
    if not points:
        _print_skipped(skipped, sys.stderr)
        print("seqmap-nb: no map could run any point (reasons above)", file=sys.stderr)
        return 1

    t_pre = time.perf_counter()
    print(f"compiling the kernels of {len(running)} map(s) in up to {min(len(running), os.cpu_count() or 1)} "
          "processes (a first run compiles every kernel, about a minute on two cores; later "
          "runs load them from the on-disk cache in seconds)", flush=True)

    def report(name, secs):
        label = "shared parts" if name == "shared" else name
        state = "failed (compiled again below)" if secs is None else f"{secs:.0f} s"
        print(f"  {label}: ready, {state} (elapsed {time.perf_counter() - t_pre:.0f} s)", flush=True)

    harness.precompile(running, sample_every=args.sample_every, progress=report)
    pre_s = time.perf_counter() - t_pre
    # the harness's one sweep driver: rounds outermost (see harness.run_points), the same
    # streams every round (same seed), as harness.run's repeats
    pts = [dict(map=name, workload=wl, threads=n, capacity=cap, ops=ops)
           for name, wl, n, ops, cap in points]
    df = harness.run_points(pts, rounds=conf["repeats"], progress=not args.no_progress, desc="bench",
                            seed=args.seed, machine=args.machine, sample_every=args.sample_every)
    for label, why in df.attrs["skipped"]:  # refused at run time (plan() checked the rest)
        p = dict(kv.split("=", 1) for kv in label.split())
        skipped.append((p.get("map"), p.get("workload"), int(p.get("threads", 0)), why))
    if df.empty:
        _print_skipped(skipped, sys.stderr)
        print("seqmap-nb: no map could run any point (reasons above)", file=sys.stderr)
        return 1
    paths = results.save(df, out)
    charts = [] if args.no_charts else _charts(df, out)
    _report(df, skipped, paths + charts, time.perf_counter() - t_start, pre_s)
    return 0 if df["verified"].all() else 3


def _charts(df, out):
    from . import plotting

    figs = plotting.default_figures(df)
    return plotting.save_figures(figs, out)


def _report(df, skipped, paths, elapsed, precompile_s=0.0):
    import pandas as pd

    from . import plotting

    ok = int(df["verified"].sum())
    load_s = float(df["compile_s"].sum())
    timed_s = float(df["seconds"].sum())
    print(f"\n{len(df)} runs in {elapsed:.0f} s: compilation {precompile_s + load_s:.0f} s "
          f"({precompile_s:.0f} s compiling or loading in parallel processes, {load_s:.0f} s "
          f"loading in this one), timed runs {timed_s:.0f} s, the rest (streams, prefill, "
          f"verification, charts) {max(0.0, elapsed - precompile_s - load_s - timed_s):.0f} s; "
          f"{ok} of {len(df)} verified")
    bad = df[~df["verified"]]
    for _, r in bad.head(10).iterrows():
        print(f"  NOT VERIFIED: {r['map']} {r['workload']} {r['threads']}t rep {r['repeat']}: {r['verify_detail']}")
    _print_skipped(skipped)
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        good = df[df["verified"]]
        med = good.pivot_table(index=["workload", "threads"], columns="map", values="mops",
                               aggfunc="median")
        if not med.empty:
            med = med[plotting._map_order(med.columns)]
            print("\nmedian throughput, Mop/s (all threads; null: the harness alone, no table):")
            print(med.round(2).to_string())
        _report_null(good)
        if {"seqmap", "dashmap"} <= set(df["map"]):
            try:
                rr = plotting.round_ratios(df, baseline="dashmap", maps=["seqmap"])
            except ValueError as exc:
                print(f"\n(no ratio table: {exc})")
            else:
                cell = rr.assign(text=[f"{m:.2f} [{lo:.2f}-{hi:.2f}]" for m, lo, hi in
                                       zip(rr["median"], rr["lo"], rr["hi"])])
                t = cell.pivot(index="workload", columns="threads", values="text")
                t = t.reindex([w for w in plotting.WORKLOAD_ORDER if w in t.index]
                              + [w for w in t.index if w not in plotting.WORKLOAD_ORDER])
                t.columns = [f"{c} thr" for c in t.columns]
                print("\nseqmap / dashmap throughput: median of the per-round ratios [min-max] "
                      f"over {int(rr['n'].max())} round(s) (>1: seqmap faster):")
                print(t.fillna("").to_string())
        _report_latency(good)
    print("\nwritten:")
    for p in paths:
        print(f"  {p}")


def _report_null(df):
    """The harness's own cost next to seqmap's, per workload at one thread."""
    if not {"null", "seqmap"} <= set(df["map"]):
        return
    one = df[df["threads"] == 1]
    lines = []
    for wl, sub in one.groupby("workload", sort=False):
        n = sub.loc[sub["map"] == "null", "ns_per_op"].median()
        s = sub.loc[sub["map"] == "seqmap", "ns_per_op"].median()
        if n == n and s == s and s > 0:
            lines.append(f"  {wl}: null {n:.1f} ns/op = {100 * n / s:.0f}% of seqmap's {s:.1f} ns/op")
    if lines:
        print("\nthe harness's own cost per op (null map: same streams and checks, no table), 1 thread:")
        print("\n".join(lines))


def _report_latency(df):
    if "lat_below_res" not in df or not df["p50_ns"].notna().any():
        return
    below = df[df["lat_below_res"].astype(str) != ""]
    res = sorted({round(float(v), 1) for v in df["timer_res_ns"].dropna()})
    print(f"\nlatency clock resolution: {', '.join(f'{r:g} ns' for r in res)}"
          + (f"; {len(below)} run(s) have percentiles below it, recorded as the resolution "
             f"(upper bounds; column lat_below_res)" if len(below) else ""))
    if "max_stall_ns" in df and df["max_stall_ns"].notna().any():
        g = df[df["workload"] == "grow"] if (df["workload"] == "grow").any() else df
        worst = g.groupby(["map", "threads"])["max_stall_ns"].median()
        if len(worst):
            (m, t), v = worst.idxmax(), worst.max()
            print(f"longest stall ({'grow' if (df['workload'] == 'grow').any() else 'all workloads'}, "
                  f"median over rounds): {m} at {t} threads, {_fmt_ns(v)}")


def _fmt_ns(v):
    if not math.isfinite(v):
        return "n/a"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} ns"


def compare(args):
    """``seqmap-nb compare A B``: print the comparison, write its table and chart."""
    from . import compare as C

    labels = tuple(args.labels)
    if len(labels) != 2:
        raise SystemExit("seqmap-nb compare: --labels takes two names, e.g. before,after")
    try:
        cmp = C.compare(args.a, args.b, metric=args.metric, min_change=args.min_change,
                        labels=labels)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"seqmap-nb compare: {exc}") from None
    print(cmp.text())
    if not len(cmp.table):
        return 1
    if args.no_chart:
        return 0
    out = args.out or os.path.join(
        "results", "compare-" + _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, "compare.csv")]
    cmp.table.to_csv(paths[0], index=False)
    if len(cmp.not_compared):
        paths.append(os.path.join(out, "not_compared.csv"))
        cmp.not_compared.to_csv(paths[-1], index=False)
    from . import plotting

    paths += plotting.save_figures({"compare": cmp.figure()}, out)
    print("\nwritten:")
    for p in paths:
        print(f"  {p}")
    return 0


def notebooks(args):
    """``seqmap-nb notebooks``: regenerate (or --check) the notebooks of a checkout."""
    from . import notebook_runner as R

    try:
        if args.check:
            problems = R.check(names=args.names or None)
            for name, why in problems:
                print(f"{name}: {why}")
            if problems:
                print(f"\n{len(problems)} problem(s); regenerate with: {R.COMMAND}")
                return 1
            print("every notebook is executed and up to date with its inputs")
            return 0
        R.regenerate(names=args.names or None, timeout=args.timeout, record=args.record,
                     log=lambda text: print(text, flush=True))
    except R.NotebookError as exc:
        raise SystemExit(f"seqmap-nb notebooks: {exc}") from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
