"""``typed_dict``: ``numba.typed.Dict`` behind the common map interface. Single-thread only.

What a numba user reaches for first. numba's typed dict is an open-addressing table
(CPython's dict design: an index array plus an entries array, ``USABLE_FRACTION`` 2/3)
reached through function calls into numba's runtime (``numba_dict_lookup`` and friends),
with reference-counted keys and values and no synchronisation at all: it is **not
thread-safe**, so the registry limits it to one thread.

* Keys and values: bool, integer and float scalars (what ``numba.typed.Dict`` holds
  natively; no records). Keys are canonicalised as in every map here: NaN rejected,
  ``-0.0`` and ``0.0`` one key, out-of-range integers raise ``OverflowError``.
* In njit code: ``m.get/insert/remove/add/contains``, ``k in m``, ``len(m)``; the numba
  type's data model holds just the dict (unboxed from ``m._d``).
* ``add`` raises ``OverflowError`` for an integer result that does not fit (value
  unchanged), like the other maps.
* ``capacity`` and ``memory_bytes()`` are estimates: numba does not expose the dict's
  table size; they follow its growth rule (power-of-two index, 2/3 usable).
"""
import operator

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import (
    NativeValue,
    make_attribute_wrapper,
    models,
    overload,
    overload_method,
    register_model,
    typeof_impl,
    unbox,
)
from numba.typed import Dict

from .._codec import Codec, scalar_word, word_scalar
from .._contents import MapBase
from ..config import JIT
from . import _table as T
from ._table import DictSized
from ._nbmap import _coercer, _delta_args

__all__ = ["TypedDictMap"]


