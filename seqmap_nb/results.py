"""Benchmark results that describe themselves: the schema, provenance, save and load.

Every row of a results frame is one run (one repetition of one point) and carries its
parameters, its metrics and the provenance of the machine and code that produced it, so
frames from several machines or days concatenate into one and still say where each row
came from (the habit of pyperf). The column contract (``SCHEMA_VERSION``) is the one the
plotting functions read; a file written under an unknown schema version is refused by
:func:`load` with a message naming the file, instead of being merged into nonsense.

Columns (``COLUMNS``, in order: parameters, metrics, provenance; :data:`DOCS` has one line
on each). The ones whose reading is not obvious:

- ``capacity``: the entries the map was built to hold (its constructor argument; for
  ``grow``, the map's own default); ``slots`` / ``final_slots``: the table's size in slots
  when built and after the run (a map whose ``capacity`` means slots reports it as both).
- ``ns_per_op``: mean time per op per thread, ``seconds * 1e9 * threads / ops``.
- ``p50_ns`` / ``p99_ns`` / ``p999_ns``: percentiles of the sampled per-op latencies;
  ``timer_res_ns``: the smallest step the latency clock shows on this machine; a
  percentile below it is recorded as ``timer_res_ns`` and named in ``lat_below_res``
  (read "at most this").
- ``max_stall_ns``: the longest interval between two consecutive clock reads of any
  thread, each interval holding one sampled op or the ``sample_every - 1`` ops between two
  samples: an upper bound of the slowest single op (a resize, a preempted lock holder).
- ``compile_s``: compilation or cache loading in the call that produced the row (first
  repetition only; 0 for the rest).

Schema versions: 2 added ``sample_every``, ``slots``, ``final_slots``, ``max_stall_ns``,
``timer_res_ns`` and ``lat_below_res``. Version-1 files still load: those columns are
missing (NaN / empty) in their rows, which keep ``schema_version == 1``.

Files: :func:`save` writes ``results.csv`` (and ``results.parquet`` when pyarrow is
installed) into a folder; :func:`load` reads files or folders and concatenates them.
Reading a CSV with pandas alone, pass ``keep_default_na=False`` (or use :func:`read_csv`):
by default pandas reads the map name ``null`` as a missing value.
"""
from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess

import numpy as np
import pandas as pd

#: version of the column contract below; bump it when a column changes meaning or name
SCHEMA_VERSION = 2
#: versions :func:`load` reads (older ones lack the columns added since: NaN / empty there)
READABLE_VERSIONS = (1, 2)

#: parameter columns, in order, with their dtype
PARAMS = {
    "map": "str", "workload": "str", "mix": "str", "threads": "int", "capacity": "int",
    "ops": "int", "ops_per_thread": "int", "prefill": "float", "keys": "str",
    "theta": "float", "hot_ops": "float", "hot_keys": "float", "load_factor": "float",
    "repeat": "int", "seed": "int", "key_dtype": "str", "value_dtype": "str",
    "sample_every": "int",
}
#: metric columns
METRICS = {
    "seconds": "float", "mops": "float", "ns_per_op": "float", "p50_ns": "float",
    "p99_ns": "float", "p999_ns": "float", "retries_per_op": "float", "waits_per_op": "float",
    "resizes": "int", "final_len": "int", "final_capacity": "float",
    "final_load_factor": "float", "peak_mem_bytes": "int", "probe_mean": "float",
    "probe_p99": "float", "cpu_share": "float", "verified": "bool", "verify_detail": "str",
    "compile_s": "float", "slots": "int", "final_slots": "int", "max_stall_ns": "float",
    "timer_res_ns": "float", "lat_below_res": "str",
}
#: provenance columns (on every row)
PROVENANCE = {
    "schema_version": "int", "package_version": "str", "git_commit": "str", "cpu_model": "str",
    "logical_cores": "int", "os": "str", "python": "str", "numba": "str", "numpy": "str",
    "utc_time": "str", "machine": "str",
}
COLUMNS = {**PARAMS, **METRICS, **PROVENANCE}

