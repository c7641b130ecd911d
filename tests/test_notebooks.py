"""The notebooks: stored clean, and every one executes top to bottom in quick mode.

Execution uses nbclient with the ``python3`` kernel, ``SEQMAP_NB_QUICK=1`` (small sweeps) and
``MPLBACKEND=Agg`` in the kernel's environment, and checks that each notebook drew its charts
(image/png outputs). Marked ``notebooks``: ``pytest -m notebooks`` runs only these,
``-m "not notebooks"`` skips them.
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("0*.ipynb"))
CELL_TIMEOUT = 240  # seconds per cell: first-time compilation of every map's kernels included

#: charts each notebook must draw (image/png outputs) in quick mode
CHARTS = {
    "01_quickstart": 1,             # lookup cost by way of calling
    "02_thread_scaling": 3,         # throughput, ns/op (+ latency percentiles when sampled)
    "03_load_factor_and_probes": 2,  # probe distributions, throughput vs load factor
    "04_contention": 3,             # zipf, hot set, write share
    "05_design_review": 4,          # throughput, ns/op, probes, contention
}


def _harness_ready():
    names = ("seqmap_nb.seqmap", "seqmap_nb.harness", "seqmap_nb.baselines", "seqmap_nb.results")
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    return missing


def test_every_notebook_is_listed():
    assert [p.stem for p in NOTEBOOKS] == sorted(CHARTS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    """Outputs are cleared before committing, so diffs show code and prose only."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (path.name, cell.source[:60])
    assert nb.metadata["kernelspec"]["name"] == "python3"


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


def test_common_quick_switch_and_recorded_results(tmp_path, monkeypatch):
    """_common: SEQMAP_NB_QUICK picks sizes; recordings under data/*/ are found newest first."""
    import importlib
    import os
    import time

    import pandas as pd

    monkeypatch.syspath_prepend(str(NB_DIR))
    monkeypatch.setenv("SEQMAP_NB_QUICK", "0")
    common = importlib.reload(importlib.import_module("_common"))
    assert not common.QUICK and common.pick(1, 2) == 2

    for i, name in enumerate(["old", "new"]):
        d = tmp_path / name
        d.mkdir()
        pd.DataFrame({"map": [name], "machine": ["m"], "mops": [1.0], "schema_version": [1],
                      "verified": [True]}).to_csv(d / "results.csv", index=False)
        os.utime(d / "results.csv", (time.time() - 100 + i * 50,) * 2)
    assert [p.parent.name for p in common.recorded_files(data_dir=tmp_path)] == ["new", "old"]

    ran = []
    df = common.results_or_run(lambda: ran.append(1), data_dir=tmp_path)
    assert not ran and list(df["map"]) == ["new"]
    common.results_or_run(lambda: ran.append(1), data_dir=tmp_path, use_recorded=False)
    assert ran == [1]
    common.results_or_run(lambda: ran.append(2), data_dir=tmp_path / "none")
    assert ran == [1, 2]

    monkeypatch.setenv("SEQMAP_NB_QUICK", "1")
    common = importlib.reload(common)
    assert common.QUICK and common.pick(1, 2) == 1
    common.results_or_run(lambda: ran.append(3), data_dir=tmp_path)  # quick mode always measures
    assert ran == [1, 2, 3]


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
