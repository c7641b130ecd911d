"""Keys and values as 64-bit words: dtype validation and the encoding both layers share.

Every cell and every slot stores its key and value as whole little-endian 64-bit words,
so that the seqlock can copy them with word-sized atomic loads (HAZARDS 4) whatever the
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

    __slots__ = ("dtype", "nwords", "kind", "is_key", "lo", "hi", "mask", "scalar", "pad")

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
    if isinstance(T, types.NumberClass):
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
    raise TypingError(f"add: values of type {t} have no addition (bool, complex and record values are not counters)")


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