class TypedDictMap(DictSized, MapBase):
    """``numba.typed.Dict`` with the common map interface (single thread)."""

    def __init__(self, key_dtype, value_dtype, capacity=16):
        self._kc = Codec(key_dtype, is_key=True, what="key dtype")
        self._vc = Codec(value_dtype, is_key=False, what="value dtype")
        for c, what in ((self._kc, "key"), (self._vc, "value")):
            if not c.scalar:
                raise TypeError(f"typed_dict: {what} dtype must be a bool, integer or float scalar, got {c.dtype}")
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"capacity must be an integer, got {type(capacity).__name__}")
        if not 0 < capacity <= 1 << 40:
            raise ValueError(f"capacity must be in 1 .. {1 << 40}, got {capacity}")
        self.key_dtype, self.value_dtype = self._kc.dtype, self._vc.dtype
        self._kt = numba.from_dtype(self.key_dtype)
        self._vt = numba.from_dtype(self.value_dtype)
        self._initial = int(capacity)
        self._d = Dict.empty(self._kt, self._vt, n_keys=int(capacity))
        self._numba_type_ = TypedDictMapType(self._kt, self._vt)
        self._vkind, self._vbits = T.value_kind(self.value_dtype)

    def _ctor_args(self):
        return (self.key_dtype, self.value_dtype), dict(capacity=max(self._initial, len(self)))

    # ---------------------------------------------------------------- scalar
    def _key(self, k):
        return self._kc.to_item(k)[()]

    def _val(self, v):
        return self._vc.to_item(v)[()]

    def insert(self, k, v):
        k, v = self._key(k), self._val(v)
        prev = self._d.get(k)
        self._d[k] = v
        return prev

    def get(self, k, default=None):
        return self._d.get(self._key(k), default)

    def remove(self, k):
        return self._d.pop(self._key(k), None)

    def add(self, k, d):
        k = self._key(k)
        old = self._d.get(k, self.value_dtype.type(0))
        if self._vkind in (T.V_SIGNED, T.V_UNSIGNED):
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
                raise TypeError(f"add: expected an integer delta for {self.value_dtype}, got {type(d).__name__}")
            new = int(old) + int(d)
            self._vc.check_int(new)
            new = self.value_dtype.type(new)
        elif self._vkind == T.V_FLOAT:
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, float, np.integer, np.floating)):
                raise TypeError(f"add: expected a real delta for {self.value_dtype}, got {type(d).__name__}")
            new = old + self.value_dtype.type(d)
        else:
            raise TypeError(f"add: values of {self.value_dtype} cannot be added to")
        self._d[k] = new
        return new

    def __contains__(self, k):
        return self._key(k) in self._d

    def __getitem__(self, k):
        return self._d[self._key(k)]

    def __delitem__(self, k):
        del self._d[self._key(k)]

    # ---------------------------------------------------------------- batch (one njit kernel each)
    def _get_many(self, keys):
        ks = self._kc.to_array(keys, "keys")
        out = np.zeros(ks.shape[0], self.value_dtype)
        found = np.zeros(ks.shape[0], np.bool_)
        _td_get_many(self._d, ks, out, found)
        return out, found

    def insert_many(self, keys, values):
        ks, vs = self._pairs(keys, values)
        _td_insert_many(self._d, ks, vs)

    def remove_many(self, keys):
        ks = self._kc.to_array(keys, "keys")
        found = np.zeros(ks.shape[0], np.bool_)
        _td_remove_many(self._d, ks, found)
        return found

    def add_many(self, keys, deltas):
        ks, ds = self._deltas_of(keys, deltas)
        if self._vkind in (T.V_SIGNED, T.V_UNSIGNED):
            if ds.dtype.kind not in "iu":
                raise TypeError(f"add_many: expected integer deltas for {self.value_dtype}, got {ds.dtype}")
            di, df = ds.astype(np.int64), np.zeros(1, np.float64)
        elif self._vkind == T.V_FLOAT:
            if ds.dtype.kind not in "iuf":
                raise TypeError(f"add_many: expected real deltas for {self.value_dtype}, got {ds.dtype}")
            di, df = np.zeros(1, np.int64), ds.astype(np.float64)
        else:
            raise TypeError(f"add_many: values of {self.value_dtype} cannot be added to")
        out = np.zeros(ks.shape[0], self.value_dtype)
        done = _td_add_many(self._d, ks, di, df, out, self._vkind, self._vbits)
        if done != ks.shape[0]:
            raise OverflowError(f"add_many (after {done} of {ks.shape[0]} rows): the result does not fit in {self.value_dtype}")
        return out

    # ---------------------------------------------------------------- whole map
    def items(self):
        n = len(self._d)
        ks = np.empty(n, self.key_dtype)
        vs = np.empty(n, self.value_dtype)
        _td_items(self._d, ks, vs)
        return ks, vs

    def clear(self):
        self._d.clear()


    def memory_bytes(self):
        """Estimate: index (8 B per slot) + entries (hash + key + value per usable slot)."""
        size = self.slots
        entry = 8 + self.key_dtype.itemsize + self.value_dtype.itemsize
        return int(size * 8 + size * 2 // 3 * entry)

    _no_probes = "numba.typed.Dict does not expose its probe sequence"


# ------------------------------------------------------------------ batch kernels


@numba.njit(**JIT)
def _td_get_many(d, ks, out, found):
    for i in range(ks.shape[0]):
        v = d.get(ks[i])
        if v is not None:
            out[i] = v
            found[i] = True


@numba.njit(**JIT)
def _td_insert_many(d, ks, vs):
    for i in range(ks.shape[0]):
        d[ks[i]] = vs[i]


@numba.njit(**JIT)
def _td_remove_many(d, ks, found):
    for i in range(ks.shape[0]):
        if ks[i] in d:
            del d[ks[i]]
            found[i] = True


@numba.njit(**JIT)
def _td_add_many(d, ks, di, df, out, vkind, vbits):
    vt = out.dtype
    for i in range(ks.shape[0]):
        w = numba.uint64(0)  # absent: 0, whose word is 0
        if ks[i] in d:
            w = scalar_word(d[ks[i]])
        if vkind == T.V_FLOAT:
            nw = T.add_float_word(w, df[i], vbits)
        else:
            nw, ok = T.add_int_word(w, di[i], vkind == T.V_SIGNED, vbits)
            if not ok:
                return i
        v = word_scalar(nw, vt)
        d[ks[i]] = v
        out[i] = v
    return ks.shape[0]


@numba.njit(**JIT)
def _td_items(d, ks, vs):
    i = 0
    for k, v in d.items():
        ks[i] = k
        vs[i] = v
        i += 1


# ------------------------------------------------------------------ numba type


class TypedDictMapType(types.Type):
    def __init__(self, key_ty, val_ty):
        self.key_ty = key_ty
        self.val_ty = val_ty
        self.dict_ty = types.DictType(key_ty, val_ty)
        super().__init__(name=f"TypedDictMap({key_ty}, {val_ty})")


@register_model(TypedDictMapType)
class _TDModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("d", fe_type.dict_ty)])