#: one line on every column
DOCS = {
    "map": "registry name of the map (null: the harness's own cost)",
    "workload": "workload name (custom: a mix given as percentages)",
    "mix": "JSON percentages of read / insert / remove / update / upsert (rmw when used)",
    "threads": "Python threads, each running one nogil kernel over its own op stream",
    "capacity": "entries the map was built to hold (its constructor argument)",
    "ops": "timed operations of the run, all threads together",
    "ops_per_thread": "timed operations of each thread",
    "prefill": "fraction of the capacity inserted untimed before the clock",
    "keys": "key semantics: bustle (disjoint per thread), uniform, zipf, hotset, latest",
    "theta": "Zipf exponent (zipf / latest keys)",
    "hot_ops": "share of ops on the hot set (hotset keys)",
    "hot_keys": "hot set's share of the keys (hotset keys)",
    "load_factor": "fill of a fixed table measured at that fill (load-factor points)",
    "repeat": "repetition index (the round, in the seqmap-nb bench command)",
    "seed": "seed of the op streams",
    "key_dtype": "key dtype",
    "value_dtype": "value dtype",
    "sample_every": "every N-th op's latency sampled (0: no clock code in the kernel)",
    "seconds": "wall time from the start release to the last thread's finish",
    "mops": "throughput, million ops per second, all threads",
    "ns_per_op": "mean time per op per thread: seconds * 1e9 * threads / ops",
    "p50_ns": "median sampled op latency (ns; see timer_res_ns)",
    "p99_ns": "99th percentile sampled op latency (ns)",
    "p999_ns": "99.9th percentile sampled op latency (ns)",
    "retries_per_op": "seqlock read retries per op (maps that count them)",
    "waits_per_op": "write spin-waits per op (maps that count them)",
    "resizes": "table resizes and rebuilds during the run",
    "final_len": "entries in the map after the run",
    "final_capacity": "the map's capacity after the run",
    "final_load_factor": "final_len / final_slots",
    "peak_mem_bytes": "the map's memory, the larger of before and after the run",
    "probe_mean": "mean probe length of the live keys (load-factor points)",
    "probe_p99": "99th percentile probe length of the live keys",
    "cpu_share": "CPU time the threads got / (wall time x usable cores): < 1 when the "
                 "machine was busy with other work",
    "verified": "the final state (and every op's outcome) matched the streams",
    "verify_detail": "what disagreed, when verified is False",
    "compile_s": "compilation or cache loading in the call (first repetition only)",
    "slots": "table size in slots when the map was built",
    "final_slots": "table size in slots after the run",
    "max_stall_ns": "longest interval between two clock reads of any thread: an upper "
                    "bound of the slowest op (one sampled op or sample_every - 1 ops)",
    "timer_res_ns": "smallest step the latency clock shows on this machine (ns)",
    "lat_below_res": "percentiles below timer_res_ns, recorded as timer_res_ns (at most)",
    "schema_version": "version of this column contract",
    "package_version": "seqmap_nb version",
    "git_commit": "commit of the checkout the package ran from ('' outside one)",
    "cpu_model": "CPU model",
    "logical_cores": "logical cores of the machine",
    "os": "operating system",
    "python": "Python version",
    "numba": "numba version",
    "numpy": "numpy version",
    "utc_time": "when the row was measured (UTC)",
    "machine": "machine label (--machine, else cpu_model/logical_cores)",
}

#: columns of a probe-study frame (plus the provenance columns)
PROBE_COLUMNS = ("map", "load_factor", "slots", "capacity", "probe_length", "count",
                 "knuth_hit", "knuth_miss")


def utc_now():
    """The current UTC time, ISO 8601 with seconds (``2024-05-01T12:00:00Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def _git_commit():
    """HEAD of the checkout the package is imported from, '' when not in one."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else ""


@functools.lru_cache(maxsize=1)
def _static_provenance():
    import numba

    from . import __version__

    cpu = _cpu_model()
    cores = os.cpu_count() or 0
    return dict(schema_version=SCHEMA_VERSION, package_version=__version__,
                git_commit=_git_commit(), cpu_model=cpu, logical_cores=cores,
                os=platform.platform(), python=platform.python_version(),
                numba=numba.__version__, numpy=np.__version__)


def provenance(machine=None):
    """Provenance columns for a row (``utc_time`` now; ``machine`` defaults to cpu/cores)."""
    p = dict(_static_provenance())
    p["utc_time"] = utc_now()
    p["machine"] = machine if machine else f"{p['cpu_model']}/{p['logical_cores']}"
    return p


def frame(rows):
    """A results DataFrame from row dicts: every schema column, in schema order."""
    return _complete(pd.DataFrame(list(rows)))


def _complete(df):
    """Every schema column (missing ones empty), in schema order, extra columns after."""
    df = df.copy()
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = pd.Series([None] * len(df), index=df.index,
                                dtype=object if COLUMNS[col] == "str" else float)
    extra = [c for c in df.columns if c not in COLUMNS]
    return _coerce(df[list(COLUMNS) + extra])


