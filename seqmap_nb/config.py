"""Compile options shared by every kernel in the package.

Decorators read these instead of repeating literals (one place to turn caching or
bounds checking on and off while debugging).

- ``NOGIL``: every kernel releases the GIL; a kernel that does not silently serialises
  the Python threads that drive it.
- ``CACHE``: on-disk caching of compiled kernels. Kernels that call the intrinsics of
  :mod:`seqmap_nb._unsafe` pickle and cache fine; ``tests/test_unsafe.py`` proves it.
  Set ``SEQMAP_NB_NO_CACHE=1`` to disable (e.g. when timing compilation).
- ``BOUNDSCHECK``: off; public entry points check indices themselves, once, before the
  kernels run, so the hot loops carry no redundant checks.
"""
import os

NOGIL = True
CACHE = os.environ.get("SEQMAP_NB_NO_CACHE", "") not in ("1", "true", "yes")
BOUNDSCHECK = False
FASTMATH = False

#: options for every internal kernel: ``@njit(**JIT)``
JIT = dict(nogil=NOGIL, cache=CACHE, boundscheck=BOUNDSCHECK, fastmath=FASTMATH)

#: the size of the unit the hardware keeps coherent *together*. x86-64 lines are 64 bytes
#: but the adjacent-line prefetcher pulls pairs of lines, so two counters 64 bytes apart
#: still interfere; crossbeam's CachePadded uses 128 for the same reason. aarch64 (Apple
#: M-series, Neoverse) has 128-byte lines outright.
CACHE_LINE = 128
#: the same in 64-bit words
LINE_WORDS = CACHE_LINE // 8
