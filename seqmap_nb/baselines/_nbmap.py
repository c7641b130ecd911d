"""The one Python/numba shell every word-kernel baseline (dashmap, global_lock, cas) shares.

Two layers, as in the rest of the package:

* kernels, per map kind, that take the map's fixed ``uint64`` header array and keys and
  values as canonical 64-bit words (``_codec``); they compile once for every dtype,
* this module: the Python class :class:`WordMap` (validation, encoding, the COMMON
  interface) and the numba type :class:`WordMapType`, registered through the package's one
  numba-extension layer (``seqmap_nb._nbext``: the data model is the header's address).

Kernels of a kind (registered with :func:`register_kernels`), all nogil, none holding a
lock when it returns:

    get1(hdr, k0) -> (found, vword)                          one-word keys and values
    insert1(hdr, k0, v0) -> (status, existed, prev_vword)
    remove1(hdr, k0) -> (status, existed, prev_vword)
    add1(hdr, k0, d_int64, d_float64) -> (status, new_vword) value kind from the header
    length(hdr) -> int64
    get_rows(hdr, kflat, vout, found)                        any width: flat word arrays
    insert_rows(hdr, kflat, vflat, prev, pfound) -> (status, rows done)
    remove_rows(hdr, kflat, prev, found) -> status
    add_rows(hdr, kflat, d_int64s, d_float64s, vout) -> (status, rows done)

Inside njit code ``m.get/insert/remove/add/contains``, ``k in m`` and ``len(m)`` compile
for bool, integer and float keys and values (records only from Python and batch calls:
a TypingError says so). Keys are range-checked against the key type (OverflowError,
never a silent wrap), NaN keys raise ValueError, and a kernel status becomes the
exception the Python layer raises too.
"""
import operator
import struct

import numba
import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload, overload_attribute, overload_method

from .._codec import Codec, typed_key_word, typed_value_word, word_scalar
from .._contents import MapBase
from .._nbext import AddrType, register
from .._unsafe import raw_words
from . import _table as T

# kernel status codes (shared with _table)
OK = T.OK
NO_MEMORY = T.NO_MEMORY
OVERFLOW = T.OVERFLOW
FULL = 3
UNSUPPORTED = 4

_KERNELS = {}


class MapFullError(MemoryError):
    """A fixed-capacity map has no free slot left for a new key."""


def register_kernels(kind, ns):
    """Make the kernels in namespace `ns` (see the module doc) the ones of map kind `kind`."""
    _KERNELS[kind] = ns


def raise_status(st, what=""):
    """Raise the Python exception of a kernel status (no-op for OK)."""
    if st == OK:
        return
    if st == NO_MEMORY:
        raise MemoryError(f"{what}: cannot allocate the grown table (map unchanged and usable)")
    if st == OVERFLOW:
        raise OverflowError(f"{what}: the result does not fit in the value dtype (value unchanged)")
    if st == FULL:
        raise MapFullError(f"{what}: the table is full (fixed capacity; create it with more slots)")
    if st == UNSUPPORTED:
        raise NotImplementedError(f"{what}: this map does not support the operation")
    raise RuntimeError(f"{what}: kernel status {st}")


# ------------------------------------------------------------------ Python-side encoders

_PQ = struct.Struct("<Q")
_Pq = struct.Struct("<q")
_PD = struct.Struct("<d")
_PF = struct.Struct("<f")
_PI = struct.Struct("<I")


def make_encoder(codec):
    """A fast ``x -> canonical word`` for one-word scalar dtypes (fallback: Codec).

    The word is returned as the *signed* Python int with the same 64 bits (numba types
    a Python int argument as int64 when it fits: one compiled kernel for every key);
    the kernels reinterpret it as uint64.
    """
    dt = codec.dtype

    def slow(x):
        return int(codec.words(x)[:1].view(np.int64)[0])

    if codec.kind in "iu":
        lo, hi, mask = codec.lo, codec.hi, codec.mask
        if dt.itemsize < 8 or dt.kind == "i":
            m = mask if dt.itemsize < 8 else -1  # int64: the value is its own signed word

            def enc(x):
                if type(x) is int:
                    if lo <= x <= hi:
                        return x & m if m != -1 else x
                    raise OverflowError(f"{x} does not fit in {dt} (range {lo} .. {hi})")
                return slow(x)

            return enc

        def enc(x):  # uint64
            if type(x) is int:
                if 0 <= x <= hi:
                    return x - (1 << 64) if x >> 63 else x
                raise OverflowError(f"{x} does not fit in {dt} (range {lo} .. {hi})")
            return slow(x)

        return enc
    if codec.kind == "f" and dt.itemsize == 8:
        is_key = codec.is_key

        def enc(x):
            if type(x) is float:
                if is_key:
                    if x != x:
                        raise ValueError("NaN cannot be a key: it compares unequal to itself, so it could never be found")
                    x = x + 0.0  # -0.0 and 0.0 are one key
                return _Pq.unpack(_PD.pack(x))[0]
            return slow(x)

        return enc
    return slow


