"""Keys and values as 64-bit words: dtype validation and the encoding both layers share.

Every cell and every slot stores its key and value as whole little-endian 64-bit words,
so that the seqlock can copy them with word-sized atomic loads (plain loads there could be merged, split or hoisted by the compiler) whatever the
dtype. The *canonical word form* of an item of dtype ``dt``:

    the item's native-byte-order bytes, zero-padded to ``nwords(dt) * 8`` bytes,
    read as ``nwords(dt)`` little-endian uint64 words.

So a uint8 42 is the word ``42``; an int32 -1 is ``0x00000000_FFFFFFFF`` (zero-extended,
not sign-extended); a float64 is its IEEE bits; a record is its bytes. Keys are
canonicalised first: float ``-0.0`` becomes ``+0.0`` (they compare equal, so they must be
one key) and NaN is rejected (it equals nothing, so a NaN key could never be found again).
Complex keys canonicalise each part. No word value is reserved: slot state lives in the
slot's sequence word, never in the key.

Python side: :class:`Codec` validates input and converts scalars and arrays.
njit side: :func:`scalar_word` (keys, canonical) / :func:`value_word` (values, exact
bits) / :func:`word_scalar` convert numeric scalars inside kernels;
:func:`typed_key_word` / :func:`typed_value_word` do the same for a given target dtype
with the range checks a user's value needs (OverflowError, never a wrap), and
:func:`add_words` is the checked addition of ``add``. :func:`slot_words` is the one
rule for the size of a table slot. This module is the only definition of all of them.
"""
import operator
import sys

import numba
import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload

from ._unsafe import bits_f32, bits_f64, f32_bits, f64_bits

MAX_WORDS = 64  # 512-byte items: beyond that a seqlocked copy is the wrong tool


def validate_dtype(dt, what="dtype"):
    """The dtype as a native-byte-order numpy dtype, or ``TypeError`` naming the problem."""
    try:
        dt = np.dtype(dt)
    except TypeError as exc:
        raise TypeError(f"{what}: {dt!r} is not a numpy dtype ({exc})") from None
    if dt.hasobject:
        raise TypeError(f"{what}: object dtypes are not supported (items must be fixed-size, like Rust's Copy)")
    if dt.itemsize == 0:
        raise TypeError(f"{what}: {dt} has no fixed size (give strings a length, e.g. 'S16')")
    if dt.kind in "mM" and dt.itemsize:
        pass  # datetime64/timedelta64: 8 fixed bytes, compared by value bits
    if (dt.itemsize + 7) // 8 > MAX_WORDS:
        raise TypeError(f"{what}: {dt} is {dt.itemsize} bytes; at most {MAX_WORDS * 8} are supported")
    if dt.fields is None and dt.subdtype is None and dt.byteorder not in ("=", "|"):
        dt = dt.newbyteorder("=")
    return dt


#: the max_load values every growing map accepts, both ends included. Below 1/64 a table
#: is more than 64 times its entries (a typo like 1e-9 would otherwise ask for gigabytes);
#: above 0.99 linear probing's expected miss length, 1/2 (1 + 1/(1 - a)^2), passes 5000
MAX_LOAD_RANGE = (1 / 64, 0.99)


def check_max_load(max_load):
    """`max_load` as a float, or TypeError / ValueError naming the accepted range."""
    import numbers

    if isinstance(max_load, (bool, np.bool_)) or not isinstance(max_load, numbers.Real):
        raise TypeError(f"max_load must be a number in [{MAX_LOAD_RANGE[0]}, {MAX_LOAD_RANGE[1]}], "
                        f"got {type(max_load).__name__} {max_load!r}")
    x = float(max_load)
    lo, hi = MAX_LOAD_RANGE
    if not lo <= x <= hi:  # NaN fails both comparisons
        raise ValueError(f"max_load must be in [{lo}, {hi}] (the share of a table's slots in use "
                         f"before it grows), got {max_load!r}")
    return x


def nwords(dt):
    """Number of 64-bit words an item of `dt` occupies."""
    return (np.dtype(dt).itemsize + 7) // 8


def is_scalar_kind(dt):
    """True for bool/int/uint/float dtypes: the ones njit code can pass as plain scalars."""
    dt = np.dtype(dt)
    return dt.fields is None and dt.subdtype is None and dt.kind in "biuf"


