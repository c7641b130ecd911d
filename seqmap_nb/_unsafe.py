"""CPU atomics, fences, a spin hint, a clock and raw memory for ``@njit(nogil=True)`` code.

numba has no CPU atomics of its own. Everything here is a ``numba.extending.intrinsic``
that emits the LLVM instruction directly (``load atomic``, ``store atomic``, ``cmpxchg``,
``atomicrmw``, ``fence``), so the orderings you read in the source are the orderings the
optimiser must respect. The intrinsics live together in this one "unsafe" module, as in
numba's own ``np/unsafe``: nothing here checks bounds (callers do, once, at the public
entry points) and misuse can corrupt memory.

Rules for every intrinsic in this file
--------------------------------------
* The memory ordering is an explicit string literal argument, never a default:
  ``"relaxed"``, ``"acquire"``, ``"release"``, ``"acq_rel"``, ``"seq_cst"`` (C++11 names;
  LLVM calls relaxed ``monotonic``). Passing a non-literal, or an ordering the operation
  does not have (a release load, an acquire store), is a ``TypingError`` at compile time.
* Atomics act on one element ``arr[i]`` of a C-contiguous 1-d integer array, at its
  natural alignment (the element size). numpy buffers are at least element-aligned, so
  every element is; an atomic on a misaligned address would not be atomic, hence 1-d
  integer arrays only (records are stored as arrays of 64-bit words, see ``_codec``).
* Cost notes: on x86-64 (TSO) an acquire load and a release store are plain ``mov``s and
  acquire/release fences emit no instruction (they only stop the compiler); seq_cst
  stores and RMWs are ``xchg``/``lock``-prefixed. On aarch64 acquire/release become
  ``ldar``/``stlr`` and fences are ``dmb`` instructions: real, if small, costs.

Besides the atomics: :func:`cpu_relax` (``pause`` / ``yield``), :func:`sched_yield`,
:func:`backoff` (spin, then give the CPU away), :func:`cycles`
(``llvm.readcyclecounter``) and :func:`monotonic_ns` (``clock_gettime``), bit casts
between floats and integers, and raw aligned memory (:func:`raw_alloc`,
:func:`raw_free`, :func:`raw_words`) for table buffers that must never be freed under a
reader's feet by reference counting (see ``_lifecycle``).
"""
import platform

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

from .config import JIT

_LLVM_ORDER = {
    "relaxed": "monotonic",
    "acquire": "acquire",
    "release": "release",
    "acq_rel": "acq_rel",
    "seq_cst": "seq_cst",
}
_LOAD_ORDERS = ("relaxed", "acquire", "seq_cst")
_STORE_ORDERS = ("relaxed", "release", "seq_cst")
_RMW_ORDERS = ("relaxed", "acquire", "release", "acq_rel", "seq_cst")
_FENCE_ORDERS = ("acquire", "release", "acq_rel", "seq_cst")
# failure ordering of a cmpxchg: the strongest load ordering the success ordering allows
_CAS_FAIL = {
    "relaxed": "monotonic",
    "acquire": "acquire",
    "release": "monotonic",
    "acq_rel": "acquire",
    "seq_cst": "seq_cst",
}

_MACHINE = platform.machine().lower()


def _order(name, order, allowed):
    """Type-time check of an ordering argument: must be a string literal from `allowed`."""
    if not isinstance(order, types.StringLiteral):
        raise TypingError(
            f"{name}: the memory ordering must be a string literal, one of {allowed}; got {order}"
        )
    value = order.literal_value
    if value not in allowed:
        raise TypingError(f"{name}: ordering {value!r} is not valid here; use one of {allowed}")
    return value


def _check_array(name, arr):
    if not (
        isinstance(arr, types.Array)
        and arr.ndim == 1
        and isinstance(arr.dtype, types.Integer)
        and arr.layout == "C"
    ):
        raise TypingError(
            f"{name}: needs a C-contiguous 1-d integer array (atomics act on its elements); got {arr}"
        )