def make_decoder(codec):
    """``canonical word (int) -> numpy scalar`` for one-word scalar dtypes."""
    dt = codec.dtype
    t = dt.type
    if codec.kind == "i":
        bits = dt.itemsize * 8
        sign, full = 1 << (bits - 1), 1 << bits
        return lambda w: t(w - full if w & sign else w)
    if codec.kind == "u":
        return t
    if codec.kind == "b":
        return lambda w: np.bool_(w != 0)
    if codec.kind == "f" and dt.itemsize == 8:
        return lambda w: np.float64(_PD.unpack(_PQ.pack(w))[0])
    if codec.kind == "f" and dt.itemsize == 4:
        return lambda w: np.float32(_PF.unpack(_PI.pack(w & 0xFFFFFFFF))[0])
    return lambda w: codec.from_words(np.array([w], np.uint64))


# ------------------------------------------------------------------ the Python class


class WordMap(MapBase):
    """COMMON-interface Python layer over a header array and the kernels of one kind.

    Subclasses set, in ``__init__``: ``self._hdr`` (uint64 array, never replaced), and
    call :meth:`_setup` with the kind name and the codecs.
    """

    _kind = None
    _hdr = None

    def _setup(self, key_dtype, value_dtype):
        self._kc = Codec(key_dtype, is_key=True, what="key dtype")
        self._vc = Codec(value_dtype, is_key=False, what="value dtype")
        self.key_dtype = self._kc.dtype
        self.value_dtype = self._vc.dtype
        self._kw, self._vw = self._kc.nwords, self._vc.nwords
        self._fast = self._kc.scalar and self._vc.scalar and self._kw == 1 and self._vw == 1
        self._kenc = make_encoder(self._kc)
        self._venc = make_encoder(self._vc)
        self._vdec = make_decoder(self._vc)
        self._vkind, self._vbits = T.value_kind(self.value_dtype)
        self._K = _KERNELS[self._kind]
        kt = numba.from_dtype(self.key_dtype) if self._kc.scalar else None
        vt = numba.from_dtype(self.value_dtype) if self._vc.scalar else None
        self._numba_type_ = WordMapType(self._kind, kt, vt)
        self._stats0 = dict(read_retries=0, write_waits=0, resizes=0)

    def _bind(self, hdr):
        """Adopt `hdr` as the header (never replaced); njit code sees its address and length."""
        self._hdr = hdr
        self._hdr_addr = int(hdr.ctypes.data)

    # -------------------------------------------------------------- encoding helpers
    def _key_rows(self, keys, what="keys"):
        a = self._kc.to_array(keys, what)
        return a, np.ascontiguousarray(self._kc.array_words(a)).reshape(-1)

    def _val_rows(self, vals, n, what="values"):
        a = self._vc.to_array(vals, what)
        if a.shape[0] != n:
            raise ValueError(f"{what}: {a.shape[0]} values for {n} keys")
        return np.ascontiguousarray(self._vc.array_words(a)).reshape(-1)

    def _one_key(self, k):
        return self._key_rows(self._kc.to_item(k).reshape(1), "key")[1]

    def _decode_rows(self, words, n):
        return self._vc.words_array(words.reshape(n, self._vw))

    def _delta(self, d):
        if self._vkind in (T.V_SIGNED, T.V_UNSIGNED):
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
                raise TypeError(f"add: expected an integer delta for {self.value_dtype}, got {type(d).__name__} {d!r}")
            d = int(d)
            if not -(1 << 63) <= d < (1 << 63):
                raise OverflowError(f"add: delta {d} does not fit in int64")
            return d, 0.0
        if self._vkind == T.V_FLOAT:
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, float, np.integer, np.floating)):
                raise TypeError(f"add: expected a real delta for {self.value_dtype}, got {type(d).__name__} {d!r}")
            return 0, float(d)
        raise TypeError(f"add: values of {self.value_dtype} cannot be added to (integer and float values only)")

    def _deltas(self, ds, n):
        a = np.asarray(ds)
        if a.ndim != 1 or a.shape[0] != n:
            raise ValueError(f"add_many: expected {n} deltas in a 1-d array, got shape {a.shape}")
        if self._vkind in (T.V_SIGNED, T.V_UNSIGNED):
            if a.dtype.kind not in "iu":
                raise TypeError(f"add_many: expected integer deltas for {self.value_dtype}, got {a.dtype}")
            if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
                raise OverflowError("add_many: a delta does not fit in int64")
            return a.astype(np.int64), np.zeros(1, np.float64)
        if self._vkind == T.V_FLOAT:
            if a.dtype.kind not in "iuf":
                raise TypeError(f"add_many: expected real deltas for {self.value_dtype}, got {a.dtype}")
            return np.zeros(1, np.int64), a.astype(np.float64)
        raise TypeError(f"add_many: values of {self.value_dtype} cannot be added to (integer and float values only)")

    # -------------------------------------------------------------- scalar operations
    def insert(self, k, v):
        """Set ``m[k] = v``; returns the previous value or None."""
        if self._fast:
            w, vw = self._kenc(k), self._venc(v)
            st, existed, prev = self._K.insert1(self._hdr, w, vw)
            raise_status(st, "insert")
            return self._vdec(prev) if existed else None
        kf = self._one_key(k)
        vf = self._val_rows(self._vc.to_item(v).reshape(1), 1, "value")
        prev = np.zeros(self._vw, np.uint64)
        pfound = np.zeros(1, np.bool_)
        st, _ = self._K.insert_rows(self._hdr, kf, vf, prev, pfound)
        raise_status(st, "insert")
        return self._decode_rows(prev, 1)[0] if pfound[0] else None

    def get(self, k, default=None):
        """The value of `k`, or `default` when absent."""
        if self._fast:
            found, vw = self._K.get1(self._hdr, self._kenc(k))
            return self._vdec(vw) if found else default
        kf = self._one_key(k)
        out = np.zeros(self._vw, np.uint64)
        found = np.zeros(1, np.bool_)
        self._K.get_rows(self._hdr, kf, out, found)
        return self._decode_rows(out, 1)[0] if found[0] else default

    def remove(self, k):
        """Delete `k`; returns the removed value or None."""
        if self._fast:
            st, existed, prev = self._K.remove1(self._hdr, self._kenc(k))
            raise_status(st, "remove")
            return self._vdec(prev) if existed else None
        kf = self._one_key(k)
        prev = np.zeros(self._vw, np.uint64)
        found = np.zeros(1, np.bool_)
        raise_status(self._K.remove_rows(self._hdr, kf, prev, found), "remove")
        return self._decode_rows(prev, 1)[0] if found[0] else None

    def add(self, k, d):
        """Atomic ``m[k] += d`` (inserting `d` when absent); returns the new value."""
        di, df = self._delta(d)
        if self._fast:
            st, w = self._K.add1(self._hdr, self._kenc(k), di, df)
            raise_status(st, "add")
            return self._vdec(w)
        kf = self._one_key(k)
        out = np.zeros(self._vw, np.uint64)
        st, _ = self._K.add_rows(self._hdr, kf, np.array([di], np.int64), np.array([df], np.float64), out)
        raise_status(st, "add")
        return self._decode_rows(out, 1)[0]

    def __contains__(self, k):
        if self._fast:
            return bool(self._K.get1(self._hdr, self._kenc(k))[0])
        return self.get(k, _MISSING) is not _MISSING

    def __delitem__(self, k):
        if self._fast:
            st, existed, _ = self._K.remove1(self._hdr, self._kenc(k))
            raise_status(st, "remove")
        else:
            kf = self._one_key(k)
            found = np.zeros(1, np.bool_)
            raise_status(self._K.remove_rows(self._hdr, kf, np.zeros(self._vw, np.uint64), found), "remove")
            existed = found[0]
        if not existed:
            raise KeyError(k)

    def __len__(self):
        return int(self._K.length(self._hdr))

    # -------------------------------------------------------------- batch operations
    def _get_many(self, keys):
        """``(values, found)`` for an array of keys, in one nogil kernel (absent: zero)."""
        a, kf = self._key_rows(keys)
        n = a.shape[0]
        out = np.zeros(n * self._vw, np.uint64)
        found = np.zeros(n, np.bool_)
        self._K.get_rows(self._hdr, kf, out, found)
        return self._decode_rows(out, n), found

    def insert_many(self, keys, values):
        """Insert every (key, value) pair in order, in one nogil kernel."""
        a, kf = self._key_rows(keys)
        n = a.shape[0]
        vf = self._val_rows(values, n)
        st, done = self._K.insert_rows(self._hdr, kf, vf, np.zeros(n * self._vw, np.uint64), np.zeros(n, np.bool_))
        raise_status(st, f"insert_many (after {done} of {n} rows)")

    def remove_many(self, keys):
        """Remove every key; returns a bool array: which were present."""
        a, kf = self._key_rows(keys)
        n = a.shape[0]
        found = np.zeros(n, np.bool_)
        raise_status(self._K.remove_rows(self._hdr, kf, np.zeros(n * self._vw, np.uint64), found), "remove_many")
        return found

    def add_many(self, keys, deltas):
        """Atomic ``m[k] += d`` for each pair in order; returns the new values."""
        if self._vkind == T.V_OTHER:
            raise TypeError(f"add_many: values of {self.value_dtype} cannot be added to (integer and float values only)")
        a, kf = self._key_rows(keys)
        n = a.shape[0]
        di, df = self._deltas(deltas, n)
        out = np.zeros(n * self._vw, np.uint64)
        st, done = self._K.add_rows(self._hdr, kf, di, df, out)
        raise_status(st, f"add_many (after {done} of {n} rows)")
        return self._decode_rows(out, n)

    # -------------------------------------------------------------- whole-map views
    def _collect(self):
        """(key words (n, KW), value words (n, VW)) of a snapshot; subclasses implement."""
        raise NotImplementedError

    def items(self):
        """Snapshot ``(keys, values)`` arrays."""
        kw, vw = self._collect()
        return self._kc.words_array(kw), self._vc.words_array(vw)

    def memory_bytes(self):
        """The header and the table's slots."""
        return int(self._hdr.nbytes + self.slots * self.bytes_per_slot)

    def stats(self):
        now = self._raw_stats()
        return {k: int(now[k] - self._stats0.get(k, 0)) for k in now}

    def reset_stats(self):
        self._stats0 = self._raw_stats()


