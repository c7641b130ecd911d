"""The one numba-extension layer of the package, and its one on-disk cache guard.

Structures passed to njit code (SeqArray, SeqMap, the baselines' maps) are numba types
whose data model is a single uint64, the address of the structure's header array;
methods rebuild an unowned view of the header from it (``raw_words``). A model holding
the header *array* would cost an incref/decref pair of its meminfo on every method call:
two atomic read-modify-writes on one cache line that every thread shares, which slows one
thread down and caps multi-thread scaling. The address is safe because the header lives
as long as the Python object, which the caller of the njit function keeps alive for the
call; a structure cannot be returned from or stored by njit code (there is no boxing).
:func:`register` gives a Python class and its numba type the typeof hook, the model and
the unboxer (one attribute read: ``_hdr_addr``), and :func:`at_addr` turns an address
back into a structure inside njit code (the Python entry points call the same methods as
user code does).

The cache guard
---------------
numba's on-disk cache (``cache=True``) checks only the timestamp of the file a cached
function is defined in. A kernel embeds the compiled code of every helper it calls from
other files, so editing ``_seqlock.py`` would leave every cached kernel of the package
running the old lock, silently. :func:`check_cache`, run when the package is imported
(before any kernel module loads its cache), digests every source file of the package and,
when the digest differs from the one recorded beside the cache files, deletes the
package's cache files. User code that caches a function taking a structure embeds the
inlined methods too: the digest is part of every structure type's name
(:data:`SOURCE_DIGEST`), and numba keys cached functions by their argument types, so such
a function recompiles instead of running stale code.
"""
import glob
import hashlib
import multiprocessing
import os
import sys
import threading
import time

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import (
    NativeValue,
    intrinsic,
    make_attribute_wrapper,
    models,
    register_model,
    typeof_impl,
    unbox,
)
from numba.core.errors import TypingError

_PKG = os.path.dirname(os.path.abspath(__file__))


def _sources(root):
    return sorted(glob.glob(os.path.join(root, "*.py")) + glob.glob(os.path.join(root, "baselines", "*.py")))


def _digest(root):
    d = hashlib.sha256()
    for path in _sources(root):
        try:
            with open(path, "rb") as f:
                d.update(os.path.relpath(path, root).encode() + b"\0" + f.read())
        except OSError:
            pass
    return d.hexdigest()


#: a digest of every source file of the package (see the module docstring)
SOURCE_DIGEST = _digest(_PKG)


def drop_stale_caches(cache_dirs, stamp, digest):
    """Delete the ``*.nbi``/``*.nbc`` files in `cache_dirs` unless the file `stamp` holds
    `digest`, then record it there (best effort: a read-only tree keeps its files)."""
    try:
        with open(stamp) as f:
            if f.read().strip() == digest:
                return
    except OSError:
        pass
    try:
        for cache in cache_dirs:
            os.makedirs(cache, exist_ok=True)
            for path in glob.glob(os.path.join(cache, "*.nb[ic]")):
                try:
                    os.remove(path)
                except OSError:
                    pass
        with open(stamp, "w") as f:
            f.write(digest)
    except OSError:
        pass


def check_cache(root=_PKG):
    """Delete the package's cache files (in `root` and its ``baselines``) if any source
    changed since they were written."""
    digest = SOURCE_DIGEST if root == _PKG else _digest(root)
    caches = [os.path.join(root, "__pycache__"), os.path.join(root, "baselines", "__pycache__")]
    drop_stale_caches(caches, os.path.join(caches[0], "kernel-sources.sha256"), digest)


class AddrType(types.Type):
    """Base of the structure types: the data model is the header's address (uint64).

    Subclasses pass a name that says what they are; the source digest is appended, so a
    change of the package's code changes every structure type (see the cache guard).

    A subclass sets ``_ctor_args``, the arguments that rebuild it: it pickles as its
    constructor call. numba keys a cached closure by the pickled values of its closure
    variables, and a numba type pickles its ``__dict__`` by default, including ``_code``,
    a number that depends on how many types the process made before it: a kernel that
    closes over a structure type then missed the cache in every other process."""

    def __init__(self, name):
        super().__init__(name=f"{name}(src={SOURCE_DIGEST[:12]})")

    def __reduce__(self):
        return type(self), self._ctor_args


class _AddrModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("addr", types.uint64)])


def register(pycls, typecls):
    """Make instances of `pycls` (with ``_numba_type_``, an instance of `typecls`, and
    ``_hdr_addr``) arguments of njit functions."""

    @typeof_impl.register(pycls)
    def _typeof(val, c):
        return val._numba_type_

    register_model(typecls)(_AddrModel)
    make_attribute_wrapper(typecls, "addr", "addr")

    @unbox(typecls)
    def _unbox(typ, obj, c):
        st = cgutils.create_struct_proxy(typ)(c.context, c.builder)
        is_error = cgutils.alloca_once_value(c.builder, cgutils.false_bit)
        addr_obj = c.pyapi.object_getattr(obj, _interned(c, "_hdr_addr"))
        with c.builder.if_else(cgutils.is_not_null(c.builder, addr_obj)) as (ok, failed):
            with ok:
                st.addr = c.pyapi.long_as_ulonglong(addr_obj)
                c.pyapi.decref(addr_obj)
                c.builder.store(cgutils.is_not_null(c.builder, c.pyapi.err_occurred()), is_error)
            with failed:  # AttributeError already set
                c.builder.store(cgutils.true_bit, is_error)
        return NativeValue(st._getvalue(), is_error=c.builder.load(is_error))

    return typecls


