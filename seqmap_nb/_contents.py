"""Copying and pickling by contents, for every structure whose table lives in raw memory.

A map keeps its table in raw memory and the table's address in a numpy header. Python's
default copy and pickle protocols copy attributes: a copied address aliases the original
table (two objects, one shared table), outlives it (the original's finaliser frees the
memory under the copy) and means nothing in another process. So every structure defines
its copies by *contents*: a new object built by its own constructor, filled from a
snapshot of the original (``items()``). ``copy.copy`` and ``copy.deepcopy`` are the same
independent copy (keys and values are fixed-size numpy items: there is nothing deeper to
share), and pickling stores the constructor arguments and the snapshot, so a map can be
sent to a multiprocessing worker. Under concurrent writes the copy is as consistent as
``items()`` (see the class's docstring).
"""

__all__ = ["CopyByContents"]


class CopyByContents:
    """Mixin: ``copy()``, ``copy.copy``, ``copy.deepcopy`` and pickle by contents.

    The class provides ``_ctor_args() -> (args, kwargs)`` (what rebuilds an empty
    structure of the same kind and size), ``items()`` and ``insert_many(keys, values)``.
    """

    def _ctor_args(self):
        raise NotImplementedError

    def copy(self):
        """An independent map with the same contents (a snapshot of this one)."""
        args, kwargs = self._ctor_args()
        return _rebuild(type(self), args, kwargs, *self.items())

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        c = self.copy()
        memo[id(self)] = c
        return c

    def __reduce__(self):
        args, kwargs = self._ctor_args()
        return _rebuild, (type(self), args, kwargs) + tuple(self.items())


def _rebuild(cls, args, kwargs, keys, values):
    m = cls(*args, **kwargs)
    if len(keys):
        m.insert_many(keys, values)
    return m
