"""Compare two sets of results: before/after a change, or two machines.

``seqmap-nb compare A B`` and :func:`compare` match the runs of A and B point by point
(the same map, workload, key semantics, threads and so on) and give, per matching point,
the ratio of B's median to A's, its 95% confidence interval and a verdict, the way
pyperf's ``compare_to`` does: **faster**, **slower**, or **not significant**.

Method
======
- Only verified runs count (a benchmark of a wrong map is worthless); points with fewer
  than two verified runs on a side get no test and read "not significant".
- Throughput and latency are ratios, so the test works on the logarithm of each run's
  metric: the ratio is ``exp(mean(log B) - mean(log A))``, reported beside the ratio of
  the medians, with the interval ``exp(diff ± t * se)``. The test is Welch's two-sample t
  test (Student's t with the Welch-Satterthwaite degrees of freedom; pyperf uses the
  pooled-variance form, which assumes both sides are equally noisy: two machines are
  not), two-sided at 95%, with the critical values of the t distribution from a table
  (as pyperf does; no scipy needed). Significant means the interval excludes 1.
- ``min_change`` (like pyperf's ``--min-speed``): a significant change smaller than this
  fraction is reported as not significant.
- A folder compared with itself reports nothing significant: the differences are 0.

Matching
========
A point is identified by :data:`POINT_KEYS`; it is compared when A and B also agree on
the run settings of :data:`SETTING_KEYS` (capacity, ops, prefill, seed, dtypes,
sampling). Points present on both sides with other settings are not compared, and the
output says which settings differ (e.g. ``ops: 2000000 in A, 20000 in B``); points on one
side only are listed too. A setting that one side does not record at all (an older
results schema) is not used for matching, and the output says so.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import results as _results

__all__ = ["compare", "Comparison", "POINT_KEYS", "SETTING_KEYS", "HIGHER_IS_BETTER",
           "t_critical", "welch"]

#: what a point is: runs of A and B with equal values here measure the same thing
POINT_KEYS = ("map", "workload", "mix", "keys", "threads", "theta", "hot_ops", "hot_keys",
              "load_factor")
#: how it was run: must agree too, or the point is not compared (and the output says why)
SETTING_KEYS = ("capacity", "ops", "ops_per_thread", "prefill", "seed", "key_dtype",
                "value_dtype", "sample_every")
#: metrics where a larger value is better; for the others (times) smaller is better
HIGHER_IS_BETTER = {"mops"}

# two-sided 95% critical values of Student's t by degrees of freedom (1..30, then 40, 60,
# 120 and the normal limit), as in pyperf's table
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
        16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074,
        23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045,
        30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_critical(df):
    """Two-sided 95% critical value of Student's t with `df` (> 0) degrees of freedom.

    Fractional df (Welch) are rounded down below 30 (conservative); above, the table is
    interpolated linearly in 1/df towards the normal value 1.960.
    """
    if not df > 0:
        return math.inf
    if df < 30:
        return _T95[max(1, int(math.floor(df)))]
    pts = [(30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980), (math.inf, 1.960)]
    for (d0, t0), (d1, t1) in zip(pts, pts[1:]):
        if df <= d1:
            x0, x1, x = 1 / d0, (0.0 if d1 == math.inf else 1 / d1), 1 / df
            return t0 + (t1 - t0) * (x0 - x) / (x0 - x1)
    return 1.960


def welch(a, b):
    """Welch's t test of mean(b) - mean(a): (diff, standard error, degrees of freedom)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    diff = float(b.mean() - a.mean())
    va = float(a.var(ddof=1)) / na if na > 1 else math.nan
    vb = float(b.var(ddof=1)) / nb if nb > 1 else math.nan
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, 0.0, float(na + nb - 2)
    dof = (va + vb) ** 2 / ((va ** 2 / (na - 1) if na > 1 else 0) + (vb ** 2 / (nb - 1) if nb > 1 else 0))
    return diff, se, dof