def _check_index(name, idx):
    if not isinstance(idx, types.Integer):
        raise TypingError(f"{name}: the index must be an integer; got {idx}")


def _check_value(name, val):
    if not isinstance(val, (types.Integer, types.Boolean)):
        raise TypingError(f"{name}: the value must be an integer; got {val}")


def _elem_ptr(context, builder, arrty, arr, idx, idxty):
    ary = context.make_array(arrty)(context, builder, arr)
    idx = context.cast(builder, idx, idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [idx], wraparound=False)


# --------------------------------------------------------------------------- loads / stores


@intrinsic(prefer_literal=True)
def atomic_load(typingctx, arr, idx, order):
    """``arr[idx]`` as one atomic load with the given ordering (relaxed/acquire/seq_cst)."""
    _check_array("atomic_load", arr)
    _check_index("atomic_load", idx)
    o = _order("atomic_load", order, _LOAD_ORDERS)
    sig = arr.dtype(arr, idx, order)

    def codegen(context, builder, signature, args):
        ptr = _elem_ptr(context, builder, arr, args[0], args[1], idx)
        lty = context.get_value_type(arr.dtype)
        return builder.load_atomic(ptr, _LLVM_ORDER[o], align=arr.dtype.bitwidth // 8, typ=lty)

    return sig, codegen


@intrinsic(prefer_literal=True)
def atomic_store(typingctx, arr, idx, val, order):
    """``arr[idx] = val`` as one atomic store with the given ordering (relaxed/release/seq_cst)."""
    _check_array("atomic_store", arr)
    _check_index("atomic_store", idx)
    _check_value("atomic_store", val)
    o = _order("atomic_store", order, _STORE_ORDERS)
    sig = types.void(arr, idx, val, order)

    def codegen(context, builder, signature, args):
        ptr = _elem_ptr(context, builder, arr, args[0], args[1], idx)
        v = context.cast(builder, args[2], val, arr.dtype)
        builder.store_atomic(v, ptr, _LLVM_ORDER[o], align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return sig, codegen


# --------------------------------------------------------------------------- read-modify-write


@intrinsic(prefer_literal=True)
def atomic_cas(typingctx, arr, idx, expected, desired, order):
    """Compare-exchange ``arr[idx]``: if it equals `expected` store `desired`.

    Returns the value found (so success is ``result == expected``). Strong CAS: it never
    fails spuriously. The failure ordering is the strongest load ordering that `order`
    allows (acquire for acq_rel, seq_cst for seq_cst).
    """
    _check_array("atomic_cas", arr)
    _check_index("atomic_cas", idx)
    _check_value("atomic_cas", expected)
    _check_value("atomic_cas", desired)
    o = _order("atomic_cas", order, _RMW_ORDERS)
    sig = arr.dtype(arr, idx, expected, desired, order)

    def codegen(context, builder, signature, args):
        ptr = _elem_ptr(context, builder, arr, args[0], args[1], idx)
        e = context.cast(builder, args[2], expected, arr.dtype)
        d = context.cast(builder, args[3], desired, arr.dtype)
        pair = builder.cmpxchg(ptr, e, d, _LLVM_ORDER[o], _CAS_FAIL[o])
        return builder.extract_value(pair, 0)

    return sig, codegen


def _make_rmw(op, doc):
    @intrinsic(prefer_literal=True)
    def rmw(typingctx, arr, idx, val, order):
        _check_array(f"atomic_{op}", arr)
        _check_index(f"atomic_{op}", idx)
        _check_value(f"atomic_{op}", val)
        o = _order(f"atomic_{op}", order, _RMW_ORDERS)
        sig = arr.dtype(arr, idx, val, order)

        def codegen(context, builder, signature, args):
            ptr = _elem_ptr(context, builder, arr, args[0], args[1], idx)
            v = context.cast(builder, args[2], val, arr.dtype)
            return builder.atomic_rmw(op, ptr, v, _LLVM_ORDER[o])

        return sig, codegen

    rmw.__doc__ = doc
    return rmw


atomic_xchg = _make_rmw("xchg", "Atomically store `val` in ``arr[idx]``; returns the old value.")
atomic_fetch_add = _make_rmw("add", "Atomic ``arr[idx] += val`` (wrapping); returns the old value.")
atomic_fetch_sub = _make_rmw("sub", "Atomic ``arr[idx] -= val`` (wrapping); returns the old value.")
atomic_fetch_and = _make_rmw("and", "Atomic ``arr[idx] &= val``; returns the old value.")
atomic_fetch_or = _make_rmw("or", "Atomic ``arr[idx] |= val``; returns the old value.")


@intrinsic(prefer_literal=True)
def fence(typingctx, order):
    """A memory fence (acquire/release/acq_rel/seq_cst).

    x86-64: only seq_cst emits an instruction (``mfence`` or a locked op); the others just
    stop compiler reordering. aarch64: ``dmb ishld`` / ``dmb ish``.
    """
    o = _order("fence", order, _FENCE_ORDERS)
    sig = types.void(order)

    def codegen(context, builder, signature, args):
        builder.fence(_LLVM_ORDER[o])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def compiler_barrier(typingctx):
    """Stop the compiler moving memory accesses across this point; emits no instruction.

    Used by the *unsynchronised* variants of the kernels so that the optimiser keeps the
    same loads in the same order as the synchronised ones (the difference measured is
    then the hardware's, not the optimiser's).
    """
    sig = types.void()

    def codegen(context, builder, signature, args):
        # C++'s atomic_signal_fence: orders memory accesses for the compiler only
        builder.fence("seq_cst", targetscope="singlethread")
        return context.get_dummy_value()

    return sig, codegen


# --------------------------------------------------------------------------- waiting


@intrinsic
def cpu_relax(typingctx):
    """Spin-loop hint: ``pause`` on x86 (lets the sibling hyper-thread run, saves power,
    avoids the memory-order machine clear on loop exit), ``yield`` on aarch64."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        # target intrinsics rather than inline asm: numba's JIT has no asm parser
        if _MACHINE in ("x86_64", "amd64", "i386", "i686"):
            fnty = ir.FunctionType(ir.VoidType(), [])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause")
            builder.call(fn, [])
        elif _MACHINE in ("aarch64", "arm64"):
            fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(32)])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.aarch64.hint")
            builder.call(fn, [ir.Constant(ir.IntType(32), 1)])  # 1 = YIELD
        # and a compiler barrier, so a spin loop re-reads memory every time
        builder.fence("seq_cst", targetscope="singlethread")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def sched_yield(typingctx):
    """``sched_yield(2)``: give the CPU to another runnable thread (returns nothing)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


#: backoff steps that spin (2**step pauses each) before it starts yielding the CPU
SPIN_LIMIT = 6
#: the step value from which :func:`backoff` only yields (caps the step counter)
YIELD_LIMIT = 10


@numba.njit(inline="always", **JIT)
def backoff(step):
    """One wait of an escalating backoff; returns the next step (crossbeam's ``Backoff``).

    Steps ``0..SPIN_LIMIT`` spin ``2**step`` ``pause``s (1 .. 64: a short critical section
    on another core is usually over by then); later steps call ``sched_yield`` so that a
    writer preempted while holding a cell (more threads than cores) gets the CPU back
    instead of readers burning whole time slices on it. Callers start at 0
    and keep the returned value: ``step = backoff(step)``.
    """
    if step <= SPIN_LIMIT:
        for _ in range(1 << step):
            cpu_relax()
    else:
        sched_yield()
    if step < YIELD_LIMIT:
        return step + 1
    return step


@intrinsic
def thread_pointer(typingctx):
    """The calling thread's thread pointer (``llvm.thread.pointer``: ``%fs:0`` on x86-64
    Linux, ``tpidr_el0`` on aarch64) as uint64: one register read, and a value no two
    live threads share. Kernels use it to spread counters over lines by thread."""
    sig = types.uint64()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(8).as_pointer(), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.thread.pointer")
        return builder.ptrtoint(builder.call(fn, []), ir.IntType(64))

    return sig, codegen


# --------------------------------------------------------------------------- clocks


@intrinsic
def cycles(typingctx):
    """The CPU cycle counter (``rdtsc`` on x86; ``cntvct_el0`` on aarch64) as uint64.

    Cheap (~20 cycles), monotonic per core on invariant-TSC machines; convert to time with
    a calibration against :func:`monotonic_ns` (see ``harness``)."""
    sig = types.uint64()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return sig, codegen


def _clock(name, clock_id, doc):
    @intrinsic
    def clock(typingctx):
        sig = types.int64()

        def codegen(context, builder, signature, args):
            i64 = ir.IntType(64)
            ts_t = ir.LiteralStructType([i64, i64])  # struct timespec on LP64 Linux
            ts = cgutils.alloca_once(builder, ts_t)
            fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32), ts_t.as_pointer()])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
            builder.call(fn, [ir.Constant(ir.IntType(32), clock_id), ts])
            sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
            nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
            return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

        return sig, codegen

    clock.__name__ = name
    clock.__doc__ = doc
    return clock


