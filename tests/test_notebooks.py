"""The notebooks: stored executed and up to date, and every one executes top to bottom in quick mode.

Stored: each notebook is committed executed against the recorded data (``seqmap-nb
notebooks``), with a record of its inputs; ``seqmap_nb.notebook_runner.check`` says when one
is unexecuted or stale (an edited cell, a re-recorded data file, a changed ``_common.py`` or
``plotting.py``), and the test below fails then.

Quick mode: execution uses nbclient with the ``python3`` kernel, ``SEQMAP_NB_QUICK=1`` (small
sweeps) and ``MPLBACKEND=Agg`` in the kernel's environment, and checks that each notebook drew
its charts (image/png outputs). Marked ``notebooks``: ``pytest -m notebooks`` runs only these,
``-m "not notebooks"`` skips them.
"""
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

from seqmap_nb import notebook_runner as R  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("0*.ipynb"))
CELL_TIMEOUT = 240  # seconds per cell: first-time compilation of every map's kernels included

#: charts each notebook draws (image/png outputs), at least, in quick and in full mode
CHARTS = {
    "01_quickstart": 1,             # lookup cost by way of calling
    "02_thread_scaling": 5,         # throughput, ns/op, ratio to dashmap, latency, growth (+ stalls)
    "03_load_factor_and_probes": 2,  # probe distributions, throughput vs load factor
    "04_contention": 3,             # zipf, hot set, write share
    "05_design_review": 5,          # ratio to dashmap, throughput, ns/op, probes, contention
}


def _harness_ready():
    names = ("seqmap_nb.seqmap", "seqmap_nb.harness", "seqmap_nb.baselines", "seqmap_nb.results")
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    return missing


def test_every_notebook_is_listed():
    assert [p.stem for p in NOTEBOOKS] == sorted(CHARTS)


def test_stored_notebooks_are_executed_and_up_to_date():
    """Browsing the repository shows executed notebooks whose outputs match their inputs."""
    problems = R.check()
    assert not problems, ("\n".join(f"{n}: {why}" for n, why in problems)
                          + f"\nregenerate with: {R.COMMAND}")
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert _png_outputs(nb) >= CHARTS[path.stem], path.name
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert "full mode" in "".join(o.get("text", "") for o in first.outputs), path.name


def _tmp_checkout(tmp_path, names=None):
    """A copy of what check() reads: notebooks, _common.py, plotting.py, the data."""
    (tmp_path / "seqmap_nb").mkdir()
    shutil.copy(ROOT / "seqmap_nb" / "plotting.py", tmp_path / "seqmap_nb" / "plotting.py")
    shutil.copytree(ROOT / "data", tmp_path / "data")
    (tmp_path / "notebooks").mkdir()
    shutil.copy(NB_DIR / "_common.py", tmp_path / "notebooks" / "_common.py")
    for p in NOTEBOOKS:
        if names is None or p.stem in names:
            shutil.copy(p, tmp_path / "notebooks" / p.name)
    return tmp_path


def test_staleness_check_fails_when_it_should(tmp_path):
    name = "02_thread_scaling"
    root = _tmp_checkout(tmp_path, [name])
    path = root / "notebooks" / f"{name}.ipynb"
    assert R.check(root=root) == []  # the copy is as fresh as the original
    stored = nbformat.read(path, as_version=4)
    recorded = [k for k in stored.metadata["seqmap_nb"]["inputs"] if k.startswith("data/")]
    assert "data/default_sweep_2core/results.csv" in recorded

    def problem_after(change):
        nb = nbformat.read(path, as_version=4)
        change(nb)
        nbformat.write(nb, path)
        try:
            (problem,) = R.check(root=root)
        finally:
            nbformat.write(stored, path)
        return problem[1]

    def edit_cell(nb):
        next(c for c in nb.cells if c.cell_type == "code").source += "\n# edited"
    assert problem_after(edit_cell).startswith("stale: its code cells changed")

    def strip(nb):
        for c in nb.cells:
            if c.cell_type == "code":
                c.outputs, c.execution_count = [], None
    assert problem_after(strip).startswith("unexecuted")

    def error(nb):
        nb.cells[1].outputs.append(nbformat.v4.new_output("error", ename="ValueError", evalue="x",
                                                          traceback=[]))
    assert problem_after(error).startswith("executed with an error: ValueError")

    def quick(nb):
        nb.metadata["seqmap_nb"]["mode"] = "quick"
    assert "not full mode" in problem_after(quick)

    def unrecorded(nb):
        del nb.metadata["seqmap_nb"]
    assert "no record of its inputs" in problem_after(unrecorded)

    csv = root / recorded[0]
    original = csv.read_bytes()
    csv.write_bytes(original + original.splitlines(keepends=True)[-1])  # re-recorded: one more run
    ((_, why),) = R.check(root=root)
    assert why.startswith(f"stale: {recorded[0]} changed")
    csv.unlink()
    ((_, why),) = R.check(root=root)
    assert "are gone" in why
    csv.write_bytes(original)
    assert R.check(root=root) == []
    (root / "notebooks" / "_common.py").write_text("# changed\n")
    ((_, why),) = R.check(root=root)
    assert why.startswith("stale: notebooks/_common.py changed")


