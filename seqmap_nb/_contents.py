"""What every map of the package shares above its table: the dict-style surface, the
whole-map views, and copying and pickling by contents.

:class:`MapBase` gives every map (SeqMap, PlainMap and each baseline) the methods that are
the same whatever the table: ``m[k]``, ``m[k] = v``, ``contains``, ``keys``, ``values``,
``to_pandas``, ``is_empty``, ``load_factor``, statistics for maps that keep none, the
``repr``, and the copies below. A class provides ``get``, ``insert``, ``__contains__``,
``__len__``, ``items``, ``insert_many``, ``key_dtype``/``value_dtype`` and
``_ctor_args``; it overrides what it does better (SeqMap's ``del m[k]`` is one kernel).

Copies by contents: a map keeps its table in raw memory and the table's address in a
numpy header. Python's default copy and pickle protocols copy attributes: a copied
address aliases the original table (two objects, one shared table), outlives it (the
original's finaliser frees the memory under the copy) and means nothing in another
process. So every structure defines its copies by *contents*: a new object built by its
own constructor, filled from a snapshot of the original. ``copy.copy`` and
``copy.deepcopy`` are the same independent copy (keys and values are fixed-size numpy
items: there is nothing deeper to share), and pickling stores the constructor arguments
and the snapshot, so a map can be sent to a multiprocessing worker. Under concurrent
writes the copy is as consistent as the snapshot (see the class's ``items``).
"""

__all__ = ["CopyByContents", "MapBase"]

_MISSING = object()


class CopyByContents:
    """Mixin: ``copy()``, ``copy.copy``, ``copy.deepcopy`` and pickle by contents.

    The class provides ``_contents() -> (args, kwargs, state)``: what rebuilds an empty
    structure of the same kind and size, and its contents; and ``_restore(state)``, which
    fills a new one. Maps get both from :class:`MapBase` (their ``items()``)."""

    def copy(self):
        """An independent copy with the same contents (a snapshot of this one)."""
        return _rebuild(type(self), *self._contents())

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        c = self.copy()
        memo[id(self)] = c
        return c

    def __reduce__(self):
        return _rebuild, (type(self),) + tuple(self._contents())


def _rebuild(cls, args, kwargs, state):
    obj = cls(*args, **kwargs)
    obj._restore(state)
    return obj


def check_out(a, name, dtype, shape):
    """An output array given to a batch call (``out=``, ``found=``): a numpy array of the
    right dtype and shape, writeable. A clear error, before anything is written."""
    import numpy as np

    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}= must be a numpy array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}= must have dtype {dtype}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name}= must have shape {shape}, got {a.shape}")
    if not a.flags.writeable:
        raise ValueError(f"{name}= is read-only")


def deliver(vals, fnd, out, found):
    """The result of a batch lookup computed into new arrays, copied into the caller's
    `out` / `found` where given (both checked first); returns the arrays to hand back."""
    import numpy as np

    if out is not None:
        check_out(out, "out", vals.dtype, vals.shape)
    if found is not None:
        check_out(found, "found", np.dtype(np.bool_), fnd.shape)
    if out is not None:
        out[...] = vals
        vals = out
    if found is not None:
        found[...] = fnd
        fnd = found
    return vals, fnd


class MapBase(CopyByContents):
    """The map surface that is the same for every map (see the module docstring)."""

    #: why ``probe_lengths`` is not available (maps whose table is not linear probing)
    _no_probes = None

    # ---------------------------------------------------------------- dict style
    def contains(self, k):
        return k in self

    def __getitem__(self, k):
        v = self.get(k, _MISSING)
        if v is _MISSING:
            raise KeyError(k)
        return v

    def __setitem__(self, k, v):
        self.insert(k, v)

    def __iter__(self):
        return iter(self.keys())

    def is_empty(self):
        return len(self) == 0

    def _pairs(self, keys, values, what="values"):
        """Batch input: (keys, values) as arrays of the key and value dtypes, checked and of
        one length (a ValueError says how they differ)."""
        ks = self._kc.to_array(keys, "keys")
        vs = self._vc.to_array(values, what)
        if vs.shape[0] != ks.shape[0]:
            raise ValueError(f"{what}: {vs.shape[0]} {what} for {ks.shape[0]} keys (lengths must match)")
        return ks, vs

    def _deltas_of(self, keys, deltas):
        """Batch input of ``add_many``: (keys, deltas as a 1-d array of one length)."""
        import numpy as np

        ks = self._kc.to_array(keys, "keys")
        ds = np.asarray(deltas)
        if ds.ndim != 1 or ds.shape[0] != ks.shape[0]:
            raise ValueError(f"add_many: expected {ks.shape[0]} deltas in a 1-d array, got shape {ds.shape}")
        return ks, ds

    # ---------------------------------------------------------------- batch lookups
    def get_many(self, keys, out=None, found=None):
        """``(values, found)`` for an array of keys (absent keys: zero values). `out` and
        `found`, when given, are filled and returned instead of new arrays (numpy's
        convention; checked before anything is written into them)."""
        vals, fnd = self._get_many(keys)
        return deliver(vals, fnd, out, found)

    # ---------------------------------------------------------------- whole-map views
    def keys(self):
        return self.items()[0]

    def values(self):
        return self.items()[1]

    def to_pandas(self):
        """DataFrame with columns ``key``, ``value``; record dtypes expand to one column per
        field (``key.<field>``), sub-arrays to one column per element (``key[i]``)."""
        import pandas as pd

        ks, vs = self.items()
        cols = {}
        for name, arr, dt in (("key", ks, self.key_dtype), ("value", vs, self.value_dtype)):
            if dt.fields is not None:
                for f in dt.names:
                    sub = arr[f]
                    if sub.ndim > 1:
                        flat = sub.reshape(sub.shape[0], -1)
                        for i in range(flat.shape[1]):
                            cols[f"{name}.{f}[{i}]"] = flat[:, i]
                    else:
                        cols[f"{name}.{f}"] = sub
            elif arr.ndim > 1:
                flat = arr.reshape(arr.shape[0], -1)
                for i in range(flat.shape[1]):
                    cols[f"{name}[{i}]"] = flat[:, i]
            else:
                cols[name] = arr
        return pd.DataFrame(cols)

    @property
    def load_factor(self):
        """Live entries per slot of the table."""
        slots = self.slots
        return len(self) / slots if slots else 0.0

    def probe_lengths(self):
        raise NotImplementedError(self._no_probes or f"{type(self).__name__} does not expose its probes")

    # ---------------------------------------------------------------- statistics (none kept)
    def stats(self):
        return dict(read_retries=0, write_waits=0, resizes=0)

    def reset_stats(self):
        pass

    def __repr__(self):
        return (f"{type(self).__name__}({self.key_dtype}, {self.value_dtype}, len={len(self)}, "
                f"capacity={self.capacity}, slots={self.slots})")

    # ---------------------------------------------------------------- copies
    def _ctor_args(self):
        raise NotImplementedError

    def _contents(self):
        args, kwargs = self._ctor_args()
        return args, kwargs, self.items()

    def _restore(self, state):
        keys, values = state
        if len(keys):
            self.insert_many(keys, values)
