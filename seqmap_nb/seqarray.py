"""SeqArray: an array whose every cell is its own seqlock, resizable while in use.

The protocol (buffer layout, reads, writes, the cooperative resize, the memory bound) is
the top comment of :mod:`seqmap_nb._array_kernels`, on the buffer life of
:mod:`seqmap_nb._lifecycle` and the lock of :mod:`seqmap_nb._seqlock`; this module is the
thin public layer: validation with clear exceptions, numpy scalars, copies, and the numba
type.

From numba
----------
``numba.typeof(arr)`` is a :class:`SeqArrayType` whose data model holds only the header
address (``_nbext``: no reference counting per call). Inside ``@njit(nogil=True)`` code,
for every dtype the array accepts (how each looks there, records as by-value ``ItemCopy``
values with their fields, sub-arrays as arrays, ...: the table in :mod:`seqmap_nb._codec`):

- ``arr.get(i)`` and ``arr[i]`` return the value; raise ``IndexError`` (index outside the
  capacity, negative included) or :class:`UninitializedError` (never set); numba
  exceptions carry their arguments as a tuple (message, index) rather than a formatted
  message; ``arr.get(i, default)`` returns `default` for a cell never set;
- ``arr.set(i, v)`` and ``arr[i] = v``: integer values are range-checked
  (``OverflowError``, never wrap), floats into integer cells are a ``TypingError``;
  ``IndexError`` as for get;
- ``len(arr)`` and ``arr.capacity``.

From Python, ``get``/``set`` of bool, integer, float and complex cells call the compiled
entry points of those njit methods directly, as SeqMap's scalar methods do (a numpy
scalar built in the kernel); other dtypes go through the word kernels.
"""
import functools
import operator
import os
import weakref

import numba
import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload, overload_attribute, overload_method

from . import _array_kernels as A
from . import _lifecycle as L
from ._codec import Codec, _scratch, item_spec, item_value, value_words
from ._contents import CopyByContents
from ._nbext import AddrType, Announced, EntryPoints as _EntryPoints, at_addr, fast_types as _fast_types, register
from ._npscalar import as_numpy_scalar
from ._unsafe import atomic_load, load_words, store_words
from .config import JIT

__all__ = ["SeqArray", "SeqArrayType", "UninitializedError"]


class UninitializedError(LookupError):
    """A SeqArray cell was read before any ``set`` of it."""


MAX_CAPACITY = A.MAX_CAPACITY
_MISSING = object()


@numba.njit(**JIT)
def _k_getn(hdr, i, out):
    """get of a multi-word cell into `out` (canonical words)."""
    st, retries = A.read_cell(hdr, i, out, True)
    if retries:
        A.count(hdr, A.H_READ_RETRIES, retries)
    if st == A.ST_INDEX:
        raise IndexError("SeqArray.get: index out of range", i)
    if st == A.ST_UNINIT:
        raise UninitializedError("SeqArray.get: cell was never set", i)


@numba.njit(**JIT)
def _k_setn(hdr, i, src):
    """set of a multi-word cell from canonical words `src`."""
    st, waits = A.write_cell(hdr, i, src)
    if waits:
        A.count(hdr, A.H_WRITE_WAITS, waits)
    if st == A.ST_INDEX:
        raise IndexError("SeqArray.set: index out of range", i)


# their first calls say so when they compile for more than a second (see _nbext)
# (the whole-array kernels of _array_kernels are called as they are, no wrapper between)
_k_getn, _k_setn, _k_init, _k_capacity, _k_resize, _k_snapshot, _k_fill = (
    Announced(f, f"the SeqArray {name} kernel")
    for f, name in ((_k_getn, "getn"), (_k_setn, "setn"), (A.init_array, "init"), (A.capacity, "capacity"),
                    (A.resize, "resize"), (A.snapshot, "snapshot"), (A.fill, "fill")))
_k_free = A.free_all


# =================================================================== Python side


def _phys_bytes():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 62


