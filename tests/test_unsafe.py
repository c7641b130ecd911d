"""The CPU atomics of ``seqmap_nb._unsafe``: the emitted LLVM, type errors, stress, caching.

The IR tests are the deterministic proof that each intrinsic emits the instruction and
the ordering its docstring promises; the stress tests show the instructions are atomic
on this machine (with an unsynchronised variant of the same kernel as negative control);
the cache test shows ``cache=True`` works for functions that call intrinsics.
"""
import os
import re
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError

from conftest import run_threads, scaled
from seqmap_nb._unsafe import (
    atomic_cas,
    atomic_fetch_add,
    atomic_fetch_and,
    atomic_fetch_or,
    atomic_fetch_sub,
    atomic_load,
    atomic_store,
    atomic_xchg,
    backoff,
    bits_f32,
    bits_f64,
    compiler_barrier,
    cpu_relax,
    cycles,
    f32_bits,
    f64_bits,
    fence,
    monotonic_ns,
    prefetch,
    lit,
    plain_load,
    plain_store,
    raw_alloc,
    raw_free,
    raw_words,
    sched_yield,
)
from seqmap_nb._unsafe import HUGE_PAGE
from seqmap_nb.config import JIT

pytestmark = pytest.mark.timeout(300)

# ------------------------------------------------------------------ IR inspection


def _raw_ir(pyfunc, *args):
    """The LLVM IR numba's lowering emits for `pyfunc` (before LLVM's passes).

    The optimised module is not the right witness: the x86 backend expands an
    ``atomicrmw and``/``or`` whose result is used into a ``cmpxchg`` loop, so the IR
    our intrinsics emit is captured where numba hands it to the code library.
    """
    from numba.core.codegen import CPUCodeLibrary

    seen = []
    original = CPUCodeLibrary.add_ir_module

    def record(self, ir_module):
        if ir_module.name.startswith(pyfunc.__name__):  # not numba's runtime (NRT) module
            seen.append(str(ir_module))
        return original(self, ir_module)

    CPUCodeLibrary.add_ir_module = record
    try:
        numba.njit(pyfunc)(*args)  # a fresh dispatcher: always compiles, never cached
    finally:
        CPUCodeLibrary.add_ir_module = original
    return "\n".join(seen)


# operand of an atomic instruction: typed pointer (i64*) or opaque pointer (ptr)
_P = r"(?:i\d+\*|ptr)"
# an SSA value or constant operand
_V = r"(?:%[\w.\"]+|\d+)"


def _loads(a, b):
    return (
        atomic_load(a, 0, "relaxed")
        + atomic_load(a, 1, "acquire")
        + atomic_load(a, 2, "seq_cst")
        + atomic_load(b, 0, "acquire")
    )


def _stores(a, b):
    atomic_store(a, 0, 1, "relaxed")
    atomic_store(a, 1, 2, "release")
    atomic_store(a, 2, 3, "seq_cst")
    atomic_store(b, 0, 4, "release")


def _cas(a):
    return (
        atomic_cas(a, 0, 0, 1, "relaxed")
        + atomic_cas(a, 1, 0, 1, "acquire")
        + atomic_cas(a, 2, 0, 1, "release")
        + atomic_cas(a, 3, 0, 1, "acq_rel")
        + atomic_cas(a, 4, 0, 1, "seq_cst")
    )


def _rmw(a, b):
    return (
        atomic_xchg(a, 0, 5, "acq_rel")
        + atomic_fetch_add(a, 1, 5, "relaxed")
        + atomic_fetch_sub(a, 2, 5, "release")
        + atomic_fetch_and(a, 3, 5, "acquire")
        + atomic_fetch_or(a, 4, 5, "seq_cst")
        + atomic_fetch_add(b, 0, 5, "acq_rel")
    )


def _fences_and_hints():
    fence("acquire")
    fence("release")
    fence("acq_rel")
    fence("seq_cst")
    compiler_barrier()
    cpu_relax()
    sched_yield()
    return cycles() + numba.uint64(monotonic_ns())


def _one(ir, pattern):
    hits = re.findall(pattern, ir)
    assert hits, f"{pattern!r} not in the generated IR"
    return hits