def test_regenerate_records_the_recordings_a_notebook_read(tmp_path):
    """End to end on a one-cell notebook: regenerate executes it, the manifest names the
    recording it rendered, check() is clean, and a re-recorded file makes it stale."""
    from seqmap_nb import harness, results

    root = tmp_path
    (root / "seqmap_nb").mkdir()
    shutil.copy(ROOT / "seqmap_nb" / "plotting.py", root / "seqmap_nb" / "plotting.py")
    (root / "notebooks").mkdir()
    shutil.copy(NB_DIR / "_common.py", root / "notebooks" / "_common.py")
    df = harness.run("null", workload="exchange", threads=1, capacity=512, ops=2000, repeats=1)
    results.save(df, root / "data" / "tiny")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import _common as C\nprint(C.mode_line())\n"
                                          "df = C.results_or_run(lambda: 1 / 0, 'tiny')\nlen(df)")]
    nbformat.write(nb, root / "notebooks" / "09_tiny.ipynb")
    assert [p for _, p in R.check(root=root)] == ["unexecuted: 1 of 1 code cells have no execution "
                                                  "count (first: code cell 1)"]
    assert R.regenerate(root=root, timeout=120, log=lambda s: None) == ["09_tiny"]
    done = nbformat.read(root / "notebooks" / "09_tiny.ipynb", as_version=4)
    out = "".join(o.get("text", "") for o in done.cells[0].outputs)
    assert "full mode" in out and "recorded results: data/tiny/results.csv" in out
    assert set(done.metadata["seqmap_nb"]["inputs"]) == {"cells", "notebooks/_common.py",
                                                         "seqmap_nb/plotting.py", "data/tiny/results.csv"}
    assert R.check(root=root) == []
    results.save(df.assign(mops=df["mops"] * 2), root / "data" / "tiny")
    assert R.check(root=root)[0][1].startswith("stale: data/tiny/results.csv changed")
    with pytest.raises(R.NotebookError, match="unknown notebook"):
        R.regenerate(names=["nope"], root=root)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_prose_and_quick_mode(path):
    nb = nbformat.read(path, as_version=4)
    prose = [c for c in nb.cells if c.cell_type == "markdown"]
    assert len(prose) >= 2 and prose[0].source.startswith("# ")
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "%matplotlib inline" in first_code.source and "import _common" in first_code.source


def _png_outputs(nb):
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if "image/png" in o.get("data", {}))


def _error_outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


@pytest.mark.notebooks
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_quick_mode(path, monkeypatch, tmp_path):
    missing = _harness_ready()
    if missing:
        pytest.skip(f"modules the notebooks use are not in the package yet: {missing}")
    from nbclient import NotebookClient

    monkeypatch.setenv("SEQMAP_NB_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(NB_DIR)}})
    client.execute()  # raises CellExecutionError (with the traceback) if any cell fails
    assert not _error_outputs(nb)
    charts = _png_outputs(nb)
    assert charts >= CHARTS[path.stem], f"{path.name} drew {charts} charts, expected {CHARTS[path.stem]}"

    if path.stem == "05_design_review" and importlib.util.find_spec("nbconvert") is not None:
        # the design review exports to one self-contained HTML page with its charts inline
        executed = tmp_path / path.name
        nbformat.write(nb, executed)
        subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--no-input",
                        str(executed)], check=True, capture_output=True, timeout=120)
        html = executed.with_suffix(".html").read_text()
        assert html.count("data:image/png;base64") >= CHARTS[path.stem]