def _as_int(x, what):
    """`x` as a Python int (numpy integers included); a TypeError naming `what` for a bool
    or anything that is not an integer."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{what} must be an integer, got {x!r}")
    try:
        return operator.index(x)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {type(x).__name__} {x!r}") from None


def _check_capacity(n, what):
    n = _as_int(n, f"{what}: capacity")
    if n <= 0:
        raise ValueError(f"{what}: capacity must be positive, got {n}")
    if n > MAX_CAPACITY:
        raise ValueError(f"{what}: capacity {n} is absurd (at most {MAX_CAPACITY})")
    return n


def _size_class(n):
    """(cells, log2) of the size class that holds `n` cells."""
    c = max(A.MIN_CLASS, 1 << (n - 1).bit_length())
    return c, c.bit_length() - 1


class SeqArray(CopyByContents):
    """An array of fixed-size items whose every cell is its own seqlock.

    ``SeqArray(dtype, capacity)``: `dtype` any fixed-size numpy dtype (bool, integers,
    floats, complex, records, sub-arrays); `capacity` a positive int. All cells start
    uninitialised.

    Reads never return a torn value; reads and writes of different cells never block
    each other; :meth:`resize` may run while other threads get and set (they wait for it
    with backoff, nothing written is lost). Every method may be called from any number
    of Python threads; the scalar ones each run one ``nogil`` kernel. See the module
    docstring for the protocol and for use from ``@njit`` code.

    Indices are non-negative: negative indices raise ``IndexError`` (with a capacity
    that may change under concurrent resizes, counting from the end has no stable
    meaning).
    """

    def __init__(self, dtype, capacity):
        self._codec = Codec(dtype, is_key=False, what="SeqArray dtype")
        cap = _check_capacity(capacity, "SeqArray")
        dt = self._codec.dtype
        self.dtype = dt
        self._nw = self._codec.nwords
        self._stride = 1 + self._nw
        base = np.zeros(A.H_WORDS, np.uint64)
        hdr = base[:]  # njit code holds this view; its death frees the buffers
        hdr[A.H_NW] = self._nw
        hdr[A.H_STRIDE] = self._stride
        hdr[L.H_SYNC] = 1
        classcap, log2 = _size_class(cap)
        self._check_bytes(classcap)
        if not _k_init(hdr, cap, classcap, log2):
            raise MemoryError(f"SeqArray: could not allocate {self._buffer_bytes(classcap)} bytes for {cap} cells")
        self._hdr = hdr
        self._hdr_addr = int(hdr.ctypes.data)  # what njit code unboxes (see SeqArrayType)
        self._finalizer = weakref.finalize(hdr, _k_free, base)
        at = SeqArrayType(dt)
        self._numba_type_ = at  # numba's dispatcher reads this attribute directly (see _nbext)
        k = _scalar_kernels(at) if at.fast is not None else None
        self._get_ep = k.get_ep if k else _NO_ENTRY
        self._set_ep = k.set_ep if k else _NO_ENTRY
        self._scalar = k

    @classmethod
    def with_capacity(cls, dtype, capacity):
        """Same as ``SeqArray(dtype, capacity)``."""
        return cls(dtype, capacity)

    # ------------------------------------------------------------ memory
    def _buffer_bytes(self, classcap):
        return A.buffer_words(classcap, self._stride) * 8

    def _check_bytes(self, classcap):
        nbytes = self._buffer_bytes(classcap)
        if nbytes > _phys_bytes():
            raise MemoryError(f"SeqArray: a buffer of {classcap} cells needs {nbytes} bytes, more than this machine has")

    def memory_bytes(self):
        """Bytes held: the header plus every buffer (current, a resize's target, and those
        kept for recycling; see ``_array_kernels``)."""
        return self._hdr.nbytes + int(self._hdr[L.H_MEM])

    # ------------------------------------------------------------ scalar operations
    def _index(self, i):
        if type(i) is not int:
            i = _as_int(i, "SeqArray index")
        if i < 0 or i >= MAX_CAPACITY:
            raise self._out_of_range(i)
        return i

    def get(self, i, default=_MISSING):
        """The value of cell `i` (a numpy scalar, or a copy for record/sub-array dtypes).

        ``IndexError`` outside the capacity; :class:`UninitializedError` if the cell was
        never set, unless `default` is given (then `default` is returned).
        """
        ep = self._get_ep[type(i)]
        if ep is not None:
            try:
                return ep(self._hdr_addr, i)
            except UninitializedError:
                return self._never_set(i, default)
            except IndexError:
                raise self._out_of_range(i) from None
            except _FAST_ERRORS:  # an index numba cannot pass as int64: the general path says why
                pass
        return self._get_slow(i, default)

    def _get_slow(self, i, default):
        i = self._index(i)
        out = np.empty(self._nw, np.uint64)
        try:
            _k_getn(self._hdr, i, out)
        except UninitializedError:
            return self._never_set(i, default)
        except IndexError:
            raise self._out_of_range(i) from None
        return self._codec.from_words(out)

    @staticmethod
    def _never_set(i, default):
        """A read of cell `i`, which was never set: `default`, or UninitializedError."""
        if default is _MISSING:
            raise UninitializedError(f"SeqArray cell {i} was never set") from None
        return default

    def _out_of_range(self, i):
        return IndexError(f"SeqArray index {i} out of range (capacity {self.capacity})")

    def set(self, i, v):
        """Store `v` in cell `i`.

        `v` must convert to the dtype without loss of range: ``TypeError`` (wrong kind,
        e.g. a float for an integer dtype), ``OverflowError`` (out of range),
        ``IndexError`` (outside the capacity). A rejected call changes nothing.
        """
        ep = self._set_ep[type(i), type(v)]
        if ep is not None:
            try:
                ep(self._hdr_addr, i, v)
                return
            except IndexError:
                raise self._out_of_range(i) from None
            except _FAST_ERRORS:  # a value the dtype cannot hold: the general path says why
                pass
        i = self._index(i)
        w = self._codec.words(v)
        try:
            _k_setn(self._hdr, i, w)
        except IndexError:
            raise self._out_of_range(i) from None

    # ------------------------------------------------------------ size
    @property
    def capacity(self):
        """The current capacity (exact, as given to the constructor or resize)."""
        return int(_k_capacity(self._hdr))

    def __len__(self):
        """Initialised cells. Exact when no write or resize is in flight; may lag otherwise."""
        return int(self._hdr[A.H_LEN])

    def is_empty(self):
        """True when no cell is initialised."""
        return len(self) == 0

    @property
    def resizing(self):
        """True while a resize is in progress."""
        return int(self._hdr[L.H_JOB]) in (L.JOB_PREP, L.JOB_CLEAR, L.JOB_MOVE)

    def resize(self, capacity):
        """Change the capacity to `capacity`, while other threads keep using the array.

        Growing adds uninitialised cells; shrinking drops the cells past the new end
        (``len`` decreases by the initialised ones). Other threads' gets and sets go on
        meanwhile: writers help move the cells, and nothing written is lost. Concurrent
        resizes run one after the other. ``MemoryError`` if the buffer cannot be
        allocated (the array is left unchanged); ``ValueError``/``TypeError`` for a bad
        capacity.
        """
        n = _check_capacity(capacity, "SeqArray.resize")
        classcap, log2 = _size_class(n)
        self._check_bytes(classcap)
        if _k_resize(self._hdr, n, classcap, log2) != A.ST_OK:
            raise MemoryError(f"SeqArray.resize: could not allocate {self._buffer_bytes(classcap)} bytes "
                              f"for {n} cells (array unchanged)")

    # ------------------------------------------------------------ bulk
    def to_numpy(self):
        """A snapshot copy as a ``numpy.ma.MaskedArray``; uninitialised cells are masked.

        Every cell is read consistently (never torn) from one buffer generation; cells
        written while the copy runs may appear with their old or new value. Masked cells
        hold zeros in ``.data``. Scalar and record dtypes give a 1-d masked array of the
        dtype (for records the mask covers every field of a cell); sub-array dtypes
        give shape ``(capacity, *item_shape)`` with the mask repeated over the item.
        The initialised mask is ``~result.mask`` (``numpy.ma.getmaskarray``).
        """
        words, init = _k_snapshot(self._hdr)
        cap = init.shape[0]
        vals = self._codec.words_array(words.reshape(cap, self._nw))
        if self.dtype.subdtype is not None:
            mask = np.broadcast_to(~init.reshape((cap,) + (1,) * len(self.dtype.shape)), vals.shape).copy()
            return np.ma.masked_array(vals, mask=mask)
        if self.dtype.fields is not None:
            mask = np.empty(cap, dtype=np.ma.make_mask_descr(self.dtype))
            for name in self.dtype.names:
                mask[name] = ~init
            return np.ma.masked_array(vals, mask=mask)
        return np.ma.masked_array(vals, mask=~init)

    # ------------------------------------------------------------ copies
    # The buffers are raw memory addressed from the header: copying attributes would
    # alias them (and outlive them), pickling would send a meaningless address. Copies
    # and pickles carry the contents instead (a snapshot, as to_numpy takes it; see
    # ``_contents.CopyByContents``).
    def _contents(self):
        words, init = _k_snapshot(self._hdr)
        return (self.dtype, int(init.shape[0])), {}, (words, init)

    def _restore(self, state):
        words, init = state
        _k_fill(self._hdr, np.ascontiguousarray(words, np.uint64), np.ascontiguousarray(init, np.bool_))

    # ------------------------------------------------------------ statistics
    def stats(self):
        """Counters since creation or :meth:`reset_stats`: read_retries (seqlock reads
        repeated), write_waits (writes that waited for a cell or a resize), resizes."""
        h = self._hdr
        return {
            "read_retries": int(h[A.H_READ_RETRIES]),
            "write_waits": int(h[A.H_WRITE_WAITS]),
            "resizes": int(h[L.H_RESIZES]),
        }

    def reset_stats(self):
        """Zero the statistics counters."""
        self._hdr[A.H_READ_RETRIES] = 0
        self._hdr[A.H_WRITE_WAITS] = 0
        self._hdr[L.H_RESIZES] = 0

    def __repr__(self):
        return f"SeqArray({self.dtype}, capacity={self.capacity}, len={len(self)})"


class SeqArrayType(AddrType):
    """numba type of a :class:`SeqArray` (data model: the header's address, see ``_nbext``).

    ``spec`` describes the cells' items in njit code (``_codec.ItemSpec``: every dtype the
    array accepts has one); ``fast`` is the numba scalar type of the Python fast path (bool,
    integer, float, complex), else None."""

    def __init__(self, dtype):
        self.np_dtype = np.dtype(dtype)
        self._ctor_args = (self.np_dtype,)
        self.spec = item_spec(self.np_dtype)
        self.dtype = self.spec.value_type  # the njit type of a cell's value
        self.fast = self.spec.nbtype if self.spec.kind in ("scalar", "complex") else None
        super().__init__(f"SeqArray({self.np_dtype})")


register(SeqArray, SeqArrayType)

# like SeqMap's read methods: LLVM inlines them into a user's loop
_INLINE = {"forceinline": True}


@numba.njit(inline="always", **JIT)
def _hdr_of(arr):
    """The header of a SeqArray inside njit code, as an unowned uint64 view."""
    return A.header_at(arr.addr)


@numba.njit(forceinline=True, **JIT)
def _read1_words(hdr, i, NW):
    """A1-A4 of one-word cell `i`: (status, its words)."""
    st, w, retries = A.read1(hdr, i)
    if retries:
        A.count(hdr, A.H_READ_RETRIES, retries)
    return st, (w,)


@numba.njit(forceinline=True, **JIT)
def _readn_words(hdr, i, NW):
    """A1-A4 of cell `i` of `NW` words (a literal): (status, its words)."""
    buf = numba.carray(_scratch(NW), NW)
    st, retries = A.read_cell(hdr, i, buf, True)
    if retries:
        A.count(hdr, A.H_READ_RETRIES, retries)
    return st, load_words(buf, 0, NW, False)


@numba.njit(forceinline=True, **JIT)
def _write1_words(hdr, i, words, NW):
    """A1-A3 of one-word cell `i` with `words`: the status."""
    st, waits = A.write1(hdr, i, words[0])
    if waits:
        A.count(hdr, A.H_WRITE_WAITS, waits)
    return st


@numba.njit(forceinline=True, **JIT)
def _writen_words(hdr, i, words, NW):
    """A1-A3 of cell `i` of `NW` words (a literal) with `words`: the status."""
    buf = numba.carray(_scratch(NW), NW)
    store_words(buf, 0, words, False)
    st, waits = A.write_cell(hdr, i, buf)
    if waits:
        A.count(hdr, A.H_WRITE_WAITS, waits)
    return st


def _index_type(i, what):
    if not isinstance(i, types.Integer):
        raise TypingError(f"SeqArray.{what}: the index must be an integer, got {i}")


@overload_method(SeqArrayType, "get", jit_options=_INLINE)
def _ov_get(arr, i, default=None):
    _index_type(i, "get")
    S = arr.spec
    NW = S.nwords
    _read_words = _read1_words if NW == 1 else _readn_words
    if default is None or isinstance(default, types.Omitted):  # no default: raise
        def impl(arr, i, default=None):
            st, w = _read_words(_hdr_of(arr), i, NW)
            if st == A.ST_INDEX:
                raise IndexError("SeqArray.get: index out of range", i)
            if st == A.ST_UNINIT:
                raise UninitializedError("SeqArray.get: cell was never set", i)
            return item_value(w, S)
    else:
        def impl(arr, i, default=None):
            st, w = _read_words(_hdr_of(arr), i, NW)
            if st == A.ST_INDEX:
                raise IndexError("SeqArray.get: index out of range", i)
            if st == A.ST_UNINIT:
                return default
            return item_value(w, S)
    return impl


@overload_method(SeqArrayType, "set", jit_options=_INLINE)
def _ov_set(arr, i, v):
    _index_type(i, "set")
    S = arr.spec
    NW = S.nwords
    _write_words = _write1_words if NW == 1 else _writen_words

    def impl(arr, i, v):
        w = value_words(v, S)  # checked before anything is written
        if _write_words(_hdr_of(arr), i, w, NW) == A.ST_INDEX:
            raise IndexError("SeqArray.set: index out of range", i)

    return impl


@overload(operator.getitem, jit_options=_INLINE)
def _ov_getitem(arr, i):
    if isinstance(arr, SeqArrayType):
        _index_type(i, "__getitem__")
        return lambda arr, i: arr.get(i)
    return None


@overload(operator.setitem, jit_options=_INLINE)
def _ov_setitem(arr, i, v):
    if isinstance(arr, SeqArrayType):
        _index_type(i, "__setitem__")
        return lambda arr, i, v: arr.set(i, v)
    return None


@overload(len, jit_options=JIT)
def _ov_len(arr):
    if isinstance(arr, SeqArrayType):
        return lambda arr: atomic_load(_hdr_of(arr), A.H_LEN, "relaxed")


@overload_attribute(SeqArrayType, "capacity", jit_options=JIT)
def _ov_capacity(arr):
    return lambda arr: A.capacity(_hdr_of(arr))


# =================================================================== Python fast path


@functools.lru_cache(maxsize=None)
def _scalar_kernels(AT):
    """The kernels of ``SeqArray.get``/``set`` from Python for one dtype: the njit methods
    on the array rebuilt from the header's address, returning numpy scalars built in the
    kernel (as SeqMap's, see ``seqmap._scalar_kernels``)."""

    @numba.njit(**JIT)
    def get1(a, i):
        return as_numpy_scalar(at_addr(a, AT).get(i))

    @numba.njit(**JIT)
    def set1(a, i, v):
        at_addr(a, AT).set(i, v)

    vfast = _fast_types(AT.fast)
    name = f"SeqArray({AT.np_dtype})"
    return type("ScalarKernels", (), dict(
        get1=get1, set1=set1, get_ep=_EntryPoints(get1, _INDEX_TYPES, what=f"{name}.get"),
        set_ep=_EntryPoints(set1, _INDEX_TYPES, vfast, what=f"{name}.set")))


#: index types the Python methods pass straight to the kernels
_INDEX_TYPES = frozenset({int, np.int64})
_NO_ENTRY = _EntryPoints(None)
_FAST_ERRORS = (TypeError, ValueError, OverflowError)
