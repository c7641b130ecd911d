"""Shared test helpers: a bounded thread runner with a start barrier; the cache guard of
the test kernels."""
import os
import threading

import pytest

import seqmap_nb._nbext as _nbext


def _drop_stale_test_caches():
    """Test kernels are cached (``cache=True``) and many call the package's kernels
    directly, embedding their code; numba checks only the test file's timestamp. Drop the
    tests' cache files whenever the package's sources changed (the package guards its own
    caches the same way, see ``seqmap_nb._nbext``)."""
    cache = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    _nbext.drop_stale_caches([cache], os.path.join(cache, "package-sources.sha256"), _nbext.SOURCE_DIGEST)


_drop_stale_test_caches()

#: Test files whose races must really run in parallel: their negative controls (an
#: unsynchronised read that must tear, inserts without the counters that must duplicate a
#: key, ...) show the race only when two threads run at once. The suite runs in two worker
#: processes (pytest-xdist); a test of these files runs alone: it waits until the other
#: worker's current test has finished, and the other worker waits for it. Without this,
#: the duplicate-key control found no duplicate in 100 rounds beside a compiling worker.
EXCLUSIVE_FILES = {
    "test_seqmap_concurrency.py", "test_seqlock_stress.py", "test_njit_torn.py", "test_seqmap_targeted.py",
    "test_baselines_concurrency.py", "test_seqmap_resize_stress.py", "test_seqarray_stress.py",
    "test_seqarray_resize.py", "test_rwlock.py", "test_unsafe.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in EXCLUSIVE_FILES:
            item.add_marker(pytest.mark.exclusive)


def _lock_files():
    """Two lock files shared by the workers of one run (xdist gives them one run id):
    a turnstile, so that a waiting exclusive test is not starved by the other worker's
    stream of shared holders, and the room itself."""
    import tempfile

    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
    base = os.path.join(tempfile.gettempdir(), f"seqmap_nb-tests-{uid}")
    return base + ".turnstile", base + ".room"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Shared hold of the run's "room" for every test, exclusive for the tests of
    :data:`EXCLUSIVE_FILES` (only when the suite runs in worker processes). Held around
    the whole protocol, setup included: a module's fixtures (kernels compiled for a whole
    file) are set up inside the first test's setup, and they too must not run beside an
    exclusive test."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    import fcntl

    turnstile, room = _lock_files()
    exclusive = item.get_closest_marker("exclusive") is not None
    with open(turnstile, "a") as t, open(room, "a") as r:
        fcntl.flock(t, fcntl.LOCK_EX)  # one at a time through the turnstile
        try:
            fcntl.flock(r, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            if not exclusive:
                fcntl.flock(t, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(r, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(t, fcntl.LOCK_UN)


#: one knob to scale stress sizes down on slow machines (as crossbeam's stress tests do)
SCALE = float(os.environ.get("SEQMAP_NB_TEST_SCALE", "1"))


def scaled(n, minimum=1):
    return max(minimum, int(n * SCALE))


def run_threads(targets, timeout=120.0):
    """Run each callable in its own thread, all released by one barrier.

    Returns the list of results. Fails the test (instead of hanging the suite) if any
    thread is still running after `timeout` seconds, and re-raises the first exception a
    thread raised.
    """
    n = len(targets)
    barrier = threading.Barrier(n)
    results = [None] * n
    errors = []

    def wrap(i, fn):
        try:
            barrier.wait()
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i, fn), daemon=True) for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    alive = sum(t.is_alive() for t in threads)
    if alive:
        pytest.fail(f"{alive} of {n} threads still running after {timeout}s: deadlock or livelock")
    if errors:
        raise errors[0]
    return results