def test_common_reads_the_recording_it_names_never_the_newest(tmp_path, monkeypatch, capsys):
    """_common: SEQMAP_NB_QUICK picks sizes; a notebook renders the recording it names (not
    the newest file: after a clone, file times are checkout order) and says which it read."""
    import importlib
    import os
    import time

    import pandas as pd

    monkeypatch.syspath_prepend(str(NB_DIR))
    monkeypatch.setenv("SEQMAP_NB_QUICK", "0")
    monkeypatch.delenv("SEQMAP_NB_RECORD", raising=False)
    manifest = tmp_path / "manifest.jsonl"
    monkeypatch.setenv("SEQMAP_NB_MANIFEST", str(manifest))
    common = importlib.reload(importlib.import_module("_common"))
    assert not common.QUICK and common.pick(1, 2) == 2

    for i, name in enumerate(["wanted", "newer"]):
        d = tmp_path / name
        d.mkdir()
        pd.DataFrame({"map": [name], "machine": ["box"], "mops": [1.0], "schema_version": [2],
                      "verified": [True], "threads": [2], "workload": ["read_heavy"],
                      "git_commit": ["0123456789abcdef"], "utc_time": ["2026-01-02T00:00:00Z"]}
                     ).to_csv(d / "results.csv", index=False)
        os.utime(d / "results.csv", (time.time() - 100 + i * 50,) * 2)  # "newer" is newer
    assert common.recordings(data_dir=tmp_path) == ["newer", "wanted"]

    ran = []
    df = common.results_or_run(lambda: ran.append(1), "wanted", data_dir=tmp_path)
    assert not ran and list(df["map"]) == ["wanted"]
    out = capsys.readouterr().out
    assert "recorded results:" in out and "wanted/results.csv" in out and "1 runs" in out
    assert "machine box" in out and "commit 0123456789" in out and "2026-01-02 UTC" in out
    assert [json.loads(x)["path"] for x in manifest.read_text().splitlines()] == [
        str((tmp_path / "wanted" / "results.csv").resolve())]
    common.results_or_run(lambda: ran.append(1), "wanted", data_dir=tmp_path, use_recorded=False)
    assert ran == [1]
    common.results_or_run(lambda: ran.append(2), "missing", data_dir=tmp_path)
    assert ran == [1, 2] and "no recording" in capsys.readouterr().out
    with pytest.raises(ValueError, match="recording"):
        common.results_or_run(lambda: None, "../elsewhere", data_dir=tmp_path)

    # seqmap-nb notebooks --record: a notebook that owns a recording measures and writes it
    monkeypatch.setenv("SEQMAP_NB_RECORD", "1")
    common = importlib.reload(common)
    from seqmap_nb import harness
    made = harness.run("null", workload="exchange", threads=1, capacity=512, ops=1000, repeats=1)
    common.results_or_run(lambda: made, "owned", data_dir=tmp_path, owner=True)
    assert (tmp_path / "owned" / "results.csv").exists()
    df = common.results_or_run(lambda: ran.append(3), "wanted", data_dir=tmp_path)  # not its own
    assert ran == [1, 2] and list(df["map"]) == ["wanted"]

    monkeypatch.setenv("SEQMAP_NB_QUICK", "1")
    common = importlib.reload(common)
    assert common.QUICK and common.pick(1, 2) == 1 and not common.RECORD
    common.results_or_run(lambda: ran.append(4), "wanted", data_dir=tmp_path)  # quick always measures
    assert ran == [1, 2, 4]


def test_common_crossover_sentence(monkeypatch):
    monkeypatch.syspath_prepend(str(NB_DIR))
    import importlib

    import pandas as pd
    common = importlib.import_module("_common")
    rows = [dict(map=m, theta=t, mops=v, verified=True)
            for t, s, d in [(0.0, 10, 5), (0.9, 6, 5), (1.2, 2, 5)]
            for m, v in (("seqmap", s), ("dashmap", d))]
    text = common.crossover(pd.DataFrame(rows), "theta")
    assert "dashmap is faster at theta = 1.2 (1 of 3 points)" in text and "2.00x" in text
    json.dumps(text)  # a plain string