_MISSING = object()


# ------------------------------------------------------------------ the numba type


#: the length of the header view inside njit code: a header's real length differs from
#: map to map (a DashMap's grows with its shards) and the type is shared by all maps of a
#: kind; kernels index only inside the real header, with bounds checks off
_HDR_VIEW_WORDS = 1 << 40


class WordMapType(AddrType):
    """numba type of a word-kernel map: the kernel kind plus key and value scalar types
    (data model: the header's address, see ``seqmap_nb._nbext``)."""

    def __init__(self, kind, key_ty, val_ty):
        self.kind = kind
        self.key_ty = key_ty
        self.val_ty = val_ty
        self._ctor_args = (kind, key_ty, val_ty)  # pickles as its constructor call (_nbext)
        super().__init__(f"WordMap[{kind}]({key_ty}, {val_ty})")


register(WordMap, WordMapType)


@overload_attribute(WordMapType, "hdr", inline="always")
def _ov_hdr(m):
    return lambda m: raw_words(m.addr, _HDR_VIEW_WORDS)


# ------------------------------------------------------------------ njit coercions


def _coercer(argty, target, is_key, what):
    """An njit function ``x -> canonical word`` of `target` from an argument of `argty`:
    the package's one typed conversion (``_codec.typed_key_word`` / ``typed_value_word``:
    range checks, NaN keys refused, -0.0 one key, values bit-exact)."""
    if not isinstance(target, (types.Boolean, types.Integer, types.Float)):
        raise TypingError(f"{what}: {target} maps take record keys/values only from Python and batch calls")
    if is_key:
        return numba.njit(lambda x: typed_key_word(x, target), inline="always")
    return numba.njit(lambda x: typed_value_word(x, target), inline="always")


