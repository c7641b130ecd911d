"""Return numpy scalars from njit code without paying for them in Python.

A jitted function that returns a ``uint64`` hands Python an ``int``: numba boxes native
integers as Python ints and floats as Python floats. The public scalar methods promise
numpy scalars of the map's dtype (what ``a[i]`` gives a numpy user, with the dtype's own
arithmetic), and building one from the returned int in Python, ``np.uint64(r)``, cost
about 350 ns on the reference machine: more than half a whole kernel call through numba's
dispatcher, for a value the kernel already had in a register.

:func:`as_numpy_scalar` marks a native bool/integer/float/complex value so that numba
boxes it the way numpy's own indexing does: ``PyArray_Scalar(&value, descr, NULL)``, the
function behind ``a[0]`` (about 40 ns). numba has no binding for numpy's C API, so the two
functions are taken from numpy's exported API table (the ``_ARRAY_API`` capsule, the same
table every C extension's ``import_array()`` reads; slots 45 and 60 have been fixed since
numpy 1.0) and registered with LLVM under names of this package. Compiled code refers to
them by name, never by address, so functions cached on disk link against the current
process's numpy when they are loaded (this module is imported before any kernel).

Inside njit code the marked value is an ordinary number of the same type: only the
boxing, at the boundary to Python, changes. ``Optional`` results (``None`` or a value)
box through it as well.
"""
import ctypes
import importlib

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.extending import box, intrinsic, models, register_model
from numba.np.numpy_support import as_dtype

__all__ = ["NumpyScalar", "as_numpy_scalar"]

_DESCR_FROM_TYPE = "seqmap_nb_PyArray_DescrFromType"  # PyArray_Descr *(int typenum)
_SCALAR = "seqmap_nb_PyArray_Scalar"  # PyObject *(void *data, PyArray_Descr *, PyObject *base)
_SLOTS = {_DESCR_FROM_TYPE: 45, _SCALAR: 60}  # indices in numpy's C API table


def _api_table():
    """numpy's C API table (``void **``), as ``import_array()`` finds it."""
    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            mod = importlib.import_module(name)
            break
        except ImportError:
            continue
    else:  # pragma: no cover - numpy always has one of the two
        raise ImportError("numpy's C API table (_multiarray_umath._ARRAY_API) was not found")
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return ctypes.cast(get_pointer(mod._ARRAY_API, None), ctypes.POINTER(ctypes.c_void_p))


def _register_numpy_api():
    table = _api_table()
    for symbol, slot in _SLOTS.items():
        if not table[slot]:  # pragma: no cover - a numpy that dropped the slot
            raise ImportError(f"numpy's C API table has no function in slot {slot} ({symbol})")
        llvm.add_symbol(symbol, table[slot])


_register_numpy_api()


class NumpyScalar(types.Type):
    """A native number that boxes to a numpy scalar of its own dtype."""

    def __init__(self, dtype):
        self.dtype = dtype
        super().__init__(name=f"NumpyScalar({dtype})")


@register_model(NumpyScalar)
class _NumpyScalarModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, dmm.lookup(fe_type.dtype).get_value_type())


_BOXABLE = (types.Boolean, types.Integer, types.Float, types.Complex)


@intrinsic
def as_numpy_scalar(typingctx, value):
    """``value`` unchanged, typed so that it boxes as a numpy scalar (see the module)."""
    if isinstance(value, types.Optional) and isinstance(value.type, _BOXABLE):
        # None or a value: the same in-register layout, boxed as None or a numpy scalar
        def codegen(context, builder, sig, args):
            return args[0]

        return types.Optional(NumpyScalar(value.type))(value), codegen
    if not isinstance(value, _BOXABLE):
        raise TypingError(f"as_numpy_scalar: a bool, integer, float or complex value, got {value}")

    def codegen(context, builder, sig, args):
        return args[0]

    return NumpyScalar(value)(value), codegen


@box(NumpyScalar)
def _box_numpy_scalar(typ, val, c):
    # numpy's storage of the value (a bool is one byte there, an i1 in registers)
    data = c.context.data_model_manager[typ.dtype].as_data(c.builder, val)
    slot = cgutils.alloca_once_value(c.builder, data)
    voidp = cgutils.voidptr_t
    mod = c.builder.module
    descr_from_type = cgutils.get_or_insert_function(
        mod, ir.FunctionType(voidp, [ir.IntType(32)]), _DESCR_FROM_TYPE)
    scalar = cgutils.get_or_insert_function(
        mod, ir.FunctionType(c.pyapi.pyobj, [voidp, voidp, c.pyapi.pyobj]), _SCALAR)
    typenum = np.dtype(as_dtype(typ.dtype)).num  # a builtin type number: the same in every process
    descr = c.builder.call(descr_from_type, [ir.Constant(ir.IntType(32), typenum)])  # new reference
    obj = c.builder.call(scalar, [c.builder.bitcast(slot, voidp), descr, c.pyapi.get_null_object()])
    c.pyapi.decref(c.builder.bitcast(descr, c.pyapi.pyobj))  # PyArray_Scalar does not steal it
    return obj  # NULL with MemoryError set if numpy could not allocate: the C-API error return


def box_bytes(c, data, dtype):
    """In a ``@box`` implementation: the numpy scalar of `dtype` whose bytes are at `data`
    (an i8*), copied: what ``a[i]`` gives for an array of that dtype (np.void for
    records; float16, longdouble... for the dtypes numba has no type for). The dtype is
    a constant of the compiled function's environment, so it is exact (byte order,
    fields, alignment) and works for every dtype."""
    mod = c.builder.module
    voidp = cgutils.voidptr_t
    scalar = cgutils.get_or_insert_function(
        mod, ir.FunctionType(c.pyapi.pyobj, [voidp, voidp, c.pyapi.pyobj]), _SCALAR)
    descr = c.env_manager.read_const(c.env_manager.add_const(np.dtype(dtype)))  # borrowed
    return c.builder.call(scalar, [c.builder.bitcast(data, voidp), c.builder.bitcast(descr, voidp),
                                   c.pyapi.get_null_object()])