def _coerce(df):
    """Schema dtypes: ints as int64 where no value is missing, floats, bools, strings."""
    df = df.copy()
    for col, kind in COLUMNS.items():
        if col not in df.columns:
            continue
        s = df[col]
        if kind == "float":
            df[col] = pd.to_numeric(s, errors="coerce").astype(float)
        elif kind == "int":
            s = pd.to_numeric(s, errors="coerce")
            df[col] = s.astype("int64") if len(s) and s.notna().all() else s.astype(float)
        elif kind == "bool":
            df[col] = s.map(lambda v: str(v).strip().lower() in ("true", "1", "1.0")).astype(bool)
        else:
            df[col] = s.map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v)).astype(object)
    return df


def save(df, out_dir):
    """Write ``results.csv`` (and ``results.parquet`` if pyarrow is importable) to out_dir.

    Returns the list of paths written.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"save: the frame lacks schema column(s) {missing}; build it with "
                         "seqmap_nb.harness (or results.frame)")
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, "results.csv")]
    df.to_csv(paths[0], index=False)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return paths
    paths.append(os.path.join(out_dir, "results.parquet"))
    df.to_parquet(paths[1], index=False)
    return paths


def _read_one(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: {path}: no such file or folder (expected a folder holding "
                                "results.csv, or a results file)")
    if os.path.isdir(path):
        for name in ("results.parquet", "results.csv"):
            p = os.path.join(path, name)
            if os.path.exists(p) and (name.endswith(".csv") or _have_pyarrow()):
                return p, _read_one(p)[1]
        raise FileNotFoundError(f"load: no results.csv in folder {path}")
    if path.endswith(".parquet"):
        return path, pd.read_parquet(path)
    return path, read_csv(path)


#: what counts as a missing number in a results CSV (text columns have no missing values)
_NA_NUMBERS = ["", "nan", "NaN", "NA", "<NA>", "None"]


def read_csv(path):
    """A results CSV as written, text columns verbatim: pandas' own read_csv would turn the
    map name ``null`` (and "NA", "None", ...) into NaN. Use ``keep_default_na=False`` when
    reading these files with pandas directly."""
    cols = pd.read_csv(path, nrows=0).columns
    text = {c for c in cols if COLUMNS.get(c) == "str"}
    return pd.read_csv(path, keep_default_na=False, dtype={c: str for c in text},
                       na_values={c: ([] if c in text else _NA_NUMBERS) for c in cols})


def _have_pyarrow():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def load(*paths):
    """Read results files (or folders holding results.csv) and concatenate them.

    Every file must carry ``schema_version == SCHEMA_VERSION`` on every row; anything else
    (another version, a mix of versions, no version column) raises ValueError naming the
    file, because columns of another version may not mean what the plots assume.
    """
    if len(paths) == 1 and isinstance(paths[0], (list, tuple)):
        paths = tuple(paths[0])
    if not paths:
        raise ValueError("load: give at least one results file or folder")
    frames = []
    for p in paths:
        where, df = _read_one(os.fspath(p))
        check_schema(df, where)
        frames.append(df)
    return concat(frames)


def check_schema(df, where="frame"):
    """ValueError unless every row of `df` has a schema version this module reads."""
    if "schema_version" not in df.columns:
        raise ValueError(f"{where}: no schema_version column: not a seqmap_nb results file "
                         f"(this version reads schema {SCHEMA_VERSION})")
    versions = sorted(set(pd.to_numeric(df["schema_version"], errors="coerce").dropna().astype(int)))
    if not versions or not set(versions) <= set(READABLE_VERSIONS):
        raise ValueError(f"{where}: results schema version {versions or 'missing'} does not match "
                         f"this seqmap_nb's schema version {SCHEMA_VERSION} (it reads "
                         f"{list(READABLE_VERSIONS)}); re-run the benchmark or load it with the "
                         "seqmap_nb version that wrote it")
    if pd.to_numeric(df["schema_version"], errors="coerce").isna().any():
        raise ValueError(f"{where}: some rows have no schema_version")


def concat(frames):
    """Concatenate results frames (checked: one schema version across all of them)."""
    frames = list(frames)
    for i, df in enumerate(frames):
        check_schema(df, f"frame {i}")
    if not frames:
        return frame([])
    return _complete(pd.concat(frames, ignore_index=True))