def test_ir_atomic_loads_carry_their_ordering():
    ir = _raw_ir(_loads, np.zeros(4, np.int64), np.zeros(4, np.int32))
    _one(ir, rf"load atomic i64, {_P} %[\w.\"]+ monotonic, align 8")
    _one(ir, rf"load atomic i64, {_P} %[\w.\"]+ acquire, align 8")
    _one(ir, rf"load atomic i64, {_P} %[\w.\"]+ seq_cst, align 8")
    _one(ir, rf"load atomic i32, {_P} %[\w.\"]+ acquire, align 4")  # natural alignment


def test_ir_atomic_stores_carry_their_ordering():
    ir = _raw_ir(_stores, np.zeros(4, np.int64), np.zeros(4, np.int32))
    _one(ir, rf"store atomic i64 1, {_P} %[\w.\"]+ monotonic, align 8")
    _one(ir, rf"store atomic i64 2, {_P} %[\w.\"]+ release, align 8")
    _one(ir, rf"store atomic i64 3, {_P} %[\w.\"]+ seq_cst, align 8")
    _one(ir, rf"store atomic i32 {_V}, {_P} %[\w.\"]+ release, align 4")


def test_ir_cmpxchg_success_and_failure_orderings():
    ir = _raw_ir(_cas, np.zeros(8, np.int64))
    for success, failure in [
        ("monotonic", "monotonic"),
        ("acquire", "acquire"),
        ("release", "monotonic"),
        ("acq_rel", "acquire"),
        ("seq_cst", "seq_cst"),
    ]:
        _one(ir, rf"cmpxchg {_P} %[\w.\"]+, i64 0, i64 1 {success} {failure}")
    # strong CAS: the 'weak' keyword must not appear (no spurious failure)
    assert "cmpxchg weak" not in ir


def test_ir_read_modify_write_ops_and_orderings():
    ir = _raw_ir(_rmw, np.zeros(8, np.int64), np.zeros(8, np.int32))
    _one(ir, rf"atomicrmw xchg {_P} %[\w.\"]+, i64 5 acq_rel")
    _one(ir, rf"atomicrmw add {_P} %[\w.\"]+, i64 5 monotonic")
    _one(ir, rf"atomicrmw sub {_P} %[\w.\"]+, i64 5 release")
    _one(ir, rf"atomicrmw and {_P} %[\w.\"]+, i64 5 acquire")
    _one(ir, rf"atomicrmw or {_P} %[\w.\"]+, i64 5 seq_cst")
    _one(ir, rf"atomicrmw add {_P} %[\w.\"]+, i32 {_V} acq_rel")


def test_ir_fences_spin_hint_yield_and_clocks():
    ir = _raw_ir(_fences_and_hints)
    for order in ("acquire", "release", "acq_rel", "seq_cst"):
        _one(ir, rf"fence {order}\b")
    _one(ir, r'fence syncscope\("singlethread"\) seq_cst')  # compiler barrier: no instruction
    if os.uname().machine in ("x86_64", "amd64"):
        _one(ir, r'call void @"?llvm\.x86\.sse2\.pause"?\(\)')
    _one(ir, r'call i32 @"?sched_yield"?\(\)')
    _one(ir, r'call i64 @"?llvm\.readcyclecounter"?\(\)')
    _one(ir, r'call i32 @"?clock_gettime"?\(i32 1,')  # CLOCK_MONOTONIC


# ------------------------------------------------------------------ typing errors


def _compile_error(fn, *args):
    with pytest.raises(TypingError) as info:
        numba.njit(fn)(*args)
    return str(info.value)


def test_bad_ordering_literal_is_a_typing_error():
    a = np.zeros(2, np.int64)
    assert "not valid here" in _compile_error(lambda a: atomic_load(a, 0, "release"), a)
    assert "not valid here" in _compile_error(lambda a: atomic_store(a, 0, 1, "acquire"), a)
    assert "not valid here" in _compile_error(lambda a: atomic_fetch_add(a, 0, 1, "relaxd"), a)
    assert "not valid here" in _compile_error(lambda: fence("relaxed"))


def test_non_literal_ordering_is_a_typing_error():
    a = np.zeros(2, np.int64)
    msg = _compile_error(lambda a, o: atomic_load(a, 0, o), a, "acquire")
    assert "string literal" in msg


