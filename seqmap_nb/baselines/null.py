"""``null``: a map whose operations touch no table, to measure the harness's own cost.

Every operation returns at once: ``get``/``insert``/``remove`` answer "absent" (``None``),
``contains`` False, ``add`` the delta, ``len`` 0. The harness drives it with the same
streams, the same jitted kernel, the same per-op outcome checks and latency sampling as
every other map, so its ns per op is what the harness itself spends per op (loading the
op, key, value and expectation, dispatching on the op code, checking the outcome, the
sampling clock): the floor under every other map's figure. A map's ns/op minus null's
is the map's own cost; when null's is small next to the fastest map's, ratios between
maps are not compressed by the harness.

Its answers are wrong for every op that expects a present key, and predictably so: the
harness knows the map is a null map (``touches_no_table``) and verifies that its kernel
counted exactly those ops as mismatches (proof that every op ran through the checks) and
that the map is still empty.

The "no table" is literal: the numba model holds one 8-byte word (always 0), read by
``get``/``insert``/``remove``/``contains`` so that their results are Optionals the
compiler cannot fold away (the harness's check code then compiles as it does for a real
map); that word stays in L1.
"""
import operator

import numba
import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload, overload_attribute, overload_method

from .._codec import check_max_load
from .._contents import MapBase
from .._nbext import AddrType, register
from .._unsafe import raw_words

__all__ = ["NullMap"]

_DTYPES = (np.dtype(np.int64), np.dtype(np.uint64))


class NullMap(MapBase):
    """``NullMap(key_dtype, value_dtype, capacity=16, max_load=0.75)``: holds nothing.

    int64/uint64 keys and values (what the harness streams carry). ``capacity`` and
    ``max_load`` are accepted and reported back, so the harness can build it as it builds
    any map; ``slots`` is 0: there is no table.
    """

    #: the harness verifies this map by its predictable wrong answers, not by its contents
    touches_no_table = True

    def __init__(self, key_dtype, value_dtype, capacity=16, max_load=0.75):
        kd, vd = np.dtype(key_dtype), np.dtype(value_dtype)
        for what, dt in (("key", kd), ("value", vd)):
            if dt not in _DTYPES:
                raise TypeError(f"null: {what} dtype must be int64 or uint64, got {dt}")
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"capacity must be an integer, got {type(capacity).__name__}")
        if not 0 < capacity <= 1 << 40:
            raise ValueError(f"capacity must be in 1 .. {1 << 40}, got {capacity}")
        max_load = check_max_load(max_load)
        self.key_dtype, self.value_dtype = kd, vd
        self._capacity = int(capacity)
        self.max_load = float(max_load)
        self._word = np.zeros(1, np.uint64)  # always 0: see the module docstring
        self._hdr_addr = int(self._word.ctypes.data)  # what njit code unboxes (the one word)
        self._numba_type_ = NullMapType(numba.from_dtype(kd), numba.from_dtype(vd))

    # ---------------------------------------------------------------- scalar
    def get(self, k, default=None):
        return default

    def insert(self, k, v):
        return None

    def remove(self, k):
        return None

    def add(self, k, d):
        return self.value_dtype.type(d)

    def __contains__(self, k):
        return False

    def __len__(self):
        return 0

    # ---------------------------------------------------------------- batch
    def _keys(self, keys):
        ks = np.asarray(keys)
        if ks.ndim != 1:
            raise ValueError(f"keys: expected a 1-d array, got shape {ks.shape}")
        return ks

    def _get_many(self, keys):
        n = self._keys(keys).shape[0]
        return np.zeros(n, self.value_dtype), np.zeros(n, np.bool_)

    def insert_many(self, keys, values):
        ks, vs = self._keys(keys), np.asarray(values)
        if vs.shape != ks.shape:
            raise ValueError(f"values: {vs.shape[0] if vs.ndim else 0} values for {ks.shape[0]} keys")

    def remove_many(self, keys):
        return np.zeros(self._keys(keys).shape[0], np.bool_)

    def add_many(self, keys, deltas):
        ks, ds = self._keys(keys), np.asarray(deltas)
        if ds.shape != ks.shape:
            raise ValueError(f"add_many: expected {ks.shape[0]} deltas, got shape {ds.shape}")
        return ds.astype(self.value_dtype)

    # ---------------------------------------------------------------- whole map
    def items(self):
        return np.empty(0, self.key_dtype), np.empty(0, self.value_dtype)

    def clear(self):
        pass

    @property
    def capacity(self):
        return self._capacity

    @property
    def slots(self):
        return 0

    def memory_bytes(self):
        return int(self._word.nbytes)

    _no_probes = "the null map has no table to probe"

    def _ctor_args(self):
        return (self.key_dtype, self.value_dtype), dict(capacity=self._capacity, max_load=self.max_load)


# ------------------------------------------------------------------ numba type


class NullMapType(AddrType):
    """numba type of the null map (data model: the address of its one word, ``_nbext``)."""

    def __init__(self, key_ty, val_ty):
        self.key_ty = key_ty
        self.val_ty = val_ty
        self._ctor_args = (key_ty, val_ty)  # pickles as its constructor call (_nbext)
        super().__init__(f"NullMap({key_ty}, {val_ty})")


register(NullMap, NullMapType)


@overload_attribute(NullMapType, "word", inline="always")
def _ov_word(m):
    return lambda m: raw_words(m.addr, 1)


def _int_arg(x, what):
    if not isinstance(x, types.Integer):
        raise TypingError(f"null map {what}: expected an integer, got {x}")


@overload_method(NullMapType, "get", inline="always")
def _ov_get(m, k):
    _int_arg(k, "key")
    vt = m.val_ty

    def impl(m, k):
        w = m.word[0]
        if w != 0:  # never: the word is 0 (keeps the result an Optional, see the docstring)
            return vt(w)
        return None

    return impl


@overload_method(NullMapType, "insert", inline="always")
def _ov_insert(m, k, v):
    _int_arg(k, "key")
    _int_arg(v, "value")
    return lambda m, k, v: m.get(k)


@overload_method(NullMapType, "remove", inline="always")
def _ov_remove(m, k):
    _int_arg(k, "key")
    return lambda m, k: m.get(k)


@overload_method(NullMapType, "add", inline="always")
def _ov_add(m, k, d):
    _int_arg(k, "key")
    _int_arg(d, "delta")
    vt = m.val_ty
    return lambda m, k, d: vt(d)


@overload_method(NullMapType, "contains", inline="always")
def _ov_contains(m, k):
    _int_arg(k, "key")
    return lambda m, k: m.word[0] != 0


@overload(operator.contains)
def _ov_in(m, k):
    if isinstance(m, NullMapType):
        return lambda m, k: m.contains(k)


@overload(len)
def _ov_len(m):
    if isinstance(m, NullMapType):
        return lambda m: numba.int64(m.word[0])
