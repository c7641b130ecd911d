"""``dict_lock``: a Python ``dict`` guarded by one ``threading.Lock``.

What a Python user writes first, and the floor every compiled map is measured against.
Every operation (batch calls too: they are Python loops, one lock round-trip per item,
which is the point of this baseline) runs under the lock, so it is thread-safe, and the
GIL means at most one thread runs Python at a time anyway. It is driven from Python
threads only (``njit=False`` in the registry: numba cannot call it).

Keys are canonicalised like every map here (``_codec``): NaN rejected, ``-0.0`` folded
into ``0.0``, integers range-checked; records and sub-arrays key by their bytes. Values
are stored as numpy scalars of the value dtype (records: copies). ``add`` raises
``OverflowError`` for an integer result that does not fit, value unchanged.
"""
import sys
import threading

import numpy as np

from .._codec import Codec
from .._contents import MapBase
from . import _table as T
from ._table import DictSized

__all__ = ["DictLockMap"]

_MISSING = object()


class DictLockMap(DictSized, MapBase):
    """Python dict + threading.Lock with the common map interface (Python methods only)."""

    def __init__(self, key_dtype, value_dtype, capacity=16):
        self._kc = Codec(key_dtype, is_key=True, what="key dtype")
        self._vc = Codec(value_dtype, is_key=False, what="value dtype")
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"capacity must be an integer, got {type(capacity).__name__}")
        if not 0 < capacity <= 1 << 40:
            raise ValueError(f"capacity must be in 1 .. {1 << 40}, got {capacity}")
        self.key_dtype, self.value_dtype = self._kc.dtype, self._vc.dtype
        self._vkind, _ = T.value_kind(self.value_dtype)
        self._initial = int(capacity)
        self._d = {}
        self._lock = threading.Lock()
        self._bytes_key = not self._kc.scalar

    def _ctor_args(self):
        return (self.key_dtype, self.value_dtype), dict(capacity=max(self._initial, len(self)))

    def _key(self, k):
        return self._keyc(k)[0]

    def _keyc(self, k):
        """(hashable key, canonical item): the item is what items() returns."""
        a = self._kc.to_item(k)
        if self._bytes_key:
            return a.tobytes(), a.copy()
        return a[()].item(), a[()]

    def _val(self, v):
        a = self._vc.to_item(v)
        return a[()] if a.dtype.fields is None and a.dtype.subdtype is None else a.copy()

    def insert(self, k, v):
        (key, kc), val = self._keyc(k), self._val(v)
        with self._lock:
            prev = self._d.get(key, (None, None))[1]
            self._d[key] = (kc, val)
        return prev

    def get(self, k, default=None):
        key = self._key(k)
        with self._lock:
            e = self._d.get(key)
        return default if e is None else e[1]

    def remove(self, k):
        key = self._key(k)
        with self._lock:
            e = self._d.pop(key, None)
        return None if e is None else e[1]

    def add(self, k, d):
        key, kc = self._keyc(k)
        if self._vkind in (T.V_SIGNED, T.V_UNSIGNED):
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
                raise TypeError(f"add: expected an integer delta for {self.value_dtype}, got {type(d).__name__}")
        elif self._vkind == T.V_FLOAT:
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, float, np.integer, np.floating)):
                raise TypeError(f"add: expected a real delta for {self.value_dtype}, got {type(d).__name__}")
        else:
            raise TypeError(f"add: values of {self.value_dtype} cannot be added to")
        t = self.value_dtype.type
        with self._lock:
            e = self._d.get(key)
            old = t(0) if e is None else e[1]
            if self._vkind == T.V_FLOAT:
                new = old + t(d)
            else:
                n = int(old) + int(d)
                self._vc.check_int(n)
                new = t(n)
            self._d[key] = (kc, new)
        return new

    def __contains__(self, k):
        key = self._key(k)
        with self._lock:
            return key in self._d

    def __delitem__(self, k):
        key = self._key(k)
        with self._lock:
            if key not in self._d:
                raise KeyError(k)
            del self._d[key]

    # ---------------------------------------------------------------- batch: Python loops
    def _get_many(self, keys):
        ks = self._kc.to_array(keys, "keys")
        out = np.zeros(ks.shape[0], self.value_dtype)
        found = np.zeros(ks.shape[0], np.bool_)
        for i in range(ks.shape[0]):
            v = self.get(ks[i], _MISSING)
            if v is not _MISSING:
                out[i] = v
                found[i] = True
        return out, found

    def insert_many(self, keys, values):
        ks, vs = self._pairs(keys, values)
        for i in range(ks.shape[0]):
            self.insert(ks[i], vs[i])

    def remove_many(self, keys):
        ks = self._kc.to_array(keys, "keys")
        found = np.zeros(ks.shape[0], np.bool_)
        for i in range(ks.shape[0]):
            found[i] = self.remove(ks[i]) is not None
        return found

    def add_many(self, keys, deltas):
        ks, ds = self._deltas_of(keys, deltas)
        out = np.zeros(ks.shape[0], self.value_dtype)
        for i in range(ks.shape[0]):
            out[i] = self.add(ks[i], ds[i].item())
        return out

    # ---------------------------------------------------------------- whole map
    def items(self):
        with self._lock:
            entries = list(self._d.values())
        ks = np.empty(len(entries), self.key_dtype)
        vs = np.empty(len(entries), self.value_dtype)
        for i, (k, v) in enumerate(entries):
            ks[i] = k
            vs[i] = v
        return ks, vs

    def clear(self):
        with self._lock:
            self._d.clear()


    def memory_bytes(self):
        """The dict itself plus one key object, one entry tuple and one value object per item."""
        n = len(self._d)
        per = 0
        with self._lock:
            for key, (k, v) in list(self._d.items())[:1]:
                per = sys.getsizeof(key) + sys.getsizeof((k, v)) + sys.getsizeof(v)
        return int(sys.getsizeof(self._d) + n * per)

    _no_probes = "CPython's dict does not expose its probe sequence"
