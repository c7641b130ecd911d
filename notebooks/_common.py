"""Set-up shared by the notebooks: quick mode, recorded results, and a few summaries.

Quick mode
    ``SEQMAP_NB_QUICK=1`` in the environment (the test suite sets it) shrinks every sweep to
    a few small points, so all five notebooks run in a few minutes on a two-core machine;
    the charts keep their shape but not their precision. Full mode is for real studies.
    Quick mode always measures (it never reads recordings), so the suite exercises the
    harness, not a CSV file.

Recorded results
    ``data/<name>/results.csv`` (written by ``seqmap-nb bench --out data/<name>`` or
    ``seqmap_nb.results.save``), one row per run with provenance on every row. With
    ``USE_RECORDED = True`` a notebook renders the newest recording instead of measuring;
    when none exists it measures now and says so.
"""
from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

QUICK = os.environ.get("SEQMAP_NB_QUICK", "").strip().lower() in ("1", "true", "yes", "on")
REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
#: progress bars for sweeps: useful on long full-mode sweeps, noise in quick mode
PROGRESS = not QUICK

# Points a map cannot run are listed once per sweep by skipped() below, in a shorter form.
warnings.filterwarnings("ignore", message="sweep: skipped", category=RuntimeWarning)
try:  # numba's internal pedantic SSA check; it reports no problem of the code being run
    from numba.core.errors import NumbaIRAssumptionWarning
    warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)
except ImportError:  # pragma: no cover
    pass
# tqdm.auto falls back to the text bar without ipywidgets; the bar still works
warnings.filterwarnings("ignore", message="IProgress not found")


def pick(quick, full):
    """`quick` in quick mode, `full` otherwise."""
    return quick if QUICK else full


def mode_line():
    return ("QUICK mode (SEQMAP_NB_QUICK=1): small sizes, few points; shapes, not precision"
            if QUICK else "full mode: real study sizes")


def recorded_files(filename="results.csv", data_dir=None):
    """data/*/<filename>, newest first."""
    d = Path(data_dir) if data_dir is not None else DATA
    return sorted(d.glob(f"*/{filename}"), key=lambda p: p.stat().st_mtime, reverse=True)


def load(paths):
    """Concatenate result files (seqmap_nb.results.load checks their schema versions)."""
    paths = [str(p) for p in paths]
    try:
        from seqmap_nb import results
    except ImportError:  # pragma: no cover - only before the results module exists
        return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    return results.load(*paths)


def results_or_run(run, filename="results.csv", use_recorded=True, data_dir=None):
    """The newest recording of `filename` under data/ when asked for (never in quick mode),
    else the frame `run()` measures now."""
    if use_recorded and not QUICK:
        files = recorded_files(filename, data_dir)
        if files:
            df = load(files[:1])
            where = files[0].relative_to(REPO) if files[0].is_relative_to(REPO) else files[0]
            machine = ", ".join(map(str, df["machine"].unique())) if "machine" in df else "?"
            print(f"recorded results: {where} ({len(df)} runs on {machine})")
            return df
        print(f"no recording data/*/{filename}: measuring now")
    return run()


def check_verified(df):
    """Every run's final state was checked; say so, or show the ones that failed."""
    skipped(df)
    if "verified" not in df.columns:
        print("no verification column in this frame")
        return df
    bad = df[~df["verified"].astype(bool)]
    if len(bad):
        print(f"{len(bad)} of {len(df)} runs FAILED verification (not plotted):")
        cols = [c for c in ("map", "workload", "threads", "verify_detail") if c in bad]
        print(bad[cols].to_string(index=False))
    else:
        print(f"all {len(df)} runs verified (final map state checked against the op streams)")
    return df


def skipped(df):
    """One line per map: how many sweep points it could not run, and why."""
    pts = df.attrs.get("skipped", []) if hasattr(df, "attrs") else []
    if not pts:
        return
    why = Counter()
    for label, reason in pts:
        name = re.search(r"map=(\S+)", label)
        reason = reason.split("cannot run this workload: ")[-1]
        why[(name.group(1) if name else "?", reason)] += 1
    print(f"skipped {len(pts)} point(s) the maps cannot run:")
    for (name, reason), n in sorted(why.items()):
        print(f"  {name} x{n}: {reason}")


def medians(df, x, metric="mops", by=("map",)):
    """Median of `metric` per map (and `by`) and x, verified runs only: maps as columns."""
    ok = df[df["verified"].astype(bool)] if "verified" in df.columns else df
    return ok.groupby([*by, x])[metric].median().unstack(list(by))


def compare(df, x, a="seqmap", b="dashmap", metric="mops"):
    """Per value of x: median metric of a and b, their ratio, and who wins."""
    m = medians(df, x, metric)
    if a not in m or b not in m:
        return pd.DataFrame()
    out = pd.DataFrame({a: m[a], b: m[b]})
    out[f"{a} ÷ {b}"] = out[a] / out[b]
    out["faster"] = np.where(out[f"{a} ÷ {b}"] >= 1.0, a, b)
    return out


def crossover(df, x, a="seqmap", b="dashmap", metric="mops"):
    """A sentence: the range of a ÷ b along x, and the values of x at which b is faster."""
    c = compare(df, x, a, b, metric)
    if c.empty:
        return f"{a} or {b} missing: no comparison"
    r = c[f"{a} ÷ {b}"].dropna()
    lo, hi = r.idxmin(), r.idxmax()
    losing = r[r < 1.0]
    head = (f"{a} ÷ {b} throughput ranges from {r.min():.2f}x (at {x}={lo:g}) "
            f"to {r.max():.2f}x (at {x}={hi:g}); ")
    if losing.empty:
        return head + f"{a} is ahead at every measured {x}."
    at = ", ".join(f"{v:g}" for v in losing.index)
    return head + f"{b} is faster at {x} = {at} ({len(losing)} of {len(r)} points)."
