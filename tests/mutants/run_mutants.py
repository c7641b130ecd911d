"""Apply each mutant of ``catalog.py``, run the tests that should kill it, revert.

    python tests/mutants/run_mutants.py                 # every mutant, 3 runs each
    python tests/mutants/run_mutants.py M1 N4a --runs 5 # some of them
    python tests/mutants/run_mutants.py --baseline      # the killing tests on the real code
    python tests/mutants/run_mutants.py --list

A mutant is ``<id>.diff`` beside this file: a minimal change to ``seqmap_nb/`` that breaks
one guarantee. For each mutant the script checks that the package has no uncommitted
changes, applies the diff (``git apply``), runs its killing tests ``--runs`` times (each
run a fresh ``pytest`` process: the first recompiles the package, whose cache guard sees
the changed sources), and reverts the diff (``git apply -R``) whatever happens. A run
*kills* the mutant when a test fails; a run that outlives ``--timeout`` counts as a kill
by hanging (reported as such: the tests are bounded, so this should not happen). A
compilation error is reported as an error, never as a kill.

Not collected by pytest (no ``test_`` prefix), and never run by the suite: every mutant
recompiles the package, minutes of compilation per mutant on a small machine.
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from catalog import MUTANTS  # noqa: E402

ROOT = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=HERE, capture_output=True,
                      text=True, check=True).stdout.strip()
_COMPILE_ERROR = re.compile(r"numba\.core\.errors\.\w+Error|TypingError|LoweringError")


def _git(*args, check=True):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=check)


def _package_clean():
    return _git("diff", "--quiet", "--", "seqmap_nb", check=False).returncode == 0


def _run_tests(tests, timeout):
    """One pytest process over `tests`: (outcome, seconds, last lines of its output)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider", *tests]  # one process
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return "hang", time.monotonic() - t0, out[-2000:]
    dt = time.monotonic() - t0
    out = p.stdout + p.stderr
    if p.returncode == 0:
        return "survived", dt, out[-2000:]
    if p.returncode == 1 and not _COMPILE_ERROR.search(out):
        return "killed", dt, out[-2000:]
    return f"error(rc={p.returncode})", dt, out[-4000:]


def _first_error_line(out):
    for line in out.splitlines():
        if line.startswith("E ") and "Error" in line:
            return line[1:].strip()[:160]
    return ""


def run_mutant(mut, runs, timeout, verbose):
    diff = os.path.join(HERE, mut.id + ".diff")
    if not _package_clean():
        sys.exit("seqmap_nb/ has uncommitted changes: commit or stash them first")
    chk = _git("apply", "--check", diff, check=False)
    if chk.returncode != 0:
        return [("does-not-apply", 0.0, chk.stderr)]
    _git("apply", diff)
    results = []
    try:
        for r in range(runs):
            outcome, dt, out = _run_tests(mut.tests, timeout)
            results.append((outcome, dt, out))
            why = _first_error_line(out) if outcome == "killed" else ""
            print(f"  {mut.id} run {r + 1}/{runs}: {outcome} in {dt:.0f} s {why}", flush=True)
            if verbose or outcome.startswith("error"):
                print(out)
    finally:
        _git("apply", "-R", diff)
        if not _package_clean():
            sys.exit(f"could not revert {mut.id}: check `git diff seqmap_nb` by hand")
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ids", nargs="*", help="mutant ids (default: all)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--baseline", action="store_true", help="run the killing tests on the real code once")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    chosen = [m for m in MUTANTS if not args.ids or m.id in args.ids]
    unknown = set(args.ids) - {m.id for m in MUTANTS}
    if unknown:
        sys.exit(f"unknown mutant ids: {sorted(unknown)}")
    if args.list:
        for m in chosen:
            tag = " (equivalent)" if m.equivalent else ""
            print(f"{m.id:5} {m.what}{tag}\n      " + "\n      ".join(m.tests))
        return 0
    if args.baseline:
        tests = sorted({t for m in chosen for t in m.tests})
        outcome, dt, out = _run_tests(tests, args.timeout)
        print(f"baseline: {outcome} in {dt:.0f} s")
        if outcome != "survived":
            print(out)
        return 0 if outcome == "survived" else 1
    table = []
    for m in chosen:
        print(f"{m.id}: {m.what}", flush=True)
        res = run_mutant(m, args.runs, args.timeout, args.verbose)
        kills = sum(o in ("killed", "hang") for o, _, _ in res)
        table.append((m, kills, len(res), res))
    print("\nmutant  kills  runs  seconds per run   expected")
    bad = 0
    for m, kills, n, res in table:
        secs = " ".join(f"{dt:.0f}" for _, dt, _ in res)
        hangs = sum(o == "hang" for o, _, _ in res)
        errs = [o for o, _, _ in res if o not in ("killed", "hang", "survived")]
        want = "survive (equivalent)" if m.equivalent else "killed every run"
        ok = (kills == 0 and not errs) if m.equivalent else (kills == n and not errs)
        bad += not ok
        note = (f" ({hangs} by hanging)" if hangs else "") + (f" errors: {errs}" if errs else "")
        print(f"{m.id:6} {kills:5} {n:5}  {secs:16} {want}{note}{'' if ok else '   <-- NOT AS EXPECTED'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
