"""Charts from harness results: every function takes the results DataFrame and returns a figure.

The frames are the ones :mod:`seqmap_nb.harness` produces (one row per run and repetition,
columns as in the results schema, provenance on every row); frames loaded from several
files or machines work the same way. Nothing here runs a benchmark, and nothing calls
``plt.show()``: figures are built with :class:`matplotlib.figure.Figure` directly, so they
never enter pyplot's global figure list, work headless (Agg), and display once in Jupyter
when returned from a cell.

Reading the charts
------------------
1. A line is one map: the marker is the **median** over the repetitions of that point, the
   shaded band spans the **min..max** of the repetitions (with three repetitions the band
   is the whole spread, nothing is hidden). Every chart says so on itself, with the number
   of repetitions, in a line above the footnote, and decodes the mix after a workload's
   name, e.g. ``read_heavy (98/1/1/0/0)``: % read / insert / remove / update / upsert.
   The ``null`` map (the harness alone) is a grey dotted reference line in the ns/op chart
   (the floor: what the harness itself spends per op); the other charts leave it out
   unless asked for by name (``maps=[..., "null"]``). Runs whose final state failed verification
   (``verified == False``) are dropped with a warning and counted in the footnote: a
   benchmark of a wrong map is worthless.
2. Each map has one colour and marker in every chart (:data:`MAP_STYLES`, Okabe-Ito
   palette, safe for the common colour-vision deficiencies); maps not listed get a stable
   colour derived from their name.
3. Thread axes are log2 with a dotted vertical line at the machine's logical core count:
   points right of it are oversubscribed (more runnable threads than CPUs).
4. Value axes switch to log scale when the plotted medians span two decades or more
   (``logy="auto"``), as they do when Python-level maps share a chart with nogil kernels.
5. Every figure carries a footnote with the provenance taken from the frame: CPU model,
   logical cores, package version, git commit, numba version and the UTC date of the runs.

Functions
---------
- :func:`throughput_vs_threads`, :func:`ns_per_op_vs_threads`: the conc-map-bench charts.
- :func:`throughput_vs_load_factor`: fixed-capacity tables measured at a target fill.
- :func:`contention`: throughput (top row) and seqlock retries / write waits per op
  (bottom row) against Zipf theta, hot-set size, hot-op share or write ratio.
- :func:`probe_distributions`: probe-length distributions per load factor, measured means
  against Knuth's expected values; :func:`probe_summary` gives the numbers.
- :func:`latency_percentiles`: sampled p50 / p99 / p99.9 per map, honest below the timer's
  resolution (hollow markers, a dashed line at the resolution).
- :func:`max_stall_vs_threads`: the longest stall any thread saw; :func:`growth`: the
  ``grow`` workload's throughput and longest stall against the entries inserted.
- :func:`ratio_chart` (the headline for design reviews) and :func:`round_ratios`: a map's
  throughput divided by a baseline's, median of per-round ratios with their min–max, and
  the 1.0 line; :func:`ratio_table`: the ratio of medians as a table.
- :func:`comparison_chart`: the forest plot of ``seqmap-nb compare``.
- :func:`use_style`: apply the packaged style (``seqmap_nb.mplstyle``) to your own charts.
- :func:`default_figures`, :func:`save_figures`: the chart set the ``seqmap-nb`` command writes.
"""
from __future__ import annotations

import json
import math
import os
import warnings
import zlib
from contextlib import contextmanager
from importlib import resources

import matplotlib
import matplotlib.colors
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

__all__ = [
    "OKABE_ITO",
    "MAP_STYLES",
    "STYLE_PATH",
    "map_style",
    "use_style",
    "style_context",
    "throughput_vs_threads",
    "ns_per_op_vs_threads",
    "throughput_vs_load_factor",
    "contention",
    "probe_distributions",
    "probe_summary",
    "latency_percentiles",
    "max_stall_vs_threads",
    "growth",
    "round_ratios",
    "ratio_chart",
    "comparison_chart",
    "ratio_table",
    "REFERENCE_MAPS",
    "provenance_text",
    "default_figures",
    "save_figures",
]

# --------------------------------------------------------------------------- style

#: The packaged matplotlib style file (installed as package data).
STYLE_PATH = str(resources.files("seqmap_nb").joinpath("seqmap_nb.mplstyle"))

#: Okabe & Ito (2008) colour-universal-design palette.
OKABE_ITO = {
    "vermillion": "#D55E00",
    "blue": "#0072B2",
    "bluish_green": "#009E73",
    "orange": "#E69F00",
    "reddish_purple": "#CC79A7",
    "sky_blue": "#56B4E9",
    "black": "#000000",
    "yellow": "#F0E442",
}

#: Fixed look per map name: the same colour and marker in every chart.
MAP_STYLES = {
    "seqmap": dict(color=OKABE_ITO["vermillion"], marker="o"),
    "dashmap": dict(color=OKABE_ITO["blue"], marker="s"),
    "global_lock": dict(color=OKABE_ITO["black"], marker="v"),
    "cas": dict(color=OKABE_ITO["bluish_green"], marker="^"),
    "plain": dict(color=OKABE_ITO["orange"], marker="D"),
    "typed_dict": dict(color=OKABE_ITO["reddish_purple"], marker="P"),
    "dict_lock": dict(color=OKABE_ITO["sky_blue"], marker="X"),
    # the harness's own cost: a grey dotted reference line, not a contestant
    "null": dict(color="#8c8c8c", marker=".", ls=":"),
}
#: maps drawn as references (not contestants): left out of ratio tables and ratio charts
REFERENCE_MAPS = ("null",)

# Colours for map names not in MAP_STYLES (Paul Tol's "muted" scheme, also CVD-safe),
# chosen by a stable hash of the name so a custom map keeps its colour across charts.
_EXTRA_COLOURS = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
                  "#DDCC77", "#CC6677", "#882255", "#AA4499"]
_EXTRA_MARKERS = ["h", "*", "p", "<", ">", "d", "8"]
_MACHINE_LINESTYLES = ["-", "--", "-.", ":"]

_UNITS = {
    "mops": "throughput (Mop/s)",
    "ns_per_op": "mean time per op per thread (ns/op)",
    "retries_per_op": "seqlock read retries per op",
    "waits_per_op": "write spin-waits per op",
    "threads": "threads",
    "load_factor": "load factor α (fill of a fixed-capacity table)",
    "theta": "Zipf θ (0 = uniform keys)",
    "hot_keys": "hot-set size (fraction of keys)",
    "hot_ops": "share of ops on the hot set",
    "write_ratio": "write share of ops (insert + remove + update + upsert)",
    "max_stall_ns": "longest stall of any thread (ns, log)",
    "ops": "entries inserted (the map ends holding them)",
}

_MIX_ORDER = ("read", "insert", "remove", "update", "upsert")

#: Panel order for workloads (the order of the workload table); others follow alphabetically.
WORKLOAD_ORDER = ("read_heavy", "exchange", "rapid_grow", "bustle_read_heavy", "insert_heavy",
                  "update_heavy", "uniform", "ycsb_a", "ycsb_b", "ycsb_c", "ycsb_d", "ycsb_f",
                  "custom")


