"""``as_numpy_scalar``: njit results that box as numpy scalars of their own dtype (the
scalar methods of SeqMap return these), exact in value and type, without leaking the
dtype reference, and loadable from numba's on-disk cache in a new process."""
import ctypes
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

from seqmap_nb import _npscalar
from seqmap_nb._npscalar import as_numpy_scalar

pytestmark = pytest.mark.timeout(300)


@numba.njit
def _box(x):
    return as_numpy_scalar(x)


@numba.njit
def _maybe(x, present):
    if present:
        return as_numpy_scalar(x)
    return None


CASES = [
    np.bool_(True), np.bool_(False),
    np.int8(-128), np.uint8(255), np.int16(-3), np.uint16(65535),
    np.int32(-2**31), np.uint32(2**32 - 1), np.int64(-2**63), np.uint64(2**64 - 1),
    np.float32(0.1), np.float64(-0.0), np.float64(np.inf), np.float32(np.nan),
    np.complex64(1 + 2j), np.complex128(-0.5j),
]


@pytest.mark.parametrize("x", CASES, ids=lambda x: f"{type(x).__name__}({x})")
def test_boxes_as_a_numpy_scalar_of_the_same_type_and_bits(x):
    r = _box(x)
    assert type(r) is type(x)
    assert np.asarray(r).tobytes() == np.asarray(x).tobytes()  # -0.0 and NaN bits included


def test_python_numbers_box_as_numbas_types():
    assert type(_box(7)) is np.int64 and _box(7) == 7
    assert type(_box(1.5)) is np.float64
    assert type(_box(True)) is np.bool_


def test_optional_results_box_through_it():
    assert _maybe(np.uint16(9), True) == 9 and type(_maybe(np.uint16(9), True)) is np.uint16
    assert _maybe(np.uint16(9), False) is None


def test_no_reference_is_leaked_and_the_detector_sees_a_leak():
    descr = np.dtype(np.uint64)
    _box(np.uint64(1))
    before = sys.getrefcount(descr)
    for _ in range(10_000):
        _box(np.uint64(1))
    assert sys.getrefcount(descr) == before
    # negative control: the C function the boxer calls, its new reference never released
    # (a void* result: ctypes does not own it), as a boxer without its decref would do
    table = _npscalar._api_table()
    descr_from_type = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_int)(table[45])
    for _ in range(1000):
        descr_from_type(descr.num)
    assert sys.getrefcount(descr) >= before + 1000


def test_non_numbers_are_typing_errors():
    with pytest.raises(TypingError, match="as_numpy_scalar"):
        numba.njit(lambda: as_numpy_scalar((1, 2)))()


_CACHE_SCRIPT = textwrap.dedent(
    """
    import numba, numpy as np
    from seqmap_nb._npscalar import as_numpy_scalar

    @numba.njit(cache=True)
    def box(x):
        return as_numpy_scalar(x)

    r = box(np.uint8(200))
    print(type(r).__name__, int(r), sum(box.stats.cache_hits.values()))
    """
)


def test_cached_functions_link_numpys_functions_in_a_new_process(tmp_path):
    script = tmp_path / "boxes.py"
    script.write_text(_CACHE_SCRIPT)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def run():
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert run() == ["uint8", "200", "0"]  # compiled and saved
    assert run() == ["uint8", "200", "1"]  # loaded: the symbols resolve in the new process
