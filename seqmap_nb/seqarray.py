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
for bool/integer/float dtypes:

- ``arr.get(i)`` returns the value; raises ``IndexError`` (index outside the capacity,
  negative included) or :class:`UninitializedError` (never set); numba exceptions carry
  their arguments as a tuple (message, index) rather than a formatted message;
- ``arr.set(i, v)``: integer values are range-checked (``OverflowError``, never wrap),
  floats into integer cells are a ``TypingError``; ``IndexError`` as for get;
- ``len(arr)`` and ``arr.capacity``.

Record, complex and sub-array dtypes are usable from Python only (their njit methods are
a ``TypingError``); the batch and snapshot kernels handle them as words.
"""
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
from ._codec import Codec, value_word, word_scalar
from ._contents import CopyByContents
from ._nbext import AddrType, register
from ._unsafe import atomic_load, raw_words
from .config import JIT

__all__ = ["SeqArray", "SeqArrayType", "UninitializedError"]


class UninitializedError(LookupError):
    """A SeqArray cell was read before any ``set`` of it."""


MAX_CAPACITY = A.MAX_CAPACITY
_MISSING = object()


def _cast_to(v, tok):
    raise NotImplementedError("only callable from njit code")


@overload(_cast_to, inline="always")
def _ov_cast_to(v, tok):
    target = tok.dtype
    return lambda v, tok: target(v)


# =================================================================== kernels (Python fast path)


@numba.njit(**JIT)
def _k_get1(hdr, i, tok):
    """get of a one-word scalar cell; the dtype comes from the empty token array."""
    st, w, retries = A.read1(hdr, i)
    if retries:
        A.count(hdr, A.H_READ_RETRIES, retries)
    if st == A.ST_INDEX:
        raise IndexError("SeqArray.get: index out of range", i)
    if st == A.ST_UNINIT:
        raise UninitializedError("SeqArray.get: cell was never set", i)
    return word_scalar(w, tok)


@numba.njit(**JIT)
def _k_set1(hdr, i, v, tok):
    """set of a one-word scalar cell (the caller checked that `v` fits the dtype)."""
    st, waits = A.write1(hdr, i, value_word(_cast_to(v, tok)))
    if waits:
        A.count(hdr, A.H_WRITE_WAITS, waits)
    if st == A.ST_INDEX:
        raise IndexError("SeqArray.set: index out of range", i)


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


@numba.njit(**JIT)
def _k_init(hdr, cap, classcap, log2):
    return A.init_array(hdr, cap, classcap, log2)


@numba.njit(**JIT)
def _k_capacity(hdr):
    return A.capacity(hdr)


@numba.njit(**JIT)
def _k_resize(hdr, cap, classcap, log2):
    return A.resize(hdr, cap, classcap, log2)


@numba.njit(**JIT)
def _k_snapshot(hdr):
    return A.snapshot(hdr)


@numba.njit(**JIT)
def _k_fill(hdr, words, init):
    A.fill(hdr, words, init)


@numba.njit(**JIT)
def _k_free(hdr):
    A.free_all(hdr)


# =================================================================== Python side


def _phys_bytes():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 62


def _check_capacity(n, what):
    if isinstance(n, (bool, np.bool_)):
        raise TypeError(f"{what}: capacity must be an integer, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{what}: capacity must be an integer, got {type(n).__name__} {n!r}") from None
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
        # one-word scalars numba handles natively (not float16 / longdouble)
        self._scalar = dt.fields is None and dt.subdtype is None and (dt.kind in "biu" or dt in (np.float32, np.float64))
        self._tok = np.empty(0, dt) if self._scalar else None
        self._type = dt.type
        self._kind = self._codec.kind
        self._lo, self._hi = self._codec.lo, self._codec.hi
        self._f32 = dt == np.float32
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
        self._nbtype = SeqArrayType(numba.from_dtype(dt) if self._scalar else types.Opaque(str(dt)))

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
            if isinstance(i, (bool, np.bool_)):
                raise TypeError(f"SeqArray index must be an integer, got {i!r}")
            try:
                i = operator.index(i)
            except TypeError:
                raise TypeError(f"SeqArray index must be an integer, got {type(i).__name__} {i!r}") from None
        if i < 0 or i >= MAX_CAPACITY:
            raise IndexError(f"SeqArray index {i} out of range (capacity {self.capacity})")
        return i

    def get(self, i, default=_MISSING):
        """The value of cell `i` (a numpy scalar, or a copy for record/sub-array dtypes).

        ``IndexError`` outside the capacity; :class:`UninitializedError` if the cell was
        never set, unless `default` is given (then `default` is returned).
        """
        if type(i) is not int or not 0 <= i < MAX_CAPACITY:
            i = self._index(i)  # raises: the kernels only see 0 <= i < 2**40
        try:
            if self._tok is not None:
                return self._type(_k_get1(self._hdr, i, self._tok))
            out = np.empty(self._nw, np.uint64)
            _k_getn(self._hdr, i, out)
            return self._codec.from_words(out)
        except UninitializedError:
            if default is _MISSING:
                raise UninitializedError(f"SeqArray cell {i} was never set") from None
            return default
        except IndexError:
            raise IndexError(f"SeqArray index {i} out of range (capacity {self.capacity})") from None

    def set(self, i, v):
        """Store `v` in cell `i`.

        `v` must convert to the dtype without loss of range: ``TypeError`` (wrong kind,
        e.g. a float for an integer dtype), ``OverflowError`` (out of range),
        ``IndexError`` (outside the capacity). A rejected call changes nothing.
        """
        if type(i) is not int or not 0 <= i < MAX_CAPACITY:
            i = self._index(i)  # raises: the kernels only see 0 <= i < 2**40
        try:
            if self._tok is not None:
                t = type(v)
                kind = self._kind
                if kind in "iu":
                    if t is not int or v < self._lo or v > self._hi:
                        v = self._codec.to_item(v).item()
                elif kind == "f":
                    if t is not float or (self._f32 and not -3.4028234663852886e38 <= v <= 3.4028234663852886e38):
                        v = float(self._codec.to_item(v))
                elif t is not bool:
                    v = bool(self._codec.to_item(v))
                _k_set1(self._hdr, i, v, self._tok)
            else:
                _k_setn(self._hdr, i, self._codec.words(v))
        except IndexError:
            raise IndexError(f"SeqArray index {i} out of range (capacity {self.capacity})") from None

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
    """numba type of a :class:`SeqArray` (data model: the header's address, see ``_nbext``)."""

    def __init__(self, dtype):
        self.dtype = dtype
        super().__init__(f"SeqArray({dtype})")


register(SeqArray, SeqArrayType)


@numba.njit(inline="always", **JIT)
def _hdr_of(arr):
    """The header of a SeqArray inside njit code, as an unowned uint64 view."""
    return A.header_at(arr.addr)


def _scalar_only(arr, what):
    if not isinstance(arr.dtype, (types.Integer, types.Float, types.Boolean)):
        raise TypingError(
            f"SeqArray.{what} in njit code supports bool/integer/float dtypes; "
            f"{arr.dtype} cells are usable from Python (and batch kernels) only"
        )


@overload_method(SeqArrayType, "get", jit_options=JIT)
def _ov_get(arr, i):
    _scalar_only(arr, "get")
    if not isinstance(i, types.Integer):
        raise TypingError(f"SeqArray.get: the index must be an integer, got {i}")
    dt = arr.dtype

    def impl(arr, i):
        hdr = _hdr_of(arr)
        st, w, retries = A.read1(hdr, i)
        if retries:
            A.count(hdr, A.H_READ_RETRIES, retries)
        if st == A.ST_INDEX:
            raise IndexError("SeqArray.get: index out of range", i)
        if st == A.ST_UNINIT:
            raise UninitializedError("SeqArray.get: cell was never set", i)
        return word_scalar(w, dt)

    return impl


def _range_check(vty, dt):
    """njit function raising OverflowError when a value of type `vty` does not fit `dt`."""
    if isinstance(dt, types.Integer) and isinstance(vty, types.Integer):
        lo, hi = (-(1 << (dt.bitwidth - 1)), (1 << (dt.bitwidth - 1)) - 1) if dt.signed else (0, (1 << dt.bitwidth) - 1)
        vlo, vhi = (-(1 << (vty.bitwidth - 1)), (1 << (vty.bitwidth - 1)) - 1) if vty.signed else (0, (1 << vty.bitwidth) - 1)
        if lo <= vlo and vhi <= hi:
            return None
        if vty.signed and not dt.signed:  # compare in the value's own signedness
            def check(v):
                if v < 0 or numba.uint64(v) > numba.uint64(hi):
                    raise OverflowError("SeqArray.set: value out of range for the dtype", v)
        elif not vty.signed and dt.signed:
            def check(v):
                if v > numba.uint64(hi):
                    raise OverflowError("SeqArray.set: value out of range for the dtype", v)
        else:
            def check(v):
                if v < lo or v > hi:
                    raise OverflowError("SeqArray.set: value out of range for the dtype", v)
        return numba.njit(inline="always")(check)
    return None


@overload_method(SeqArrayType, "set", jit_options=JIT)
def _ov_set(arr, i, v):
    _scalar_only(arr, "set")
    if not isinstance(i, types.Integer):
        raise TypingError(f"SeqArray.set: the index must be an integer, got {i}")
    dt = arr.dtype
    if isinstance(dt, types.Boolean):
        ok = isinstance(v, types.Boolean)
    elif isinstance(dt, types.Integer):
        ok = isinstance(v, (types.Integer, types.Boolean))
    else:
        ok = isinstance(v, (types.Integer, types.Float, types.Boolean))
    if not ok:
        raise TypingError(f"SeqArray.set: cannot store a {v} in a {dt} cell without loss")
    check = _range_check(v, dt)
    f32 = dt == types.float32 and isinstance(v, types.Float) and v.bitwidth > 32

    if check is not None:
        def impl(arr, i, v):
            check(v)
            hdr = _hdr_of(arr)
            st, waits = A.write1(hdr, i, value_word(dt(v)))
            if waits:
                A.count(hdr, A.H_WRITE_WAITS, waits)
            if st == A.ST_INDEX:
                raise IndexError("SeqArray.set: index out of range", i)
    elif f32:
        def impl(arr, i, v):
            x = dt(v)
            if np.isinf(x) and not np.isinf(v):
                raise OverflowError("SeqArray.set: value overflows float32", v)
            hdr = _hdr_of(arr)
            st, waits = A.write1(hdr, i, value_word(x))
            if waits:
                A.count(hdr, A.H_WRITE_WAITS, waits)
            if st == A.ST_INDEX:
                raise IndexError("SeqArray.set: index out of range", i)
    else:
        def impl(arr, i, v):
            hdr = _hdr_of(arr)
            st, waits = A.write1(hdr, i, value_word(dt(v)))
            if waits:
                A.count(hdr, A.H_WRITE_WAITS, waits)
            if st == A.ST_INDEX:
                raise IndexError("SeqArray.set: index out of range", i)

    return impl


@overload(len, jit_options=JIT)
def _ov_len(arr):
    if isinstance(arr, SeqArrayType):
        return lambda arr: atomic_load(_hdr_of(arr), A.H_LEN, "relaxed")


@overload_attribute(SeqArrayType, "capacity", jit_options=JIT)
def _ov_capacity(arr):
    return lambda arr: A.capacity(_hdr_of(arr))
