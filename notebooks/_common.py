"""Set-up shared by the notebooks: quick mode, recorded results, and a few summaries.

Quick mode
    ``SEQMAP_NB_QUICK=1`` in the environment (the test suite sets it) shrinks every sweep to
    a few small points, so all five notebooks run in a few minutes on a two-core machine;
    the charts keep their shape but not their precision. Full mode is for real studies.
    Quick mode always measures (it never reads recordings), so the suite exercises the
    harness, not a CSV file.

Recorded results
    ``data/<name>/results.csv`` (written by ``seqmap-nb bench --out data/<name>`` or
    ``seqmap_nb.results.save``), one row per run with provenance on every row. A notebook
    names the recording it renders (``results_or_run(run, "default_sweep_2core")``) and
    prints which file it read, with its machine, commit, date and digest; it never picks
    one by file time (after a clone, file times are checkout order). When the named
    recording is missing, or ``USE_RECORDED = False``, it measures now and says so.

    ``seqmap-nb notebooks`` executes the notebooks against the recordings and stores with
    each the digests of the files it read (``SEQMAP_NB_MANIFEST``: this module appends one
    line per file loaded); ``seqmap-nb notebooks --record`` (``SEQMAP_NB_RECORD=1``)
    re-measures the recordings a notebook owns (``owner=True``) and writes them first.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd


def _flag(name, default=""):
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


QUICK = _flag("SEQMAP_NB_QUICK")
#: re-measure the recordings a notebook owns and write them (seqmap-nb notebooks --record)
RECORD = _flag("SEQMAP_NB_RECORD") and not QUICK
REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
#: progress bars for sweeps: useful on long full-mode sweeps, noise in quick mode and in
#: executed notebooks that are committed (SEQMAP_NB_PROGRESS=0)
PROGRESS = _flag("SEQMAP_NB_PROGRESS", "0" if QUICK else "1")

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


def recordings(filename="results.csv", data_dir=None):
    """Names of the recordings under data/ (folders holding `filename`), sorted by name."""
    d = Path(data_dir) if data_dir is not None else DATA
    return sorted(p.parent.name for p in d.glob(f"*/{filename}"))


def load(paths):
    """Concatenate result files (seqmap_nb.results.load checks their schema versions)."""
    paths = [str(p) for p in paths]
    try:
        from seqmap_nb import results
    except ImportError:  # pragma: no cover - only before the results module exists
        return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    return results.load(*paths)


def _note_read(path):
    """Tell seqmap-nb notebooks which recording this execution rendered."""
    manifest = os.environ.get("SEQMAP_NB_MANIFEST")
    if manifest:
        with open(manifest, "a", encoding="utf-8") as f:
            f.write(json.dumps({"path": str(Path(path).resolve())}) + "\n")


def describe(df, path):
    """One paragraph: which file, what it holds, where and when it was measured."""
    p = Path(path)
    where = p.relative_to(REPO) if p.is_relative_to(REPO) else p
    digest = hashlib.sha256(p.read_bytes()).hexdigest()[:12]

    def few(col, fmt=str, limit=4):
        if col not in df:
            return "?"
        vals = [fmt(v) for v in pd.unique(df[col].dropna()) if str(v) not in ("", "nan")]
        return ", ".join(map(str, vals[:limit])) + (f" (+{len(vals) - limit})" if len(vals) > limit else "")

    days = sorted({str(t)[:10] for t in df.get("utc_time", []) if str(t)})
    threads = sorted(int(t) for t in pd.unique(df["threads"].dropna())) if "threads" in df else []
    return (f"recorded results: {where} (sha256 {digest}): {len(df)} runs; maps {few('map', limit=8)}; "
            f"workloads {few('workload', limit=6)}"
            + (f"; threads {','.join(map(str, threads))}" if threads else "")
            + f"; machine {few('machine')}; commit {few('git_commit', lambda c: str(c)[:10])}; "
            f"{(days[0] if len(days) == 1 else f'{days[0]}..{days[-1]}') if days else '?'} UTC")


def results_or_run(run, recording, filename="results.csv", use_recorded=True, owner=False,
                   data_dir=None):
    """The frame of recording data/<recording>/<filename>, or the one `run()` measures now.

    Quick mode always measures. With `use_recorded` the named recording is read (and
    described); when it is missing the notebook measures now and says so. `owner`: this
    notebook's `run` is how the recording is made, so ``seqmap-nb notebooks --record``
    (``SEQMAP_NB_RECORD=1``) measures it and writes it there first.
    """
    if not isinstance(recording, str) or not recording or "/" in recording or recording.startswith("."):
        raise ValueError(f"recording: the name of a folder under data/, got {recording!r}")
    d = Path(data_dir) if data_dir is not None else DATA
    path = d / recording / filename
    if QUICK:
        return run()
    if RECORD and owner:
        df = run()
        from seqmap_nb import results

        results.save(df, path.parent)
        print(f"recorded now into {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        _note_read(path)
        return df
    if use_recorded and path.exists():
        df = load([path])
        print(describe(df, path))
        _note_read(path)
        return df
    if use_recorded:
        print(f"no recording {path.relative_to(REPO) if path.is_relative_to(REPO) else path}: measuring now"
              + (" (seqmap-nb notebooks --record writes it)" if owner else ""))
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
