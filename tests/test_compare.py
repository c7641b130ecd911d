"""seqmap_nb.compare on synthetic result frames whose every ratio and verdict is known."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from seqmap_nb import compare as C  # noqa: E402
from seqmap_nb import results  # noqa: E402

MIX = '{"read": 98, "insert": 1, "remove": 1, "update": 0, "upsert": 0}'


def rows(map="seqmap", threads=1, values=(10.0, 10.5, 9.5), **kw):
    base = dict(map=map, workload="read_heavy", mix=MIX, threads=threads, capacity=65536,
                ops=2_000_000, ops_per_thread=2_000_000 // threads, prefill=0.75, keys="bustle",
                seed=0, key_dtype="uint64", value_dtype="uint64", sample_every=64, verified=True,
                verify_detail="", machine="m", cpu_model="cpu", logical_cores=2,
                git_commit="abc", utc_time="2026-01-01T00:00:00Z",
                schema_version=results.SCHEMA_VERSION)
    base.update(kw)
    out = []
    for rep, v in enumerate(values):
        out.append(dict(base, repeat=rep, mops=v, ns_per_op=1e3 * threads / v))
    return out


def frame(*groups):
    return results.frame([r for g in groups for r in g])


def test_t_critical_and_welch():
    assert C.t_critical(1) == 12.706 and C.t_critical(4) == 2.776 and C.t_critical(4.9) == 2.776
    assert C.t_critical(30) == pytest.approx(2.042)
    assert 2.000 < C.t_critical(50) < 2.021 and 1.96 < C.t_critical(1e6) < 1.961
    diff, se, dof = C.welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert diff == pytest.approx(1.0) and se == pytest.approx(math.sqrt(2 / 3)) and dof == pytest.approx(4.0)


def test_a_folder_compared_with_itself_reports_nothing_significant(tmp_path):
    df = frame(rows("seqmap", 1), rows("seqmap", 2, (20.0, 25.0, 18.0)), rows("dashmap", 1, (7.0, 9.0, 8.0)))
    results.save(df, tmp_path / "a")
    cmp = C.compare(tmp_path / "a", tmp_path / "a")
    assert len(cmp.table) == 3 and cmp.summary == {"faster": 0, "slower": 0, "not significant": 3}
    assert np.allclose(cmp.table["ratio"], 1.0)
    assert cmp.not_compared.empty


def test_verdicts_ratios_and_intervals():
    a = frame(rows("seqmap", 1, (10.0, 10.4, 9.6)), rows("dashmap", 1, (8.0, 8.2, 7.8)),
              rows("global_lock", 1, (5.0, 9.0, 2.0)))
    b = frame(rows("seqmap", 1, (20.0, 20.6, 19.4)), rows("dashmap", 1, (6.0, 6.1, 5.9)),
              rows("global_lock", 1, (4.0, 9.5, 2.5)))
    cmp = C.compare(a, b)
    t = cmp.table.set_index("map")
    assert t.loc["seqmap", "verdict"] == "faster" and t.loc["seqmap", "change"] == "2.00x faster"
    assert t.loc["seqmap", "ratio_lo"] < 2.0 < t.loc["seqmap", "ratio_hi"] and t.loc["seqmap", "ratio_lo"] > 1
    assert t.loc["dashmap", "verdict"] == "slower" and t.loc["dashmap", "ratio"] == pytest.approx(0.75, rel=0.01)
    assert t.loc["global_lock", "verdict"] == "not significant"  # noisy: the interval spans 1
    assert t.loc["global_lock", "ratio_lo"] < 1 < t.loc["global_lock", "ratio_hi"]
    assert cmp.summary == {"faster": 1, "slower": 1, "not significant": 1}
    text = cmp.text()
    assert "2.00x faster" in text and "1 faster, 1 slower, 1 not significant" in text
    # for a time, lower is better: the same runs read the other way round
    t2 = C.compare(a, b, metric="ns_per_op").table.set_index("map")
    assert t2.loc["seqmap", "verdict"] == "faster" and t2.loc["seqmap", "ratio"] == pytest.approx(0.5, rel=0.01)


def test_min_change_and_too_few_runs():
    a = frame(rows("seqmap", 1, (10.0, 10.01, 9.99)), rows("dashmap", 1, (8.0,)))
    b = frame(rows("seqmap", 1, (10.3, 10.31, 10.29)), rows("dashmap", 1, (16.0,)))
    t = C.compare(a, b).table.set_index("map")
    assert t.loc["seqmap", "verdict"] == "faster"  # 3%, and very steady
    assert t.loc["dashmap", "verdict"] == "not significant"  # one run each: no test
    assert "n<2" in t.loc["dashmap", "change"]
    t = C.compare(a, b, min_change=0.05).table.set_index("map")
    assert t.loc["seqmap", "verdict"] == "not significant"
    with pytest.raises(ValueError, match="min_change"):
        C.compare(a, b, min_change=1.5)
    with pytest.raises(ValueError, match="metric"):
        C.compare(a, b, metric="verify_detail")


def test_points_with_other_settings_are_not_compared_and_it_says_which():
    a = frame(rows("seqmap", 1), rows("seqmap", 2), rows("dashmap", 1))
    b = frame(rows("seqmap", 1, ops=20_000, ops_per_thread=20_000), rows("seqmap", 2),
              rows("typed_dict", 1))
    cmp = C.compare(a, b, labels=("before", "after"))
    assert list(zip(cmp.table["map"], cmp.table["threads"])) == [("seqmap", 2)]
    reasons = dict(zip(cmp.not_compared["point"], cmp.not_compared["reason"]))
    assert reasons["seqmap · read_heavy · 1 thr"] == ("run settings differ: ops: 2000000 in before, "
                                                       "20000 in after; ops_per_thread: 2000000 in "
                                                       "before, 20000 in after")
    assert reasons["dashmap · read_heavy · 1 thr"] == "only in before"
    assert reasons["typed_dict · read_heavy · 1 thr"] == "only in after"
    assert "3 point(s) not compared" in cmp.text()


def test_unverified_runs_and_unrecorded_settings_are_noted():
    a = frame(rows("seqmap", 1, (10.0, 10.2, 9.8, 1.0)))
    a.loc[3, "verified"] = False  # the outlier failed verification: it must not count
    b = frame(rows("seqmap", 1, (10.0, 10.2, 9.8))).assign(sample_every=np.nan)
    cmp = C.compare(a, b)
    (r,) = cmp.table.itertuples()
    assert r.n_a == 3 and r.verdict == "not significant" and r.ratio == pytest.approx(1.0)
    assert any("1 unverified run(s) of A left out" in n for n in cmp.notes)
    assert any("B records no sample_every" in n for n in cmp.notes)


def test_schema_is_checked():
    a = frame(rows("seqmap", 1))
    bad = a.assign(schema_version=99)
    with pytest.raises(ValueError, match="schema version"):
        C.compare(a, bad)


def test_forest_plot():
    a = frame(rows("seqmap", 1, (10.0, 10.4, 9.6)), rows("dashmap", 1, (8.0, 9.0, 7.0)))
    b = frame(rows("seqmap", 1, (20.0, 20.6, 19.4)), rows("dashmap", 1, (8.0, 9.0, 7.0)))
    fig = C.compare(a, b).figure()
    (ax,) = fig.axes
    gids = [ln.get_gid() for ln in ax.get_lines()]
    assert gids.count("point:significant") == 1 and gids.count("point:not_significant") == 1
    assert "parity" in gids and ax.get_xscale() == "log"
    assert "1 faster, 0 slower, 1 not significant" in fig.get_suptitle()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["seqmap · read_heavy · 1 thr",
                                                            "dashmap · read_heavy · 1 thr"]
    pd.testing.assert_frame_equal(C.compare(a, b).table, C.compare(a, b).table)  # deterministic
