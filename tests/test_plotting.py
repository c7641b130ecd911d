"""seqmap_nb.plotting against synthetic frames that follow the results schema.

No benchmark runs here: the frames are built by hand (so every expected line, ratio and
mean is known), which keeps these tests fast and independent of the harness.
"""
import io
import json
import math
import warnings

import matplotlib

matplotlib.use("Agg")  # headless, as on CI; plotting must never need a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from seqmap_nb import plotting as P  # noqa: E402

PROV = dict(schema_version=1, package_version="0.1.0", git_commit="4624241abcdef0123456",
            cpu_model="Test CPU @ 2.0GHz", logical_cores=2, os="Linux-6.1", python="3.11.7",
            numba="0.68.1", numpy="2.4.0", utc_time="2025-11-29T04:00:00+00:00",
            machine="Test CPU @ 2.0GHz/2")
MIXES = {"read_heavy": dict(read=98, insert=1, remove=1, update=0, upsert=0),
         "exchange": dict(read=10, insert=40, remove=40, update=10, upsert=0),
         "rapid_grow": dict(read=5, insert=80, remove=5, update=10, upsert=0)}
BASE = dict(seqmap=60.0, dashmap=25.0, global_lock=15.0, cas=70.0, plain=80.0, typed_dict=20.0,
            dict_lock=0.8)
SINGLE = {"plain", "typed_dict"}


def _row(**kw):
    r = dict(map="seqmap", workload="read_heavy", mix=json.dumps(MIXES["read_heavy"]), threads=1,
             capacity=1 << 16, ops=100_000, ops_per_thread=100_000, prefill=0.75, keys="bustle",
             theta=math.nan, hot_ops=math.nan, hot_keys=math.nan, load_factor=math.nan, repeat=0,
             seed=1, key_dtype="uint64", value_dtype="uint64", seconds=0.01, mops=10.0,
             ns_per_op=100.0, p50_ns=50.0, p99_ns=300.0, p999_ns=2000.0, retries_per_op=0.001,
             waits_per_op=0.0005, resizes=0, final_len=1000, final_capacity=1 << 16,
             final_load_factor=0.5, peak_mem_bytes=1 << 20, probe_mean=math.nan,
             probe_p99=math.nan, verified=True, verify_detail="", compile_s=0.5)
    r.update(PROV)
    r.update(kw)
    return r


def thread_frame(maps=tuple(BASE), workloads=tuple(MIXES), threads=(1, 2, 4, 8, 256), repeats=3,
                 **extra):
    """Every map x workload x threads x repeat; mops = BASE * (1, 1.1, 0.7 by repeat):
    the median (1.0) differs from the mean (0.933), so a chart drawing means fails."""
    rows = []
    for w in workloads:
        for m in maps:
            for t in threads:
                if m in SINGLE and t > 1:
                    continue
                for r in range(repeats):
                    mops = BASE[m] * min(t, 2) * (1.0, 1.1, 0.7)[r % 3]
                    secs = 100_000 / (mops * 1e6)
                    rows.append(_row(map=m, workload=w, mix=json.dumps(MIXES[w]), threads=t,
                                     repeat=r, mops=mops, seconds=secs,
                                     ns_per_op=secs * 1e9 * t / 100_000,
                                     p50_ns=1e3 / BASE[m], p99_ns=1e4 / BASE[m],
                                     p999_ns=1e5 / BASE[m], **extra))
    return pd.DataFrame(rows)


def contention_frame(maps=("seqmap", "dashmap", "cas")):
    rows = []
    for m in maps:
        for th in (0.0, 0.5, 0.99, 1.2):
            for r in range(2):
                rows.append(_row(map=m, workload="ycsb_a", mix=json.dumps(dict(read=50, update=50)),
                                 keys="zipf", theta=th, threads=2, repeat=r,
                                 mops=BASE[m] / (1 + th), waits_per_op=0.02 * th,
                                 retries_per_op=0.05 * th if m == "seqmap" else math.nan))
        for hk in (0.001, 0.01, 0.1):
            rows.append(_row(map=m, workload="ycsb_a", mix=json.dumps(dict(read=50, update=50)),
                             keys="hotset", hot_ops=0.9, hot_keys=hk, threads=2,
                             retries_per_op=0.01 / hk if m == "seqmap" else math.nan))
        for wr in (0, 10, 50, 90):
            rows.append(_row(map=m, workload="custom", keys="uniform", threads=2,
                             mix=json.dumps(dict(read=100 - wr, insert=0, remove=0, update=wr,
                                                 upsert=0)),
                             mops=BASE[m] * (1 - wr / 200)))
    return pd.DataFrame(rows)


