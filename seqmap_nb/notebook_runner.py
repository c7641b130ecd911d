"""Execute the notebooks of a source checkout, and tell when the stored ones are stale.

The notebooks under ``notebooks/`` are committed *executed*, so that browsing the
repository shows their charts. ``seqmap-nb notebooks`` (:func:`regenerate`) runs each one
top to bottom in a fresh ``python3`` kernel (nbclient), in full mode, in place, and
stores in its metadata (``metadata["seqmap_nb"]``) what its outputs were made from:

- the digest of its code cells,
- the digest of every file it depends on: ``notebooks/_common.py`` and
  ``seqmap_nb/plotting.py`` (which draw every chart), and
- every recording under ``data/`` it read (``_common.results_or_run`` reports each file
  it loads through a manifest file named by ``SEQMAP_NB_MANIFEST``).

:func:`check` (``seqmap-nb notebooks --check``, and ``tests/test_notebooks.py``) reports a
notebook that is unexecuted (a code cell without outputs or execution count), that
failed (an error output), that was executed in quick mode, or whose inputs changed
since: an edited cell, a changed ``_common.py`` or ``plotting.py``, a re-recorded (or
deleted) data file. Measurements a notebook makes itself (01's ``%timeit``, 03's probe
study) are what that execution measured; they go stale with the code that makes them,
not with the machine's mood.

``--record`` measures the recordings the notebooks own (``_common.results_or_run(...,
owner=True)``) and writes them under ``data/`` before rendering; the default sweep's
recording is written by ``seqmap-nb bench`` only.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

__all__ = ["regenerate", "check", "fingerprint_inputs", "NotebookError", "COMMAND", "ROOT"]

#: the documented command that regenerates the notebooks
COMMAND = "seqmap-nb notebooks"
#: the checkout this package runs from (notebooks/ and data/ beside seqmap_nb/)
ROOT = Path(__file__).resolve().parents[1]
#: files every notebook's outputs depend on, relative to the checkout
SHARED_INPUTS = ("notebooks/_common.py", "seqmap_nb/plotting.py")
META_KEY = "seqmap_nb"


class NotebookError(RuntimeError):
    """The notebooks cannot be run or checked here (no checkout, missing tools, a cell failed)."""


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cells_sha(nb):
    h = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            h.update(cell.source.encode() + b"\0")
    return h.hexdigest()


def _notebooks(root, names):
    nb_dir = Path(root) / "notebooks"
    if not nb_dir.is_dir():
        raise NotebookError(f"no notebooks/ folder beside the package ({nb_dir}): run from a source "
                            "checkout (pip install -e .)")
    paths = sorted(nb_dir.glob("[0-9]*.ipynb"))
    if names:
        want = {n.removesuffix(".ipynb") for n in names}
        unknown = want - {p.stem for p in paths}
        if unknown:
            raise NotebookError(f"unknown notebook(s) {sorted(unknown)}; known: {[p.stem for p in paths]}")
        paths = [p for p in paths if p.stem in want]
    return paths


def fingerprint_inputs(nb, data_files, root=ROOT):
    """{input: sha256} for a notebook: its code cells, the shared files, the data it read."""
    root = Path(root)
    out = {"cells": _cells_sha(nb)}
    for rel in SHARED_INPUTS:
        out[rel] = _sha(root / rel)
    for rel in sorted(set(data_files)):
        out[rel] = _sha(root / rel)
    return out


def _import_nb():
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as exc:  # pragma: no cover - dev/notebooks extras
        raise NotebookError(f"executing notebooks needs nbformat and nbclient "
                            f"(pip install -e '.[dev,notebooks]'): {exc}") from None
    return nbformat, NotebookClient


@contextlib.contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def regenerate(names=None, timeout=1800, record=False, root=ROOT, log=print):
    """Execute the notebooks in place (full mode) and store their input fingerprints.

    `names`: notebook stems (default all). `record`: measure the recordings the notebooks
    own instead of reading them. Raises NotebookError when a cell fails (the notebook
    file is then left as it was).
    """
    nbformat, NotebookClient = _import_nb()
    root = Path(root)
    paths = _notebooks(root, names)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory() as tmp:
            manifest = Path(tmp) / "manifest.jsonl"
            t0 = time.perf_counter()
            log(f"{path.stem}: executing ...")
            client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                    resources={"metadata": {"path": str(path.parent)}})
            with _env(SEQMAP_NB_QUICK=None, SEQMAP_NB_PROGRESS="0", MPLBACKEND="Agg",
                      SEQMAP_NB_MANIFEST=str(manifest),
                      SEQMAP_NB_RECORD="1" if record else None,
                      PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))):
                try:
                    client.execute()
                except Exception as exc:  # noqa: BLE001 - CellExecutionError and kernel failures
                    raise NotebookError(f"{path.name}: a cell failed; the stored notebook is "
                                        f"unchanged:\n{exc}") from None
            data = []
            if manifest.exists():
                for line in manifest.read_text().splitlines():
                    p = Path(json.loads(line)["path"]).resolve()
                    try:
                        data.append(p.relative_to(root.resolve()).as_posix())
                    except ValueError:
                        raise NotebookError(f"{path.name} read {p}, outside the checkout: "
                                            "a committed notebook may only render data/ recordings")
        nb.metadata[META_KEY] = dict(
            command=COMMAND, mode="full", executed_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            inputs=fingerprint_inputs(nb, data, root))
        nbformat.write(nb, path)
        log(f"{path.stem}: done in {time.perf_counter() - t0:.0f} s; read {', '.join(sorted(set(data))) or 'no recording'}")
    return [p.stem for p in paths]


def check(names=None, root=ROOT):
    """[(notebook, problem)] for every stored notebook that is unexecuted, failed or stale."""
    nbformat, _ = _import_nb()
    root = Path(root)
    problems = []
    for path in _notebooks(root, names):
        nb = nbformat.read(path, as_version=4)
        name = path.stem
        code = [c for c in nb.cells if c.cell_type == "code"]
        unrun = [i for i, c in enumerate(code) if c.get("execution_count") is None]
        if unrun:
            problems.append((name, f"unexecuted: {len(unrun)} of {len(code)} code cells have no "
                                   f"execution count (first: code cell {unrun[0] + 1})"))
            continue
        errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            problems.append((name, f"executed with an error: {errors[0].get('ename')}: "
                                   f"{errors[0].get('evalue', '')[:120]}"))
            continue
        meta = nb.metadata.get(META_KEY)
        if not meta or "inputs" not in meta:
            problems.append((name, f"no record of its inputs: not executed by {COMMAND}"))
            continue
        if meta.get("mode") != "full":
            problems.append((name, f"executed in {meta.get('mode')!r} mode, not full mode"))
            continue
        stored = meta["inputs"]
        data = [k for k in stored if k not in ("cells", *SHARED_INPUTS)]
        missing = [k for k in data if not (root / k).exists()]
        if missing:
            problems.append((name, f"stale: recording(s) {missing} it was executed against are gone"))
            continue
        now = fingerprint_inputs(nb, data, root)
        changed = [k for k in now if stored.get(k) != now[k]]
        if changed:
            what = ["its code cells" if k == "cells" else k for k in changed]
            problems.append((name, f"stale: {', '.join(what)} changed since it was executed "
                                   f"({meta.get('executed_utc', '?')})"))
    return problems
