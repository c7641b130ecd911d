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