def map_style(name):
    """Colour and marker (and for references a line style ``ls``) of map `name`: a dict for
    ``ax.plot(**style)``, fixed across charts."""
    name = str(name)
    if name in MAP_STYLES:
        return dict(MAP_STYLES[name])
    h = zlib.crc32(name.encode())
    return dict(color=_EXTRA_COLOURS[h % len(_EXTRA_COLOURS)],
                marker=_EXTRA_MARKERS[(h // len(_EXTRA_COLOURS)) % len(_EXTRA_MARKERS)])


def _map_order(names):
    known = [n for n in MAP_STYLES if n in set(names)]
    return known + sorted(set(map(str, names)) - set(known))


class _StyleContext:
    """Result of :func:`use_style`: already applied; as a context manager, undone on exit."""

    def __init__(self):
        self._saved = dict(matplotlib.rcParams)
        matplotlib.style.use(STYLE_PATH)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # dict.update, as matplotlib.rc_context does: skips re-validation and deprecation noise
        dict.update(matplotlib.rcParams, self._saved)
        return False


def use_style():
    """Apply the packaged chart style.

    Called plainly it applies the style for the rest of the session (``use_style()``); used
    as a context manager it restores the previous settings on exit
    (``with use_style(): ...``). The chart functions of this module apply the style to the
    figures they build themselves; this is for your own charts.
    """
    return _StyleContext()


@contextmanager
def style_context():
    """Context manager applying the packaged style, restoring the previous settings after."""
    with matplotlib.style.context(STYLE_PATH):
        yield


# --------------------------------------------------------------------------- frame helpers

def _require(df, cols, what):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} needs a pandas DataFrame from seqmap_nb.harness, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: the frame lacks column(s) {missing}; "
                         f"expected a harness results frame (schema in seqmap_nb.results)")


def _verified_only(df, what):
    """Drop runs that failed verification (with a warning); remember how many in attrs."""
    if "verified" not in df.columns:
        return df
    ok = df["verified"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
    bad = int((~ok).sum())
    if bad:
        warnings.warn(f"{what}: {bad} run(s) failed verification and are not plotted "
                      f"(see verify_detail)", RuntimeWarning, stacklevel=3)
    out = df[ok].copy()
    out.attrs["unverified_dropped"] = bad
    return out


def _uniq(df, col):
    if col not in df.columns:
        return []
    vals = df[col].dropna()
    vals = [v for v in vals.astype(str).unique() if v not in ("", "nan", "None")]
    return vals


def _join_few(vals, noun):
    if not vals:
        return None
    if len(vals) <= 2:
        return " | ".join(vals)
    return f"{len(vals)} {noun}"


def machine_label(df):
    """The machine label for titles: the frame's ``machine`` column, else cpu_model/cores."""
    machines = _uniq(df, "machine")
    if not machines:
        cpu, cores = _uniq(df, "cpu_model"), _uniq(df, "logical_cores")
        if cpu:
            machines = [f"{cpu[0]}/{cores[0]}" if cores else cpu[0]]
    return _join_few(machines, "machines") or "unknown machine"


def provenance_text(df, dropped=0):
    """One line of provenance from the frame: CPU, cores, package version, commit, numba, date."""
    parts = []
    cpu = _join_few(_uniq(df, "cpu_model"), "CPU models")
    if cpu:
        parts.append(cpu)
    cores = _uniq(df, "logical_cores")
    if cores:
        parts.append(f"{_join_few([str(int(float(c))) for c in cores], 'core counts')} logical cores")
    osn = _join_few(_uniq(df, "os"), "OSes")
    if osn:
        parts.append(osn)
    ver = _join_few(_uniq(df, "package_version"), "versions")
    parts.append(f"seqmap_nb {ver}" if ver else "seqmap_nb version unknown")
    commits = [c[:10] for c in _uniq(df, "git_commit")]
    parts.append(f"commit {_join_few(commits, 'commits')}" if commits else "commit unknown")
    nb = _join_few(_uniq(df, "numba"), "versions")
    if nb:
        parts.append(f"numba {nb}")
    times = _uniq(df, "utc_time")
    if times:
        days = sorted({t[:10] for t in times})
        parts.append((days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}") + " UTC")
    if dropped:
        parts.append(f"{dropped} unverified run(s) excluded")
    return " · ".join(parts)


def _cores(df):
    out = []
    for c in _uniq(df, "logical_cores"):
        try:
            out.append(int(float(c)))
        except ValueError:
            pass
    return sorted(set(out))


def _mix_label(mix):
    """'98/1/1/0/0' (read/insert/remove/update/upsert) from the mix JSON string."""
    try:
        d = json.loads(mix) if isinstance(mix, str) else dict(mix)
    except (TypeError, ValueError):
        return ""
    return "/".join(f"{float(d.get(k, 0)):g}" for k in _MIX_ORDER)


def write_ratio(df):
    """Write share of each run's mix (1 - read share) as a Series, from the ``mix`` column."""
    def one(mix):
        try:
            d = json.loads(mix) if isinstance(mix, str) else dict(mix)
            total = sum(float(v) for v in d.values()) or 100.0
            return 1.0 - float(d.get("read", 0)) / total
        except (TypeError, ValueError):
            return math.nan
    return df["mix"].map(one).astype(float)


# --------------------------------------------------------------------------- figure helpers

def _new_figure(n_panels, nrows_per_panel=1, ncols_max=3, panel=(3.7, 2.9), sharey=False):
    """A constrained-layout figure with n panels (each nrows_per_panel axes tall)."""
    ncols = max(1, min(n_panels, ncols_max))
    nrows = math.ceil(n_panels / ncols)
    w = max(6.4, panel[0] * ncols + 1.6)  # + room for the legend column on the right
    h = panel[1] * nrows * nrows_per_panel + 1.0
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(nrows * nrows_per_panel, ncols, squeeze=False, sharey=sharey)
    panels = []
    for i in range(nrows * ncols):
        r, c = divmod(i, ncols)
        stack = [axes[r * nrows_per_panel + k, c] for k in range(nrows_per_panel)]
        if i < n_panels:
            panels.append(stack)
        else:
            for ax in stack:
                fig.delaxes(ax)
    return fig, panels


def _finish(fig, df, title, handles=None, dropped=0, note=None):
    """Suptitle (with machine), a shared legend, how to read the chart (`note`, above the
    footnote), the provenance footnote."""
    fig.suptitle(f"{title} · {machine_label(df)}")
    if handles:
        fig.legend(handles=handles, loc="outside right center")
    h_in = fig.get_figheight()
    text = provenance_text(df, dropped)
    per_line = int(fig.get_figwidth() * 22)
    lines = 1 + len(text) // per_line
    fig.text(0.005, 0.004, text, fontsize=6.3, color="0.35", ha="left", va="bottom",
             wrap=True, gid="provenance")
    if note:
        note_lines = 1 + len(note) // int(fig.get_figwidth() * 19)
        fig.text(0.005, (0.03 + 0.115 * lines) / h_in, note, fontsize=7, color="0.15",
                 ha="left", va="bottom", wrap=True, gid="reading")
        lines += note_lines * 1.15
    reserve = min(0.3, (0.08 + 0.12 * lines) / h_in)
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        engine.set(rect=(0, reserve, 1, 1 - reserve))  # (left, bottom, width, height)
    return fig


def _scale_for(values, decades=2.0):
    """'log', 'symlog' or 'linear' for a set of plotted values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size == 0 or np.any(v < 0):
        return "linear"
    pos = v[v > 0]
    if pos.size == 0 or pos.max() / pos.min() < 10 ** decades:
        return "linear"
    return "symlog" if np.any(v == 0) else "log"


def _apply_scale(ax, axis, scale, values):
    setter = ax.set_yscale if axis == "y" else ax.set_xscale
    if scale == "symlog":
        pos = np.asarray([x for x in values if np.isfinite(x) and x > 0], dtype=float)
        setter("symlog", linthresh=float(pos.min()) if pos.size else 1e-3)
    elif scale in ("log", "linear"):
        setter(scale)


def _threads_axis(ax, xs, cores):
    ax.set_xscale("log", base=2)
    ticks = sorted(set(int(x) for x in xs))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    for c in cores:
        ax.axvline(c, ls=":", lw=1.1, color="0.35", gid="cores", label="_cores")
        ax.annotate(f"{c} cores", xy=(c, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(2, -2), textcoords="offset points", ha="left", va="top",
                    fontsize=6.5, color="0.35")


def _series_keys(df):
    return ["map", "machine"] if "machine" in df.columns and df["machine"].nunique() > 1 else ["map"]


def _summary(df, x, y, keys):
    g = df.dropna(subset=[y]).groupby(keys + [x], sort=True)[y]
    return g.agg(median="median", lo="min", hi="max", n="count").reset_index()


def _draw_series(ax, df, x, y, band=True, linestyle=None, label_suffix=""):
    """One line per map (and machine): median with a min..max band. Returns legend handles."""
    keys = _series_keys(df)
    machines = sorted(df["machine"].astype(str).unique()) if "machine" in keys else []
    s = _summary(df, x, y, keys)
    handles = {}
    for name in _map_order(s["map"].unique()):
        sub_m = s[s["map"].astype(str) == name]
        groups = sub_m.groupby("machine") if machines else [(None, sub_m)]
        for machine, sub in groups:
            sub = sub.sort_values(x)
            st = map_style(name)
            own_ls = st.pop("ls", None)
            ls = linestyle or own_ls or (_MACHINE_LINESTYLES[machines.index(str(machine)) % 4]
                                         if machines else "-")
            label = name + (f" @ {machine}" if machines else "") + label_suffix
            (line,) = ax.plot(sub[x], sub["median"], ls=ls, label=label, gid=f"series:{name}", **st)
            if band and (sub["n"] > 1).any():
                ax.fill_between(sub[x], sub["lo"], sub["hi"], color=st["color"], alpha=0.16,
                                lw=0, gid=f"band:{name}")
            handles[label] = line
    return handles


def _facets(df, cols):
    """[(title, subframe)] for every combination of the facet columns present in df."""
    cols = [c for c in cols if c in df.columns]
    if not cols:
        return [("", df)]
    out = []
    for key, sub in df.groupby(cols, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((key, _facet_title(dict(zip(cols, key)), sub), sub))

    def order(item):
        return tuple((WORKLOAD_ORDER.index(v) if v in WORKLOAD_ORDER else len(WORKLOAD_ORDER), str(v))
                     if c == "workload" else (0, v) for c, v in zip(cols, item[0]))
    return [(title, sub) for _, title, sub in sorted(out, key=order)]


def _threads_text(n):
    n = int(n)
    return f"{n} thread{'' if n == 1 else 's'}"


def _facet_title(values, sub):
    parts = []
    for col, v in values.items():
        if col == "workload":
            mix = _mix_label(sub["mix"].iloc[0]) if "mix" in sub.columns else ""
            parts.append(f"{v}" + (f" ({mix})" if mix and v != "custom" else ""))
        elif col == "threads":
            parts.append(_threads_text(v))
        elif col == "keys":
            parts.append(f"{v} keys")
        elif col == "load_factor":
            parts.append(f"α={float(v):g}")
        else:
            parts.append(f"{col}={v}")
    return " · ".join(parts)


def _select(df, col, values, what):
    if values is None:
        return df
    if isinstance(values, (str, int, float)):
        values = [values]
    values = list(values)
    out = df[df[col].isin(values)]
    if out.empty:
        raise ValueError(f"{what}: no rows with {col} in {values}; "
                         f"the frame has {sorted(df[col].astype(str).unique())}")
    return out


def _legend_handles(handle_dicts):
    merged = {}
    for d in handle_dicts:
        for label, h in d.items():
            merged.setdefault(label, h)
    order = _map_order([lbl.split(" @ ")[0].split(" (")[0] for lbl in merged])
    return sorted(merged.values(),
                  key=lambda h: (order.index(h.get_label().split(" @ ")[0].split(" (")[0])
                                 if h.get_label().split(" @ ")[0].split(" (")[0] in order else 99,
                                 h.get_label()))


_PARAM_COLS = ("keys", "theta", "hot_ops", "hot_keys", "load_factor", "capacity", "prefill",
               "mix", "key_dtype", "value_dtype")


def _warn_mixed(df, x, facet_cols, what):
    """Warn when one plotted point would pool runs of different parameters (a filter is due)."""
    group = [c for c in ["map", "machine", x, *facet_cols] if c in df.columns]
    params = [c for c in _PARAM_COLS if c in df.columns and c not in group]
    if not params:
        return
    n = df[group + params].astype(str).drop_duplicates().groupby(group).size()
    if (n > 1).any():
        varying = [c for c in params if (df.groupby(group)[c].nunique(dropna=False) > 1).any()]
        warnings.warn(f"{what}: some points pool runs that differ in {varying}; the medians mix "
                      f"different experiments (filter the frame first)", RuntimeWarning,
                      stacklevel=4)


def _runs_per_point(df, x, y):
    """(fewest, most) runs any plotted point is the median of."""
    keys = _series_keys(df)
    present = [c for c in ("workload", "threads", "theta", "hot_keys", "hot_ops", "load_factor",
                           "keys", "mix", "ops") if c in df.columns and c not in keys and c != x]
    n = df.dropna(subset=[y]).groupby(keys + [x] + present, dropna=False)[y].count()
    return (int(n.min()), int(n.max())) if len(n) else (0, 0)


def _reading_note(df, x, y, band=True, threads_axis=False, mixes=True):
    """How to read a median-and-band chart, from the frame: what the band is, the mix codes."""
    lo, hi = _runs_per_point(df, x, y)
    runs = f"{lo} run{'s' if lo != 1 else ''}" if lo == hi else f"{lo}–{hi} runs"
    parts = [f"marker: median of {runs} per point"
             + ("; band: min–max of those runs" if band and hi > 1 else "")]
    if "null" in set(df["map"].astype(str)):
        parts.append("null (grey, dotted): the harness alone, no table")
    if threads_axis:
        parts.append("dotted vertical line: logical cores (right of it threads share CPUs)")
    if mixes and "workload" in df.columns and (df["workload"].astype(str) != "custom").any():
        parts.append("(a/b/c/d/e) after a workload: % read / insert / remove / update / upsert")
    return " · ".join(parts)


def _metric_vs(df, x, y, facet_cols, title, what, logy="auto", xaxis="linear", band=True,
               sharey=False):
    dropped = df.attrs.get("unverified_dropped", 0)
    _warn_mixed(df, x, facet_cols, what)
    facets = _facets(df, facet_cols)
    with style_context():
        fig, panels = _new_figure(len(facets), sharey=sharey)
        # the scale is chosen from every panel's medians (pooling panels would hide the spread)
        allmed = pd.concat([_summary(sub, x, y, _series_keys(sub))["median"] for _, sub in facets])
        yscale = _scale_for(allmed) if logy == "auto" else ("log" if logy else "linear")
        handles = []
        for (ftitle, sub), (ax,) in zip(facets, panels):
            handles.append(_draw_series(ax, sub, x, y, band=band))
            if xaxis == "threads":
                _threads_axis(ax, sub[x], _cores(df))
            elif xaxis == "auto":
                _apply_scale(ax, "x", _scale_for(sub[x].dropna().unique()), sub[x].dropna().unique())
            _apply_scale(ax, "y", yscale, allmed)
            if yscale == "linear":
                ax.set_ylim(bottom=0)
            ax.set_title(ftitle)
            ax.set_xlabel(_UNITS.get(x, x))
            ax.set_ylabel(_UNITS.get(y, y))
        note = _reading_note(df, x, y, band=band, threads_axis=xaxis == "threads",
                             mixes="workload" in facet_cols)
        _finish(fig, df, title, _legend_handles(handles), dropped, note=note)
    return fig


def _prepare(df, cols, what, workloads=None, maps=None, references=False):
    """Checked, verified rows of the workloads and maps asked for. Reference maps (null)
    are left out unless `references` or named in `maps`: on a throughput or latency axis
    the harness alone (hundreds of Mop/s, a few ns) squeezes the maps into a corner; the
    ns/op chart keeps it as the floor."""
    _require(df, ["map"] + cols, what)
    df = _verified_only(df, what)
    if "workload" in df.columns:
        df = _select(df, "workload", workloads, what)
    if maps is None and not references:
        df = df[~df["map"].astype(str).isin(REFERENCE_MAPS)]
    df = _select(df, "map", maps, what)
    if df.empty:
        raise ValueError(f"{what}: nothing to plot (no verified rows)")
    return df


def _thread_sweep_rows(df):
    """Rows of thread-scaling runs: not load-factor sweeps."""
    if "load_factor" in df.columns and df["load_factor"].notna().any():
        rest = df[df["load_factor"].isna()]
        return rest if not rest.empty else df
    return df


# --------------------------------------------------------------------------- charts

def throughput_vs_threads(df, workloads=None, maps=None, logy="auto"):
    """Throughput (Mop/s, all threads) against thread count: one panel per workload.

    One line per map: the median over repetitions, with the min..max band. x is log2, with a
    dotted line at the machine's logical core count. The conc-map-bench chart.
    """
    df = _prepare(df, ["threads", "mops"], "throughput_vs_threads", workloads, maps)
    return _metric_vs(_thread_sweep_rows(df), "threads", "mops", ["workload"],
                      "Throughput vs threads", "throughput_vs_threads", logy=logy,
                      xaxis="threads")


def ns_per_op_vs_threads(df, workloads=None, maps=None, logy="auto"):
    """Mean time per operation per thread (ns/op, bustle's "latency") against thread count.

    ns_per_op = seconds · 1e9 · threads / ops: flat lines mean perfect scaling, rising lines
    mean the threads get in each other's way (or, right of the core line, share CPUs). The
    null map, where the frame has it, is the floor: what the harness itself spends per op.
    The other charts leave it out unless named in `maps`.
    """
    df = _prepare(df, ["threads", "ns_per_op"], "ns_per_op_vs_threads", workloads, maps,
                  references=True)
    return _metric_vs(_thread_sweep_rows(df), "threads", "ns_per_op", ["workload"],
                      "Mean time per op vs threads", "ns_per_op_vs_threads", logy=logy,
                      xaxis="threads")


def throughput_vs_load_factor(df, workloads=None, maps=None, logy="auto"):
    """Throughput against the fill of a fixed-capacity table (rows with ``load_factor`` set).

    One panel per workload (and thread count, when the frame holds several).
    """
    df = _prepare(df, ["load_factor", "mops"], "throughput_vs_load_factor", workloads, maps)
    df = df[df["load_factor"].notna()]
    if df.empty:
        raise ValueError("throughput_vs_load_factor: no rows with load_factor set; run "
                         "harness.sweep(grid={'load_factor': [...]}, ...) first")
    facet_cols = ["workload"] + (["threads"] if df["threads"].nunique() > 1 else [])
    return _metric_vs(df, "load_factor", "mops", facet_cols, "Throughput vs load factor",
                      "throughput_vs_load_factor", logy=logy)


_CONTENTION_BY = {
    "theta": ("zipf", "Throughput and seqlock retries vs Zipf θ"),
    "hot_keys": ("hotset", "Throughput and seqlock retries vs hot-set size"),
    "hot_ops": ("hotset", "Throughput and seqlock retries vs hot-op share"),
    "write_ratio": (None, "Throughput and seqlock retries vs write share"),
    "threads": (None, "Throughput and seqlock retries vs threads"),
}


def contention(df, by="theta", workloads=None, maps=None, logy="auto"):
    """Throughput (top row) and retries / waits per op (bottom row) against a contention axis.

    `by`: "theta" (Zipf rows), "hot_keys" or "hot_ops" (hot-set rows), "write_ratio" (the
    write share computed from each run's mix) or "threads". Bottom row: seqlock read
    retries per op (solid) and write spin-waits per op (dashed), per map, medians over
    repetitions. Maps that do not count retries (NaN) leave the bottom row blank.
    """
    if by not in _CONTENTION_BY:
        raise ValueError(f"contention: by must be one of {sorted(_CONTENTION_BY)}, got {by!r}")
    keys_kind, title = _CONTENTION_BY[by]
    need = ["mops", "retries_per_op"] + (["mix"] if by == "write_ratio" else [by])
    df = _prepare(df, need, "contention", workloads if by != "write_ratio" else None, maps)
    if by == "write_ratio":
        df = df.assign(write_ratio=write_ratio(df))
        facet_cols = ["keys", "threads"]
    else:
        facet_cols = ["workload", "threads"]
    if keys_kind is not None and "keys" in df.columns:
        df = df[df["keys"] == keys_kind]
    df = df[df[by].notna()]
    if df.empty:
        raise ValueError(f"contention(by={by!r}): no rows for this axis"
                         + (f" (keys == {keys_kind!r})" if keys_kind else ""))
    facet_cols = [c for c in facet_cols if c != by and c in df.columns and df[c].nunique() > 1]
    if not facet_cols and "workload" in df.columns and by != "write_ratio":
        facet_cols = ["workload"]
    dropped = df.attrs.get("unverified_dropped", 0)
    facets = _facets(df, facet_cols)
    with style_context():
        fig, panels = _new_figure(len(facets), nrows_per_panel=2, panel=(3.7, 2.4))
        keys = _series_keys(df)
        med_top = pd.concat([_summary(sub, by, "mops", keys)["median"] for _, sub in facets])
        yscale = _scale_for(med_top) if logy == "auto" else ("log" if logy else "linear")
        low = pd.concat([_summary(sub, by, c, keys)["median"] for _, sub in facets
                         for c in ("retries_per_op", "waits_per_op") if c in df.columns])
        lscale = _scale_for(low)
        handles = []
        for (ftitle, sub), (top, bottom) in zip(facets, panels):
            handles.append(_draw_series(top, sub, by, "mops"))
            _draw_series(bottom, sub, by, "retries_per_op", band=False)
            if "waits_per_op" in sub.columns and sub["waits_per_op"].notna().any():
                _draw_series(bottom, sub, by, "waits_per_op", band=False, linestyle="--",
                             label_suffix=" (waits)")
            xs = sub[by].dropna().unique()
            for ax in (top, bottom):
                if by == "threads":
                    _threads_axis(ax, xs, _cores(df))
                else:
                    _apply_scale(ax, "x", _scale_for(xs), xs)
            _apply_scale(top, "y", yscale, med_top)
            if yscale == "linear":
                top.set_ylim(bottom=0)
            _apply_scale(bottom, "y", lscale, low)
            if lscale in ("linear", "symlog"):  # counts per op: nothing below zero to show
                bottom.set_ylim(bottom=0)
            top.set_title(ftitle)
            top.set_ylabel(_UNITS["mops"])
            bottom.set_ylabel("per op: retries (—), waits (--)")
            bottom.set_xlabel(_UNITS.get(by, by))
        note = (_reading_note(df, by, "mops", mixes=False)
                + " (top row) · bottom row: medians of seqlock read retries (solid) and "
                "write spin-waits (dashed) per op; maps that count none draw none")
        _finish(fig, df, title, _legend_handles(handles), dropped, note=note)
    return fig


def knuth_hit(alpha):
    """Knuth's expected probes of a successful linear-probing search: ½(1 + 1/(1−α))."""
    a = np.asarray(alpha, dtype=float)
    return 0.5 * (1.0 + 1.0 / (1.0 - a))


def knuth_miss(alpha):
    """Knuth's expected probes of an unsuccessful linear-probing search: ½(1 + 1/(1−α)²)."""
    a = np.asarray(alpha, dtype=float)
    return 0.5 * (1.0 + 1.0 / (1.0 - a) ** 2)


def probe_summary(probe_df):
    """Per map and load factor: keys measured, mean / p99 / max probe length, Knuth, error.

    `probe_df` is the long frame of ``harness.probe_study`` (map, load_factor, capacity,
    probe_length, count, ...). ``rel_err`` = mean / knuth_hit − 1 (signed).
    """
    _require(probe_df, ["map", "load_factor", "probe_length", "count"], "probe_summary")
    rows = []
    for (name, alpha), sub in probe_df.groupby(["map", "load_factor"], sort=True):
        sub = sub.sort_values("probe_length")
        pl = sub["probe_length"].to_numpy(dtype=float)
        cnt = sub["count"].to_numpy(dtype=float)
        n = cnt.sum()
        if n <= 0:
            continue
        mean = float((pl * cnt).sum() / n)
        cdf = np.cumsum(cnt) / n
        p99 = float(pl[min(np.searchsorted(cdf, 0.99), len(pl) - 1)])
        kh = float(knuth_hit(alpha))
        size_col = "slots" if "slots" in sub else "capacity"
        rows.append(dict(map=name, load_factor=float(alpha),
                         capacity=int(sub[size_col].iloc[0]) if size_col in sub else -1,
                         keys=int(n), mean=mean, p99=p99, max=float(pl[cnt > 0].max()),
                         knuth_hit=kh, knuth_miss=float(knuth_miss(alpha)), rel_err=mean / kh - 1.0))
    return pd.DataFrame(rows)


def probe_distributions(probe_df, map=None, max_length=None):
    """Probe-length distributions per load factor (left) and their means against Knuth (right).

    Left: for one map (default: ``seqmap`` if present, else the first), the fraction of live
    keys whose lookup inspects at least k slots (complementary CDF, log-log), one line per
    load factor (viridis: light = full),
    with a triangle on the top edge at Knuth's expected mean for that load. Right: measured
    mean probe length per load factor for every map in the frame (markers), Knuth's
    successful-search curve ½(1+1/(1−α)) (solid) and unsuccessful-search curve
    ½(1+1/(1−α)²) (dashed), log y.
    """
    _require(probe_df, ["map", "load_factor", "probe_length", "count"], "probe_distributions")
    if probe_df.empty:
        raise ValueError("probe_distributions: empty frame")
    names = _map_order(probe_df["map"].unique())
    show = map if map is not None else ("seqmap" if "seqmap" in names else names[0])
    if show not in names:
        raise ValueError(f"probe_distributions: map {show!r} not in the frame ({names})")
    summ = probe_summary(probe_df)
    with style_context():
        fig = Figure(figsize=(9.0, 3.9), layout="constrained")
        left, right = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=[1.35, 1]))
        one = probe_df[probe_df["map"] == show]
        loads = sorted(one["load_factor"].unique())
        cmap = matplotlib.colormaps["viridis"]
        norm = matplotlib.colors.Normalize(vmin=min(loads), vmax=max(max(loads), min(loads) + 1e-9))
        for a in loads:
            sub = one[one["load_factor"] == a].groupby("probe_length")["count"].sum().sort_index()
            if max_length is not None:
                sub = sub[sub.index <= max_length]
            # complementary CDF, P(probe length >= k): smooth where a histogram of the tail is
            # all ones and zeros, and the mean is the area under it
            ccdf = sub[::-1].cumsum()[::-1] / sub.sum()
            colour = cmap(0.92 * norm(a))
            left.step(ccdf.index, ccdf.values, where="post", color=colour, lw=1.3,
                      label=f"α={a:g}", gid=f"load:{a:g}")
            left.plot([float(knuth_hit(a))], [1.0], marker="v", ms=6, color=colour, ls="none",
                      transform=left.get_xaxis_transform(), clip_on=False, gid="knuth_mark")
        left.set_yscale("log")
        left.set_xscale("log")
        left.set_xlabel("probe length k (slots a successful lookup inspects)")
        left.set_ylabel("fraction of live keys with probe length ≥ k")
        left.set_title(f"{show}: distribution per load factor (▼ Knuth mean)")
        left.legend(ncols=2, fontsize=6.5, loc="lower left")
        grid = np.linspace(0.0, max(0.96, summ["load_factor"].max() if len(summ) else 0.95), 200)
        right.plot(grid, knuth_hit(grid), color="0.15", lw=1.4, label="Knuth hit ½(1+1/(1−α))",
                   gid="knuth_hit")
        right.plot(grid, knuth_miss(grid), color="0.45", lw=1.2, ls="--",
                   label="Knuth miss ½(1+1/(1−α)²)", gid="knuth_miss")
        for name in names:
            s = summ[summ["map"] == name]
            right.plot(s["load_factor"], s["mean"], ls="none", label=f"{name} measured mean",
                       gid=f"series:{name}", **map_style(name))
        right.set_yscale("log")
        right.set_xlabel(_UNITS["load_factor"])
        right.set_ylabel("mean probe length (slots)")
        upto = summ[summ["load_factor"] <= 0.9 + 1e-9]
        if len(upto):
            worst = upto.loc[upto["rel_err"].abs().idxmax()]
            right.set_title(f"mean vs Knuth: worst |error| {abs(worst['rel_err']) * 100:.1f}% "
                            f"at α≤0.9")
        right.legend(fontsize=6.5, loc="upper left")
        cap = _uniq(probe_df, "slots" if "slots" in probe_df else "capacity")
        title = "Linear-probing probe lengths" + (f" ({_join_few(cap, 'sizes')} slots)" if cap else "")
        _finish(fig, probe_df, title)
    return fig


_PCTS = (("p50_ns", 50.0), ("p99_ns", 99.0), ("p999_ns", 99.9))
_PCT_FLAGS = {"p50_ns": "p50", "p99_ns": "p99", "p999_ns": "p99.9"}


def latency_percentiles(df, workloads=None, maps=None, threads=None):
    """Sampled per-op latency percentiles (p50, p99, p99.9; ns, log scale) per map.

    One panel per workload; x is the percentile on a "nines" axis (like HdrHistogram's).
    `threads`: the thread count to show (default: the largest at or below the core count,
    so the chart is not dominated by time slices lost to oversubscription).

    Honest below the clock's resolution: a dashed line marks each timer resolution in the
    frame (``timer_res_ns``), and a point where any run's percentile was below it (named
    in ``lat_below_res``, recorded as the resolution) is drawn hollow: read it as "at most".
    """
    df = _prepare(df, ["threads"] + [c for c, _ in _PCTS], "latency_percentiles", workloads, maps)
    df = _thread_sweep_rows(df).dropna(subset=["p50_ns"])
    if df.empty:
        raise ValueError("latency_percentiles: no rows with sampled latencies (p50_ns is NaN "
                         "everywhere); run the harness with latency sampling on")
    if threads is None:
        cores = _cores(df)
        avail = sorted(df["threads"].unique())
        within = [t for t in avail if not cores or t <= max(cores)]
        threads = within[-1] if within else avail[0]
    df = _select(df, "threads", [threads], "latency_percentiles")
    dropped = df.attrs.get("unverified_dropped", 0)
    flags = (df["lat_below_res"] if "lat_below_res" in df.columns
             else pd.Series("", index=df.index)).fillna("").astype(str)
    long = df.melt(id_vars=[c for c in df.columns if c not in dict(_PCTS)],
                   value_vars=[c for c, _ in _PCTS], var_name="pct", value_name="latency_ns")
    long["nines"] = long["pct"].map({c: -math.log10(1 - p / 100.0) for c, p in _PCTS})
    long_flags = pd.concat([flags] * len(_PCTS), ignore_index=True)
    long["below_res"] = [_PCT_FLAGS[p] in f.split(",") for p, f in zip(long["pct"], long_flags)]
    facets = _facets(long, ["workload"])
    res_maps = {}
    if "timer_res_ns" in df.columns:
        for name, r in zip(df["map"].astype(str), df["timer_res_ns"]):
            if r == r:
                res_maps.setdefault(round(float(r), 1), set()).add(name)
    res = sorted(res_maps)
    every = sorted({int(v) for v in df.get("sample_every", pd.Series(dtype=float)).dropna() if v > 0})
    with style_context():
        fig, panels = _new_figure(len(facets))
        handles = []
        for (ftitle, sub), (ax,) in zip(facets, panels):
            handles.append(_draw_series(ax, sub, "nines", "latency_ns"))
            # hollow markers where a run's percentile was below the timer's resolution
            keys = _series_keys(sub)
            hollow = sub.groupby(keys + ["nines"])["below_res"].any()
            med = sub.groupby(keys + ["nines"])["latency_ns"].median()
            for key, is_below in hollow.items():
                if not is_below:
                    continue
                name = key[0] if isinstance(key, tuple) else key
                st = map_style(name)
                st.pop("ls", None)
                ax.plot([key[-1]], [med[key]], ls="none", mfc="white", mew=1.3, zorder=4,
                        gid=f"below_res:{name}", **st)
            for r in res:
                ax.axhline(r, ls="--", lw=0.9, color="0.45", gid="timer_res")
                who = "" if len(res) == 1 else f" ({', '.join(_map_order(res_maps[r]))})"
                ax.annotate(f"timer resolution {r:g} ns{who}", xy=(0.99, r), xycoords=("axes fraction", "data"),
                            xytext=(0, 2), textcoords="offset points", ha="right", va="bottom",
                            fontsize=6.5, color="0.35")
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(FixedLocator([v for v in sorted(long["nines"].unique())]))
            names = {-math.log10(1 - p / 100.0): f"p{p:g}" for _, p in _PCTS}
            ax.xaxis.set_major_formatter(FuncFormatter(
                lambda v, _: min(names.items(), key=lambda kv: abs(kv[0] - v))[1]))
            ax.set_title(f"{ftitle} · {_threads_text(threads)}")
            ax.set_xlabel("percentile")
            ax.set_ylabel("latency per op (ns, sampled)")
        what = f"every {every[0]}th op" if len(every) == 1 else "sampled ops"
        honest = ("hollow marker: below the timer's resolution (dashed line), recorded as the "
                  "resolution: read it as 'at most'" if res else "timer resolution not recorded "
                  "in these results (schema 1): percentiles of a few ns may be clock steps")
        note = (f"{_reading_note(long, 'nines', 'latency_ns', mixes=False)} · each run: the "
                f"percentile of the latencies of {what} (cycle counter in jitted kernels, "
                f"perf_counter for Python-level maps) · {honest}")
        _finish(fig, df, "Latency percentiles", _legend_handles(handles), dropped, note=note)
    return fig


def max_stall_vs_threads(df, workloads=None, maps=None):
    """The longest stall any thread saw (``max_stall_ns``, log) against thread count.

    One panel per workload. A stall is the longest interval between two clock reads of a
    thread (one sampled op, or the ops between two samples): a stop-the-world resize, a
    preempted lock holder, or past the core count the thread's own lost time slice.
    """
    df = _prepare(df, ["threads", "max_stall_ns"], "max_stall_vs_threads", workloads, maps)
    df = _thread_sweep_rows(df).dropna(subset=["max_stall_ns"])
    if df.empty:
        raise ValueError("max_stall_vs_threads: no rows with max_stall_ns (sampling was off, "
                         "or the results predate the column)")
    return _metric_vs(df, "threads", "max_stall_ns", ["workload"], "Longest stall vs threads",
                      "max_stall_vs_threads", logy=True, xaxis="threads")


def growth(df, maps=None):
    """The ``grow`` workload: throughput (top) and longest stall (bottom) against entries.

    Rows of ``workload == "grow"`` (a map built at its default capacity, ``ops`` fresh keys
    inserted, every doubling inside the clock), x = the entries it ends with (``ops``),
    one column of panels per thread count. A design whose resize stops every writer shows
    a stall that grows with the table (each doubling copies it); one that migrates in
    chunks does not.
    """
    df = _prepare(df, ["workload", "ops", "mops", "max_stall_ns", "threads"], "growth", None, maps)
    df = df[df["workload"] == "grow"]
    if df.empty:
        raise ValueError("growth: no rows of the grow workload; run harness.sweep(grid=dict("
                         "map=[...], ops=[...]), workload='grow') first")
    dropped = df.attrs.get("unverified_dropped", 0)
    facets = _facets(df, ["threads"])
    with style_context():
        fig, panels = _new_figure(len(facets), nrows_per_panel=2, panel=(3.7, 2.4))
        keys = _series_keys(df)
        med_top = pd.concat([_summary(sub, "ops", "mops", keys)["median"] for _, sub in facets])
        yscale = _scale_for(med_top)
        handles = []
        for (ftitle, sub), (top, bottom) in zip(facets, panels):
            handles.append(_draw_series(top, sub, "ops", "mops"))
            stalls = sub.dropna(subset=["max_stall_ns"])
            if len(stalls):
                _draw_series(bottom, stalls, "ops", "max_stall_ns")
            for ax in (top, bottom):
                ax.set_xscale("log", base=2)
            _apply_scale(top, "y", yscale, med_top)
            if yscale == "linear":
                top.set_ylim(bottom=0)
            bottom.set_yscale("log")
            top.set_title(ftitle)
            top.set_ylabel(_UNITS["mops"])
            bottom.set_ylabel(_UNITS["max_stall_ns"])
            bottom.set_xlabel(_UNITS["ops"])
        note = (_reading_note(df, "ops", "mops", mixes=False) + " · each run starts from the "
                "map's default capacity: every doubling is inside the clock · bottom: the longest "
                "interval between two clock reads of any thread (an upper bound of the slowest "
                "insert, within the sampling interval)")
        _finish(fig, df, "Growth from the default capacity", _legend_handles(handles), dropped,
                note=note)
    return fig


def round_ratios(df, baseline="dashmap", maps=None, metric="mops", index=("workload", "threads")):
    """Per-round ratios of each map's `metric` to the baseline's, summarised per point.

    A round is one repetition (``repeat``): in ``seqmap-nb bench`` every point is measured
    once per round, so a map and its baseline measured in one round ran moments apart, on
    the same machine state. Returns a long frame: map, the `index` columns, ``median`` of
    the per-round ratios, ``lo``/``hi`` (their min and max), ``n`` (rounds). Reference maps
    (``null``) are left out unless named in `maps`.
    """
    index = list(index)
    _require(df, ["map", "repeat", metric] + index, "round_ratios")
    df = _thread_sweep_rows(_verified_only(df, "round_ratios"))
    names = set(df["map"].astype(str))
    if baseline not in names:
        raise ValueError(f"round_ratios: baseline map {baseline!r} is not in the frame "
                         f"(maps: {sorted(names)})")
    if maps is None:
        maps = [m for m in _map_order(names) if m != baseline and m not in REFERENCE_MAPS]
    elif isinstance(maps, str):
        maps = [maps]
    pair = index + ["repeat"] + [c for c in ("keys", "theta", "hot_ops", "hot_keys", "machine")
                                 if c in df.columns and c not in index]
    key = pd.Series(["|".join(t) for t in zip(*[df[c].map(str) for c in pair])], index=df.index)
    base = df[df["map"] == baseline].assign(_k=key).groupby("_k")[metric].median()
    out = []
    for name in maps:
        sub = df[df["map"].astype(str) == str(name)].assign(_k=key)
        sub = sub[sub["_k"].isin(base.index)]
        if sub.empty:
            continue
        sub = sub.assign(ratio=sub[metric].to_numpy(float) / base.loc[sub["_k"]].to_numpy(float))
        g = sub.groupby(index)["ratio"].agg(median="median", lo="min", hi="max", n="count")
        out.append(g.reset_index().assign(map=str(name)))
    if not out:
        raise ValueError(f"round_ratios: no rounds in which {list(maps)} and {baseline!r} "
                         "both ran the same point")
    res = pd.concat(out, ignore_index=True)
    return res[["map"] + index + ["median", "lo", "hi", "n"]]


def ratio_chart(df, baseline="dashmap", maps=None, metric="mops", workloads=None):
    """The headline chart: per workload and thread count, each map's throughput divided by
    the baseline's, median of per-round ratios with their min–max, and the 1.0 line.

    Default `maps`: ``seqmap`` when present, else every map but the baseline and ``null``.
    Above the line the map is faster than the baseline (for throughput).
    """
    _require(df, ["map", "threads", "repeat", metric], "ratio_chart")
    if maps is None and "seqmap" in set(df["map"].astype(str)) and baseline != "seqmap":
        maps = ["seqmap"]
    if workloads is not None and "workload" in df.columns:
        df = _select(df, "workload", workloads, "ratio_chart")
    rr = round_ratios(df, baseline=baseline, maps=maps, metric=metric)
    wl = df[["workload", "mix"]].drop_duplicates("workload") if "mix" in df.columns else None
    facets = _facets(rr.merge(wl, on="workload", how="left") if wl is not None else rr, ["workload"])
    with style_context():
        fig, panels = _new_figure(len(facets))
        handles = {}
        allv = pd.concat([rr["lo"], rr["hi"]])
        for (ftitle, sub), (ax,) in zip(facets, panels):
            for name in _map_order(sub["map"].unique()):
                s = sub[sub["map"] == name].sort_values("threads")
                st = map_style(name)
                st.pop("ls", None)
                (line,) = ax.plot(s["threads"], s["median"], label=name, gid=f"series:{name}", **st)
                ax.vlines(s["threads"], s["lo"], s["hi"], color=st["color"], lw=2.2, alpha=0.45,
                          gid=f"spread:{name}")
                for x, y in zip(s["threads"], s["median"]):
                    ax.annotate(f"{y:.2f}", (x, y), xytext=(4, 3), textcoords="offset points",
                                fontsize=6.5, color=st["color"])
                handles[name] = line
            ax.axhline(1.0, color="0.15", lw=1.0, ls="--", gid="parity")
            _threads_axis(ax, sub["threads"], _cores(df))
            ax.set_yscale("log")
            lo, hi = float(allv.min()), float(allv.max())
            lo, hi = min(lo, 1.0) / 1.15, max(hi, 1.0) * 1.15
            ax.set_ylim(lo, hi)
            _ratio_ticks(ax.yaxis, lo, hi)
            ax.set_title(ftitle)
            ax.set_xlabel("threads")
            ax.set_ylabel(f"{_UNITS.get(metric, metric).split(' (')[0]} ÷ {baseline}")
        n = f"{int(rr['n'].min())}" if rr["n"].min() == rr["n"].max() else f"{int(rr['n'].min())}–{int(rr['n'].max())}"
        note = (f"marker and label: median of the {n} per-round ratios (a round measures both maps "
                f"moments apart) · bar: min–max of the per-round ratios · dashed line: 1.0, as fast "
                f"as {baseline}; above it faster · (a/b/c/d/e) after a workload: % read / insert / "
                "remove / update / upsert")
        label = " / ".join(_map_order(rr["map"].unique()))
        _finish(fig, df, f"{label} ÷ {baseline}, {metric}", list(handles.values()),
                df.attrs.get("unverified_dropped", 0), note=note)
    return fig


def _ratio_ticks(axis, lo, hi):
    """Ticks at 1-2-5 ratios (0.5x, 1x, 2x, ...) labelled as ratios, no minor labels."""
    from matplotlib.ticker import NullFormatter

    cands = [m * 10.0 ** e for e in range(-4, 5) for m in (1, 2, 5)]
    ticks = [v for v in cands if lo <= v <= hi]
    if len(ticks) < 3:
        cands = [m * 10.0 ** e for e in range(-4, 5) for m in (1, 1.25, 1.5, 2, 3, 4, 5, 7)]
        ticks = [v for v in cands if lo <= v <= hi]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    axis.set_minor_formatter(NullFormatter())


def comparison_chart(cmp):
    """A forest plot of a :class:`seqmap_nb.compare.Comparison`: per compared point the
    ratio B / A on a log axis with its 95% interval, filled where the verdict is
    significant, hollow where not, and a line at 1.0."""
    t = cmp.table
    a, b = cmp.labels
    if t.empty:
        raise ValueError("comparison_chart: no point was compared")
    labels = [f"{r.map} · {r.workload} · {r.threads} thr" + (f" · {r.extra}" if r.extra else "")
              for r in t.itertuples()]
    n = len(t)
    with style_context():
        fig = Figure(figsize=(8.0, 1.6 + 0.2 * n), layout="constrained")
        ax = fig.subplots()
        y = np.arange(n)[::-1]
        for yi, r in zip(y, t.itertuples()):
            st = map_style(r.map)
            st.pop("ls", None)
            if r.ratio_lo == r.ratio_lo:
                ax.hlines(yi, r.ratio_lo, r.ratio_hi, color=st["color"], lw=1.6, gid=f"ci:{r.map}")
            sig = bool(r.significant)
            ax.plot([r.ratio], [yi], ls="none", mfc=st["color"] if sig else "white", mew=1.3,
                    gid=f"point:{'significant' if sig else 'not_significant'}", **st)
        ax.axvline(1.0, color="0.15", lw=1.0, ls="--", gid="parity")
        ax.set_xscale("log")
        finite = t[["ratio_lo", "ratio_hi", "ratio"]].to_numpy(float).ravel()
        finite = finite[np.isfinite(finite) & (finite > 0)]
        lo, hi = min(finite.min(), 1.0) / 1.1, max(finite.max(), 1.0) * 1.1
        ax.set_xlim(lo, hi)
        _ratio_ticks(ax.xaxis, lo, hi)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_ylim(-0.8, n - 0.2)
        better = "higher" if cmp.metric in ("mops",) else "lower"
        ax.set_xlabel(f"{cmp.metric}: {b} ÷ {a} ({better} is better)")
        ax.grid(axis="y", visible=False)
        s = cmp.summary
        fig.suptitle(f"{b} vs {a}: {s['faster']} faster, {s['slower']} slower, "
                     f"{s['not significant']} not significant")
        note = ("marker: geometric mean ratio of the runs · bar: 95% interval (Welch's t on log "
                "values) · filled: significant, hollow: not · dashed line: 1.0, no change")
        h = fig.get_figheight()
        fig.text(0.005, 0.004, "\n".join(cmp.header), fontsize=6.3, color="0.35", ha="left",
                 va="bottom", gid="provenance")
        fig.text(0.005, 0.30 / h, note, fontsize=7, color="0.15", ha="left", va="bottom",
                 gid="reading")
        fig.get_layout_engine().set(rect=(0, 0.5 / h, 1, 1 - 0.5 / h))
    return fig


def ratio_table(df, baseline="dashmap", metric="mops", index=("workload", "threads")):
    """Median `metric` of each map divided by the baseline's median, per workload × threads.

    Returns a DataFrame indexed by `index`, one column per map other than the baseline and
    the reference ``null`` (NaN where either side has no verified run). For the median of
    per-round ratios with their spread, see :func:`round_ratios`. Ratios > 1 mean faster than the baseline
    for throughput ("mops"); for "ns_per_op" read them the other way round.
    """
    index = list(index)
    _require(df, ["map", metric] + index, "ratio_table")
    df = _verified_only(df, "ratio_table")
    df = _thread_sweep_rows(df)
    if baseline not in set(df["map"]):
        raise ValueError(f"ratio_table: baseline map {baseline!r} is not in the frame "
                         f"(maps: {sorted(df['map'].astype(str).unique())})")
    med = df.groupby(index + ["map"])[metric].median().unstack("map")
    base = med[baseline]
    out = med.drop(columns=[baseline] + [m for m in REFERENCE_MAPS if m in med.columns and m != baseline])
    out = out.div(base, axis=0)
    out = out[_map_order(out.columns)]
    out.columns.name = f"{metric} ÷ {baseline}"
    return out


# --------------------------------------------------------------------------- chart sets

def default_figures(df, probe_df=None, baseline="dashmap"):
    """The chart set for a results frame: {name: Figure}, only the charts its rows support."""
    figs = {}
    sweep = _thread_sweep_rows(df)
    names = set(df["map"].astype(str)) if "map" in df.columns else set()
    if "threads" in df.columns and sweep["threads"].nunique() >= 1:
        figs["throughput_vs_threads"] = throughput_vs_threads(df)
        figs["ns_per_op_vs_threads"] = ns_per_op_vs_threads(df)
        if {"seqmap", baseline} <= names and "repeat" in df.columns:
            try:
                figs[f"seqmap_vs_{baseline}"] = ratio_chart(df, baseline=baseline)
            except ValueError:
                pass  # no round in which both ran a point
    if "p50_ns" in df.columns and df["p50_ns"].notna().any():
        figs["latency_percentiles"] = latency_percentiles(df)
    if "max_stall_ns" in df.columns and df["max_stall_ns"].notna().any():
        figs["max_stall_vs_threads"] = max_stall_vs_threads(df)
    if "workload" in df.columns:
        grow = df[df["workload"] == "grow"]
        # a chart against entries needs some map measured at several sizes per thread count
        if len(grow) and (grow.groupby(["map", "threads"])["ops"].nunique() >= 2).any() \
                and grow["max_stall_ns"].notna().any():
            figs["growth"] = growth(df)
    if "load_factor" in df.columns and df["load_factor"].notna().any():
        figs["throughput_vs_load_factor"] = throughput_vs_load_factor(df)
    if "theta" in df.columns and df["theta"].notna().any():
        figs["contention_theta"] = contention(df, by="theta")
    if "hot_keys" in df.columns and df["hot_keys"].notna().any():
        figs["contention_hotset"] = contention(df, by="hot_keys")
    if probe_df is not None and len(probe_df):
        figs["probe_distributions"] = probe_distributions(probe_df)
    return figs


def save_figures(figs, out_dir, fmt="png"):
    """Write each figure of {name: Figure} to out_dir/name.fmt; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    with style_context():  # savefig.* settings (dpi, tight bbox) are read at save time
        for name, fig in figs.items():
            path = os.path.join(out_dir, f"{name}.{fmt}")
            fig.savefig(path)
            paths.append(path)
    return paths
