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
:func:`backoff` (spin, then give the CPU away: HAZARDS 5), :func:`cycles`
(``llvm.readcyclecounter``) and :func:`monotonic_ns` (``clock_gettime``), bit casts
between floats and integers, and raw aligned memory (:func:`raw_alloc`,
:func:`raw_free`, :func:`raw_words`) for table buffers that must never be freed under a
reader's feet by reference counting (HAZARDS 1: see ``_seqlock``).
"""
import platform

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

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
    instead of readers burning whole time slices on it (HAZARDS 5). Callers start at 0
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


@intrinsic
def monotonic_ns(typingctx):
    """``clock_gettime(CLOCK_MONOTONIC)`` in nanoseconds as int64 (numba has no clock, HAZARDS 10)."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        ts_t = ir.LiteralStructType([i64, i64])  # struct timespec on LP64 Linux
        ts = cgutils.alloca_once(builder, ts_t)
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32), ts_t.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        builder.call(fn, [ir.Constant(ir.IntType(32), 1), ts])  # 1 = CLOCK_MONOTONIC
        sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    return sig, codegen


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
#: buffers of at least this many bytes start on a huge-page boundary and offer their
#: whole huge pages to the kernel (2 MiB on x86-64 and aarch64 Linux)
HUGE_PAGE = 1 << 21
_MADV_HUGEPAGE = 14  # Linux <sys/mman.h>
_LINUX = platform.system() == "Linux"


@intrinsic
def raw_alloc(typingctx, nbytes):
    """Zero-filled memory of at least `nbytes` (rounded up to 128), 128-byte aligned; its
    address as uint64.

    Returns 0 when the allocation fails (callers raise ``MemoryError`` and leave their
    structure as it was). Memory comes from ``posix_memalign`` and is invisible to numba's
    reference counting: only :func:`raw_free` releases it.

    Buffers of ``HUGE_PAGE`` bytes and more are aligned to a huge page and, on Linux, the
    whole huge pages they contain are advised ``MADV_HUGEPAGE`` before they are first
    touched (the tail stays in small pages, so no memory is added). A table is read at
    random: with 4 KiB pages a 64 MiB table spans 16k pages, far more than the TLB
    holds, and a lookup can pay a page walk on top of its cache miss. The kernel honours
    the advice when transparent huge pages are in ``always`` or ``madvise`` mode
    (``/sys/kernel/mm/transparent_hugepage/enabled``) and ignores it otherwise. Every
    table of the package, the baselines' too, is allocated here, so comparisons between
    them stay like for like (``numba.typed.Dict`` and ``dict`` allocate their own).
    """
    if not isinstance(nbytes, types.Integer):
        raise TypingError(f"raw_alloc: nbytes must be an integer; got {nbytes}")
    sig = types.uint64(nbytes)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        n = context.cast(builder, args[0], nbytes, types.uint64)
        mask = ir.Constant(i64, RAW_ALIGN - 1)
        size = builder.and_(builder.add(n, mask), builder.not_(mask))
        size = builder.select(builder.icmp_unsigned("==", size, ir.Constant(i64, 0)),
                              ir.Constant(i64, RAW_ALIGN), size)
        huge = builder.icmp_unsigned(">=", size, ir.Constant(i64, HUGE_PAGE))
        align = builder.select(huge, ir.Constant(i64, HUGE_PAGE), ir.Constant(i64, RAW_ALIGN))
        out = cgutils.alloca_once_value(builder, cgutils.voidptr_t(None))
        fnty = ir.FunctionType(i32, [out.type, i64, i64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "posix_memalign")
        rc = builder.call(fn, [out, align, size])
        ptr = builder.select(builder.icmp_signed("==", rc, ir.Constant(i32, 0)),
                             builder.load(out), cgutils.voidptr_t(None))
        with builder.if_then(cgutils.is_not_null(builder, ptr)):
            if _LINUX:
                with builder.if_then(huge):
                    whole = builder.and_(size, ir.Constant(i64, ~(HUGE_PAGE - 1) & (2**64 - 1)))
                    mfnty = ir.FunctionType(i32, [cgutils.voidptr_t, i64, i32])
                    madvise = cgutils.get_or_insert_function(builder.module, mfnty, "madvise")
                    builder.call(madvise, [ptr, whole, ir.Constant(i32, _MADV_HUGEPAGE)])  # advice only
            cgutils.memset(builder, ptr, size, 0)
        return builder.ptrtoint(ptr, i64)

    return sig, codegen


@intrinsic
def raw_free(typingctx, addr):
    """Release memory from :func:`raw_alloc` (0 is ignored)."""
    if not isinstance(addr, types.Integer):
        raise TypingError(f"raw_free: addr must be an integer; got {addr}")
    sig = types.void(addr)

    def codegen(context, builder, signature, args):
        a = context.cast(builder, args[0], addr, types.uint64)
        ptr = builder.inttoptr(a, cgutils.voidptr_t)
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "free")
        builder.call(fn, [ptr])
        return context.get_dummy_value()

    return sig, codegen


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
