"""Slow, obviously correct references: the oracles of the model-based tests.

Each mirrors the public API of the structure it checks, with none of its cleverness:
a ``dict`` behind a lock for the maps, a list behind a lock for SeqArray.
"""
import threading

import numpy as np


class NaiveMap:
    """A dict-backed map with SeqMap's Python API semantics (single global lock)."""

    def __init__(self, key_dtype, value_dtype):
        self.key_dtype = np.dtype(key_dtype)
        self.value_dtype = np.dtype(value_dtype)
        self._d = {}
        self._lock = threading.Lock()

    @staticmethod
    def _k(k):
        # keys compare by value; -0.0 and 0.0 are one key (Python's dict agrees)
        a = np.asarray(k)
        return a.tobytes() if a.dtype.fields or a.shape else a.item()

    def insert(self, k, v):
        with self._lock:
            key = self._k(k)
            old = self._d.get(key, (None, None))[1]
            self._d[key] = (k, v)
            return old

    def get(self, k, default=None):
        with self._lock:
            return self._d.get(self._k(k), (None, default))[1]

    def remove(self, k):
        with self._lock:
            return self._d.pop(self._k(k), (None, None))[1]

    def add(self, k, d):
        with self._lock:
            key = self._k(k)
            new = self._d[key][1] + d if key in self._d else d
            self._d[key] = (k, new)
            return new

    def __contains__(self, k):
        with self._lock:
            return self._k(k) in self._d

    def __len__(self):
        return len(self._d)

    def items(self):
        with self._lock:
            return list(self._d.values())


class NaiveArray:
    """A list behind a lock with SeqArray's semantics (None = never set)."""

    def __init__(self, dtype, capacity):
        self.dtype = np.dtype(dtype)
        self._cells = [None] * capacity
        self._lock = threading.Lock()

    @property
    def capacity(self):
        return len(self._cells)

    def set(self, i, v):
        with self._lock:
            if not 0 <= i < len(self._cells):
                raise IndexError(i)
            self._cells[i] = v

    def get(self, i, default=None):
        with self._lock:
            if not 0 <= i < len(self._cells):
                raise IndexError(i)
            v = self._cells[i]
            return default if v is None else v

    def resize(self, n):
        with self._lock:
            self._cells = (self._cells + [None] * n)[:n]

    def __len__(self):
        return sum(c is not None for c in self._cells)