monotonic_ns = _clock("monotonic_ns", 1, "``clock_gettime(CLOCK_MONOTONIC)`` in nanoseconds as "
                      "int64 (nopython code has no ``time``).")
thread_cpu_ns = _clock("thread_cpu_ns", 3, "``clock_gettime(CLOCK_THREAD_CPUTIME_ID)``: the CPU "
                       "time the calling thread has run, ns.")


# --------------------------------------------------------------------------- word tuples


def _check_words(name, arr):
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.uint64 and arr.layout == "C"):
        raise TypingError(f"{name}: needs a C-contiguous 1-d uint64 array, got {arr}")


@intrinsic(prefer_literal=True)
def load_words(typingctx, arr, start, n, atomic):
    """``n`` words from ``arr[start:]`` as a UniTuple; relaxed atomic loads when `atomic`
    (the data copy of a seqlock read: plain loads there could be merged, split or hoisted
    out of the retry loop by the compiler). `n` and `atomic` are compile-time constants."""
    _check_words("load_words", arr)
    if not isinstance(n, types.IntegerLiteral) or not isinstance(atomic, (types.BooleanLiteral, types.IntegerLiteral)):
        raise TypingError("load_words: n and atomic must be compile-time constants")
    N = n.literal_value
    at = bool(atomic.literal_value)
    tupty = types.UniTuple(types.uint64, N)
    sig = tupty(arr, start, n, atomic)

    def codegen(context, builder, signature, args):
        ary = context.make_array(arr)(context, builder, args[0])
        st = context.cast(builder, args[1], start, types.intp)
        i64 = ir.IntType(64)
        vals = []
        for j in range(N):
            idx = builder.add(st, ir.Constant(st.type, j))
            ptr = cgutils.get_item_pointer(context, builder, arr, ary, [idx], wraparound=False)
            if at:
                vals.append(builder.load_atomic(ptr, "monotonic", align=8, typ=i64))
            else:
                vals.append(builder.load(ptr, align=8, typ=i64))
        return context.make_tuple(builder, tupty, vals)

    return sig, codegen


