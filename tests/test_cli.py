"""The ``seqmap-nb`` command, run as users run it: a subprocess on the PATH entry point."""
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from seqmap_nb import results

pytestmark = pytest.mark.timeout(600)


def _cmd():
    exe = shutil.which("seqmap-nb")
    return [exe] if exe else [sys.executable, "-m", "seqmap_nb.cli"]


def _run(args, cwd, timeout=540):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(_cmd() + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_bench_quick_writes_results_and_charts(tmp_path):
    out = tmp_path / "out"
    p = _run(["bench", "--quick", "--no-progress", "--out", str(out)], cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    df = results.load(out)
    assert len(df) > 0 and df["verified"].all()
    assert {"seqmap", "dashmap"} <= set(df["map"])
    assert set(df["workload"]) == {"read_heavy", "exchange", "rapid_grow"}
    assert (df["schema_version"] == results.SCHEMA_VERSION).all()
    pngs = sorted(f.name for f in out.iterdir() if f.suffix == ".png")
    assert "throughput_vs_threads.png" in pngs and "ns_per_op_vs_threads.png" in pngs
    assert all((out / f).stat().st_size > 10_000 for f in pngs)
    assert "seqmap / dashmap" in p.stdout
    for wl in ("read_heavy", "exchange", "rapid_grow"):
        assert wl in p.stdout.split("seqmap / dashmap")[1]
    # single-thread-only maps were refused past one thread, and said so
    assert "single-thread only" in p.stdout
    assert set(df.loc[df["map"] == "plain", "threads"]) == {1}


def test_bench_default_out_folder_and_flags(tmp_path):
    p = _run(["bench", "--maps", "seqmap", "--workloads", "read_heavy", "--threads", "1,3",
              "--ops", "3000", "--capacity", "1024", "--repeats", "1", "--no-charts",
              "--no-progress"], cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    stamps = list((tmp_path / "results").iterdir())
    assert len(stamps) == 1 and stamps[0].name.endswith("Z")
    df = pd.read_csv(stamps[0] / "results.csv")
    assert list(df["threads"]) == [1, 3] and set(df["ops"]) == {3000}
    assert set(df["capacity"]) == {1024} and df["verified"].all()
    assert not list(stamps[0].glob("*.png"))


@pytest.mark.parametrize("args, message", [
    (["bench", "--maps", "nosuchmap"], "unknown map"),
    (["bench", "--workloads", "nosuch"], "unknown workload"),
    (["bench", "--threads", "0"], "thread counts"),
    (["bench", "--threads", "two"], "integers"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_fail_with_a_message(tmp_path, args, message):
    p = _run(args, cwd=tmp_path, timeout=120)
    assert p.returncode != 0
    assert message in p.stdout + p.stderr


def test_micro_runs_small_and_reports_every_figure(capsys):
    """The ratio table's command at a toy size: every figure present, positive, and the
    state it times verified (micro asserts every value it reads back before printing)."""
    from seqmap_nb import micro

    r = micro.main(["--n", "4096", "--reps", "1", "--scalar-calls", "200"])
    want = {"get_many_ratio", "insert_many_ratio", "vs_typed_dict", "vs_python_dict", "njit_get_vs_plain",
            "plain_vs_typed_dict", "scalar_vs_kernel", "scalar_vs_entry", "scalar_vs_public_njit", "scalar_vs_noop"}
    assert set(r) == want
    assert all(0 < v < float("inf") for v in r.values())
    out = capsys.readouterr().out
    assert "PlainMap njit get vs typed.Dict" in out and "goal >= 5" in out
