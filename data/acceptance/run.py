"""The write and growth figures: SeqMap against the DashMap-style map, interleaved rounds.

    python data/acceptance/run.py [--rounds R] [--out DIR]

Every round runs each (workload, threads, map) once through ``seqmap_nb.harness.run``,
the maps of one figure back to back (A, B, A, B, ... across rounds), so that a slow spell
of a shared machine moves both sides of a ratio. Ratios are seqmap / other in Mop/s, per
round, and their median. Figures:

- exchange (10/40/40/10) and rapid_grow (5/80/5/10) at 1 and 2 threads, capacity 2**20,
  2M operations; exchange also against PlainMap (no synchronisation) at 1 thread;
- read_heavy at 2 threads, capacity 2**20;
- grow (inserts only, from the default capacity), 4M operations, at 1 and 2 threads, with
  each map's longest stall (the slowest single operation sampled, ``max_stall_ns``).

Writes ``rounds.csv`` (every run, with the harness's provenance columns: commit, machine,
versions, time) and ``summary.txt`` (what this prints) into --out.
"""
import argparse
import os
import statistics
import sys

import pandas as pd

from seqmap_nb import harness

FIGS = [  # (workload, threads, maps, run options)
    ("exchange", 1, ["seqmap", "dashmap", "plain"], dict(capacity=1 << 20, ops=2_000_000)),
    ("exchange", 2, ["seqmap", "dashmap"], dict(capacity=1 << 20, ops=2_000_000)),
    ("rapid_grow", 1, ["seqmap", "dashmap"], dict(capacity=1 << 20, ops=2_000_000)),
    ("rapid_grow", 2, ["seqmap", "dashmap"], dict(capacity=1 << 20, ops=2_000_000)),
    ("read_heavy", 2, ["seqmap", "dashmap"], dict(capacity=1 << 20, ops=2_000_000)),
    ("grow", 1, ["seqmap", "dashmap"], dict(ops=4_000_000)),
    ("grow", 2, ["seqmap", "dashmap", "global_lock"], dict(ops=4_000_000)),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--summary-only", action="store_true", help="summarise --out's rounds.csv again, run nothing")
    a = ap.parse_args(argv)
    if a.summary_only:
        return summarise(pd.read_csv(os.path.join(a.out, "rounds.csv")), a.out)
    rows = []
    for r in range(a.rounds):
        for wl, t, maps, opts in FIGS:
            for m in maps:
                row = harness.run(map=m, workload=wl, threads=t, repeats=1, seed=r, **opts).iloc[0]
                if not row["verified"]:
                    raise SystemExit(f"{m} {wl} T={t}: verification failed: {row['verify_detail']}")
                rows.append(dict(row, round=r))
        print(f"round {r + 1} of {a.rounds} done", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows)
    os.makedirs(a.out, exist_ok=True)
    df.to_csv(os.path.join(a.out, "rounds.csv"), index=False)
    summarise(df, a.out)


def summarise(df, out):
    lines = [f"commit {df['git_commit'].iloc[0]}, {df['machine'].iloc[0]}, numba {df['numba'].iloc[0]}, "
             f"{df['utc_time'].min()} .. {df['utc_time'].max()}, {df['round'].nunique()} rounds"]
    for wl, t, maps, opts in FIGS:
        sel = df[(df.workload == wl) & (df.threads == t)]
        mops = {m: sel[sel["map"] == m].sort_values("round")["mops"].tolist() for m in maps}
        stall = {m: sel[sel["map"] == m]["max_stall_ns"].max() / 1e6 for m in maps}
        lines.append(f"{wl} T={t}: " + ", ".join(
            f"{m} {statistics.median(v):.2f} Mop/s (max stall {stall[m]:.1f} ms)" for m, v in mops.items()))
        for m in maps[1:]:
            rs = [x / y for x, y in zip(mops["seqmap"], mops[m])]
            lines.append(f"  seqmap / {m}: median {statistics.median(rs):.2f}; rounds "
                         + " ".join(f"{x:.2f}" for x in rs))
    g1 = df[(df.workload == "grow") & (df.threads == 1) & (df["map"] == "seqmap")].sort_values("round")["mops"].tolist()
    g2 = df[(df.workload == "grow") & (df.threads == 2) & (df["map"] == "seqmap")].sort_values("round")["mops"].tolist()
    rs = [y / x for x, y in zip(g1, g2)]
    lines.append(f"grow seqmap 2 threads / 1 thread: median {statistics.median(rs):.2f}; rounds "
                 + " ".join(f"{x:.2f}" for x in rs))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