@intrinsic(prefer_literal=True)
def store_words(typingctx, arr, start, tup, atomic):
    """Store a UniTuple of words at ``arr[start:]``; relaxed atomic stores when `atomic`
    (the data write of a locked seqlock cell: readers may be copying it concurrently)."""
    _check_words("store_words", arr)
    if not (isinstance(tup, types.UniTuple) and tup.dtype == types.uint64):
        raise TypingError(f"store_words: expected a tuple of uint64 words, got {tup}")
    if not isinstance(atomic, (types.BooleanLiteral, types.IntegerLiteral)):
        raise TypingError("store_words: atomic must be a compile-time constant")
    N = tup.count
    at = bool(atomic.literal_value)
    sig = types.void(arr, start, tup, atomic)

    def codegen(context, builder, signature, args):
        ary = context.make_array(arr)(context, builder, args[0])
        st = context.cast(builder, args[1], start, types.intp)
        for j in range(N):
            v = builder.extract_value(args[2], j)
            idx = builder.add(st, ir.Constant(st.type, j))
            ptr = cgutils.get_item_pointer(context, builder, arr, ary, [idx], wraparound=False)
            if at:
                builder.store_atomic(v, ptr, "monotonic", align=8)
            else:
                builder.store(v, ptr, align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic(prefer_literal=True)
def zero_words(typingctx, n):
    """A UniTuple of ``n`` zero words (`n` a compile-time constant)."""
    if not isinstance(n, types.IntegerLiteral):
        raise TypingError("zero_words: n must be a compile-time constant")
    tupty = types.UniTuple(types.uint64, n.literal_value)
    sig = tupty(n)

    def codegen(context, builder, signature, args):
        z = ir.Constant(ir.IntType(64), 0)
        return context.make_tuple(builder, tupty, [z] * n.literal_value)

    return sig, codegen


@intrinsic
def plain_load(typingctx, arr, idx):
    """``arr[idx]`` as one plain (non-atomic) load, no negative-index wraparound.

    The unsynchronised (``SYNC=False``) branches of the kernels use this and
    :func:`plain_store` rather than ``arr[i]``: with a ``raw_words`` view, numba 0.68
    dropped a plain ``arr[i] = v`` inside a function that branches on ``lit(SYNC)``
    (found when PlainMap lost every unlock; ``tests/test_unsafe.py`` keeps the case)."""
    _check_array("plain_load", arr)
    _check_index("plain_load", idx)
    sig = arr.dtype(arr, idx)

    def codegen(context, builder, signature, args):
        ptr = _elem_ptr(context, builder, arr, args[0], args[1], idx)
        return builder.load(ptr, align=arr.dtype.bitwidth // 8)

    return sig, codegen


@intrinsic
def plain_store(typingctx, arr, idx, val):
    """``arr[idx] = val`` as one plain (non-atomic) store (see :func:`plain_load`)."""
    _check_array("plain_store", arr)
    _check_index("plain_store", idx)
    _check_value("plain_store", val)
    sig = types.void(arr, idx, val)

    def codegen(context, builder, signature, args):
        ptr = _elem_ptr(context, builder, arr, args[0], args[1], idx)
        builder.store(context.cast(builder, args[2], val, arr.dtype), ptr, align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return sig, codegen


# --------------------------------------------------------------------------- compile-time constants


def lit(x):
    """njit: the value of a literal-typed argument as a compile-time constant.

    Kernels take their layout (words per key, value and slot) and the SYNC switch as
    literal arguments, so that every helper they call is specialised on them: loops over
    key words unroll and ``if lit(SYNC):`` branches vanish from the unsynchronised build."""
    raise NotImplementedError("only callable from njit code")


@overload(lit, inline="always")
def _ov_lit(x):
    if isinstance(x, types.Literal):
        v = x.literal_value
        return lambda x: v
    raise TypingError(f"internal: expected a literal (compile-time constant), got {x}")


# --------------------------------------------------------------------------- bit casts


def _make_bitcast(src, dst, doc):
    @intrinsic
    def cast(typingctx, x):
        if x != src:
            raise TypingError(f"bit cast expects {src}, got {x}")
        sig = dst(x)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(dst))

        return sig, codegen

    cast.__doc__ = doc
    return cast


f64_bits = _make_bitcast(types.float64, types.uint64, "The bits of a float64 as uint64.")
bits_f64 = _make_bitcast(types.uint64, types.float64, "A uint64 reinterpreted as float64.")
f32_bits = _make_bitcast(types.float32, types.uint32, "The bits of a float32 as uint32.")
bits_f32 = _make_bitcast(types.uint32, types.float32, "A uint32 reinterpreted as float32.")


# --------------------------------------------------------------------------- raw memory

#: alignment of raw buffers: a cache-line pair (see config.CACHE_LINE)
RAW_ALIGN = 128
#: buffers of at least this many bytes are mapped straight from the kernel, start on a
#: huge-page boundary and offer their whole huge pages to the kernel (2 MiB on x86-64 and
#: aarch64 Linux)
HUGE_PAGE = 1 << 21
_PAGE = 4096
_MADV_HUGEPAGE = 14  # Linux <sys/mman.h>
_PROT_RW = 3  # PROT_READ | PROT_WRITE
_MAP_PRIVATE_ANON = 0x22  # MAP_PRIVATE | MAP_ANONYMOUS (Linux, x86-64 and aarch64)
_LINUX = platform.system() == "Linux"


def _libc_call(name, ret, args):
    """An intrinsic calling libc's `name`: ``ret`` and ``args`` are (numba type, LLVM type)
    pairs; pointer-typed parameters and results travel as uint64 addresses."""
    params = ", ".join(f"a{i}" for i in range(len(args)))

    def template(typingctx, *argtys):
        if not all(isinstance(a, types.Integer) for a in argtys):
            raise TypingError(f"{name}: expects {len(args)} integer arguments, got {argtys}")
        sig = ret[0](*argtys)

        def codegen(context, builder, signature, cargs):
            fnty = ir.FunctionType(ret[1], [a[1] for a in args])
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            vals = []
            for v, t, (nbt, lt) in zip(cargs, argtys, args):
                v = context.cast(builder, v, t, nbt)
                vals.append(builder.inttoptr(v, lt) if isinstance(lt, ir.PointerType) else v)
            r = builder.call(fn, vals)
            if isinstance(ret[1], ir.PointerType):
                return builder.ptrtoint(r, ir.IntType(64))
            if isinstance(ret[1], ir.VoidType):
                return context.get_dummy_value()
            return r

        return sig, codegen

    # intrinsics need a fixed arity: spell the parameters out
    ns = {"template": template}
    exec(f"def _libc_{name}(typingctx, {params}):\n    return template(typingctx, {params})", ns)
    return intrinsic(ns[f"_libc_{name}"])


_VP = (types.uint64, ir.IntType(8).as_pointer())
_I64 = (types.int64, ir.IntType(64))
_I32 = (types.int32, ir.IntType(32))
_mmap = _libc_call("mmap", _VP, [_VP, _I64, _I32, _I32, _I32, _I64])
_munmap = _libc_call("munmap", _I32, [_VP, _I64])
_madvise = _libc_call("madvise", _I32, [_VP, _I64, _I32])
_malloc_aligned = _libc_call("aligned_alloc", _VP, [_I64, _I64])
_free = _libc_call("free", (types.none, ir.VoidType()), [_VP])
_memset = _libc_call("memset", _VP, [_VP, _I32, _I64])


@numba.njit(**JIT)
def raw_size(nbytes):
    """The bytes :func:`raw_alloc` really reserves for a request of `nbytes`."""
    n = (numba.int64(nbytes) + (RAW_ALIGN - 1)) & ~numba.int64(RAW_ALIGN - 1)
    if n == 0:
        n = RAW_ALIGN
    if n >= HUGE_PAGE and _LINUX:
        n = (n + (_PAGE - 1)) & ~numba.int64(_PAGE - 1)
    return n


@numba.njit(**JIT)
def raw_alloc(nbytes):
    """Zero-filled memory of at least `nbytes`, 128-byte aligned; its address as uint64,
    or 0 when it cannot be had (callers raise ``MemoryError`` and leave their structure as
    it was). Invisible to numba's reference counting: only :func:`raw_free` releases it,
    given the same `nbytes`.

    Small buffers come from the C allocator and are zeroed here. Buffers of ``HUGE_PAGE``
    bytes and more (on Linux) are mapped from the kernel, which hands out pages that read as
    zero and are only zeroed for real when first written: allocating a 256 MiB table costs
    microseconds, and the page faults of its first touch fall on the threads that fill it,
    not on one thread up front (a resize spreads its copy, and with it those faults, over
    every thread that helps). They start on a huge page, and the whole huge pages they span
    are advised ``MADV_HUGEPAGE`` before anything touches them: a table is read at random,
    and with 4 KiB pages a 64 MiB table spans 16k pages, far more than the TLB holds, so a
    lookup could pay a page walk on top of its cache miss. The kernel honours the advice when
    transparent huge pages are in ``always`` or ``madvise`` mode and ignores it otherwise.
    Every table of the package, the baselines' too, is allocated here, so comparisons
    between them stay like for like (``numba.typed.Dict`` and ``dict`` allocate their own).
    """
    n = raw_size(nbytes)
    if n >= HUGE_PAGE and _LINUX:
        total = n + HUGE_PAGE
        p = _mmap(numba.uint64(0), total, numba.int32(_PROT_RW), numba.int32(_MAP_PRIVATE_ANON),
                  numba.int32(-1), numba.int64(0))
        if p == numba.uint64(0xFFFFFFFFFFFFFFFF) or p == 0:  # MAP_FAILED
            return numba.uint64(0)
        a = (p + numba.uint64(HUGE_PAGE - 1)) & ~numba.uint64(HUGE_PAGE - 1)
        head = numba.int64(a - p)
        if head > 0:
            _munmap(p, head)  # trim to exactly [a, a + n)
        tail = numba.int64(p + numba.uint64(total) - (a + numba.uint64(n)))
        if tail > 0:
            _munmap(a + numba.uint64(n), tail)
        whole = n & ~numba.int64(HUGE_PAGE - 1)
        _madvise(a, whole, numba.int32(_MADV_HUGEPAGE))  # advice only: failure is harmless
        return a
    align = HUGE_PAGE if n >= HUGE_PAGE else RAW_ALIGN
    a = _malloc_aligned(numba.int64(align), n)
    if a != 0:
        _memset(a, numba.int32(0), n)
    return a


@numba.njit(**JIT)
def raw_free(addr, nbytes):
    """Release memory from :func:`raw_alloc(nbytes) <raw_alloc>` (address 0 is ignored)."""
    if addr == 0:
        return
    n = raw_size(nbytes)
    if n >= HUGE_PAGE and _LINUX:
        _munmap(numba.uint64(addr), n)
    else:
        _free(numba.uint64(addr))


@intrinsic
def _u64_ptr(typingctx, addr):
    sig = types.CPointer(types.uint64)(addr)

    def codegen(context, builder, signature, args):
        a = context.cast(builder, args[0], addr, types.uint64)
        return builder.inttoptr(a, ir.IntType(64).as_pointer())

    return sig, codegen


@intrinsic
def prefetch(typingctx, addr):
    """Hint that the cache line at byte address ``addr`` will be read soon
    (``llvm.prefetch``: ``prefetcht0`` on x86, ``prfm pldl1keep`` on aarch64). A prefetch
    never faults, whatever the address: a stale or wrong one only wastes a fill."""
    if not isinstance(addr, types.Integer):
        raise TypingError(f"prefetch: an integer byte address, got {addr}")
    sig = types.void(addr)

    def codegen(context, builder, signature, args):
        a = context.cast(builder, args[0], addr, types.uint64)
        ptr = builder.inttoptr(a, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, highest temporal locality (keep in all levels), data cache
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(inline="always", **JIT)
def raw_words(addr, nwords):
    """A uint64 array view of `nwords` words at `addr` (no owner, no reference count)."""
    return numba.carray(_u64_ptr(addr), nwords)