def _padding(dt):
    """Byte ranges of an item of float or complex dtype `dt` that hold no part of its value.

    x87 extended precision (longdouble on x86) keeps 80 bits in 12 or 16 bytes; numpy leaves
    the rest as whatever the memory held, so two equal numbers can differ there. Those bytes
    are zeroed in the canonical words, or equal keys would not be found and equal values
    would not compare equal by their words. IEEE formats have none."""
    part = dt.itemsize // (2 if dt.kind == "c" else 1)
    fi = np.finfo(dt)
    if part > 8 and fi.nmant == 63 and fi.nexp == 15:  # x87: 64-bit significand, 15-bit exponent
        return tuple((p * part + 10, (p + 1) * part) for p in range(dt.itemsize // part))
    return ()


def _exact_ints(xs, base):
    """A Python (nested) sequence of ints as an array of integer dtype `base`, exactly.

    ``np.asarray`` makes a list holding an int >= 2**63 float64 (losing bits) or object;
    this converts element by element instead. None if the items are not all integers
    (bools excluded); OverflowError if one does not fit."""
    try:
        obj = np.asarray(xs, dtype=object)
    except ValueError:
        return None
    if obj.size == 0 or not all(type(e) is int or isinstance(e, np.integer) for e in obj.flat):
        return None
    try:
        return np.array(obj.tolist(), dtype=base)
    except OverflowError:
        raise OverflowError(f"{xs!r}: values do not fit in {np.dtype(base)}") from None


class Codec:
    """Validation and conversion of items of one dtype to and from canonical words."""

    __slots__ = ("dtype", "nwords", "kind", "is_key", "lo", "hi", "mask", "scalar", "pad", "direct")

    def __init__(self, dt, *, is_key, what):
        self.dtype = validate_dtype(dt, what)
        self.nwords = nwords(self.dtype)
        self.kind = self.dtype.kind if self.dtype.fields is None and self.dtype.subdtype is None else "V"
        self.is_key = is_key
        self.scalar = is_scalar_kind(self.dtype)
        self.lo = self.hi = None
        if self.kind in "iu":
            info = np.iinfo(self.dtype)
            self.lo, self.hi = int(info.min), int(info.max)
        self.mask = (1 << (8 * self.dtype.itemsize)) - 1 if self.dtype.itemsize <= 8 else None
        self.pad = _padding(self.dtype) if self.kind in "fc" else ()
        #: an array of the dtype is its own words (no widening, no padding to clear): a
        #: caller's array can be handed to a kernel as uint64 words
        self.direct = (self.dtype.itemsize == self.nwords * 8 and not self.pad
                       and sys.byteorder == "little" and self.dtype.hasobject is False)

    # ---------------------------------------------------------------- one item
    def check_int(self, x):
        """Range check of a Python int for an integer dtype (no silent wrap-around)."""
        if x < self.lo or x > self.hi:
            raise OverflowError(f"{x} does not fit in {self.dtype} (range {self.lo} .. {self.hi})")

    def to_item(self, x):
        """`x` as a 0-d array of the dtype, or TypeError/OverflowError/ValueError."""
        dt = self.dtype
        if self.kind in "iu":
            if isinstance(x, (bool, np.bool_)):
                x = int(x)
            if isinstance(x, (int, np.integer)):
                x = int(x)
                self.check_int(x)
                return np.array(x, dtype=dt)
            if isinstance(x, (float, np.floating)) and float(x).is_integer():
                return self.to_item(int(x))
            raise TypeError(f"expected an integer for {dt}, got {type(x).__name__} {x!r}")
        if self.kind == "b":
            if isinstance(x, (bool, np.bool_)) or (isinstance(x, (int, np.integer)) and x in (0, 1)):
                return np.array(bool(x), dtype=dt)
            raise TypeError(f"expected a bool for {dt}, got {type(x).__name__} {x!r}")
        if self.kind == "f":
            if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
                raise TypeError(f"expected a real number for {dt}, got {type(x).__name__} {x!r}")
            with np.errstate(over="raise"):
                try:
                    a = np.array(x, dtype=dt)
                except FloatingPointError:
                    raise OverflowError(f"{x!r} overflows {dt}") from None
            if np.isinf(a) and not np.isinf(x):
                raise OverflowError(f"{x!r} overflows {dt}")
            return self._canon(a)
        if self.kind == "c":
            if not isinstance(x, (int, float, complex, np.number)) or isinstance(x, (bool, np.bool_)):
                raise TypeError(f"expected a number for {dt}, got {type(x).__name__} {x!r}")
            return self._canon(np.array(x, dtype=dt))
        # sub-arrays: an array-like of the item's shape, converted losslessly
        if dt.subdtype is not None:
            src = np.asarray(x)
            if dt.base.kind in "iu" and src.dtype.kind in "fO" and not isinstance(x, np.ndarray):
                exact = _exact_ints(x, dt.base)
                src = src if exact is None else exact
            if src.dtype == object or (src.dtype.kind in "fc" and dt.base.kind in "biu"):
                raise TypeError(f"cannot store {x!r} as {dt}")
            if src.shape != dt.shape:
                raise TypeError(f"expected an item of shape {dt.shape} for {dt}, got shape {src.shape}")
            with np.errstate(all="ignore"):
                conv = src.astype(dt.base)
                # (a negative int round-trips through an unsigned type: check the sign too)
                if not np.array_equal(conv.astype(src.dtype), src) or (
                        dt.base.kind == "u" and src.dtype.kind == "i" and (src < 0).any()):
                    raise OverflowError(f"{x!r} does not fit in {dt}")
            out = np.empty((), dtype=dt)
            out[()] = conv
            return self._canon(out)
        # records, bytes, datetimes: let numpy convert, but only losslessly
        try:
            if isinstance(x, (np.ndarray, np.void)):
                src = np.asarray(x)
                if src.dtype != dt and not np.can_cast(src.dtype, dt, "same_kind"):
                    raise TypeError(f"cannot store an item of {src.dtype} as {dt}")
                a = np.array(src, dtype=dt)
            else:
                a = np.array(x, dtype=dt)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"cannot convert {x!r} to {dt}: {exc}") from None
        if a.shape != ():
            raise TypeError(f"expected one item of {dt}, got an array of shape {a.shape}")
        return self._canon(a)

    def _canon(self, a):
        if self.is_key and self.kind in "fc":
            if np.isnan(a).any():
                raise ValueError("NaN cannot be a key: it compares unequal to itself, so it could never be found")
            a = a + np.zeros((), a.dtype)  # -0.0 + 0.0 == +0.0: one key for both zeros
        return a

    def words(self, x):
        """Canonical words of one item, as a uint64 array of length ``nwords``."""
        a = self.to_item(x)
        return self.item_words(a)

    def item_words(self, a):
        buf = np.zeros(self.nwords * 8, np.uint8)
        buf[: self.dtype.itemsize] = np.frombuffer(np.ascontiguousarray(a).tobytes(), np.uint8)
        for lo, hi in self.pad:
            buf[lo:hi] = 0
        return buf.view("<u8").astype(np.uint64)

    def from_words(self, w):
        """The item whose canonical words are `w` (numpy scalar, or a 0-d record/array copy)."""
        b = np.ascontiguousarray(w, dtype="<u8").tobytes()[: self.dtype.itemsize]
        a = np.frombuffer(b, dtype=self.dtype)
        if self.dtype.subdtype is not None:
            return a[0].copy()
        return a[0].copy() if self.kind == "V" else a[0]

    # ---------------------------------------------------------------- arrays
    def to_array(self, xs, what):
        """A contiguous 1-d array of the dtype from user input, checked (no silent wrap)."""
        dt = self.dtype
        if isinstance(xs, np.ndarray):
            a = xs
        else:
            try:
                a = np.asarray(xs)
            except Exception as exc:
                raise TypeError(f"{what}: cannot make an array of {dt} from {type(xs).__name__}: {exc}") from None
            if dt.base.kind in "iu" and a.dtype.kind in "fO":
                exact = _exact_ints(xs, dt.base)
                a = a if exact is None else exact
            if a.dtype == object:
                raise TypeError(f"{what}: items of mixed or non-numeric type; expected {dt}")
        item_ndim = len(dt.shape) if dt.subdtype is not None else 0
        if dt.subdtype is not None:
            if a.dtype != dt.base or a.shape[1:] != dt.shape:
                if a.dtype == dt:  # already an array of the sub-array dtype (numpy expands it)
                    pass
                else:
                    if a.ndim != 1 + item_ndim or a.shape[1:] != dt.shape:
                        raise ValueError(f"{what}: expected shape (n, {', '.join(map(str, dt.shape))}) for {dt}, got {a.shape}")
                    if a.dtype == object or (a.dtype.kind in "fc" and dt.base.kind in "biu"):
                        raise TypeError(f"{what}: cannot use {a.dtype} as {dt.base}")
                    with np.errstate(all="ignore"):
                        conv = a.astype(dt.base)
                        if not np.array_equal(conv.astype(a.dtype), a) or (
                                dt.base.kind == "u" and a.dtype.kind == "i" and (a < 0).any()):
                            raise OverflowError(f"{what}: values do not fit in {dt.base}")
                    a = conv
            out = np.ascontiguousarray(a, dtype=dt.base).reshape(-1, *dt.shape)
            return out  # numpy has no arrays *of* sub-array items: shape (n, *item_shape)
        if a.ndim != 1:
            raise ValueError(f"{what}: expected a 1-d array, got shape {a.shape}")
        if a.dtype == dt:
            out = np.ascontiguousarray(a)
        elif self.kind in "iu":
            if a.dtype.kind == "b" or a.dtype.kind not in "iu":
                raise TypeError(f"{what}: expected integers for {dt}, got {a.dtype}")
            if a.size:
                lo, hi = a.min(), a.max()
                if int(lo) < self.lo or int(hi) > self.hi:
                    bad = int(lo) if int(lo) < self.lo else int(hi)
                    raise OverflowError(f"{what}: {bad} does not fit in {dt}")
            out = a.astype(dt)
        elif self.kind == "f":
            if a.dtype.kind not in "iuf":
                raise TypeError(f"{what}: expected real numbers for {dt}, got {a.dtype}")
            with np.errstate(over="ignore"):
                out = a.astype(dt)
            if np.isinf(out).sum() != (np.isinf(a).sum() if a.dtype.kind == "f" else 0):
                raise OverflowError(f"{what}: values overflow {dt}")
        elif self.kind == "b":
            if a.dtype.kind != "b":
                raise TypeError(f"{what}: expected bools for {dt}, got {a.dtype}")
            out = a.astype(dt)
        elif self.kind == "c":
            if a.dtype.kind not in "iufc":
                raise TypeError(f"{what}: expected numbers for {dt}, got {a.dtype}")
            out = a.astype(dt)
        else:
            if not np.can_cast(a.dtype, dt, "equiv") and a.dtype != dt:
                raise TypeError(f"{what}: expected items of {dt}, got {a.dtype}")
            out = np.ascontiguousarray(a, dtype=dt)
        if self.is_key and self.kind in "fc":
            if np.isnan(out).any():
                raise ValueError(f"{what}: NaN cannot be a key")
            out = out + np.zeros((), out.dtype)  # canonical +0.0
        return out

    def array_words(self, a):
        """Canonical words of a 1-d array of the dtype: uint64 array of shape (n, nwords)."""
        n = a.shape[0]
        isz = self.dtype.itemsize
        if isz == self.nwords * 8 and not self.pad:
            return np.ascontiguousarray(a).view(np.uint8).reshape(n, isz).view("<u8").astype(np.uint64, copy=False).reshape(n, self.nwords)
        buf = np.zeros((n, self.nwords * 8), np.uint8)
        buf[:, :isz] = np.ascontiguousarray(a).view(np.uint8).reshape(n, isz)
        for lo, hi in self.pad:
            buf[:, lo:hi] = 0
        return buf.view("<u8").astype(np.uint64, copy=False).reshape(n, self.nwords)

    def words_array(self, w):
        """Inverse of :meth:`array_words`: an (n, nwords) uint64 array back to items."""
        w = np.ascontiguousarray(w, dtype="<u8")
        n = w.shape[0]
        b = w.view(np.uint8).reshape(n, self.nwords * 8)[:, : self.dtype.itemsize]
        if self.dtype.subdtype is not None:
            return np.ascontiguousarray(b).view(self.dtype.base).reshape(n, *self.dtype.shape)
        return np.ascontiguousarray(b).view(self.dtype).reshape(n)


# --------------------------------------------------------------------------- njit side


def scalar_word(x):
    """njit: canonical word of a bool/int/float scalar (``-0.0`` folded into ``+0.0``)."""
    raise NotImplementedError("only callable from njit code")


@overload(scalar_word, inline="always")
def _ov_scalar_word(x):
    if isinstance(x, types.Boolean):
        return lambda x: numba.uint64(1) if x else numba.uint64(0)
    if isinstance(x, types.Integer):
        bits = x.bitwidth
        if bits == 64:
            return lambda x: numba.uint64(x)
        mask = (1 << bits) - 1
        return lambda x: numba.uint64(x) & numba.uint64(mask)
    if x == types.float64:
        return lambda x: f64_bits(x + 0.0)
    if x == types.float32:
        return lambda x: numba.uint64(f32_bits(x + numba.float32(0.0)))
    raise TypingError(f"scalar_word: {x} is not a bool, integer or real scalar")


def value_word(x):
    """njit: the word of a bool/int/float *value*: exact bits (``-0.0`` stays ``-0.0``).

    :func:`scalar_word` canonicalises for keys (one key for both zeros); a stored value
    must come back bit for bit, so values use this one.
    """
    raise NotImplementedError("only callable from njit code")


@overload(value_word, inline="always")
def _ov_value_word(x):
    if x == types.float64:
        return lambda x: f64_bits(x)
    if x == types.float32:
        return lambda x: numba.uint64(f32_bits(x))
    if isinstance(x, (types.Boolean, types.Integer)):
        return lambda x: scalar_word(x)  # integers have one zero: same word
    raise TypingError(f"value_word: {x} is not a bool, integer or real scalar")


def word_scalar(w, ty):
    """njit: the scalar of numba type `ty` (e.g. ``numba.uint8``) whose canonical word is `w`."""
    raise NotImplementedError("only callable from njit code")


@overload(word_scalar, inline="always")
def _ov_word_scalar(w, ty):
    if isinstance(ty, types.DType):  # e.g. ``arr.dtype`` inside a kernel
        target = ty.dtype
    elif isinstance(ty, types.NumberClass):  # e.g. ``numba.uint8``
        target = ty.instance_type
    else:
        target = getattr(ty, "dtype", ty)
    if isinstance(target, types.Boolean):
        return lambda w, ty: w != 0
    if isinstance(target, types.Integer):
        return lambda w, ty: target(w)
    if target == types.float64:
        return lambda w, ty: bits_f64(numba.uint64(w))
    if target == types.float32:
        return lambda w, ty: bits_f32(numba.uint32(w))
    raise TypingError(f"word_scalar: {ty} is not a bool, integer or real scalar type")


def is_nan_word(w, ty):
    """njit: True if `w` is the canonical word of a NaN of float type `ty`."""
    raise NotImplementedError("only callable from njit code")


@overload(is_nan_word, inline="always")
def _ov_is_nan_word(w, ty):
    target = ty.instance_type if isinstance(ty, types.NumberClass) else getattr(ty, "dtype", ty)
    if target == types.float64:
        return lambda w, ty: (w & numba.uint64(0x7FFFFFFFFFFFFFFF)) > numba.uint64(0x7FF0000000000000)
    if target == types.float32:
        return lambda w, ty: (w & numba.uint64(0x7FFFFFFF)) > numba.uint64(0x7F800000)
    return lambda w, ty: False


# --------------------------------------------------------------------------- typed conversions


def typed_key_word(x, T):
    """njit: the canonical word of key `x` as the scalar type `T` (a numba type or class),
    or OverflowError / ValueError (range, NaN) / TypingError (a float for an integer key)."""
    raise NotImplementedError("only callable from njit code")


@overload(typed_key_word, inline="always")
def _ov_typed_key_word(x, T):
    return _typed_word(x, T, "key", True)


def typed_value_word(x, T):
    """njit: the word of value `x` as the scalar type `T`: exact bits (-0.0 stays -0.0)."""
    raise NotImplementedError("only callable from njit code")


@overload(typed_value_word, inline="always")
def _ov_typed_value_word(x, T):
    return _typed_word(x, T, "value", False)


def _target(T):
    if isinstance(T, (types.NumberClass, types.TypeRef)):
        return T.instance_type
    if isinstance(T, types.DType):
        return T.dtype
    return T


def _typed_word(x, T, what, is_key):
    t = _target(T)
    if isinstance(t, types.Boolean):
        if isinstance(x, types.Boolean):
            return lambda x, T: numba.uint64(1) if x else numba.uint64(0)
        raise TypingError(f"{what} must be a bool for a bool dtype, got {x}")
    if isinstance(t, types.Integer):
        if isinstance(x, types.Boolean):
            return lambda x, T: numba.uint64(1) if x else numba.uint64(0)
        if not isinstance(x, types.Integer):
            raise TypingError(f"{what} must be an integer for {t}, got {x}")
        lo, hi = (-(1 << (t.bitwidth - 1)), (1 << (t.bitwidth - 1)) - 1) if t.signed else (0, (1 << t.bitwidth) - 1)
        msg = f"{what} does not fit in {t}"
        if x.signed and not t.signed:
            if x.bitwidth <= t.bitwidth:
                def impl(x, T):
                    if x < 0:
                        raise OverflowError(msg)
                    return scalar_word(t(x))
            else:
                def impl(x, T):
                    if x < 0 or x > hi:
                        raise OverflowError(msg)
                    return scalar_word(t(x))
        elif not x.signed and t.signed:
            def impl(x, T):
                if x > numba.uint64(hi):
                    raise OverflowError(msg)
                return scalar_word(t(x))
        elif x.bitwidth > t.bitwidth:
            def impl(x, T):
                if x < lo or x > hi:
                    raise OverflowError(msg)
                return scalar_word(t(x))
        else:
            def impl(x, T):
                return scalar_word(t(x))
        return impl
    if isinstance(t, types.Float):
        if not isinstance(x, (types.Integer, types.Float)) or isinstance(x, types.Boolean):
            raise TypingError(f"{what} must be a real number for {t}, got {x}")
        is64 = t.bitwidth == 64
        nan_msg = "NaN cannot be a key: it compares unequal to itself, so it could never be found"
        ovf_msg = f"{what} overflows {t}"
        can_overflow = isinstance(x, types.Float) and x.bitwidth > t.bitwidth

        def impl(x, T):
            y = t(x)
            if is_key and y != y:
                raise ValueError(nan_msg)
            if can_overflow and np.isinf(y) and not np.isinf(x):
                raise OverflowError(ovf_msg)
            if is_key:
                y = y + t(0.0)  # -0.0 and 0.0 are one key
            if is64:
                return f64_bits(y)
            return numba.uint64(f32_bits(y))

        return impl
    raise TypingError(f"{what}s of type {t} are available from Python and batch calls only")


def add_words(old, arg, T):
    """njit: (ok, new value words) for ``old + arg`` of the scalar type `T` (word tuples).

    Integers: ok is False when the exact sum does not fit (the caller leaves the value
    unchanged and raises OverflowError: never a silent wrap). Floats: IEEE, always ok."""
    raise NotImplementedError("only callable from njit code")


@overload(add_words, inline="always")
def _ov_add_words(old, arg, T):
    t = _target(T)
    if isinstance(t, types.Integer) and not isinstance(t, types.Boolean):
        if t.bitwidth == 64 and t.signed:
            def impl(old, arg, T):
                x = numba.int64(old[0])
                y = numba.int64(arg[0])
                r = x + y  # wraps; overflow iff both operands' signs differ from the result's
                return ((x ^ r) & (y ^ r)) >= 0, (numba.uint64(r),)
        elif t.bitwidth == 64:
            def impl(old, arg, T):
                r = old[0] + arg[0]
                return r >= old[0], (r,)
        else:
            lo, hi = (-(1 << (t.bitwidth - 1)), (1 << (t.bitwidth - 1)) - 1) if t.signed else (0, (1 << t.bitwidth) - 1)

            def impl(old, arg, T):
                r = numba.int64(t(old[0])) + numba.int64(t(arg[0]))
                return lo <= r <= hi, (scalar_word(t(r)),)
        return impl
    if t == types.float64:
        return lambda old, arg, T: (True, (f64_bits(bits_f64(old[0]) + bits_f64(arg[0])),))
    if t == types.float32:
        return lambda old, arg, T: (
            True,
            (numba.uint64(f32_bits(bits_f32(numba.uint32(old[0])) + bits_f32(numba.uint32(arg[0])))),),
        )
    if isinstance(t, types.Complex):  # IEEE per part, as numpy adds complex numbers
        n = nwords(numba.np.numpy_support.as_dtype(t))
        return lambda old, arg, T: (True, _value_words(_words_value(old, t) + _words_value(arg, t), n))
    raise TypingError(f"add: values of type {t} have no addition (bool, record and text values are not counters)")


def slot_words(kw, vw):
    """Words per table slot: 1 + kw + vw rounded up to a power of two (<= 8) or to a
    multiple of 8 (u64/u64: 4 words = 32 bytes, two slots per 64-byte line, so one probe
    step touches one line). SeqMap, PlainMap and every baseline table use this rule, so a
    benchmark between them compares tables of the same size."""
    n = 1 + kw + vw
    if n <= 8:
        p = 1
        while p < n:
            p *= 2
        return p
    return (n + 7) // 8 * 8


# =========================================================================== njit: items of every dtype
#
# Inside njit code a map or an array of any accepted dtype takes and returns values of these
# numba types (its "item type"); the conversions below are the only definition of each:
#
#   dtype                              njit value                       accepted as input
#   bool, (u)int8..64, float32/64      the numba scalar                 bool / integer / real (range-checked)
#   complex64/128                      complex                          complex or real numbers
#   datetime64/timedelta64[unit]       NPDatetime / NPTimedelta         the same type and unit
#   S<n>, U<n>                         CharSeq(n) / UnicodeCharSeq(n)   the same kind, at most n characters
#   records                            ItemCopy (fields as attributes)  a record (an element of a structured
#                                                                       array), an ItemCopy, a tuple of fields
#   sub-arrays ('u8', (4,)), ...       a new ndarray of the item shape  an array of that shape; a 1-d tuple
#   dtypes numba has no type for       ItemCopy (no fields)             an ItemCopy of that dtype
#   (float16, longdouble, raw void, and records holding them)
#
# A record read from a map or a cell is a *copy held by value* (ItemCopy): numba's own record
# values are pointers into the array that holds them, and a record returned by pointer into
# memory the reader does not own would dangle (numba reads freed memory for
# ``np.zeros(1, rec)[0]`` returned from a function). An ItemCopy lives in registers like an
# integer, costs no allocation, boxes to a numpy record (np.void) and assigns into a
# structured array element (``out[i] = v``).

from llvmlite import ir as _ir  # noqa: E402
from numba.core import cgutils as _cg  # noqa: E402
from numba.core.typeconv import Conversion as _Conversion  # noqa: E402
from numba.core.typing.templates import AttributeTemplate as _AttributeTemplate  # noqa: E402
from ._npscalar import box_bytes  # noqa: E402  (registers the numpy functions boxing calls)
from numba.extending import (  # noqa: E402
    box as _box,
    infer_getattr as _infer_getattr,
    intrinsic as _intrinsic,
    lower_cast as _lower_cast,
    lower_getattr_generic as _lower_getattr_generic,
    make_attribute_wrapper as _make_attribute_wrapper,
    models as _models,
    register_model as _register_model,
)

#: njit compile options of the conversions: LLVM inlines them into their callers (numba's
#: IR-level inlining would re-type their bodies at every call site, which costs compile time)
_FI = {"forceinline": True}
_I64 = _ir.IntType(64)


def _numba_type(dt):
    """numba's type for a numpy dtype, or None where numba has none (float16, longdouble...)."""
    try:
        return numba.from_dtype(dt)
    except Exception:  # numba raises NotImplementedError or its own NumbaNotImplementedError
        return None


class ItemCopy(types.Type):
    """A by-value copy of one item of a record dtype, or of a dtype numba has no type for.

    It holds the item's canonical words (nothing borrowed: it stays valid after the map or
    array changes, in any thread). Records give their fields as attributes (``v.price``)
    and by name (``v["price"]``): numbers, complex, datetimes and text by value, sub-array
    fields as new arrays, nested records as ItemCopy. It converts to numba's record type,
    so ``out[i] = v`` stores it in a structured array; ``==`` compares the bytes; returned
    to Python it is a numpy scalar (a record, np.void, for record dtypes). It is read-only:
    build a changed record as a tuple of fields (``m.insert(k, (v.price, v.qty + 1))``)."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.nwords = nwords(self.dtype)
        self.record = _numba_type(self.dtype) if self.dtype.fields is not None else None
        super().__init__(name=f"ItemCopy({self.dtype!r})")

    def can_convert_to(self, typingctx, other):
        # for ``out[i] = v`` (a structured array's setitem takes a record)
        if self.record is not None and other == self.record:
            return _Conversion.safe
        return None

    def unify(self, typingctx, other):
        # ``m.get(k, a[0])``: a copy, never a record pointing into a stack buffer that
        # the function could return
        if self.record is not None and other == self.record:
            return self
        return None


@_register_model(ItemCopy)
class _ItemCopyModel(_models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("words", types.UniTuple(types.uint64, fe_type.nwords))])


_make_attribute_wrapper(ItemCopy, "words", "_words")


class ItemSpec(types.Type):
    """A compile-time constant describing one item dtype for njit code: its kind (the table
    above), its numba type (``nbtype``, None for ItemCopy kinds), the njit value type
    (``value_type``) and its words (``nwords``). Built by :func:`item_spec`."""

    def __init__(self, dtype):
        dt = np.dtype(dtype)
        self.dtype = dt
        self.nwords = nwords(dt)
        self.kind, self.nbtype, self.value_type = _classify(dt)
        self.base = item_spec(dt.base) if self.kind == "subarray" else None
        super().__init__(name=f"ItemSpec({dt!r})")


def _classify(dt):
    """(kind, numba type or None, njit value type) of dtype `dt` (the table above)."""
    if dt.subdtype is not None:
        base = _classify(dt.base)
        if base[0] in ("scalar", "complex", "time"):
            return "subarray", base[1], types.Array(base[1], len(dt.shape), "C")
        return "opaque", None, ItemCopy(dt)
    if dt.fields is not None:
        rec = _numba_type(dt)
        return ("record", rec, ItemCopy(dt)) if rec is not None else ("opaque", None, ItemCopy(dt))
    nb = _numba_type(dt)
    if nb is None:
        return "opaque", None, ItemCopy(dt)
    if dt.kind in "biu" or (dt.kind == "f" and dt.itemsize in (4, 8)):
        return "scalar", nb, nb
    if dt.kind == "c" and dt.itemsize in (8, 16):
        return "complex", nb, nb
    if dt.kind in "mM":
        return "time", nb, nb
    if dt.kind in "SU":
        return "chars", nb, nb
    return "opaque", None, ItemCopy(dt)


_SPECS = {}


def item_spec(dtype):
    """The :class:`ItemSpec` of a dtype (one per dtype)."""
    dt = np.dtype(dtype)
    spec = _SPECS.get(dt)
    if spec is None:
        spec = _SPECS[dt] = ItemSpec(dt)
    return spec


def _spec_of(S, fn):
    if isinstance(S, types.TypeRef) and isinstance(S.instance_type, ItemSpec):
        return S.instance_type
    raise TypingError(f"{fn}: expects an ItemSpec, got {S}")


# ---------------------------------------------------------------- intrinsics: bytes <-> words


def _spill_words(builder, words, n):
    """A fresh stack buffer of `n` words holding the UniTuple `words` (i64*)."""
    buf = _cg.alloca_once(builder, _ir.ArrayType(_I64, n))
    for j in range(n):
        builder.store(builder.extract_value(words, j), builder.gep(buf, [_ir.Constant(_I64, 0), _ir.Constant(_ir.IntType(32), j)]))
    return buf


def _zeroed(builder, n):
    buf = _cg.alloca_once(builder, _ir.ArrayType(_I64, n))
    builder.store(_ir.Constant(buf.type.pointee, None), buf)  # here, not only at the entry block
    return buf


def _load_words(context, builder, buf, n):
    tup = types.UniTuple(types.uint64, n)
    vals = [builder.load(builder.gep(buf, [_ir.Constant(_I64, 0), _ir.Constant(_ir.IntType(32), j)])) for j in range(n)]
    return context.make_tuple(builder, tup, vals)


def _byte_ptr(builder, buf, off=0):
    p = builder.bitcast(buf, _cg.voidptr_t)
    return builder.gep(p, [_ir.Constant(_I64, off)]) if off else p


def _literal_int(x, what):
    if not isinstance(x, types.IntegerLiteral):
        raise TypingError(f"{what} must be a compile-time constant, got {x}")
    return x.literal_value


@_intrinsic(prefer_literal=True)
def _value_words(typingctx, x, n):
    """The bytes of the by-value `x` as numpy stores them, zero-padded to `n` words."""
    N = _literal_int(n, "_value_words: n")
    tup = types.UniTuple(types.uint64, N)

    def codegen(context, builder, sig, args):
        data = context.data_model_manager[x].as_data(builder, args[0])
        if context.get_abi_sizeof(data.type) > 8 * N:
            raise TypingError(f"_value_words: {x} does not fit in {N} words")
        buf = _zeroed(builder, N)
        builder.store(data, builder.bitcast(buf, data.type.as_pointer()))
        return _load_words(context, builder, buf, N)

    return tup(x, n), codegen


@_intrinsic
def _words_value(typingctx, words, T):
    """The by-value item of numba type `T` whose bytes are the first bytes of `words`."""
    ty = _target(T)
    if not isinstance(words, types.UniTuple):
        raise TypingError(f"_words_value: expects a tuple of words, got {words}")

    def codegen(context, builder, sig, args):
        buf = _spill_words(builder, args[0], words.count)
        ptr = builder.bitcast(buf, context.get_data_type(ty).as_pointer())
        return context.unpack_value(builder, ty, ptr)

    return ty(words, T), codegen


@_intrinsic(prefer_literal=True)
def _record_words(typingctx, rec, n):
    """The bytes of a numba record (a pointer to them), zero-padded to `n` words."""
    N = _literal_int(n, "_record_words: n")
    if not isinstance(rec, types.Record) or rec.size > 8 * N:
        raise TypingError(f"_record_words: expects a record of at most {8 * N} bytes, got {rec}")
    tup = types.UniTuple(types.uint64, N)

    def codegen(context, builder, sig, args):
        buf = _zeroed(builder, N)
        _cg.memcpy(builder, _byte_ptr(builder, buf), builder.bitcast(args[0], _cg.voidptr_t),
                   _ir.Constant(_I64, rec.size))
        return _load_words(context, builder, buf, N)

    return tup(rec, n), codegen


@_intrinsic
def _make_item(typingctx, words, T):
    """The ItemCopy `T` holding `words`."""
    ty = _target(T)
    if not isinstance(ty, ItemCopy):
        raise TypingError(f"_make_item: expects an ItemCopy type, got {T}")

    def codegen(context, builder, sig, args):
        st = _cg.create_struct_proxy(ty)(context, builder)
        st.words = args[0]
        return st._getvalue()

    return ty(words, T), codegen


@_intrinsic(prefer_literal=True)
def _scratch(typingctx, n):
    """A zeroed stack buffer of `n` words in the calling function (its address, i64*)."""
    N = _literal_int(n, "_scratch: n")

    def codegen(context, builder, sig, args):
        return builder.bitcast(_zeroed(builder, N), _I64.as_pointer())

    return types.CPointer(types.uint64)(n), codegen


@_intrinsic(prefer_literal=True)
def _put_bytes(typingctx, p, off, words, nbytes):
    """Copy the first `nbytes` bytes of `words` to byte offset `off` of buffer `p`."""
    NB = _literal_int(nbytes, "_put_bytes: nbytes")
    if not isinstance(words, types.UniTuple) or NB > 8 * words.count:
        raise TypingError(f"_put_bytes: {NB} bytes from {words}")

    def codegen(context, builder, sig, args):
        src = _spill_words(builder, args[2], words.count)
        o = context.cast(builder, args[1], off, types.intp)
        dst = builder.gep(builder.bitcast(args[0], _cg.voidptr_t), [o])
        _cg.memcpy(builder, dst, _byte_ptr(builder, src), _ir.Constant(_I64, NB))
        return context.get_dummy_value()

    return types.void(p, off, words, nbytes), codegen


@_intrinsic(prefer_literal=True)
def _ptr_words(typingctx, p, n):
    """`n` words at `p` as a UniTuple."""
    N = _literal_int(n, "_ptr_words: n")
    tup = types.UniTuple(types.uint64, N)

    def codegen(context, builder, sig, args):
        buf = builder.bitcast(args[0], _ir.ArrayType(_I64, N).as_pointer())
        return _load_words(context, builder, buf, N)

    return tup(p, n), codegen


@_intrinsic(prefer_literal=True)
def _words_to_array(typingctx, words, off, arr):
    """Copy ``arr.nbytes`` bytes starting at byte `off` of `words` into the C-contiguous `arr`."""
    OFF = _literal_int(off, "_words_to_array: off")
    if not (isinstance(arr, types.Array) and arr.layout == "C"):
        raise TypingError(f"_words_to_array: expects a C-contiguous array, got {arr}")

    def codegen(context, builder, sig, args):
        src = _spill_words(builder, args[0], words.count)
        ary = context.make_array(arr)(context, builder, args[2])
        nbytes = builder.mul(ary.nitems, ary.itemsize)
        _cg.memcpy(builder, builder.bitcast(ary.data, _cg.voidptr_t), _byte_ptr(builder, src, OFF), nbytes)
        return context.get_dummy_value()

    return types.void(words, off, arr), codegen


@_intrinsic(prefer_literal=True)
def _sub_words(typingctx, words, off, nbytes, n):
    """Bytes ``off .. off + nbytes`` of `words` as `n` words (zero-padded)."""
    OFF, NB, N = (_literal_int(a, "_sub_words") for a in (off, nbytes, n))
    tup = types.UniTuple(types.uint64, N)

    def codegen(context, builder, sig, args):
        src = _spill_words(builder, args[0], words.count)
        buf = _zeroed(builder, N)
        _cg.memcpy(builder, _byte_ptr(builder, buf), _byte_ptr(builder, src, OFF), _ir.Constant(_I64, NB))
        return _load_words(context, builder, buf, N)

    return tup(words, off, nbytes, n), codegen


# ---------------------------------------------------------------- ItemCopy: fields, casts, boxing


def _field_value_type(typ, name):
    fty = typ.record.typeof(name)
    if isinstance(fty, types.NestedArray):
        return types.Array(fty.dtype, fty.ndim, "C")
    if isinstance(fty, types.Record):
        return ItemCopy(typ.dtype.fields[name][0])
    return fty


@_infer_getattr
class _ItemCopyAttribute(_AttributeTemplate):
    key = ItemCopy

    def generic_resolve(self, typ, attr):
        if typ.record is not None and attr in typ.dtype.fields:
            return _field_value_type(typ, attr)
        return None


def _lower_field(context, builder, typ, val, name):
    fdt, off = typ.dtype.fields[name][:2]
    fty = typ.record.typeof(name)
    st = _cg.create_struct_proxy(typ)(context, builder, value=val)
    if isinstance(fty, types.NestedArray):
        out_ty = types.Array(fty.dtype, fty.ndim, "C")
        shape, base = fdt.shape, fdt.base
        words_ty = types.UniTuple(types.uint64, typ.nwords)

        def impl(words):
            out = np.empty(shape, base)
            _words_to_array(words, off, out)
            return out

        return context.compile_internal(builder, impl, out_ty(words_ty), [st.words])
    if isinstance(fty, types.Record):
        sub = ItemCopy(fdt)
        words_ty = types.UniTuple(types.uint64, typ.nwords)
        nb, nw = fdt.itemsize, sub.nwords

        def impl(words):
            return _make_item(_sub_words(words, off, nb, nw), sub)

        return context.compile_internal(builder, impl, sub(words_ty), [st.words])
    buf = _spill_words(builder, st.words, typ.nwords)
    ptr = builder.bitcast(_byte_ptr(builder, buf, off), context.get_data_type(fty).as_pointer())
    return context.unpack_value(builder, fty, ptr)


@_lower_getattr_generic(ItemCopy)
def _lower_item_getattr(context, builder, typ, val, attr):
    return _lower_field(context, builder, typ, val, attr)


@_intrinsic(prefer_literal=True)
def _item_field(typingctx, x, name):
    """``x.<name>`` for a literal field name (``v["price"]``)."""
    if not isinstance(name, types.StringLiteral):
        raise TypingError(f"a field name must be a constant string, got {name}")
    field = name.literal_value
    if not (isinstance(x, ItemCopy) and x.record is not None and field in x.dtype.fields):
        raise TypingError(f"{x} has no field {field!r}")
    ret = _field_value_type(x, field)

    def codegen(context, builder, sig, args):
        return _lower_field(context, builder, x, args[0], field)

    return ret(x, name), codegen


@overload(operator.getitem, jit_options=_FI)
def _ov_item_getitem(x, i):
    if not isinstance(x, ItemCopy):
        return None
    if x.record is None:
        raise TypingError(f"{x}: items of this dtype have no fields")
    if isinstance(i, types.StringLiteral):
        if i.literal_value not in x.dtype.fields:
            raise TypingError(f"{x} has no field {i.literal_value!r}")
        return lambda x, i: _item_field(x, i)
    if isinstance(i, types.IntegerLiteral):
        names = x.dtype.names
        if not -len(names) <= i.literal_value < len(names):
            raise TypingError(f"{x}: field index {i.literal_value} out of range ({len(names)} fields)")
        name = names[i.literal_value]
        return lambda x, i: _item_field(x, name)
    raise TypingError(f"{x}: fields are selected by a constant name or index, got {i}")


@overload(operator.eq, jit_options=_FI)
def _ov_item_eq(a, b):
    if isinstance(a, ItemCopy) and isinstance(b, ItemCopy) and a.dtype == b.dtype:
        return lambda a, b: a._words == b._words
    return None


@overload(operator.ne, jit_options=_FI)
def _ov_item_ne(a, b):
    if isinstance(a, ItemCopy) and isinstance(b, ItemCopy) and a.dtype == b.dtype:
        return lambda a, b: a._words != b._words
    return None


@_lower_cast(ItemCopy, types.Record)
def _item_to_record(context, builder, fromty, toty, val):
    # a record is a pointer to its bytes: a buffer in the calling function's frame holds
    # them (for ``out[i] = v`` and calls that take a record, which read it at once)
    st = _cg.create_struct_proxy(fromty)(context, builder, value=val)
    buf = _spill_words(builder, st.words, fromty.nwords)
    return builder.bitcast(buf, context.get_value_type(toty))


@_lower_cast(types.Record, ItemCopy)
def _record_to_item(context, builder, fromty, toty, val):
    buf = _zeroed(builder, toty.nwords)
    _cg.memcpy(builder, _byte_ptr(builder, buf), builder.bitcast(val, _cg.voidptr_t),
               _ir.Constant(_I64, fromty.size))
    st = _cg.create_struct_proxy(toty)(context, builder)
    st.words = _load_words(context, builder, buf, toty.nwords)
    return st._getvalue()


@_box(ItemCopy)
def _box_item(typ, val, c):
    st = _cg.create_struct_proxy(typ)(c.context, c.builder, value=val)
    buf = _spill_words(c.builder, st.words, typ.nwords)
    return box_bytes(c, _byte_ptr(c.builder, buf), typ.dtype)


# ---------------------------------------------------------------- conversions


def key_words(x, spec):
    """njit: the canonical words (a UniTuple) of `x` as a key of the item dtype `spec`
    (an :class:`ItemSpec`): NaN keys raise ValueError, -0.0 becomes 0.0, values outside
    an integer dtype raise OverflowError, types that do not convert are a TypingError."""
    raise NotImplementedError("only callable from njit code")


def value_words(x, spec):
    """njit: the words of `x` as a value of the item dtype `spec` (exact bits)."""
    raise NotImplementedError("only callable from njit code")


def item_value(words, spec):
    """njit: the value (the njit item type of `spec`) whose words are `words`."""
    raise NotImplementedError("only callable from njit code")


@overload(key_words, jit_options=_FI)
def _ov_key_words(x, spec):
    return _words_impl(x, _spec_of(spec, "key_words"), True)


@overload(value_words, jit_options=_FI)
def _ov_value_words(x, spec):
    return _words_impl(x, _spec_of(spec, "value_words"), False)


def _words_impl(x, S, is_key):
    what = "key" if is_key else "value"
    N = S.nwords
    if S.kind == "scalar":
        T = S.nbtype
        if is_key:
            return lambda x, spec: (typed_key_word(x, T),)
        return lambda x, spec: (typed_value_word(x, T),)
    if S.kind == "complex":
        T = S.nbtype
        if isinstance(x, types.Boolean) or not isinstance(x, (types.Integer, types.Float, types.Complex)):
            raise TypingError(f"{what} must be a number for {T}, got {x}")
        if not is_key:
            return lambda x, spec: _value_words(T(x), N)
        zero = T(0)
        nan_msg = "NaN cannot be a key: it compares unequal to itself, so it could never be found"

        def impl(x, spec):
            c = T(x)
            if c.real != c.real or c.imag != c.imag:
                raise ValueError(nan_msg)
            return _value_words(c + zero, N)  # -0.0 + 0.0 == +0.0 in each part: one key for both zeros

        return impl
    if S.kind in ("time", "chars"):
        T = S.nbtype
        same = x == T
        if S.kind == "chars" and not same:
            same = type(x) is type(T) and x.count <= T.count  # shorter text is zero-padded, as numpy does
        if not same:
            raise TypingError(f"{what} must be a {T} for dtype {S.dtype}, got {x}")
        return lambda x, spec: _value_words(x, N)
    if S.kind == "record":
        if isinstance(x, types.Record):
            if x != S.nbtype:
                raise TypingError(f"{what}: a record of dtype {x.dtype} is not one of dtype {S.dtype}")
            return lambda x, spec: _record_words(x, N)
        if isinstance(x, ItemCopy):
            if x.dtype != S.dtype:
                raise TypingError(f"{what}: an item of dtype {x.dtype} is not one of dtype {S.dtype}")
            return lambda x, spec: x._words
        if isinstance(x, types.BaseTuple):
            return _record_from_tuple(x, S, what)
        raise TypingError(f"{what} must be a record of dtype {S.dtype} (an element of a structured array, "
                          f"a value read from a map or array of that dtype, or a tuple of its fields), got {x}")
    if S.kind == "subarray":
        return _subarray_words(x, S, what)
    if isinstance(x, ItemCopy) and x.dtype == S.dtype:
        return lambda x, spec: x._words
    raise TypingError(f"numba has no type for items of dtype {S.dtype}: inside njit code a {what} of it is an "
                      f"ItemCopy read from a map or array of that dtype, got {x}")


def _record_from_tuple(x, S, what):
    names = S.dtype.names
    if len(x) != len(names):
        raise TypingError(f"{what}: a tuple of {len(x)} items for a record of {len(names)} fields {names}")
    ns = {"_scratch": _scratch, "_put_bytes": _put_bytes, "_ptr_words": _ptr_words, "value_words": value_words}
    lines = ["def impl(x, spec):", f"    p = _scratch({S.nwords})"]
    for i, name in enumerate(names):
        fdt, off = S.dtype.fields[name][:2]
        ns[f"F{i}"] = item_spec(fdt)
        lines.append(f"    _put_bytes(p, {off}, value_words(x[{i}], F{i}), {fdt.itemsize})")
    lines.append(f"    return _ptr_words(p, {S.nwords})")
    exec("\n".join(lines), ns)  # one statement per field: a heterogeneous tuple needs constant indices
    return ns["impl"]


def _subarray_words(x, S, what):
    shape = np.array(S.dtype.shape, np.int64)
    ndim, count, N = len(S.dtype.shape), int(np.prod(S.dtype.shape)), S.nwords
    B = S.base
    isz = B.dtype.itemsize
    msg = f"{what}: expected an item of shape {S.dtype.shape} for {S.dtype}"
    if isinstance(x, types.Array):
        if x.ndim != ndim:
            raise TypingError(f"{msg}, got a {x.ndim}-d array")

        def impl(x, spec):
            for d in range(ndim):
                if x.shape[d] != shape[d]:
                    raise TypeError(msg)
            p = _scratch(N)
            j = 0
            for e in np.nditer(x):
                _put_bytes(p, j * isz, value_words(e.item(), B), isz)
                j += 1
            return _ptr_words(p, N)

        return impl
    if isinstance(x, types.BaseTuple) and ndim == 1:
        if len(x) != count:
            raise TypingError(f"{msg}, got a tuple of {len(x)} items")
        if isinstance(x, types.UniTuple):
            def impl(x, spec):
                p = _scratch(N)
                for j in range(count):
                    _put_bytes(p, j * isz, value_words(x[j], B), isz)
                return _ptr_words(p, N)

            return impl
        ns = {"_scratch": _scratch, "_put_bytes": _put_bytes, "_ptr_words": _ptr_words,
              "value_words": value_words, "B": B}
        lines = ["def impl(x, spec):", f"    p = _scratch({N})"]
        lines += [f"    _put_bytes(p, {j * isz}, value_words(x[{j}], B), {isz})" for j in range(count)]
        lines.append(f"    return _ptr_words(p, {N})")
        exec("\n".join(lines), ns)
        return ns["impl"]
    raise TypingError(f"{msg} (an array, or a tuple for a 1-d item), got {x}")


@overload(item_value, jit_options=_FI)
def _ov_item_value(words, spec):
    S = _spec_of(spec, "item_value")
    if S.kind == "scalar":
        T = S.nbtype
        return lambda words, spec: word_scalar(words[0], T)
    if S.kind in ("complex", "time", "chars"):
        T = S.nbtype
        return lambda words, spec: _words_value(words, T)
    if S.kind == "subarray":
        shape, base = S.dtype.shape, S.dtype.base

        def impl(words, spec):
            out = np.empty(shape, base)
            _words_to_array(words, 0, out)
            return out

        return impl
    T = S.value_type  # an ItemCopy: records and dtypes numba has no type for
    return lambda words, spec: _make_item(words, T)