def test_bad_array_types_are_typing_errors():
    assert "integer array" in _compile_error(lambda a: atomic_load(a, 0, "relaxed"), np.zeros(2, np.float64))
    assert "integer array" in _compile_error(lambda a: atomic_load(a, 0, "relaxed"), np.zeros((2, 2), np.int64))
    strided = np.zeros(8, np.int64)[::2]  # not C-contiguous: layout 'A'
    assert "integer array" in _compile_error(lambda a: atomic_fetch_add(a, 0, 1, "relaxed"), strided)
    assert "index must be an integer" in _compile_error(lambda a: atomic_load(a, 0.5, "relaxed"), np.zeros(2, np.int64))
    assert "value must be an integer" in _compile_error(
        lambda a: atomic_store(a, 0, 1.5, "relaxed"), np.zeros(2, np.int64)
    )


# ------------------------------------------------------------------ semantics (one thread)


@numba.njit(**JIT)
def _semantics(a):
    r = np.zeros(8, np.int64)
    a[0] = 10
    r[0] = atomic_cas(a, 0, 10, 11, "acq_rel")  # succeeds: returns the old 10
    r[1] = atomic_cas(a, 0, 10, 12, "acq_rel")  # fails: returns the current 11
    r[2] = atomic_xchg(a, 0, 20, "acq_rel")  # 11
    r[3] = atomic_fetch_add(a, 0, 5, "relaxed")  # 20 -> 25
    r[4] = atomic_fetch_sub(a, 0, 3, "relaxed")  # 25 -> 22
    r[5] = atomic_fetch_and(a, 0, 6, "relaxed")  # 22 & 6 = 6
    r[6] = atomic_fetch_or(a, 0, 9, "relaxed")  # 6 | 9 = 15
    r[7] = atomic_load(a, 0, "acquire")
    return r


def test_single_thread_semantics():
    a = np.zeros(2, np.int64)
    assert _semantics(a).tolist() == [10, 11, 11, 20, 25, 22, 6, 15]


@numba.njit(**JIT)
def _bitcasts(x, y):
    return bits_f64(f64_bits(x)) == x, bits_f32(f32_bits(y)) == y, f64_bits(x)


def test_bitcasts_round_trip():
    same64, same32, bits = _bitcasts(1.5, np.float32(-2.25))
    assert same64 and same32
    assert bits == np.array(1.5).view(np.uint64)


@numba.njit(**JIT)
def _raw_roundtrip(n):
    addr = raw_alloc(n * 8)
    if addr == 0:
        return -1, False, False
    w = raw_words(addr, n)
    zero = True
    for i in range(n):
        zero = zero and w[i] == 0
        w[i] = i
    s = 0
    for i in range(n):
        s += w[i]
    aligned = addr % 128 == 0
    raw_free(addr, n * 8)
    return s, zero, aligned


def test_raw_memory_is_zeroed_and_aligned():
    s, zero, aligned = _raw_roundtrip(1000)
    assert s == sum(range(1000)) and zero and aligned


def _prefetches(a):
    prefetch(a.ctypes.data)
    prefetch(0)  # never faults, whatever the address
    prefetch(numba.uint64(0xDEAD0000DEAD0000))
    return a[0]


def test_prefetch_emits_a_read_hint_and_never_faults():
    _one(_raw_ir(_prefetches, np.ones(4)), r'call void @"?llvm\.prefetch\.p0"?\(' + _P + r' [^,]+, i32 0, i32 3, i32 1\)')
    assert numba.njit(_prefetches)(np.ones(4)) == 1.0