def _interned(c, name):
    """In an unboxer: the interned Python string `name`, made once per compiled module
    (a global of the module, set on first use, with the GIL held as unboxing always is).
    ``PyObject_GetAttrString`` would build and hash a new string on every call: about 30 ns
    of a ~450 ns call of a user njit function that takes a map."""
    mod = c.builder.module
    gname = f"_seqmap_nb_interned_{name}"
    gv = mod.globals.get(gname)
    if gv is None:
        gv = cgutils.add_global_variable(mod, c.pyapi.pyobj, gname)
        gv.linkage = "internal"
        gv.initializer = ir.Constant(c.pyapi.pyobj, None)
    with c.builder.if_then(cgutils.is_null(c.builder, c.builder.load(gv)), likely=False):
        fn = cgutils.get_or_insert_function(mod, ir.FunctionType(c.pyapi.pyobj, [cgutils.voidptr_t]),
                                            "PyUnicode_InternFromString")
        c.builder.store(c.builder.call(fn, [c.context.insert_const_string(mod, name)]), gv)  # never freed
    return c.builder.load(gv)


@intrinsic
def at_addr(typingctx, addr, T):
    """njit: the structure of type ``T`` (a type reference) whose header is at `addr`."""
    if not (isinstance(T, types.TypeRef) and isinstance(T.instance_type, AddrType)):
        raise TypingError(f"at_addr: expects a structure type, got {T}")
    if not isinstance(addr, types.Integer):
        raise TypingError(f"at_addr: the address must be an integer, got {addr}")
    ty = T.instance_type

    def codegen(context, builder, sig, args):
        st = cgutils.create_struct_proxy(ty)(context, builder)
        st.addr = context.cast(builder, args[0], addr, types.uint64)
        return st._getvalue()

    return ty(addr, T), codegen


# --------------------------------------------------------------------------- entry points


def fast_types(nbtype):
    """Python types the scalar methods hand straight to a kernel typed `nbtype`: the
    builtin types of its kind and the numpy scalar type of its dtype."""
    dt = numba.np.numpy_support.as_dtype(nbtype)
    base = {"b": {bool}, "i": {int}, "u": {int}, "f": {float, int}, "c": {complex, float, int}}[dt.kind]
    return frozenset(base | {dt.type})


class EntryPoints(dict):
    """Python argument types -> the compiled entry point of one scalar kernel, or None.

    Calling a jitted function goes through numba's dispatcher, which works out the numba
    type of every argument and looks the overload up: about 100 ns of a ~450 ns call on
    the reference machine. The scalar methods know the types already (they take the fast
    path only for the exact types of :func:`fast_types`), so they look the compiled function
    up here by ``type(k)`` (or ``(type(k), type(v))``) and call it directly, as the
    dispatcher itself would. ``Dispatcher.compile(sig)`` compiles the signature, or loads
    it from the cache, and returns that entry point. Any other type maps to None: the
    caller's general path, which validates and converts. Shared by every structure of a type.
    """

    def __init__(self, kernel, *fast, what=""):
        super().__init__()
        self._kernel, self._fast, self._what = kernel, fast, what

    def __missing__(self, key):
        ts = key if isinstance(key, tuple) else (key,)
        ep = None
        if self._kernel is not None and all(t in f for t, f in zip(ts, self._fast)):
            with compile_notice(self._what or self._kernel.__name__):
                ep = self._kernel.compile((types.intp,) + tuple(numba.typeof(t(0)) for t in ts))
        self[key] = ep
        return ep


# --------------------------------------------------------------------------- compile notices

#: seconds a call may compile before a notice says so (``SEQMAP_NB_COMPILE_NOTICE``; 0: never)
COMPILE_NOTICE_S = float(os.environ.get("SEQMAP_NB_COMPILE_NOTICE", "1") or 0)


class compile_notice:
    """Context manager around a call that may compile: if it is still running after
    :data:`COMPILE_NOTICE_S` seconds, one line on stderr says what is compiling (a numba
    compile of a kernel takes seconds the first time on a machine, milliseconds from the
    on-disk cache later), and a second one how long it took. Silent otherwise, and in
    multiprocessing workers, which nobody watches."""

    def __init__(self, what):
        self.what = what
        self._lock = threading.Lock()
        self._shown = self._done = False

    def _show(self):
        with self._lock:
            if self._done:
                return
            self._shown = True
            print(f"seqmap_nb: compiling {self.what}: once per machine, numba caches it...",
                  file=sys.stderr, flush=True)

    def __enter__(self):
        self._t0 = time.perf_counter()
        self._timer = None
        # not in worker processes (the harness compiles in them and reports per map itself)
        if COMPILE_NOTICE_S > 0 and multiprocessing.parent_process() is None:
            self._timer = threading.Timer(COMPILE_NOTICE_S, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc):
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._done = True
            if self._shown:
                print(f"seqmap_nb: ... {self.what} ready in {time.perf_counter() - self._t0:.1f} s",
                      file=sys.stderr, flush=True)
        return False


class Announced:
    """A jitted function whose first call runs under :class:`compile_notice` (the call that
    compiles it, or loads it from the cache); later calls go straight to it."""

    __slots__ = ("fn", "what", "_first")

    def __init__(self, fn, what):
        self.fn, self.what, self._first = fn, what, True

    def __call__(self, *args):
        if self._first:
            with compile_notice(self.what):
                r = self.fn(*args)
            self._first = False
            return r
        return self.fn(*args)