def _delta_args(argty, vty):
    """njit ``d -> (int64, float64)`` for the add kernels."""
    argty = types.unliteral(argty)
    if isinstance(vty, types.Integer):
        if not isinstance(argty, types.Integer) or isinstance(argty, types.Boolean):
            raise TypingError(f"add: expected an integer delta for {vty}, got {argty}")
        if argty == types.uint64:
            def f(d):
                if d > numba.uint64(0x7FFFFFFFFFFFFFFF):
                    raise OverflowError("add: delta does not fit in int64")
                return numba.int64(d), 0.0
        else:
            def f(d):
                return numba.int64(d), 0.0
        return numba.njit(f, inline="always")
    if isinstance(vty, types.Float):
        if not isinstance(argty, (types.Integer, types.Float)) or isinstance(argty, types.Boolean):
            raise TypingError(f"add: expected a real delta for {vty}, got {argty}")
        return numba.njit(lambda d: (numba.int64(0), numba.float64(d)), inline="always")
    raise TypingError(f"add: values of {vty} cannot be added to (integer and float values only)")


def _prepare(m, k, what):
    """The kernels of `m`'s kind and the njit conversion of the key for ``m.what(k, ...)``."""
    if m.key_ty is None or m.val_ty is None:
        raise TypingError(f"{what}: inside njit code maps take bool/int/float keys and values only; "
                          "use the batch calls for record dtypes")
    return _KERNELS[m.kind], _coercer(k, m.key_ty, True, what)