def probe_frame(loads=(0.1, 0.5, 0.9), capacity=1024, maps=("seqmap",)):
    """Probe lengths of a real linear-probing fill (python loop, tiny table, fixed seed)."""
    rng = np.random.default_rng(7)
    rows = []
    for m in maps:
        for a in loads:
            table = np.zeros(capacity, bool)
            lengths = []
            for h in rng.integers(0, capacity, size=int(capacity * a)):
                k = 1
                while table[h]:
                    h = (h + 1) % capacity
                    k += 1
                table[h] = True
                lengths.append(k)
            vals, cnt = np.unique(lengths, return_counts=True)
            for v, c in zip(vals, cnt):
                rows.append(dict(map=m, load_factor=a, capacity=capacity, probe_length=int(v),
                                 count=int(c), knuth_hit=0.5 * (1 + 1 / (1 - a)),
                                 knuth_miss=0.5 * (1 + 1 / (1 - a) ** 2), **PROV))
    return pd.DataFrame(rows)


def series(ax, name=None):
    """The per-map median lines of an axes (gid 'series:<map>')."""
    out = [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith("series:")]
    return [ln for ln in out if name is None or ln.get_gid() == f"series:{name}"]


def panels(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


@pytest.fixture(autouse=True)
def _no_pyplot(monkeypatch):
    """Plotting must neither show nor register pyplot figures (it builds Figure directly)."""
    def boom(*a, **k):
        raise AssertionError("plotting called plt.show()")
    monkeypatch.setattr(plt, "show", boom)
    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before, "plotting left figures in pyplot's figure list"


# --------------------------------------------------------------------------- thread charts

def test_throughput_vs_threads_panels_lines_and_bands():
    df = thread_frame()
    fig = P.throughput_vs_threads(df)
    assert isinstance(fig, Figure)
    axes = panels(fig)
    assert [ax.get_title().split(" ")[0] for ax in axes] == ["read_heavy", "exchange", "rapid_grow"]
    for ax in axes:
        names = sorted(ln.get_gid()[7:] for ln in series(ax))
        assert names == sorted(BASE)  # one line per map
        seq = series(ax, "seqmap")[0]
        assert list(seq.get_xdata()) == [1, 2, 4, 8, 256]
        # the marker is the median of the three repetitions (1.0, 1.1, 0.7 x base)
        assert np.allclose(seq.get_ydata(), [60, 120, 120, 120, 120])
        bands = [c for c in ax.collections if (c.get_gid() or "").startswith("band:")]
        assert len(bands) == len(BASE)  # every map has >1 repetition -> a spread band
        assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
        cores = [ln for ln in ax.get_lines() if ln.get_gid() == "cores"]
        assert len(cores) == 1 and list(cores[0].get_xdata()) == [2, 2]
        assert ax.get_xlabel() == "threads" and "Mop/s" in ax.get_ylabel()
    assert "Test CPU @ 2.0GHz/2" in fig.get_suptitle()
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == len(BASE)


def test_band_spans_min_to_max_of_repetitions():
    df = thread_frame(maps=("seqmap",), workloads=("read_heavy",), threads=(1,))
    ax = panels(P.throughput_vs_threads(df))[0]
    band = [c for c in ax.collections if c.get_gid() == "band:seqmap"][0]
    ys = band.get_paths()[0].vertices[:, 1]
    assert np.isclose(ys.min(), 42.0) and np.isclose(ys.max(), 66.0)


def test_single_repetition_draws_no_band():
    df = thread_frame(maps=("seqmap", "dashmap"), repeats=1)
    ax = panels(P.throughput_vs_threads(df))[0]
    assert not [c for c in ax.collections if (c.get_gid() or "").startswith("band:")]


def test_log_y_only_when_data_spans_decades():
    wide = P.throughput_vs_threads(thread_frame())  # dict_lock at 0.8 vs cas at 140 Mop/s
    narrow = P.throughput_vs_threads(thread_frame(maps=("seqmap", "dashmap")))
    assert {ax.get_yscale() for ax in panels(wide)} == {"log"}
    assert {ax.get_yscale() for ax in panels(narrow)} == {"linear"}
    forced = P.throughput_vs_threads(thread_frame(maps=("seqmap", "dashmap")), logy=True)
    assert {ax.get_yscale() for ax in panels(forced)} == {"log"}


def test_log_y_decided_from_each_panels_medians_not_pooled_ones():
    # dict_lock is 100x slower than seqmap only within the read_heavy panel; pooling the
    # workloads' runs into one median per map would hide that span
    a = thread_frame(maps=("seqmap",), workloads=("read_heavy",), threads=(1,))
    b = thread_frame(maps=("dict_lock",), workloads=("read_heavy",), threads=(1,)).assign(mops=0.5)
    c = thread_frame(maps=("seqmap",), workloads=("exchange",), threads=(1,)).assign(mops=1.0)
    d = thread_frame(maps=("dict_lock",), workloads=("exchange",), threads=(1,)).assign(mops=60.0)
    fig = P.throughput_vs_threads(pd.concat([a, b, c, d], ignore_index=True))
    assert {ax.get_yscale() for ax in panels(fig)} == {"log"}


def test_workload_and_map_selection():
    fig = P.throughput_vs_threads(thread_frame(), workloads=["exchange"], maps=["seqmap", "cas"])
    (ax,) = panels(fig)
    assert ax.get_title().startswith("exchange (10/40/40/10/0)")
    assert sorted(ln.get_gid() for ln in series(ax)) == ["series:cas", "series:seqmap"]
    with pytest.raises(ValueError, match="workload"):
        P.throughput_vs_threads(thread_frame(), workloads=["nope"])


def test_ns_per_op_vs_threads():
    fig = P.ns_per_op_vs_threads(thread_frame(maps=("seqmap", "dashmap")))
    axes = panels(fig)
    assert len(axes) == 3 and all("ns/op" in ax.get_ylabel() for ax in axes)
    seq = series(axes[0], "seqmap")[0]
    # ns_per_op = seconds * 1e9 * threads / ops; seqmap at 1 thread: 1e3/60 ns
    assert np.isclose(seq.get_ydata()[0], 1e3 / 60.0)


def test_unverified_runs_are_dropped_and_counted():
    df = thread_frame(maps=("seqmap", "dashmap"))
    df.loc[df["map"] == "seqmap", "verified"] = False
    with pytest.warns(RuntimeWarning, match="failed verification"):
        fig = P.throughput_vs_threads(df)
    assert all(not series(ax, "seqmap") for ax in panels(fig))
    assert all(series(ax, "dashmap") for ax in panels(fig))
    foot = [t for t in fig.texts if t.get_gid() == "provenance"][0].get_text()
    assert f"{int((df['map'] == 'seqmap').sum())} unverified run(s) excluded" in foot


def test_provenance_footnote():
    fig = P.throughput_vs_threads(thread_frame(maps=("seqmap",)))
    (foot,) = [t for t in fig.texts if t.get_gid() == "provenance"]
    text = foot.get_text()
    for part in ("Test CPU @ 2.0GHz", "2 logical cores", "seqmap_nb 0.1.0", "commit 4624241abc",
                 "numba 0.68.1", "2025-11-29 UTC"):
        assert part in text, (part, text)
    df = thread_frame(maps=("seqmap",))
    df["git_commit"] = ""
    assert "commit unknown" in P.provenance_text(df)


def test_two_machines_get_one_line_each_with_distinct_styles():
    a = thread_frame(maps=("seqmap",), workloads=("read_heavy",))
    b = a.assign(machine="Other CPU/8", cpu_model="Other CPU", logical_cores=8)
    ax = panels(P.throughput_vs_threads(pd.concat([a, b], ignore_index=True)))[0]
    lines = series(ax, "seqmap")
    assert len(lines) == 2
    assert lines[0].get_color() == lines[1].get_color()
    assert lines[0].get_linestyle() != lines[1].get_linestyle()
    assert sorted(ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_gid() == "cores") == [2, 8]


# --------------------------------------------------------------------------- colours, style

def test_each_map_has_one_colour_in_every_chart():
    df = thread_frame()
    figs = [P.throughput_vs_threads(df), P.ns_per_op_vs_threads(df), P.latency_percentiles(df),
            P.contention(contention_frame(), by="theta")]
    seen = {}
    for fig in figs:
        for ax in fig.axes:
            for ln in series(ax):
                seen.setdefault(ln.get_gid()[7:], set()).add(matplotlib.colors.to_hex(ln.get_color()))
    assert len(seen) == len(BASE)
    for name, colours in seen.items():
        assert colours == {P.MAP_STYLES[name]["color"].lower()}, name
    assert len({s["color"] for s in P.MAP_STYLES.values()}) == len(P.MAP_STYLES)  # all distinct
    contestants = {n: s for n, s in P.MAP_STYLES.items() if n not in P.REFERENCE_MAPS}
    assert {s["color"] for s in contestants.values()} <= set(P.OKABE_ITO.values())
    # references (the null map) are achromatic and dotted: never mistaken for a contestant
    for name in P.REFERENCE_MAPS:
        r, g, b = matplotlib.colors.to_rgb(P.MAP_STYLES[name]["color"])
        assert r == g == b and P.MAP_STYLES[name]["ls"] == ":"


def test_unknown_map_colour_is_stable_and_not_a_known_maps():
    a, b = P.map_style("my_custom_map"), P.map_style("my_custom_map")
    assert a == b
    assert a["color"] not in {s["color"] for s in P.MAP_STYLES.values()}


def test_use_style_applies_and_restores():
    before = matplotlib.rcParams["axes.prop_cycle"]
    with P.use_style():
        colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        assert [c.upper().lstrip("#") for c in colours[:2]] == ["D55E00", "0072B2"]
        assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["axes.prop_cycle"] == before
    # the style file ships inside the package (package data), not next to the sources only
    from importlib import resources
    assert resources.files("seqmap_nb").joinpath("seqmap_nb.mplstyle").is_file()


def test_figures_render_headless_to_png():
    assert matplotlib.get_backend().lower() == "agg"
    buf = io.BytesIO()
    P.throughput_vs_threads(thread_frame(maps=("seqmap", "dashmap"))).savefig(buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and len(buf.getvalue()) > 10_000


# --------------------------------------------------------------------------- other charts

def test_latency_percentiles():
    fig = P.latency_percentiles(thread_frame())
    axes = panels(fig)
    assert len(axes) == 3
    ax = axes[0]
    assert ax.get_yscale() == "log" and "2 threads" in ax.get_title()  # largest <= 2 cores
    names = sorted(ln.get_gid()[7:] for ln in series(ax))
    assert names == sorted(set(BASE) - SINGLE)  # plain/typed_dict have no 2-thread rows
    seq = series(ax, "seqmap")[0]
    assert np.allclose(seq.get_ydata(), [1e3 / 60, 1e4 / 60, 1e5 / 60])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["p50", "p99", "p99.9"]
    one = P.latency_percentiles(thread_frame(), threads=1)
    assert panels(one)[0].get_title().endswith("· 1 thread")
    with pytest.raises(ValueError, match="sampled latencies"):
        P.latency_percentiles(thread_frame(maps=("seqmap",)).assign(p50_ns=np.nan))


def test_throughput_vs_load_factor():
    rows = [_row(map=m, load_factor=a, threads=2, keys="uniform", repeat=r, mops=BASE[m] * (1 - a))
            for m in ("seqmap", "dashmap") for a in (0.1, 0.5, 0.9) for r in range(2)]
    fig = P.throughput_vs_load_factor(pd.DataFrame(rows))
    (ax,) = panels(fig)
    assert sorted(ln.get_gid() for ln in series(ax)) == ["series:dashmap", "series:seqmap"]
    assert np.allclose(series(ax, "seqmap")[0].get_xdata(), [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="load_factor"):
        P.throughput_vs_load_factor(thread_frame(maps=("seqmap",)))


@pytest.mark.parametrize("by, x", [("theta", [0.0, 0.5, 0.99, 1.2]),
                                   ("hot_keys", [0.001, 0.01, 0.1]),
                                   ("write_ratio", [0.0, 0.1, 0.5, 0.9])])
def test_contention_two_rows(by, x):
    df = contention_frame()
    if by == "write_ratio":  # the write-share sweep is the uniform-key part of the frame
        df = df[df["keys"] == "uniform"]
    fig = P.contention(df, by=by)
    top, bottom = panels(fig)
    assert "Mop/s" in top.get_ylabel() and "retries" in bottom.get_ylabel()
    assert sorted(ln.get_gid() for ln in series(top)) == ["series:cas", "series:dashmap", "series:seqmap"]
    assert np.allclose(series(top, "seqmap")[0].get_xdata(), x)
    retries = [ln for ln in series(bottom, "seqmap") if ln.get_linestyle() == "-"][0]
    assert len(retries.get_xdata()) == len(x)
    assert any(ln.get_linestyle() == "--" for ln in series(bottom))  # waits per op
    if by == "hot_keys":
        assert top.get_xscale() == "log"  # 0.001 .. 0.1 spans two decades


def test_contention_write_ratio_facets_by_key_distribution():
    fig = P.contention(contention_frame(), by="write_ratio")
    assert len(panels(fig)) == 6  # zipf, hotset, uniform panels, two rows each


def test_contention_rejects_unknown_axis_and_missing_rows():
    with pytest.raises(ValueError, match="by must be one of"):
        P.contention(contention_frame(), by="colour")
    with pytest.raises(ValueError, match="no rows"):
        P.contention(thread_frame(maps=("seqmap",)), by="theta")


def test_probe_summary_and_distributions():
    pf = probe_frame()
    s = P.probe_summary(pf)
    assert list(s["load_factor"]) == [0.1, 0.5, 0.9]
    for _, r in s.iterrows():
        sub = pf[pf["load_factor"] == r["load_factor"]]
        assert r["keys"] == int(1024 * r["load_factor"])
        assert np.isclose(r["mean"], (sub.probe_length * sub["count"]).sum() / sub["count"].sum())
        assert np.isclose(r["knuth_hit"], 0.5 * (1 + 1 / (1 - r["load_factor"])))
    assert abs(s.loc[s.load_factor == 0.5, "rel_err"].iloc[0]) < 0.15  # a real fill, small table
    fig = P.probe_distributions(pf)
    left, right = panels(fig)
    assert len([ln for ln in left.get_lines() if (ln.get_gid() or "").startswith("load:")]) == 3
    assert len([ln for ln in left.get_lines() if ln.get_gid() == "knuth_mark"]) == 3
    gids = {ln.get_gid() for ln in right.get_lines()}
    assert {"knuth_hit", "knuth_miss", "series:seqmap"} <= gids
    assert np.allclose(series(right, "seqmap")[0].get_ydata(), s["mean"])
    two = P.probe_distributions(pd.concat([pf, pf.assign(map="dashmap")]))
    assert len(series(panels(two)[1])) == 2
    with pytest.raises(ValueError, match="not in the frame"):
        P.probe_distributions(pf, map="nope")


# --------------------------------------------------------------------------- ratio table

def test_ratio_table_is_ratio_of_medians():
    df = thread_frame(maps=("seqmap", "dashmap", "global_lock"), threads=(1, 2))
    # an outlier repetition moves a mean but not the median
    df.loc[(df["map"] == "seqmap") & (df["repeat"] == 2), "mops"] *= 100
    t = P.ratio_table(df)
    assert list(t.index.names) == ["workload", "threads"]
    assert list(t.columns) == ["seqmap", "global_lock"]
    # seqmap: median of (1.0, 1.1, 70) x base = 1.1 x base; dashmap: median 1.0 x base
    assert np.allclose(t["seqmap"], BASE["seqmap"] * 1.1 / BASE["dashmap"])
    assert np.allclose(t["global_lock"], BASE["global_lock"] / BASE["dashmap"])
    with pytest.raises(ValueError, match="baseline map 'nope'"):
        P.ratio_table(df, baseline="nope")


def test_ratio_table_skips_unverified_and_leaves_nan():
    df = thread_frame(maps=("seqmap", "dashmap"), threads=(1, 2))
    df.loc[(df["map"] == "seqmap") & (df["threads"] == 2), "verified"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t = P.ratio_table(df)
    assert t.loc[("read_heavy", 2), "seqmap"] != t.loc[("read_heavy", 2), "seqmap"]  # NaN
    assert np.isclose(t.loc[("read_heavy", 1), "seqmap"], 60 / 25)


# --------------------------------------------------------------------------- bad input, sets

def test_bad_input_is_a_clear_error():
    with pytest.raises(TypeError, match="DataFrame"):
        P.throughput_vs_threads([1, 2, 3])
    with pytest.raises(ValueError, match="lacks column"):
        P.throughput_vs_threads(pd.DataFrame({"map": ["seqmap"]}))
    with pytest.raises(ValueError, match="nothing to plot"):
        P.throughput_vs_threads(thread_frame(maps=("seqmap",)).assign(verified=False))


def test_default_figures_and_save(tmp_path):
    df = pd.concat([thread_frame(maps=("seqmap", "dashmap")), contention_frame()], ignore_index=True)
    figs = P.default_figures(df, probe_df=probe_frame(loads=(0.5,)))
    assert {"throughput_vs_threads", "ns_per_op_vs_threads", "latency_percentiles",
            "contention_theta", "contention_hotset", "probe_distributions"} <= set(figs)
    assert "throughput_vs_load_factor" not in figs
    paths = P.save_figures({k: figs[k] for k in ("throughput_vs_threads", "probe_distributions")},
                           tmp_path / "charts")
    assert len(paths) == 2
    for p in paths:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- reading the charts

def _reading(fig):
    (t,) = [t for t in fig.texts if t.get_gid() == "reading"]
    return t.get_text()


def test_every_chart_says_what_its_band_is_and_what_the_mix_codes_mean():
    text = _reading(P.throughput_vs_threads(thread_frame(maps=("seqmap", "dashmap"))))
    assert "median of 3 runs per point" in text and "band: min–max of those runs" in text
    assert "% read / insert / remove / update / upsert" in text
    two = _reading(P.ns_per_op_vs_threads(thread_frame(maps=("seqmap",), repeats=2)))
    assert "median of 2 runs" in two
    one = _reading(P.throughput_vs_threads(thread_frame(maps=("seqmap",), repeats=1)))
    assert "median of 1 run per point" in one and "band" not in one  # no band is drawn
    assert "band: min–max" in _reading(P.contention(contention_frame(), by="theta"))


def test_null_map_is_a_grey_dotted_reference_and_no_contestant():
    df = pd.concat([thread_frame(maps=("seqmap", "dashmap")),
                    thread_frame(maps=("seqmap",)).assign(map="null", mops=500.0, ns_per_op=2.0)],
                   ignore_index=True)
    ax = panels(P.ns_per_op_vs_threads(df))[0]  # the floor under every map's ns/op
    (line,) = series(ax, "null")
    assert line.get_linestyle() == ":" and matplotlib.colors.to_hex(line.get_color()) == "#8c8c8c"
    assert series(ax, "seqmap")[0].get_linestyle() == "-"
    assert "null (grey, dotted): the harness alone" in _reading(ax.figure)
    # on a throughput axis it would squeeze the maps into a corner: out, unless named
    assert not series(panels(P.throughput_vs_threads(df))[0], "null")
    assert series(panels(P.throughput_vs_threads(df, maps=["seqmap", "null"]))[0], "null")
    assert "null" not in P.ratio_table(df).columns
    assert set(P.round_ratios(df)["map"]) == {"seqmap"}


def _rounds_frame():
    """seqmap and dashmap over three rounds whose per-round ratios (1, 0.5, 2) have a
    median (1.0) far from the ratio of the medians (20 / 15 = 1.33)."""
    rows = []
    for t in (1, 2):
        for rep, (s, d) in enumerate([(10, 10), (20, 40), (30, 15)]):
            rows.append(_row(map="seqmap", threads=t, repeat=rep, mops=s * t))
            rows.append(_row(map="dashmap", threads=t, repeat=rep, mops=d * t))
    return pd.DataFrame(rows)


def test_round_ratios_are_the_median_of_per_round_ratios():
    df = _rounds_frame()
    rr = P.round_ratios(df, baseline="dashmap")
    assert list(rr.columns) == ["map", "workload", "threads", "median", "lo", "hi", "n"]
    assert np.allclose(rr["median"], 1.0) and np.allclose(rr["lo"], 0.5) and np.allclose(rr["hi"], 2.0)
    assert list(rr["n"]) == [3, 3]
    assert np.allclose(P.ratio_table(df)["seqmap"], 20 / 15)  # the other summary, for contrast
    with pytest.raises(ValueError, match="baseline map 'nope'"):
        P.round_ratios(df, baseline="nope")


def test_ratio_chart_draws_medians_spreads_and_the_parity_line():
    fig = P.ratio_chart(_rounds_frame(), baseline="dashmap")
    (ax,) = panels(fig)
    (line,) = series(ax, "seqmap")
    assert list(line.get_xdata()) == [1, 2] and np.allclose(line.get_ydata(), [1.0, 1.0])
    (spread,) = [c for c in ax.collections if c.get_gid() == "spread:seqmap"]
    segs = spread.get_segments()
    assert [tuple(np.round(s[:, 1], 6)) for s in segs] == [(0.5, 2.0), (0.5, 2.0)]
    parity = [ln for ln in ax.get_lines() if ln.get_gid() == "parity"]
    assert len(parity) == 1 and list(parity[0].get_ydata()) == [1.0, 1.0]
    assert ax.get_yscale() == "log"
    text = _reading(fig)
    assert "median of the 3 per-round ratios" in text and "min–max of the per-round ratios" in text
    assert "1.0" in text


def test_latency_chart_is_honest_below_the_timer_resolution():
    df = thread_frame(maps=("seqmap", "dashmap"), workloads=("read_heavy",), threads=(2,))
    df["timer_res_ns"] = 10.0
    df["lat_below_res"] = ""
    seq = df["map"] == "seqmap"
    df.loc[seq, "p50_ns"] = 10.0   # recorded as the resolution ...
    df.loc[seq & (df["repeat"] == 0), "lat_below_res"] = "p50"   # ... in one run of three
    fig = P.latency_percentiles(df)
    (ax,) = panels(fig)
    hollow = [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith("below_res:")]
    assert [ln.get_gid() for ln in hollow] == ["below_res:seqmap"]
    assert np.allclose(hollow[0].get_xdata(), [-math.log10(0.5)]) and hollow[0].get_mfc() == "white"
    res = [ln for ln in ax.get_lines() if ln.get_gid() == "timer_res"]
    assert len(res) == 1 and list(res[0].get_ydata()) == [10.0, 10.0]
    assert "at most" in _reading(fig)
    # without flags nothing is hollow
    df["lat_below_res"] = ""
    ax = panels(P.latency_percentiles(df))[0]
    assert not [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith("below_res:")]


def _grow_frame():
    rows = []
    for m, stall in (("seqmap", 1e6), ("dashmap", 1e5), ("null", 1e3)):
        for t in (1, 2):
            for ops in (1 << 16, 1 << 18, 1 << 20):
                for rep in range(2):
                    rows.append(_row(map=m, workload="grow", mix=json.dumps(dict(insert=100)),
                                     threads=t, ops=ops, repeat=rep, mops=BASE.get(m, 300.0),
                                     max_stall_ns=stall * ops / (1 << 16), prefill=0.0))
    return pd.DataFrame(rows)


def test_growth_chart_throughput_and_stall_against_entries():
    fig = P.growth(_grow_frame())
    axes = panels(fig)
    assert len(axes) == 4  # two thread counts, two rows each
    tops = [ax for ax in axes if ax.get_title()]
    bottoms = [ax for ax in axes if not ax.get_title()]
    assert [ax.get_title() for ax in tops] == ["1 thread", "2 threads"]
    top, bottom = tops[0], bottoms[0]
    assert "Mop/s" in top.get_ylabel() and "stall" in bottom.get_ylabel()
    (seq,) = series(bottom, "seqmap")
    assert list(seq.get_xdata()) == [1 << 16, 1 << 18, 1 << 20]
    assert np.allclose(seq.get_ydata(), [1e6, 4e6, 16e6])
    assert bottom.get_yscale() == "log" and top.get_xscale() == "log"
    figs = P.default_figures(_grow_frame())
    assert "growth" in figs and "max_stall_vs_threads" in figs
    with pytest.raises(ValueError, match="grow"):
        P.growth(thread_frame(maps=("seqmap",)).assign(max_stall_ns=1.0))


def test_max_stall_vs_threads():
    df = thread_frame(maps=("seqmap", "dashmap")).assign(max_stall_ns=1e5)
    fig = P.max_stall_vs_threads(df)
    assert all(ax.get_yscale() == "log" for ax in panels(fig))
    assert series(panels(fig)[0], "seqmap")
    with pytest.raises(ValueError, match="max_stall_ns"):
        P.max_stall_vs_threads(thread_frame(maps=("seqmap",)).assign(max_stall_ns=np.nan))