@numba.njit(**JIT)
def _raw_alloc_free(nbytes, touch):
    addr = raw_alloc(nbytes)
    if touch and addr != 0:
        raw_words(addr, nbytes // 8)[nbytes // 8 - 1] = 1
    return addr


def _anon_huge_kb(addr):
    """AnonHugePages of the mapping that holds `addr` (/proc/self/smaps)."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "AnonHugePages:":
                return int(line.split()[1])
    return 0


def _thp_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return re.search(r"\[(\w+)\]", f.read()).group(1)
    except OSError:
        return "absent"


def _thp_fallbacks():
    with open("/proc/vmstat") as f:
        return sum(int(v) for k, v in (line.split() for line in f) if k == "thp_fault_fallback")


def test_large_raw_buffers_are_huge_page_aligned_and_advised():
    """Buffers of 2 MiB and up start on a huge page and get huge pages where the kernel
    offers them on request (THP ``madvise`` mode; ``always`` gives them to any mapping, so
    the control is only meaningful in ``madvise`` mode)."""
    n = 8 * HUGE_PAGE
    small = _raw_alloc_free(HUGE_PAGE - 128, False)
    assert small % 128 == 0
    _free(small, HUGE_PAGE - 128)
    mode = _thp_mode()
    before = _thp_fallbacks() if mode != "absent" else 0
    addr = _raw_alloc_free(n, True)
    try:
        assert addr != 0 and addr % HUGE_PAGE == 0
        if mode not in ("madvise", "always"):
            pytest.skip(f"transparent huge pages are {mode!r} here: alignment checked only")
        if _thp_fallbacks() != before:
            pytest.skip("the kernel had no free huge page (thp_fault_fallback rose): alignment checked only")
        assert _anon_huge_kb(addr) >= 2048, "a 16 MiB table was given no huge page"
        if mode == "madvise":
            # negative control: the same size from the C allocator without the advice
            import ctypes

            libc = ctypes.CDLL(None)
            libc.aligned_alloc.restype = ctypes.c_void_p
            libc.aligned_alloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
            other = libc.aligned_alloc(HUGE_PAGE, n)
            ctypes.memset(other, 0, n)
            try:
                assert _anon_huge_kb(other) == 0, "without the advice the detector still saw huge pages"
            finally:
                libc.free(ctypes.c_void_p(other))
    finally:
        _free(addr, n)


@numba.njit(**JIT)
def _free(addr, nbytes):
    raw_free(addr, nbytes)


def test_large_raw_buffers_are_mapped_lazily():
    """A big buffer is reserved, not touched: its pages are the kernel's zero pages until
    written, so allocating it costs no first-touch time and the threads that fill it pay
    for the pages they fill (a resize's helpers share that cost)."""
    n = 64 * HUGE_PAGE

    def rss_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    before = rss_kb()
    addr = _raw_alloc_free(n, False)
    try:
        assert addr % HUGE_PAGE == 0
        assert rss_kb() - before < n // 1024 // 4, "a 128 MiB buffer was touched at allocation"
        assert _raw_roundtrip(1000)[1]  # and it reads as zeros (small buffers are zeroed)
    finally:
        _free(addr, n)


def _lit_branch_store(SYNC):
    @numba.njit(inline="always")
    def put(words, i, v, SYNC):
        if lit(SYNC):
            atomic_store(words, i, v, "release")
        else:
            plain_store(words, i, v)

    @numba.njit
    def run(addr):
        w = raw_words(addr, 8)
        put(w, 2, numba.uint64(20), SYNC)
        return plain_load(w, 2)

    return run


def test_plain_store_survives_a_literal_branch():
    """numba 0.68 dropped a plain ``arr[i] = v`` inside a function branching on
    ``lit(SYNC)`` when ``arr`` is a ``raw_words`` view (every unlock of PlainMap was lost);
    the kernels' unsynchronised branches use plain_store, which must store."""
    for sync in (True, False):
        a = np.zeros(8, np.uint64)
        assert _lit_branch_store(sync)(a.ctypes.data) == 20 and a[2] == 20


@numba.njit(**JIT)
def _backoff_steps(n):
    step = 0
    out = np.zeros(n, np.int64)
    for k in range(n):
        step = backoff(step)
        out[k] = step
    return out


def test_backoff_escalates_then_saturates():
    steps = _backoff_steps(20)
    assert steps[0] == 1 and (np.diff(steps) >= 0).all() and steps[-1] == steps[-2]


# ------------------------------------------------------------------ stress


@numba.njit(inline="always", **JIT)
def _start_gate(gate, threads):
    """Every thread announces itself, then spins until all have: the loops that follow
    really overlap (thread start-up in Python is slower than a short loop)."""
    atomic_fetch_add(gate, 0, 1, "acq_rel")
    step = 0
    while atomic_load(gate, 0, "acquire") < threads:
        step = backoff(step)


@numba.njit(**JIT)
def _bump(a, n, atomic, gate, threads):
    """n increments of a[0]: atomic fetch_add, or (control) a relaxed load then store."""
    _start_gate(gate, threads)
    for _ in range(n):
        if atomic:
            atomic_fetch_add(a, 0, 1, "relaxed")
        else:  # a window between load and store: a thread preempted in it loses the
            v = atomic_load(a, 0, "relaxed")  # other's increments even when both share a core
            cpu_relax()
            atomic_store(a, 0, v + 1, "relaxed")


def _run_bump(threads, n, atomic):
    a = np.zeros(2, np.int64)
    gate = np.zeros(2, np.int64)
    run_threads([lambda: _bump(a, n, atomic, gate, threads)] * threads)
    return int(a[0])


@pytest.mark.parametrize("threads", [2, 8])
def test_fetch_add_from_many_threads_is_exact(threads):
    n = scaled(200_000)
    assert _run_bump(threads, n, True) == threads * n


def test_load_then_store_loses_updates_control():
    """Negative control: the same kernel without the atomic RMW loses increments when two
    threads really run at once. On a shared 2-core machine the overlap is not guaranteed
    in one try, so a few tries are allowed; losing none in all of them fails the test
    (the stress above would then prove nothing)."""
    lost = _until_lost(lambda n: 2 * n - _run_bump(2, n, False), scaled(1_000_000, 100_000))
    assert lost > 0


#: tries of a negative control before it counts as failed. A try shows lost updates
#: only if the two threads really overlap; with another process busy on one of the two
#: cores, short tries (a few ms) all ran one thread after the other (seen: 30 of 30). So
#: each failed try doubles the work per thread, up to tries far longer than a scheduler
#: time slice, where the threads must interleave.
_CONTROL_TRIES = 12


def _until_lost(trial, n):
    for i in range(_CONTROL_TRIES):
        lost = trial(n << min(i, 8))
        if lost > 0:
            return lost
    return 0


@numba.njit(**JIT)
def _locked_increments(lk, counter, n, use_lock, gate, threads):
    """A CAS spinlock (with backoff) around a plain, non-atomic increment."""
    _start_gate(gate, threads)
    for _ in range(n):
        if use_lock:
            step = 0
            while atomic_cas(lk, 0, 0, 1, "acquire") != 0:
                step = backoff(step)
        v = counter[0]  # plain load ...
        if not use_lock:  # ... a window, and a separate plain store (not one ``add [mem], 1``,
            cpu_relax()  # which no preemption splits): the unlocked control loses updates
        counter[0] = v + 1  # on one core too (the suite runs beside another test process)
        compiler_barrier()
        if use_lock:
            atomic_store(lk, 0, 0, "release")


def _run_locked(threads, n, use_lock):
    lk = np.zeros(2, np.int64)
    counter = np.zeros(2, np.int64)
    gate = np.zeros(2, np.int64)
    run_threads([lambda: _locked_increments(lk, counter, n, use_lock, gate, threads)] * threads)
    assert lk[0] == 0
    return int(counter[0])


@pytest.mark.parametrize("threads", [2, 16])
def test_cas_spinlock_protects_a_plain_counter(threads):
    n = scaled(100_000)
    assert _run_locked(threads, n, True) == threads * n


def test_unlocked_plain_counter_loses_updates_control():
    lost = _until_lost(lambda n: 2 * n - _run_locked(2, n, False), scaled(1_000_000, 100_000))
    assert lost > 0


# ------------------------------------------------------------------ caching

_CACHE_SCRIPT = textwrap.dedent(
    """
    import numba, numpy as np
    from seqmap_nb._unsafe import atomic_cas, atomic_fetch_add, atomic_load, fence

    @numba.njit(cache=True, nogil=True)
    def kernel(a, n):
        for _ in range(n):
            atomic_fetch_add(a, 0, 1, "relaxed")
        fence("seq_cst")
        atomic_cas(a, 1, 0, 7, "acq_rel")
        return atomic_load(a, 0, "acquire") + a[1]

    a = np.zeros(2, np.int64)
    r = kernel(a, 5)
    print(r, sum(kernel.stats.cache_hits.values()), sum(kernel.stats.cache_misses.values()))
    """
)


def test_cache_true_works_for_functions_using_intrinsics(tmp_path):
    script = tmp_path / "uses_intrinsics.py"
    script.write_text(_CACHE_SCRIPT)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("NUMBA_DISABLE_JIT", None)

    def run():
        out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240)
        assert out.returncode == 0, out.stderr
        return [int(x) for x in out.stdout.split()]

    first = run()
    second = run()
    assert first == [12, 0, 1]  # compiled, then saved
    assert second == [12, 1, 0]  # loaded from the cache, nothing compiled
    assert any(p.suffix == ".nbi" for p in (tmp_path / "cache").rglob("*"))