make_attribute_wrapper(TypedDictMapType, "d", "d")


@typeof_impl.register(TypedDictMap)
def _typeof_td(val, c):
    return val._numba_type_


@unbox(TypedDictMapType)
def _unbox_td(typ, obj, c):
    dobj = c.pyapi.object_getattr_string(obj, "_d")
    native = c.unbox(typ.dict_ty, dobj)
    c.pyapi.decref(dobj)
    st = cgutils.create_struct_proxy(typ)(c.context, c.builder)
    st.d = native.value
    return NativeValue(st._getvalue(), is_error=native.is_error)


def _key_fn(k, kt, what):
    cw = _coercer(k, kt, True, what)
    return numba.njit(lambda k: word_scalar(cw(k), kt), inline="always")


def _val_fn(v, vt, what):
    cw = _coercer(v, vt, False, what)
    return numba.njit(lambda v: word_scalar(cw(v), vt), inline="always")


@overload_method(TypedDictMapType, "get", inline="always")
def _ov_get(m, k):
    kf = _key_fn(k, m.key_ty, "get")
    return lambda m, k: m.d.get(kf(k))


@overload_method(TypedDictMapType, "contains", inline="always")
def _ov_contains(m, k):
    kf = _key_fn(k, m.key_ty, "contains")
    return lambda m, k: kf(k) in m.d


@overload(operator.contains)
def _ov_in(m, k):
    if isinstance(m, TypedDictMapType):
        return lambda m, k: m.contains(k)


@overload(len)
def _ov_len(m):
    if isinstance(m, TypedDictMapType):
        return lambda m: len(m.d)


@overload_method(TypedDictMapType, "insert", inline="always")
def _ov_insert(m, k, v):
    kf = _key_fn(k, m.key_ty, "insert")
    vf = _val_fn(v, m.val_ty, "insert")

    def impl(m, k, v):
        kk = kf(k)
        prev = m.d.get(kk)
        m.d[kk] = vf(v)
        return prev

    return impl


@overload_method(TypedDictMapType, "remove", inline="always")
def _ov_remove(m, k):
    kf = _key_fn(k, m.key_ty, "remove")

    def impl(m, k):
        kk = kf(k)
        prev = m.d.get(kk)
        if prev is not None:
            del m.d[kk]
        return prev

    return impl


@overload_method(TypedDictMapType, "add", inline="always")
def _ov_add(m, k, d):
    kf = _key_fn(k, m.key_ty, "add")
    dl = _delta_args(d, m.val_ty)
    vt = m.val_ty
    vkind, vbits = T.value_kind(np.dtype(str(vt)))
    if vkind == T.V_OTHER:
        raise TypingError(f"add: values of {vt} cannot be added to")

    def impl(m, k, d):
        kk = kf(k)
        di, df = dl(d)
        w = numba.uint64(0)  # absent: 0, whose word is 0
        if kk in m.d:
            w = scalar_word(m.d[kk])
        if vkind == T.V_FLOAT:
            nw = T.add_float_word(w, df, vbits)
        else:
            nw, ok = T.add_int_word(w, di, vkind == T.V_SIGNED, vbits)
            if not ok:
                raise OverflowError("add: the result does not fit in the value type (value unchanged)")
        v = word_scalar(nw, vt)
        m.d[kk] = v
        return v

    return impl