def _norm(v):
    """A parameter value as a comparable string ('' for missing; 4096.0 -> '4096')."""
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:
            return ""
        return f"{v:g}" if not v.is_integer() else str(int(v))
    if isinstance(v, (np.floating,)):
        return _norm(float(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def _as_frame(x, what):
    if isinstance(x, pd.DataFrame):
        _results.check_schema(x, what)
        return _results.concat([x]), what
    paths = [x] if isinstance(x, (str, os.PathLike)) else list(x)
    return _results.load(*paths), ", ".join(os.fspath(p) for p in paths)


def _describe(df, label, where):
    def few(col, fmt=str):
        vals = [fmt(v) for v in df[col].dropna().astype(str).unique() if v not in ("", "nan")] if col in df else []
        return ", ".join(vals[:3]) + (f" (+{len(vals) - 3} more)" if len(vals) > 3 else "") if vals else "?"
    days = sorted({t[:10] for t in df["utc_time"].astype(str) if t}) if "utc_time" in df else []
    when = (days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}") if days else "?"
    return (f"{label}: {where} · {len(df)} runs · {few('machine')} · commit "
            f"{few('git_commit', lambda c: c[:10])} · {when}")


@dataclass
class Comparison:
    """What :func:`compare` found. ``table``: one row per compared point; ``not_compared``:
    the points it could not compare and why; ``notes``: settings not used for matching."""

    table: pd.DataFrame
    not_compared: pd.DataFrame
    metric: str
    labels: tuple
    header: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def summary(self):
        """{"faster": n, "slower": n, "not significant": n}."""
        counts = self.table["verdict"].value_counts() if len(self.table) else pd.Series(dtype=int)
        return {v: int(counts.get(v, 0)) for v in ("faster", "slower", "not significant")}

    def text(self, max_rows=None):
        """The comparison as printable text: header, table, what was not compared."""
        a, b = self.labels
        lines = list(self.header)
        better = "higher" if self.metric in HIGHER_IS_BETTER else "lower"
        lines.append(f"metric: {self.metric} ({better} is better); ratio = {b} / {a}, "
                     "geometric mean of the runs, 95% interval (Welch's t on log values)")
        lines += [f"note: {n}" for n in self.notes]
        if len(self.table):
            t = self.table
            if max_rows is not None:
                t = t.head(max_rows)
            show = pd.DataFrame({
                "map": t["map"], "workload": t["workload"], "threads": t["threads"],
                "point": t["extra"],
                f"{a} median": t["median_a"].map(lambda v: f"{v:.4g}"),
                f"{b} median": t["median_b"].map(lambda v: f"{v:.4g}"),
                "ratio": t["ratio"].map(lambda v: f"{v:.3f}x"),
                "95% interval": [f"{lo:.3f}..{hi:.3f}" if lo == lo else "(n<2)"
                                 for lo, hi in zip(t["ratio_lo"], t["ratio_hi"])],
                "runs": [f"{x}+{y}" for x, y in zip(t["n_a"], t["n_b"])],
                "verdict": t["change"],
            })
            if not (show["point"] != "").any():
                show = show.drop(columns="point")
            lines += ["", show.to_string(index=False)]
            if max_rows is not None and len(self.table) > max_rows:
                lines.append(f"... {len(self.table) - max_rows} more points")
        else:
            lines += ["", "no point could be compared"]
        s = self.summary
        lines += ["", f"{len(self.table)} point(s) compared: {s['faster']} faster, {s['slower']} "
                      f"slower, {s['not significant']} not significant"]
        if len(self.not_compared):
            lines.append(f"{len(self.not_compared)} point(s) not compared:")
            for _, r in self.not_compared.iterrows():
                lines.append(f"  {r['point']}: {r['reason']}")
        return "\n".join(lines)

    def __str__(self):
        return self.text()

    def figure(self):
        """A forest plot: per point the ratio and its interval on a log axis, a line at 1.0."""
        from . import plotting

        return plotting.comparison_chart(self)


def _point_label(key, extra=""):
    d = dict(zip(POINT_KEYS, key))
    label = f"{d['map']} · {d['workload']} · {d['threads']} thr"
    return label + (f" · {extra}" if extra else "")


def _extra(d):
    """The point's parameters beyond map/workload/threads, as a short string."""
    parts = []
    for k in ("keys", "theta", "hot_ops", "hot_keys", "load_factor"):
        v = d.get(k, "")
        if v == "" or (k == "keys" and v == "bustle"):
            continue
        parts.append(f"{k}={v}")
    if d.get("workload") == "custom":
        parts.append(f"mix={d.get('mix', '')}")
    return " ".join(parts)


def compare(a, b, metric="mops", min_change=0.0, labels=("A", "B")):
    """Compare results `a` and `b` (folders, files, lists of them, or frames).

    Returns a :class:`Comparison`. `metric`: a numeric results column (default ``mops``;
    ``ns_per_op``, ``p99_ns``, ``max_stall_ns``, ... read "lower is better").
    `min_change`: smallest relative change reported as significant (0.05 = 5%).
    """
    dfa, where_a = _as_frame(a, labels[0])
    dfb, where_b = _as_frame(b, labels[1])
    if metric not in _results.METRICS or _results.METRICS[metric] not in ("float", "int"):
        numeric = [c for c, k in _results.METRICS.items() if k in ("float", "int")]
        raise ValueError(f"metric: expected a numeric results column, one of {numeric}; got {metric!r}")
    if not 0.0 <= float(min_change) < 1.0:
        raise ValueError(f"min_change: a fraction in [0, 1), got {min_change}")
    header = [_describe(dfa, labels[0], where_a), _describe(dfb, labels[1], where_b)]
    notes = []
    settings = []
    for k in SETTING_KEYS:
        missing = [lab for lab, df in zip(labels, (dfa, dfb)) if k not in df or df[k].isna().all()]
        if missing:
            notes.append(f"{' and '.join(missing)} {'records' if len(missing) == 1 else 'record'} "
                         f"no {k}: not used to match points")
        else:
            settings.append(k)
    unverified = []
    frames = []
    for lab, df in zip(labels, (dfa, dfb)):
        ok = df["verified"].astype(bool)
        if (~ok).any():
            unverified.append(f"{int((~ok).sum())} unverified run(s) of {lab} left out")
        df = df[ok & df[metric].notna()].copy()
        df["_point"] = list(zip(*[df[k].map(_norm) for k in POINT_KEYS])) if len(df) else []
        df["_setting"] = list(zip(*[df[k].map(_norm) for k in settings])) if len(df) and settings else [()] * len(df)
        frames.append(df)
    notes += unverified
    fa, fb = frames
    higher = metric in HIGHER_IS_BETTER
    rows, skipped = [], []
    points = sorted(set(fa["_point"]) | set(fb["_point"]), key=_sort_key)
    for p in points:
        sa, sb = fa[fa["_point"] == p], fb[fb["_point"] == p]
        d = dict(zip(POINT_KEYS, p))
        extra = _extra(d)
        if sa.empty or sb.empty:
            skipped.append(dict(point=_point_label(p, extra),
                                reason=f"only in {labels[0] if sb.empty else labels[1]}"))
            continue
        common = sorted(set(sa["_setting"]) & set(sb["_setting"]))
        if not common:
            diffs = []
            for i, k in enumerate(settings):
                va = sorted({s[i] for s in sa["_setting"]})
                vb = sorted({s[i] for s in sb["_setting"]})
                if va != vb:
                    diffs.append(f"{k}: {'/'.join(va)} in {labels[0]}, {'/'.join(vb)} in {labels[1]}")
            skipped.append(dict(point=_point_label(p, extra),
                                reason="run settings differ: " + "; ".join(diffs)))
            continue
        for st in common:
            xa = sa.loc[sa["_setting"] == st, metric].to_numpy(float)
            xb = sb.loc[sb["_setting"] == st, metric].to_numpy(float)
            rows.append(_one(d, dict(zip(settings, st)), extra if len(common) == 1 else
                             (extra + " " + " ".join(f"{k}={v}" for k, v in zip(settings, st))).strip(),
                             xa, xb, higher, float(min_change)))
    table = pd.DataFrame(rows, columns=_TABLE_COLUMNS)
    not_compared = pd.DataFrame(skipped, columns=["point", "reason"])
    return Comparison(table, not_compared, metric, tuple(labels), header, notes)


_TABLE_COLUMNS = ["map", "workload", "threads", "extra", "n_a", "n_b", "median_a", "median_b",
                  "ratio", "ratio_lo", "ratio_hi", "median_ratio", "spread_a", "spread_b",
                  "t", "dof", "significant", "verdict", "change", "mix", "settings"]


def _one(d, setting, extra, xa, xb, higher, min_change):
    nan = math.nan
    med_a, med_b = float(np.median(xa)), float(np.median(xb))
    ratio = lo = hi = t = dof = nan
    significant = False
    if (xa > 0).all() and (xb > 0).all():
        la, lb = np.log(xa), np.log(xb)
        diff = float(lb.mean() - la.mean())
        ratio = math.exp(diff)
        if len(xa) >= 2 and len(xb) >= 2:
            diff, se, dof = welch(la, lb)
            if se > 0:
                t = diff / se
                half = t_critical(dof) * se
                lo, hi = math.exp(diff - half), math.exp(diff + half)
                significant = abs(t) >= t_critical(dof)
            else:  # every run of each side identical
                t = 0.0 if diff == 0 else math.copysign(math.inf, diff)
                lo = hi = ratio
                significant = diff != 0
            if significant and abs(ratio - 1.0) < min_change:
                significant = False
    verdict = "not significant"
    if significant:
        better = ratio > 1 if higher else ratio < 1
        verdict = "faster" if better else "slower"
    if verdict == "not significant":
        change = "not significant" + (" (n<2)" if min(len(xa), len(xb)) < 2 else "")
    else:
        f = ratio if ratio >= 1 else 1 / ratio
        change = f"{f:.2f}x {verdict}"

    def spread(x, m):
        return float((x.max() - x.min()) / m) if m else nan

    return dict(map=d["map"], workload=d["workload"], threads=int(float(d["threads"])),
                extra=extra, n_a=len(xa), n_b=len(xb), median_a=med_a, median_b=med_b,
                ratio=ratio, ratio_lo=lo, ratio_hi=hi,
                median_ratio=med_b / med_a if med_a else nan,
                spread_a=spread(xa, med_a), spread_b=spread(xb, med_b), t=t, dof=dof,
                significant=significant, verdict=verdict, change=change, mix=d["mix"],
                settings=json.dumps(setting))


def _sort_key(p):
    """Workloads in the order of the workload table, maps in chart order, then threads."""
    from .plotting import MAP_STYLES, WORKLOAD_ORDER

    d = dict(zip(POINT_KEYS, p))
    w, m = d["workload"], d["map"]
    wi = WORKLOAD_ORDER.index(w) if w in WORKLOAD_ORDER else len(WORKLOAD_ORDER)
    order = list(MAP_STYLES)
    mi = order.index(m) if m in order else len(order)
    try:
        thr = float(d["threads"])
    except ValueError:
        thr = 0.0
    return (wi, w, mi, m, thr, p)