@numba.njit(inline="always")
def _raise_status(st):
    if st == NO_MEMORY:
        raise MemoryError("cannot allocate the grown table (map unchanged and usable)")
    if st == OVERFLOW:
        raise OverflowError("add: the result does not fit in the value type (value unchanged)")
    if st == FULL:
        raise MemoryError("the table is full (fixed capacity)")
    if st == UNSUPPORTED:
        raise NotImplementedError("this map does not support the operation")


@overload_method(WordMapType, "get", inline="always")
def _ov_get(m, k):
    K, kw = _prepare(m, k, "get")
    get1, vt = K.get1, m.val_ty

    def impl(m, k):
        found, w = get1(m.hdr, kw(k))
        if found:
            return word_scalar(w, vt)
        return None

    return impl


@overload_method(WordMapType, "contains", inline="always")
def _ov_contains(m, k):
    K, kw = _prepare(m, k, "contains")
    get1 = K.get1
    return lambda m, k: get1(m.hdr, kw(k))[0]


@overload(operator.contains)
def _ov_in(m, k):
    if isinstance(m, WordMapType):
        return lambda m, k: m.contains(k)


@overload(len)
def _ov_len(m):
    if isinstance(m, WordMapType):
        length = _KERNELS[m.kind].length
        return lambda m: length(m.hdr)


@overload_method(WordMapType, "insert", inline="always")
def _ov_insert(m, k, v):
    K, kw = _prepare(m, k, "insert")
    insert1, vw, vt = K.insert1, _coercer(v, m.val_ty, False, "insert"), m.val_ty

    def impl(m, k, v):
        st, existed, prev = insert1(m.hdr, kw(k), vw(v))
        _raise_status(st)
        if existed:
            return word_scalar(prev, vt)
        return None

    return impl


@overload_method(WordMapType, "remove", inline="always")
def _ov_remove(m, k):
    K, kw = _prepare(m, k, "remove")
    remove1, vt = K.remove1, m.val_ty

    def impl(m, k):
        st, existed, prev = remove1(m.hdr, kw(k))
        _raise_status(st)
        if existed:
            return word_scalar(prev, vt)
        return None

    return impl


@overload_method(WordMapType, "add", inline="always")
def _ov_add(m, k, d):
    K, kw = _prepare(m, k, "add")
    add1, dl, vt = K.add1, _delta_args(d, m.val_ty), m.val_ty

    def impl(m, k, d):
        di, df = dl(d)
        st, w = add1(m.hdr, kw(k), di, df)
        _raise_status(st)
        return word_scalar(w, vt)

    return impl
