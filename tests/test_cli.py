"""The ``seqmap-nb`` command, run as users run it: the installed console script, in a subprocess.

The script is the one ``pip install -e .`` put on the PATH; ``PYTHONPATH`` points it at this
checkout, so the code under test is this tree's whatever else is installed.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from seqmap_nb import cli, results

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[1]


def _cmd():
    exe = shutil.which("seqmap-nb")
    assert exe, "the seqmap-nb console script is not on the PATH: pip install -e '.[dev]'"
    return [exe]


def _run(args, cwd, timeout=540):
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(_cmd() + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_bench_quick_writes_results_and_charts(tmp_path):
    out = tmp_path / "out"
    p = _run(["bench", "--quick", "--no-progress", "--out", str(out)], cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    df = results.load(out)
    assert len(df) > 0 and df["verified"].all()
    assert set(df["map"]) == set(cli.default_maps(quick=True))  # null (the harness alone) included
    assert set(df["workload"]) == {"read_heavy", "exchange", "rapid_grow", "grow"}
    assert (df["schema_version"] == results.SCHEMA_VERSION).all()
    assert (df["timer_res_ns"] > 0).all() and (df["max_stall_ns"] > 0).all()
    assert (df["p50_ns"] >= df["timer_res_ns"]).all()
    grow = df[df["workload"] == "grow"]
    assert (grow["final_len"][grow["map"] != "null"] == grow["ops"][grow["map"] != "null"]).all()
    pngs = sorted(f.name for f in out.iterdir() if f.suffix == ".png")
    for name in ("throughput_vs_threads", "ns_per_op_vs_threads", "seqmap_vs_dashmap",
                 "latency_percentiles", "max_stall_vs_threads"):
        assert f"{name}.png" in pngs
    assert all((out / f).stat().st_size > 10_000 for f in pngs)
    so = p.stdout
    # progress while compiling, one line per map as it is ready, and the real compile time
    assert "compiling the kernels of 6 map(s)" in so
    assert all(f"  {m}: ready" in so for m in cli.default_maps(quick=True))
    assert re.search(r"runs in \d+ s: compilation \d+ s", so)
    assert "the harness's own cost per op" in so and "read_heavy: null" in so
    assert "median of the per-round ratios" in so
    for wl in ("read_heavy", "exchange", "rapid_grow", "grow"):
        assert wl in so.split("median of the per-round ratios")[1]
    assert "latency clock resolution" in so
    # single-thread-only maps were refused past one thread, and said so
    assert "single-thread only" in so
    assert set(df.loc[df["map"] == "plain", "threads"]) == {1}
    assert "runs no point" not in so  # every quick map runs something


def test_a_map_that_can_run_nothing_is_named_with_the_reason(tmp_path):
    p = _run(["bench", "--maps", "cas", "--workloads", "exchange", "--no-progress"], cwd=tmp_path,
             timeout=120)
    assert p.returncode == 1
    assert "0 map(s)" in p.stdout and "cas runs no point of this sweep: it has no delete" in p.stdout
    assert "no map could run any point" in p.stderr and "no delete" in p.stderr
    # the default sweep does not list a map that cannot run its workloads
    assert "cas" not in cli.default_maps() and "null" in cli.default_maps()
    from seqmap_nb.baselines import REGISTRY

    assert set(cli.default_maps()) - {"null"} == {n for n in REGISTRY if n != "cas"}  # one list
    assert "grow" in cli.DEFAULTS["workloads"]


def test_bench_default_out_folder_and_flags(tmp_path):
    p = _run(["bench", "--maps", "seqmap", "--workloads", "read_heavy", "--threads", "1,3",
              "--ops", "3000", "--capacity", "1024", "--repeats", "1", "--no-charts",
              "--no-progress", "--sample-every", "0"], cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    stamps = list((tmp_path / "results").iterdir())
    assert len(stamps) == 1 and stamps[0].name.endswith("Z")
    df = pd.read_csv(stamps[0] / "results.csv")
    assert list(df["threads"]) == [1, 3] and set(df["ops"]) == {3000}
    assert set(df["capacity"]) == {1024} and df["verified"].all()
    assert set(df["sample_every"]) == {0} and df["p50_ns"].isna().all()
    assert not list(stamps[0].glob("*.png"))


@pytest.mark.parametrize("args, message", [
    (["bench", "--maps", "nosuchmap"], "unknown map"),
    (["bench", "--workloads", "nosuch"], "unknown workload"),
    (["bench", "--threads", "0"], "thread counts"),
    (["bench", "--threads", "two"], "integers"),
    (["micro", "--n", "0"], "positive integer"),
    (["compare", "nowhere-a", "nowhere-b"], "nowhere-a: no such file or folder"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_fail_with_a_message(tmp_path, args, message):
    p = _run(args, cwd=tmp_path, timeout=120)
    assert p.returncode != 0
    assert message in p.stdout + p.stderr


def test_micro_takes_its_options_and_exits_0(tmp_path):
    """The ratio table at a toy size: options accepted, every figure printed, exit 0 (the
    state it times is verified: micro asserts every value it reads back before printing)."""
    h = _run(["micro", "--help"], cwd=tmp_path, timeout=120)
    assert h.returncode == 0
    for opt in ("--n", "--reps", "--scalar-calls", "--json"):
        assert opt in h.stdout
    p = _run(["micro", "--n", "4096", "--reps", "1", "--scalar-calls", "200", "--json", "m.json"],
             cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "PlainMap njit get vs typed.Dict" in p.stdout and "goal >= 5" in p.stdout
    r = json.loads((tmp_path / "m.json").read_text())
    assert r["n"] == 4096 and r["reps"] == 1
    want = {"get_many_ratio", "insert_many_ratio", "vs_typed_dict", "vs_python_dict", "njit_get_vs_plain",
            "plain_vs_typed_dict", "scalar_vs_kernel", "scalar_vs_entry", "scalar_vs_public_njit", "scalar_vs_noop",
            "get_many_vs_floor", "get_many_vs_floor_small"}
    assert set(r["ratios"]) == want and all(0 < v < float("inf") for v in r["ratios"].values())
    assert "| path | SeqMap | SeqArray | dict | typed.Dict | ndarray |" in p.stdout
    for row in ("py get", "py set", "batch get", "batch set", "njit get", "njit set", "call"):
        assert all(0 < r["paths_ns"][f"{row} {c}"] < 1e6 for c in ("SeqMap", "ndarray"))


def test_foundation_takes_its_options_and_exits_0(tmp_path):
    h = _run(["foundation", "--help"], cwd=tmp_path, timeout=120)
    assert h.returncode == 0 and "--quick" in h.stdout and "--json" in h.stdout
    p = _run(["foundation", "--quick", "--json", "f.json"], cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "false sharing" in p.stdout and "SeqArray/numpy" in p.stdout
    r = json.loads((tmp_path / "f.json").read_text())
    assert {"meta", "false_sharing", "cell_cost", "python_path"} <= set(r)


def _saved(path, scale=1.0, ops=2000):
    """A real results folder (harness rows, provenance and all) whose throughputs are set
    to known values: the statistics are tested in test_compare, the command here."""
    from seqmap_nb import harness

    df = harness.run("null", workload="exchange", threads=1, capacity=512, ops=ops, repeats=3)
    df["mops"] = [10.0 * scale, 10.5 * scale, 9.5 * scale]
    results.save(df, path)
    return df


def test_compare_two_folders(tmp_path):
    _saved(tmp_path / "a")
    _saved(tmp_path / "b", scale=100.0)  # an unmistakable change
    p = _run(["compare", "a", "b", "--labels", "before,after", "--out", "cmp"], cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "faster" in p.stdout and "1 point(s) compared: 1 faster" in p.stdout
    t = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert list(t["verdict"]) == ["faster"] and abs(t["ratio"].iloc[0] - 100) < 1e-6
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 10_000
    same = _run(["compare", "a", "a", "--no-chart"], cwd=tmp_path)
    assert same.returncode == 0 and "0 faster, 0 slower, 1 not significant" in same.stdout
    _saved(tmp_path / "c", ops=3000)  # other settings: nothing to compare, and why
    other = _run(["compare", "a", "c", "--no-chart"], cwd=tmp_path)
    assert other.returncode == 1 and "run settings differ: ops: 2000 in A, 3000 in B" in other.stdout


def test_help_and_readme_quote_the_measured_times():
    """The expected times live in cli.EXPECTED_TIMES; --help prints them and the README
    must quote the same figures (update both together)."""
    p = _run(["bench", "--help"], cwd=ROOT, timeout=120)
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    t = cli.EXPECTED_TIMES
    for key in ("quick_cold", "quick_warm", "full_cold", "full_warm"):
        assert t[key] in text, key
    readme = " ".join((ROOT / "README.md").read_text().split())
    for key, value in t.items():
        assert value in readme, (key, value)
    assert "TBD" not in t.values()
