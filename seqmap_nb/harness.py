"""The benchmark harness: thread runner, verification, metrics, sweeps and the probe study.

What one run does (:func:`run`, per repetition)
===============================================
1. **Generate** every thread's operation stream (:mod:`seqmap_nb.workloads`): numpy arrays
   of op codes, keys, values and expected outcomes. Untimed.
2. **Warm up** (once per call): build a small map of the same type, run the kernel, the
   batch calls and the statistics on it. Every kernel is compiled (or loaded from the
   on-disk cache) here; the time is reported as ``compile_s``, never inside a measurement.
3. **Build and prefill** a fresh map (``insert_many``, untimed) and snapshot its
   statistics counters. The ``grow`` workload builds the map at its default (small)
   capacity and prefills nothing: every doubling happens inside the clock.
4. **Run**: one Python thread per stream, each calling ONE ``nogil`` jitted kernel
   (:func:`_kernel`, generic over every map type: it compiles once per map type and is
   cached) that walks the whole stream. Inside the kernel each thread announces itself
   (``fetch_add`` on an arrival counter) and waits for the start flag, first spinning,
   then sleeping in 20 us steps, so that threads already waiting burn no CPU while the
   others are still being started (with 1024 threads on 2 cores, spinning waiters would
   starve the thread that starts the rest). When all have arrived the main thread reads
   the clock and raises the flag (release store); each thread reads the clock when it
   sees it and again after its last op. ``seconds`` runs from that release to the last
   thread's finish. No GIL is taken between release and finish: arguments are unboxed
   before the wait, results boxed after the last clock read.
5. **Verify** (every run, :func:`verify`): the kernel counts operations whose outcome
   disagrees with the stream's expectation (a hit that should miss, a value that does not
   belong to its key or, with disjoint keys, is not the last one written); afterwards the
   final table is compared with what the streams imply. ``verified`` is False, with the
   reason in ``verify_detail``, when anything disagrees.
6. **Measure**: throughput, ns per op per thread, sampled latency percentiles, the longest
   stall, seqlock statistics deltas, resizes, table size (``slots``) and memory.

Latency sampling and the longest stall
======================================
With ``sample_every = N`` (default 64) the kernel reads the CPU cycle counter
(``_unsafe.cycles``: ``rdtsc`` on x86-64 with an invariant TSC) just before and just after
every N-th op: the difference is that op's latency sample. The N-1 ops between two
samples run in an inner loop without any clock code. Reading the counter around every op
would cost far more than the op: it stops the overlap of one lookup's cache misses with
the next one's (measured: a SeqMap lookup at 2^20 slots went from 48 to 79 ns). Even two
reads per N ops are not free: with any counter read in the loop, SeqMap's read_heavy op at
2^20 slots costs about 6-8 ns more (13-15%), DashMap's about 5 ns (7%), whether the read
sits behind a branch in the plain loop or outside the inner loop as here, while the
null map pays nothing (it touches no memory): the tax is in how the map's loads overlap
around the counter read, and it differs between maps. Throughput comparisons that must
be free of it run with ``sample_every=0`` (``seqmap-nb bench --sample-every 0``).

The **longest stall** (``max_stall_ns``) comes from the same reads: consecutive counter
reads of a thread split its run into intervals, each holding either one sampled op or
the N-1 ops between two samples, so every op lies in exactly one interval, and the
longest interval of any thread bounds the longest time one op took from above. A stall
(a stop-the-world resize, a lock holder preempted, the thread itself descheduled) shows
up whole; ordinary ops add at most N-1 times their usual latency (a few microseconds).

Cycles become ns with a calibration against ``monotonic_ns`` over 20 ms (once per
process), minus the median cost of reading the counter (the sample's own overhead). The
**timer resolution** (``timer_res_ns``, in every row) is the smallest step between two
back-to-back counter reads, measured on the machine: nothing shorter can be told apart.
A percentile below it is recorded as the resolution itself and named in
``lat_below_res`` (read it as "at most this"), never as 0. ``sample_every=0`` selects a
kernel without any clock code at all (the flag picks the compiled function, not a
branch): no percentiles, no ``max_stall_ns``.

Python-level maps (``njit=False`` in the registry, e.g. ``dict_lock``) run the same
streams through a Python loop per thread, started by a ``threading.Barrier``, sampled
the same way with ``time.perf_counter_ns`` (whose resolution there is the cost of a
Python call, about 100 ns, small next to a Python-level op).

The harness's own cost
======================
The ``null`` map (``baselines.INSTRUMENTS``) touches no table: its ns per op is what the
kernel itself spends (stream loads, dispatch, outcome checks, sampling); :func:`sweep`
records it with every sweep. It answers every op "absent", so :func:`verify` checks it
by its predictable mismatches instead of its contents.

Where a read_heavy op's time goes at 1 thread and 2^20 slots (``python
data/harness_cost/run.py``: medians of 7 interleaved rounds of 4M ops, 2-core Intel Xeon
VM): an njit loop of ``m.get`` over present keys at load 0.5, what ``seqmap-nb micro``
times, 19 ns; the same loop over the read_heavy stream's keys on the map the harness
builds (load 0.75, many misses: longer probes) 34 ns; through the harness's per-op checks
39 ns; the same on a map and streams built just before (as every repetition builds them)
47 ns, which is what ``run`` measures with sampling off (48 ns: the thread and start
barrier add ~1 ns); with sampling every 64th op 56 ns. The null map: 2.6 ns off, 2.0 ns
sampled, 3-5% of SeqMap's.

Capability refusals: a map that cannot run a point (more threads than it supports, a
mix with removes on a map without them, ...) raises :class:`UnsupportedRun`, a
``ValueError`` whose message says why; :func:`sweep` skips those points and warns.
"""
from __future__ import annotations

import importlib
import inspect
import itertools
import json
import math
import os
import threading
import time
import warnings

import numba
import numpy as np
import pandas as pd
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import results as _results
from . import workloads as W
from ._unsafe import atomic_fetch_add, atomic_load, atomic_store, cpu_relax, cycles, monotonic_ns, thread_cpu_ns
from .config import JIT, LINE_WORDS

__all__ = ["run", "sweep", "run_points", "supported", "probe_study", "verify", "precompile", "UnsupportedRun",
           "MAX_THREADS", "resolve_spec", "DEFAULT_MAPS", "DEFAULT_CAPACITY", "known_maps",
           "cycle_calibration"]

#: the most threads one run may start (oversubscription is a supported case up to here)
MAX_THREADS = 4096
#: maps of the default sweeps, in chart order: the registry's list (``baselines.default_maps``;
#: ``cas`` has no delete, so it runs none of the default workloads; name it to run it on
#: the ones it can)
from .baselines import default_maps as _default_maps  # noqa: E402 (the registry imports nothing heavy)

DEFAULT_MAPS = _default_maps()
#: the capacity of a run that names none (``grow`` builds the map at the map's own default)
DEFAULT_CAPACITY = 1 << 16
#: key and value dtypes the harness streams can drive (64-bit integers: values carry a tag)
STREAM_DTYPES = ("uint64", "int64")


class UnsupportedRun(ValueError):
    """This map cannot run this point (the message says why); sweeps skip such points."""


# =========================================================================== map specs


def known_maps():
    """{name: MapSpec} of every map the harness runs by name: the registry, then ``null``."""
    from .baselines import INSTRUMENTS, REGISTRY

    return {**REGISTRY, **INSTRUMENTS}


def resolve_spec(map):
    """A registry MapSpec from a name, or a spec-like object passed through unchanged."""
    if not isinstance(map, str):
        for attr in ("name", "factory", "njit", "check"):
            if not hasattr(map, attr):
                raise TypeError(f"map: expected a registry name or a MapSpec, got {map!r}")
        return map
    known = known_maps()
    try:
        return known[map]
    except KeyError:
        raise ValueError(f"map: unknown name {map!r}; known: {sorted(known)}") from None


def _factory(spec):
    f = spec.factory
    if callable(f):
        return f
    mod, _, attr = str(f).partition(":")
    return getattr(importlib.import_module(mod), attr)


def _make(spec, key_dtype, value_dtype, capacity, options):
    """A new map; ``capacity=None`` builds it at the map's own default capacity."""
    if capacity is None:
        return _factory(spec)(key_dtype, value_dtype, **options)
    return _factory(spec)(key_dtype, value_dtype, capacity=capacity, **options)


def _slots_of(m):
    """The table size in slots: ``m.slots`` where the map has it, else ``m.capacity``.

    Maps whose ``capacity`` means entries held without growing report their table size as
    ``slots``; where a map has only ``capacity``, that is its slot count."""
    v = getattr(m, "slots", None)
    if v is None:
        v = getattr(m, "capacity", None)
    try:
        return int(v)
    except (TypeError, ValueError):
        return math.nan


def _build_for_slots(spec, key_dtype, value_dtype, slots, options):
    """(capacity argument, map) for a table of `slots` slots, whichever way the map reads
    its capacity argument (slots, or entries held at its ``max_load``).

    First ask for the entries `slots` hold at the ``max_load`` in `options` (or for
    `slots` itself when the map takes no max_load), then read the real slot count back and
    scale the request by wanted / real until they agree (a few tries at most: a map that
    rounds to powers of two gets there in one). The caller fills relative to the slots the
    map really has, so a map that cannot be sized exactly is still measured at its fill.
    """
    ml = options.get("max_load")
    request = max(1, int(slots * ml)) if ml else slots
    tried = set()
    while True:
        m = _make(spec, key_dtype, value_dtype, request, options)
        real = _slots_of(m)
        tried.add(request)
        if not real == real or real < 1 or real == slots or len(tried) >= 4:
            return request, m
        nxt = max(1, int(request * slots / real)) if real > slots else -(-request * slots // real)
        if nxt in tried:
            return request, m
        del m
        request = nxt


def _capacity_of(m):
    try:
        return int(getattr(m, "capacity"))
    except (AttributeError, TypeError, ValueError):
        return math.nan


# =========================================================================== in-kernel parts

# control block shared by the threads of one run: arrival counter and start flag on their
# own 128-byte lines (arrivals write one line while every waiter polls the other)
_ARRIVED = 0
_SLEEP_CAP = 1  # longest sleep of a waiting thread, us (written before any thread starts)
_GO = LINE_WORDS
_CTL_WORDS = 2 * LINE_WORDS
_GO_RUN = 1
_GO_ABORT = 2


@intrinsic
def _usleep(typingctx, us):
    """libc ``usleep(us)``: give the CPU away for a while (used only before the clock)."""
    sig = types.int32(types.uint32)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "usleep")
        return builder.call(fn, [args[0]])

    return sig, codegen


@numba.njit(**JIT)
def _arrive_and_wait(ctl):
    """Announce this thread, wait for the start flag; True to run, False when aborted."""
    # relaxed is enough for the count: the main thread only compares it with T
    atomic_fetch_add(ctl, _ARRIVED, numba.uint64(1), "relaxed")
    cap = numba.uint32(ctl[_SLEEP_CAP])
    spins = 0
    nap = numba.uint32(10)
    while True:
        # acquire pairs with the release store of _release: nothing the main thread did
        # before raising the flag (it touches no shared data) can be reordered after it
        g = atomic_load(ctl, _GO, "acquire")
        if g != 0:
            return g == _GO_RUN
        if spins < 64:
            cpu_relax()
            spins += 1
        else:
            # doubling naps up to the cap: hundreds of waiters must not starve the threads
            # still being started, yet a few waiters must start promptly
            _usleep(nap)
            if nap < cap:
                nap = min(cap, nap * numba.uint32(2))


@numba.njit(**JIT)
def _release(ctl, how):
    """Read the clock, then raise the start flag (release store); returns the clock."""
    t = monotonic_ns()
    atomic_store(ctl, _GO, numba.uint64(how), "release")
    return t


@numba.njit(**JIT)
def _clock_pair():
    return monotonic_ns(), cycles()


@numba.njit(**JIT)
def _cycle_overhead(n):
    out = np.empty(n, np.uint64)
    for i in range(n):
        a = cycles()
        b = cycles()
        out[i] = b - a
    return out


@numba.njit(inline="always", **JIT)
def _value_ok(r, expect, mask, lenient):
    """r (an Optional the caller checked) equals expect under mask (all in the value dtype)."""
    if ((r ^ expect) & mask) == 0:
        return True
    # lenient (rmw with removes): an add on an absent key starts a tagless value
    return lenient and (r & mask) == 0


@numba.njit(inline="always", **dict(JIT, cache=False))
def _outcome_ok(r, e, v, mask, lenient):
    """An op that returned `r` (None or a value) where the stream expects `e` (1 present,
    0 absent, -1 either) and the value `v` under `mask`."""
    if r is None:
        return e != 1
    if e == 0:
        return False
    return _value_ok(r, v, mask, lenient)


# Inlined into the kernel at the numba IR level, not called: a call that passes the map
# makes numba take a reference to the map's arrays around it (NRT_incref/decref, two
# atomic RMWs on one cache line that every thread shares: a contended counter on every
# op, which caps read scaling). Not cached on its own either: its cache index would hold
# every map type it ever saw, including types of modules another process cannot import
# (_kernels_for).
@numba.njit(inline="always", **dict(JIT, cache=False))
def _apply(m, op, k, v, e, vmask, tmask, lenient):
    """Do one stream op on the map; True when its outcome is the expected one.

    e: 1 = the key must be present, 0 = absent, -1 = either. A value that comes back (a
    get's, an insert's or remove's previous one) must equal v under vmask (get) or carry
    v's key tag (tmask: insert/remove, whose v is the new value).
    """
    if op == 0:  # K_GET
        return _outcome_ok(m.get(k), e, v, vmask, lenient)
    elif op == 1:  # K_INSERT
        return _outcome_ok(m.insert(k, v), e, v, tmask, lenient)
    elif op == 2:  # K_REMOVE
        return _outcome_ok(m.remove(k), e, v, tmask, lenient)
    elif op == 3:  # K_ADD
        m.add(k, v)
        return True
    else:  # K_CONTAINS
        c = m.contains(k)
        if c:
            return e != 0
        return e != 1


@numba.njit(inline="always", **dict(JIT, cache=False))  # inlined and uncached, as _apply
def _walk(m, ops, keys, vals, exp, vmask, tmask, lenient, lo, hi, bad, first):
    """Ops lo..hi-1 of a stream, no clock code inside; returns (bad, first) updated: the
    count of mismatches and the index of the first."""
    for i in range(lo, hi):
        if not _apply(m, ops[i], keys[i], vals[i], exp[i], vmask, tmask, lenient):
            if bad == 0:
                first = i
            bad += 1
    return bad, first


@numba.njit(**JIT)
def _kernel(m, ctl, ops, keys, vals, exp, vmask, tmask, lenient):
    """Walk one thread's stream: (start_ns, end_ns, mismatches, first mismatch index, ran,
    thread CPU ns, longest interval in cycles: 0, nothing is timed here)."""
    if not _arrive_and_wait(ctl):
        return 0, 0, 0, -1, 0, 0, numba.uint64(0)
    cpu0 = thread_cpu_ns()
    t0 = monotonic_ns()
    bad, first = _walk(m, ops, keys, vals, exp, vmask, tmask, lenient, 0, ops.shape[0], 0, -1)
    t1 = monotonic_ns()
    return t0, t1, bad, first, 1, thread_cpu_ns() - cpu0, numba.uint64(0)


@numba.njit(**JIT)
def _kernel_sampled(m, ctl, ops, keys, vals, exp, vmask, tmask, lenient, lat, every):
    """:func:`_kernel` that reads the cycle counter around every `every`-th op.

    lat[j] gets the cycles of op j*every; the last value returned is the longest interval
    between two consecutive counter reads (one sampled op, or the every-1 ops between two
    samples): see "Latency sampling and the longest stall" in the module docstring.
    """
    if not _arrive_and_wait(ctl):
        return 0, 0, 0, -1, 0, 0, numba.uint64(0)
    cpu0 = thread_cpu_ns()
    t0 = monotonic_ns()
    bad = 0
    first = -1
    n = ops.shape[0]
    nlat = lat.shape[0]
    j = 0
    longest = numba.uint64(0)
    prev = cycles()
    i = 0
    while i < n:
        c0 = cycles()
        bad, first = _walk(m, ops, keys, vals, exp, vmask, tmask, lenient, i, i + 1, bad, first)
        c1 = cycles()
        if j < nlat:
            lat[j] = c1 - c0
            j += 1
        longest = max(longest, c0 - prev, c1 - c0)
        prev = c1
        # the ops up to the next sample: the unsampled kernel's loop, no clock code inside
        end = min(i + every, n)
        bad, first = _walk(m, ops, keys, vals, exp, vmask, tmask, lenient, i + 1, end, bad, first)
        i = end
    longest = max(longest, cycles() - prev)
    t1 = monotonic_ns()
    return t0, t1, bad, first, 1, thread_cpu_ns() - cpu0, longest


# The same kernels without the on-disk cache, for map types defined outside this package
# (a notebook's or a test's own map): a cache index entry holds the map's numba type, and
# one pickled from a module another process cannot import would break the cached kernel
# for everyone.
_NOCACHE = dict(JIT, cache=False)
_kernel_nc = numba.njit(**_NOCACHE)(_kernel.py_func)
_kernel_sampled_nc = numba.njit(**_NOCACHE)(_kernel_sampled.py_func)


def _kernels_for(m):
    if type(m).__module__.split(".")[0] == __name__.split(".")[0]:
        return _kernel, _kernel_sampled
    return _kernel_nc, _kernel_sampled_nc


_CAL = {}


def cycle_calibration():
    """(ns per cycle, overhead cycles of one counter read, resolution in cycles), measured
    once per process.

    Overhead: the median difference of two back-to-back reads (subtracted from every
    sample). Resolution: the smallest positive such difference, the finest step the
    counter shows between two reads (on some virtual machines ~25 cycles, not 1).
    """
    if not _CAL:
        _clock_pair()
        _cycle_overhead(16)
        n0, c0 = _clock_pair()
        time.sleep(0.02)
        n1, c1 = _clock_pair()
        _CAL["ns_per_cycle"] = (n1 - n0) / max(1, int(c1) - int(c0))
        d = _cycle_overhead(20000)
        _CAL["overhead"] = float(np.median(d))
        pos = d[d > 0]
        _CAL["resolution"] = float(pos.min()) if len(pos) else 1.0
    return _CAL["ns_per_cycle"], _CAL["overhead"], _CAL["resolution"]


_PY_CAL = {}


def _py_clock_calibration():
    """(overhead ns, resolution ns) of ``time.perf_counter_ns`` called from Python."""
    if not _PY_CAL:
        clock = time.perf_counter_ns
        d = np.empty(20000, np.int64)
        for i in range(len(d)):
            a = clock()
            d[i] = clock() - a
        _PY_CAL["overhead"] = float(np.median(d))
        pos = d[d > 0]
        _PY_CAL["resolution"] = float(pos.min()) if len(pos) else 1.0
    return _PY_CAL["overhead"], _PY_CAL["resolution"]


# =========================================================================== Python-level driver


def _py_worker(m, ops, keys, vals, exp, vmask, lenient, every=0, lat=None):
    """The stream through the map's Python methods (maps without an njit interface).

    With ``every`` > 0, ``time.perf_counter_ns`` is read around every every-th op (its
    latency into ``lat``, in ns) as the jitted kernel reads its counter. Returns
    (mismatches, first mismatch index, longest interval between clock reads in ns).
    """
    bad = 0
    first = -1
    tagmask = vmask & 0xFFFFFFFF00000000
    clock = time.perf_counter_ns
    nxt = 0 if every else -1
    j = 0
    longest = 0
    c0 = 0
    prev = clock()
    for i, (op, k, v, e) in enumerate(zip(ops, keys, vals, exp)):
        timed = i == nxt
        if timed:
            c0 = clock()
        if op == W.K_GET:
            r = m.get(k)
            ok = (e != 1) if r is None else (e != 0 and _py_value_ok(r, v, vmask, lenient))
        elif op == W.K_INSERT:
            r = m.insert(k, v)
            ok = (e != 1) if r is None else (e != 0 and _py_value_ok(r, v, tagmask, lenient))
        elif op == W.K_REMOVE:
            r = m.remove(k)
            ok = (e != 1) if r is None else (e != 0 and _py_value_ok(r, v, tagmask, lenient))
        elif op == W.K_ADD:
            m.add(k, v)
            ok = True
        else:
            ok = (e != 0) if (k in m) else (e != 1)
        if timed:
            c1 = clock()
            lat[j] = c1 - c0
            j += 1
            longest = max(longest, c0 - prev, c1 - c0)
            prev = c1
            nxt += every
        if not ok:
            if bad == 0:
                first = i
            bad += 1
    if every:
        longest = max(longest, clock() - prev)
    return bad, first, longest


def _py_value_ok(r, v, mask, lenient):
    r = int(r) & 0xFFFFFFFFFFFFFFFF
    x = (r ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) & mask
    return x == 0 or (lenient and (r & mask) == 0)


# =========================================================================== the runner


def _as_dtype(arr, dtype):
    """uint64 stream words as the map's 64-bit integer dtype (same bits)."""
    return arr if arr.dtype == dtype else arr.view(dtype)


def _run_threads(m, njit, streams, key_dtype, value_dtype, sample_every, timeout=600.0):
    """Run every thread's stream on `m` (see the module docstring, step 4).

    Returns dict(seconds, bad, first, errors, lat, longest, clock, finished, cpu_share):
    ``lat`` (threads x samples) and ``longest`` are in cycles of the counter when
    ``clock == "cycles"`` (jitted kernels) and in ns when ``clock == "ns"`` (Python maps).
    """
    T = streams.threads
    ops, exp = streams.ops, streams.exp
    keys = _as_dtype(streams.keys, key_dtype)
    vals = _as_dtype(streams.vals, value_dtype)
    # masks in the value dtype, so every comparison in the kernel stays in that type
    vmask = np.array([streams.vmask], np.uint64).view(value_dtype)[0]
    tmask = np.array([W.TAG_MASK], np.uint64).view(value_dtype)[0]
    lenient = bool(streams.lenient)
    out = [None] * T
    errors = []
    nlat = -(-streams.ops_per_thread // sample_every) if sample_every else 0
    lat = np.zeros((T, nlat), np.uint64 if njit else np.int64) if nlat else None

    if njit:
        ctl = np.zeros(_CTL_WORDS, np.uint64)
        # a waiter naps at most this long: 40 us while threads fit the cores (prompt start),
        # up to 20 us per thread beyond (few wake-ups; the cores are busy from the first
        # wakers on, so the start skew of the sleepers costs no throughput)
        cores = os.cpu_count() or 1
        ctl[_SLEEP_CAP] = 40 if T <= cores else min(5000, 20 * T)
        every = np.int64(sample_every)
        kernel, kernel_sampled = _kernels_for(m)

        def body(t):
            try:
                if nlat:
                    out[t] = kernel_sampled(m, ctl, ops[t], keys[t], vals[t], exp[t], vmask,
                                            tmask, lenient, lat[t], every)
                else:
                    out[t] = kernel(m, ctl, ops[t], keys[t], vals[t], exp[t], vmask, tmask,
                                    lenient)
            except BaseException as exc:  # noqa: BLE001 - reported in the run's row
                errors.append(f"thread {t}: {type(exc).__name__}: {exc}")
                if out[t] is None:  # died (maybe before arriving): let the others start
                    _bump(ctl)
    else:
        barrier = threading.Barrier(T + 1)
        pyops = [ops[t].tolist() for t in range(T)]
        pykeys = [keys[t].tolist() for t in range(T)]
        pyvals = [vals[t].tolist() for t in range(T)]
        pyexp = [exp[t].tolist() for t in range(T)]
        vm = int(streams.vmask)

        def body(t):
            try:
                barrier.wait()
                cpu0 = time.thread_time_ns()
                t0 = time.monotonic_ns()
                bad, first, longest = _py_worker(m, pyops[t], pykeys[t], pyvals[t], pyexp[t], vm,
                                                 lenient, sample_every, lat[t] if nlat else None)
                t1 = time.monotonic_ns()
                out[t] = (t0, t1, bad, first, 1, time.thread_time_ns() - cpu0, longest)
            except threading.BrokenBarrierError:
                errors.append(f"thread {t}: start barrier broken")
            except BaseException as exc:  # noqa: BLE001
                errors.append(f"thread {t}: {type(exc).__name__}: {exc}")

    old_stack = threading.stack_size()
    try:
        threading.stack_size(max(old_stack, 1 << 20) if T <= 64 else 1 << 20)
    except (ValueError, RuntimeError):
        pass
    threads = []
    try:
        for t in range(T):
            th = threading.Thread(target=body, args=(t,), daemon=True, name=f"seqmap-nb-{t}")
            th.start()
            threads.append(th)
    finally:
        try:
            threading.stack_size(old_stack)
        except (ValueError, RuntimeError):
            pass

    deadline = time.monotonic() + timeout
    if njit:
        while int(ctl[_ARRIVED]) < T:
            if time.monotonic() > deadline:
                _release(ctl, _GO_ABORT)
                raise TimeoutError(f"only {int(ctl[_ARRIVED])} of {T} threads reached the start")
            time.sleep(0.0002)
        release = _release(ctl, _GO_RUN)
    else:
        barrier.wait(timeout=timeout)
        release = time.monotonic_ns()
    for th in threads:
        th.join(max(0.0, deadline - time.monotonic()))
    alive = sum(th.is_alive() for th in threads)
    if alive:
        raise TimeoutError(f"{alive} of {T} threads still running after {timeout:.0f}s: "
                           "deadlock or livelock in the map")
    done = [o for o in out if o is not None and o[4]]
    starts = np.array([o[0] for o in done], np.int64)
    ends = np.array([o[1] for o in done], np.int64)
    start = min(release, int(starts.min())) if len(done) else release
    seconds = (int(ends.max()) - start) / 1e9 if len(done) else math.nan
    first_bad = [(t, o[3]) for t, o in enumerate(out) if o is not None and o[2]]
    # the share of the cores the run could use (all of them, or one per thread if fewer)
    # that its threads actually ran on: ~1 on a quiet machine, lower when other processes
    # took CPU time (or threads waited on each other off-CPU)
    usable = min(T, os.cpu_count() or 1)
    cpu = sum(int(o[5]) for o in done)
    cpu_share = cpu / (seconds * 1e9 * usable) if done and seconds > 0 else math.nan
    longest = max((int(o[6]) for o in done), default=0)
    return dict(seconds=seconds, bad=int(sum(o[2] for o in done)), first=first_bad,
                errors=errors, lat=lat, longest=longest, clock="cycles" if njit else "ns",
                finished=len(done), cpu_share=cpu_share)


@numba.njit(**JIT)
def _bump(ctl):
    atomic_fetch_add(ctl, _ARRIVED, numba.uint64(1), "relaxed")


# =========================================================================== verification


def verify(m, streams, run_out=None):
    """Check the map's final state (and the kernels' per-op checks) against the streams.

    Returns (verified, detail). Disjoint (bustle) keys: exactly the expected keys present,
    each with the last value written. Shared key space: no duplicate keys, every key from
    the run's key universe, every value belonging to its key, every key present when the
    mix has no removes, and the rmw total exact when only rmws move the stamps. Always:
    ``len(m)`` equals the number of items. A map that touches no table (``null``): its
    kernel counted exactly the ops that expect a present key as mismatches (so every op
    ran through the checks), and it holds nothing.
    """
    if getattr(m, "touches_no_table", False):
        return _verify_null(m, streams, run_out)
    problems = []
    if run_out is not None:
        if run_out["errors"]:
            problems.append("; ".join(run_out["errors"][:3]))
        if run_out["bad"]:
            t, i = run_out["first"][0]
            op = W.K_NAMES[int(streams.ops[t, i])]
            problems.append(f"{run_out['bad']} op(s) returned a wrong outcome (first: thread {t} "
                            f"op {i} {op} key {int(streams.keys[t, i]):#x})")
    k, v = m.items()
    k = np.ascontiguousarray(k).view(np.uint64) if np.asarray(k).dtype.itemsize == 8 else np.asarray(k, np.uint64)
    v = np.ascontiguousarray(v).view(np.uint64) if np.asarray(v).dtype.itemsize == 8 else np.asarray(v, np.uint64)
    n = len(m)
    if n != len(k):
        problems.append(f"len(m) = {n} but items() holds {len(k)}")
    order = np.argsort(k, kind="stable")
    k, v = k[order], v[order]
    dup = int(np.count_nonzero(k[1:] == k[:-1])) if len(k) > 1 else 0
    if dup:
        problems.append(f"{dup} duplicate key(s)")
    if streams.keys_kind == "bustle":
        ek = streams.final_keys
        eorder = np.argsort(ek, kind="stable")
        ek, ev = ek[eorder], streams.final_vals[eorder]
        missing = np.setdiff1d(ek, k, assume_unique=True)
        extra = np.setdiff1d(k, ek, assume_unique=not dup)
        if len(missing):
            problems.append(f"{len(missing)} of {len(ek)} expected key(s) missing (e.g. {int(missing[0]):#x})")
        if len(extra):
            problems.append(f"{len(extra)} unexpected key(s) present (e.g. {int(extra[0]):#x})")
        if not len(missing) and not len(extra) and not dup:
            wrong = np.flatnonzero(v != ev)
            if len(wrong):
                i = wrong[0]
                problems.append(f"{len(wrong)} key(s) hold a value other than the last written "
                                f"(e.g. key {int(k[i]):#x}: {int(v[i]):#x}, expected {int(ev[i]):#x})")
    else:
        uni = streams.universe
        pos = np.searchsorted(uni, k)
        inside = (pos < len(uni)) & (uni[np.minimum(pos, len(uni) - 1)] == k) if len(uni) else np.zeros(len(k), bool)
        if not inside.all():
            problems.append(f"{int((~inside).sum())} key(s) never used by the run are present")
        tags = W.tag_of(k)
        ok = (v & W.TAG_MASK) == tags
        if streams.lenient:
            ok |= (v & W.TAG_MASK) == 0
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            problems.append(f"{int((~ok).sum())} value(s) do not belong to their key "
                            f"(e.g. key {int(k[i]):#x}: {int(v[i]):#x})")
        if streams.all_present and len(k) != len(uni):
            problems.append(f"{len(uni) - len(k)} key(s) missing (no removes in the mix: "
                            f"expected all {len(uni)})")
        if streams.add_total is not None:
            got = int(np.sum(v & W.STAMP_MASK, dtype=np.uint64))
            if got != streams.add_total:
                problems.append(f"rmw total {got} != {streams.add_total} adds issued")
    return (not problems), "; ".join(problems)


def _null_mismatches(streams):
    """Ops a map that answers every op "absent" gets wrong: those that expect a present key
    (every op but add, whose outcome is not checked)."""
    return int(np.count_nonzero((streams.exp == W.EXP_PRESENT) & (streams.ops != W.K_ADD)))


def _verify_null(m, streams, run_out):
    problems = []
    if run_out is not None:
        if run_out["errors"]:
            problems.append("; ".join(run_out["errors"][:3]))
        want = _null_mismatches(streams)
        if run_out["bad"] != want:
            problems.append(f"the kernel counted {run_out['bad']} mismatch(es) on the null map, "
                            f"expected {want} (the ops that expect a present key): some ops "
                            "did not run through the checks")
    k, _ = m.items()
    if len(m) != 0 or len(k) != 0:
        problems.append(f"the null map holds {len(k)} item(s) (len {len(m)}), expected none")
    return (not problems), "; ".join(problems)


# =========================================================================== one run


def _resolve_workload(workload, mix, keys, prefill, theta, hot_ops, hot_keys):
    if mix is not None:
        if workload not in (None, "custom"):
            raise ValueError(f"give either workload={workload!r} or mix=..., not both")
        mix = W.validate_mix(mix)
        name = "custom"
        default_keys, default_prefill = "bustle", None
    else:
        name = workload or "read_heavy"
        if name not in W.WORKLOADS:
            raise ValueError(f"workload: unknown name {name!r}; known: {sorted(W.WORKLOADS)} "
                             "(or pass mix=dict(read=..., ...))")
        wl = W.WORKLOADS[name]
        mix = W.validate_mix(wl.mix)
        default_keys, default_prefill = wl.keys, wl.prefill
    if keys is None:
        if hot_ops is not None or hot_keys is not None:
            keys = "hotset"
        elif theta is not None and default_keys not in ("zipf", "latest"):
            keys = "zipf"
        else:
            keys = default_keys
    if keys not in W.KEY_KINDS:
        raise ValueError(f"keys: expected one of {W.KEY_KINDS}, got {keys!r}")
    if prefill is None:
        if default_prefill is not None and (keys == "bustle") == (default_keys == "bustle"):
            prefill = default_prefill
        else:
            prefill = 0.0 if keys == "bustle" else W.SHARED_PREFILL
    prefill = float(prefill)
    if not 0.0 <= prefill <= 1.0:
        raise ValueError(f"prefill: a fraction of the capacity in [0, 1], got {prefill}")
    if keys in ("zipf", "latest"):
        theta = 0.99 if theta is None else float(theta)
        if not math.isfinite(theta) or theta < 0:
            raise ValueError(f"theta: must be a finite number >= 0, got {theta}")
    elif theta is not None:
        raise ValueError(f"theta applies to keys='zipf' or 'latest', not {keys!r}")
    else:
        theta = math.nan
    if keys == "hotset":
        hot_ops = 0.8 if hot_ops is None else float(hot_ops)
        hot_keys = 0.2 if hot_keys is None else float(hot_keys)
        if not (0.0 <= hot_ops <= 1.0 and 0.0 < hot_keys <= 1.0):
            raise ValueError(f"hotset: need 0 <= hot_ops <= 1 and 0 < hot_keys <= 1, "
                             f"got hot_ops={hot_ops}, hot_keys={hot_keys}")
    elif hot_ops is not None or hot_keys is not None:
        raise ValueError(f"hot_ops/hot_keys apply to keys='hotset', not {keys!r}")
    else:
        hot_ops = hot_keys = math.nan
    return name, mix, keys, prefill, theta, hot_ops, hot_keys


def _check_int(name, v, lo, hi=None):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(v).__name__}")
    v = int(v)
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name}: must be {rng}, got {v}")
    return v


#: a fixed-capacity map is asked to hold at most this fill; more keys need a map that grows
GROW_FILL = 0.9


def _needs(mix, keys, ops, capacity, prefill):
    """Workload needs (``baselines.NEEDS`` vocabulary) of a point, for ``MapSpec.check``."""
    needs = {n for n in ("read", "insert", "remove", "update", "upsert") if mix[n] > 0}
    if mix["rmw"] > 0:
        needs.add("add")
    # the most keys the table may hold: the prefill (or loaded records) plus the net inserts
    n_ins = ops * (mix["insert"] + mix["upsert"]) / 100.0
    n_rem = ops * mix["remove"] / 100.0 if keys == "bustle" else 0.0
    if capacity * prefill + max(n_ins - n_rem, 0.0) > GROW_FILL * capacity:
        needs.add("grow")
    return needs


def _spec_check(spec, needs, threads, key_dtype, value_dtype):
    check = getattr(spec, "check", None)
    if check is None:
        return
    try:
        params = inspect.signature(check).parameters
    except (TypeError, ValueError):
        params = {}
    try:
        if "key_dtype" in params:
            check(needs, threads, key_dtype=key_dtype, value_dtype=value_dtype)
        else:
            check(needs, threads)
    except ValueError as exc:
        raise UnsupportedRun(str(exc) if spec.name in str(exc) else f"{spec.name}: {exc}") from exc


def _warm_up(spec, key_dtype, value_dtype, options, njit, sample_every, mix=None):
    """Compile (or load from cache) everything a run calls, on a throwaway map.

    The kernel compiles every op branch whatever the mix; `mix` (default: every op the
    map supports) only decides which ops the tiny warm-up stream executes.
    """
    t0 = time.perf_counter()
    m = _make(spec, key_dtype, value_dtype, 64, options)
    if mix is None:
        mix = W._mix(40, 20, 10, 10, 10, 10)
        if not getattr(spec, "supports_remove", True):
            mix = W._mix(50, 20, 0, 10, 10, 10)
    s = W.bustle_streams(mix, 1, 64, 16, 0.5, 12345)
    m.insert_many(_as_dtype(s.prefill_keys, key_dtype), _as_dtype(s.prefill_vals, value_dtype))
    m.stats()
    m.memory_bytes()
    out = _run_threads(m, njit, s, key_dtype, value_dtype, sample_every)
    if out["errors"]:  # a kernel that does not compile for this map is a bug, not a result
        raise RuntimeError(f"{spec.name}: the warm-up run failed: {out['errors'][0]}")
    verify(m, s, out)
    if sample_every:
        if njit:
            cycle_calibration()
        else:
            _py_clock_calibration()
    return time.perf_counter() - t0


_PCT_NAMES = ("p50", "p99", "p99.9")


def _latency_metrics(out):
    """Percentiles of the samples, the timer's resolution and the longest stall, in ns.

    A percentile below the resolution is recorded as the resolution and named in
    ``lat_below_res`` (see the module docstring)."""
    nan = math.nan
    res = dict(p50_ns=nan, p99_ns=nan, p999_ns=nan, timer_res_ns=nan, lat_below_res="",
               max_stall_ns=nan)
    lat = out["lat"]
    if lat is None or not out["finished"]:
        return res
    if out["clock"] == "cycles":
        ns_per_tick, overhead, resolution = cycle_calibration()
    else:
        (overhead, resolution), ns_per_tick = _py_clock_calibration(), 1.0
    c = lat.ravel()
    c = c[c > 0].astype(np.float64)  # 0: a slot of a thread that did not run
    if not len(c):
        return res
    res_ns = resolution * ns_per_tick
    pct = np.percentile(np.maximum(c - overhead, 0.0) * ns_per_tick, [50, 99, 99.9])
    below = [name for name, v in zip(_PCT_NAMES, pct) if v < res_ns]
    pct = np.maximum(pct, res_ns)
    res.update(p50_ns=float(pct[0]), p99_ns=float(pct[1]), p999_ns=float(pct[2]),
               timer_res_ns=float(res_ns), lat_below_res=",".join(below),
               max_stall_ns=max(0.0, float(out["longest"]) - overhead) * ns_per_tick)
    return res


def _stat_delta(after, before, name):
    try:
        return int(after.get(name, 0)) - int(before.get(name, 0))
    except (TypeError, ValueError):
        return 0


def _prepare(map, workload, threads, capacity, ops, prefill, keys, theta, hot_ops, hot_keys,
             load_factor, mix, key_dtype, value_dtype, map_options):
    """Validate and resolve one point's parameters; UnsupportedRun if the map cannot run it."""
    spec = resolve_spec(map)
    name, mix, keys, prefill, theta, hot_ops, hot_keys = _resolve_workload(
        workload, mix, keys, prefill, theta, hot_ops, hot_keys)
    default_cap = name in W.WORKLOADS and W.WORKLOADS[name].default_capacity
    threads = _check_int("threads", threads, 1, MAX_THREADS)
    if capacity is None:
        capacity = None if default_cap else DEFAULT_CAPACITY
    else:
        capacity = _check_int("capacity", capacity, 1, 1 << 40)
    ops = _check_int("ops", ops, 1)
    key_dtype, value_dtype = np.dtype(key_dtype), np.dtype(value_dtype)
    for what, dt in (("key_dtype", key_dtype), ("value_dtype", value_dtype)):
        if dt.name not in STREAM_DTYPES:
            raise ValueError(f"{what}: the harness drives 64-bit integer maps {STREAM_DTYPES}, got {dt}")
    options = dict(map_options or {})
    ops_per_thread = max(1, ops // threads)
    # the capacity the needs are judged against; a map at its default starts small
    nominal = capacity if capacity is not None else 16
    if load_factor is not None:
        if capacity is None:
            raise ValueError(f"load_factor: the {name} workload builds its map at the map's default "
                             "capacity; a load-factor point needs a fixed table (give capacity=)")
        load_factor = float(load_factor)
        if not 0.0 < load_factor < 1.0:
            raise ValueError(f"load_factor: a fill in (0, 1), got {load_factor}")
        options.update(_fixed_capacity_options(spec, load_factor))
        needs = _needs(mix, keys, ops_per_thread * threads, nominal, load_factor) - {"grow"}
    else:
        needs = _needs(mix, keys, ops_per_thread * threads, nominal, prefill)
    _spec_check(spec, needs, threads, key_dtype, value_dtype)
    return dict(spec=spec, name=name, mix=mix, keys=keys, prefill=prefill, theta=theta,
                hot_ops=hot_ops, hot_keys=hot_keys, threads=threads, capacity=capacity,
                load_factor=load_factor, options=options, key_dtype=key_dtype,
                value_dtype=value_dtype, njit=bool(getattr(spec, "njit", True)),
                ops_per_thread=ops_per_thread)


def supported(map="seqmap", workload=None, threads=1, capacity=None, ops=1_000_000,
              prefill=None, keys=None, theta=None, hot_ops=None, hot_keys=None, load_factor=None,
              mix=None, key_dtype="uint64", value_dtype="uint64", map_options=None, **_ignored):
    """(True, "") if :func:`run` with these parameters would run, else (False, reason).

    Bad parameters still raise (ValueError/TypeError); only capability refusals return.
    """
    try:
        _prepare(map, workload, threads, capacity, ops, prefill, keys, theta, hot_ops, hot_keys,
                 load_factor, mix, key_dtype, value_dtype, map_options)
    except UnsupportedRun as exc:
        return False, str(exc)
    return True, ""


def run(map="seqmap", workload=None, threads=1, capacity=None, ops=1_000_000, prefill=None,
        keys=None, theta=None, hot_ops=None, hot_keys=None, load_factor=None, mix=None,
        repeats=3, seed=0, key_dtype="uint64", value_dtype="uint64", sample_every=64,
        map_options=None, probes=None, machine=None, timeout=600.0):
    """Run one benchmark point `repeats` times; a DataFrame, one row per repetition.

    Parameters
    ----------
    map: a name (``seqmap_nb.baselines.REGISTRY``, or ``"null"``) or a MapSpec.
    workload: a name from ``workloads.WORKLOADS`` (default ``read_heavy``), or give `mix`
        (a dict of percentages; the row's workload is then ``"custom"``).
    threads: 1 .. MAX_THREADS (more than the cores is a supported case).
    capacity: the entries the map is built to hold (passed to its constructor; default
        ``DEFAULT_CAPACITY``; ``grow`` builds the map at the map's own default unless
        given one). With `load_factor`: the slots of the fixed table. The table's real
        size is recorded as ``slots``. ops: timed operations of one run, all threads
        together (``ops // threads`` each).
    prefill: fraction of the capacity inserted untimed (default: the workload's).
    keys: "bustle" | "uniform" | "zipf" | "hotset" | "latest" (default: the workload's;
        "zipf" when only theta is given, "hotset" when hot_ops/hot_keys are).
    theta: Zipf exponent (keys "zipf"/"latest"; default 0.99). hot_ops, hot_keys: hot-set
        shares (default 0.8 of ops on 0.2 of keys).
    load_factor: measure a fixed table of `capacity` slots prefilled to this fill
        (overrides prefill; the map is built not to grow, and the fill is relative to the
        slots it really has).
    sample_every: time every N-th op (0 = no clock code at all: no latency percentiles
        and no ``max_stall_ns``).
    map_options: extra keyword arguments for the map's constructor.
    probes: record probe_mean/probe_p99 (default: with load_factor).

    Raises UnsupportedRun (a ValueError) when the map cannot run the point.
    """
    P = _prepare(map, workload, threads, capacity, ops, prefill, keys, theta, hot_ops, hot_keys,
                 load_factor, mix, key_dtype, value_dtype, map_options)
    repeats = _check_int("repeats", repeats, 1)
    seed = _check_int("seed", seed, 0)
    sample_every = _check_int("sample_every", sample_every, 0)
    spec, name, mix, keys, prefill, theta, hot_ops, hot_keys = (
        P["spec"], P["name"], P["mix"], P["keys"], P["prefill"], P["theta"], P["hot_ops"], P["hot_keys"])
    threads, capacity, load_factor, options = P["threads"], P["capacity"], P["load_factor"], P["options"]
    key_dtype, value_dtype, njit, ops_per_thread = P["key_dtype"], P["value_dtype"], P["njit"], P["ops_per_thread"]
    if probes is None:
        probes = load_factor is not None

    # 1. streams (untimed), sized from the table the map really builds
    build = capacity  # what the constructor gets (None: the map's default)
    row_capacity = capacity
    stream_capacity = capacity
    if load_factor is not None:
        # a table of `capacity` slots whichever way the map reads its capacity argument
        build, probe_map = _build_for_slots(spec, key_dtype, value_dtype, capacity, options)
        stream_capacity = _slots_of(probe_map)
        if not stream_capacity == stream_capacity or stream_capacity < 1:
            stream_capacity = capacity
        del probe_map
        prefill = load_factor
    elif capacity is None:
        probe_map = _make(spec, key_dtype, value_dtype, None, options)
        row_capacity = _capacity_of(probe_map)
        stream_capacity = row_capacity if row_capacity == row_capacity and row_capacity >= 1 else 16
        del probe_map
    streams = W.make_streams(mix, keys, threads, ops_per_thread, stream_capacity, prefill, seed,
                             theta=theta if keys in ("zipf", "latest") else 0.99,
                             hot_ops=hot_ops, hot_keys=hot_keys)
    # 2. compile outside the clock
    compile_s = _warm_up(spec, key_dtype, value_dtype, options, njit, sample_every, mix=mix)

    prov = _results.provenance(machine)
    base = dict(map=spec.name, workload=name, mix=W.mix_json(mix), threads=threads,
                capacity=row_capacity, ops=ops_per_thread * threads, ops_per_thread=ops_per_thread,
                prefill=prefill, keys=keys, theta=theta, hot_ops=hot_ops, hot_keys=hot_keys,
                load_factor=math.nan if load_factor is None else load_factor, seed=seed,
                key_dtype=key_dtype.name, value_dtype=value_dtype.name, sample_every=sample_every)
    rows = []
    for rep in range(repeats):
        m = _make(spec, key_dtype, value_dtype, build, options)
        slots = _slots_of(m)
        if len(streams.prefill_keys):
            m.insert_many(_as_dtype(streams.prefill_keys, key_dtype),
                          _as_dtype(streams.prefill_vals, value_dtype))
        mem0 = int(m.memory_bytes())
        st0 = dict(m.stats())
        out = _run_threads(m, njit, streams, key_dtype, value_dtype, sample_every, timeout=timeout)
        st1 = dict(m.stats())
        mem1 = int(m.memory_bytes())
        ok, detail = verify(m, streams, out)
        n_ops = ops_per_thread * threads
        seconds = out["seconds"]
        pmean = pp99 = math.nan
        if probes:
            try:
                pl = np.asarray(m.probe_lengths())
                if len(pl):
                    pmean, pp99 = float(pl.mean()), float(np.percentile(pl, 99))
            except NotImplementedError:
                pass
        final_len = len(m)
        final_slots = _slots_of(m)
        rows.append(dict(
            base, repeat=rep, seconds=seconds,
            mops=n_ops / seconds / 1e6 if seconds > 0 else math.nan,
            ns_per_op=seconds * 1e9 * threads / n_ops if seconds > 0 else math.nan,
            **_latency_metrics(out),
            retries_per_op=_stat_delta(st1, st0, "read_retries") / n_ops,
            waits_per_op=_stat_delta(st1, st0, "write_waits") / n_ops,
            resizes=_stat_delta(st1, st0, "resizes"),
            final_len=final_len, final_capacity=_capacity_of(m),
            final_load_factor=final_len / final_slots if final_slots and final_slots == final_slots else math.nan,
            slots=slots, final_slots=final_slots,
            peak_mem_bytes=max(mem0, mem1), probe_mean=pmean, probe_p99=pp99,
            cpu_share=out["cpu_share"],
            verified=bool(ok), verify_detail=detail, compile_s=compile_s if rep == 0 else 0.0,
            **dict(prov, utc_time=_results.utc_now())))
        del m
    return _results.frame(rows)


def _fixed_capacity_options(spec, load_factor):
    """Constructor options that keep a table at its capacity up to `load_factor`.

    A map that grows must take ``max_load`` (set just above the target, so the table is
    measured at the fill asked for, not after a resize); a fixed-capacity map needs none.
    """
    if not getattr(spec, "grows", True):
        return {}
    try:
        params = inspect.signature(_factory(spec)).parameters
    except (TypeError, ValueError):
        params = {}
    if "max_load" not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise UnsupportedRun(f"{spec.name}: it grows by itself and has no max_load option, so "
                             "it cannot be held at a fixed capacity for a load-factor point")
    return {"max_load": min(0.99, max(0.75, load_factor + 0.04))}


def _precompile_one(name, key_dtype, value_dtype, sample_every):
    spec = resolve_spec(name)
    njit = bool(getattr(spec, "njit", True))
    warnings.filterwarnings("ignore", module="numba")
    return name, _warm_up(spec, np.dtype(key_dtype), np.dtype(value_dtype), {}, njit, sample_every)


def precompile(maps, key_dtype="uint64", value_dtype="uint64", sample_every=64, workers=None,
               progress=None):
    """Fill the on-disk kernel cache for several maps in parallel processes.

    Compilation is single-threaded and holds the GIL, so on a fresh install a sweep over
    many maps spends minutes compiling one map after another; worker processes compile
    them side by side (one per core), and the sweep then loads every kernel from the
    cache. Does nothing when caching is off. Returns {map: seconds} of the workers.

    `progress`: called as ``progress(name, seconds)`` when the parts every map shares are
    ready (name ``"shared"``) and as each map's kernels are (a failed map: seconds None).
    """
    from .config import CACHE

    names = [m for m in maps if isinstance(m, str)]
    if not CACHE or len(names) < 2:
        return {}
    report = progress or (lambda name, secs: None)
    # the parts every map shares compile once, here, before the workers load them
    t0 = time.perf_counter()
    W.bustle_streams(W._mix(40, 20, 10, 10, 10, 10), 1, 64, 16, 0.5, 1)
    cycle_calibration()
    _release(np.zeros(_CTL_WORDS, np.uint64), _GO_ABORT)
    report("shared", time.perf_counter() - t0)
    workers = workers or min(len(names), os.cpu_count() or 1)
    if workers < 2:
        return {}
    import concurrent.futures as cf
    import multiprocessing as mp

    out = {}
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futs = {pool.submit(_precompile_one, n, str(np.dtype(key_dtype)), str(np.dtype(value_dtype)),
                            sample_every): n for n in names}
        for f in cf.as_completed(futs):
            try:
                name, secs = f.result()
                out[name] = secs
                report(name, secs)
            except Exception as exc:  # noqa: BLE001 - the sweep compiles it itself then
                warnings.warn(f"precompile: {exc}", RuntimeWarning, stacklevel=2)
                report(futs[f], None)
    return {n: out[n] for n in names if n in out}


# =========================================================================== sweeps


def sweep(grid, progress=True, null=True, **fixed):
    """:func:`run` over the cartesian product of `grid` (dict: parameter -> list of values).

    Other keyword arguments are passed to every run. ``repeats`` (default 3, as for
    :func:`run`) becomes the number of interleaved rounds (:func:`run_points`). Points a
    map cannot run are skipped with one warning listing them (also in
    ``df.attrs["skipped"]``). Returns one frame.

    `null` (default True): the ``null`` map (operations that touch no table) runs every
    point too, so the frame carries the harness's own cost beside the maps' (its rows have
    ``map == "null"``; ``null=False`` leaves it out).
    """
    if not isinstance(grid, dict) or not grid:
        raise ValueError("sweep: grid must be a non-empty dict of parameter -> list of values")
    overlap = sorted(set(grid) & set(fixed))
    if overlap:
        raise ValueError(f"sweep: {overlap} given both in the grid and as fixed arguments")
    if null:
        maps = grid["map"] if "map" in grid else [fixed.pop("map", "seqmap")]
        if isinstance(maps, (str, bytes, dict)) or not hasattr(maps, "__iter__"):
            raise ValueError(f"sweep: grid['map'] must be a list of values, got {maps!r}")
        maps = list(maps)
        if not any(getattr(m, "name", m) == "null" for m in maps):
            maps.append("null")
        grid = {"map": maps, **{k: v for k, v in grid.items() if k != "map"}}
    names = list(grid)
    values = []
    for n in names:
        v = grid[n]
        if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__iter__"):
            raise ValueError(f"sweep: grid[{n!r}] must be a list of values, got {v!r}")
        values.append(list(v))
    points = [dict(zip(names, combo)) for combo in itertools.product(*values)]
    rounds = _check_int("repeats", fixed.pop("repeats", 3), 1)
    df = run_points(points, rounds=rounds, progress=progress, **fixed)
    skipped = df.attrs["skipped"]
    if skipped:
        lines = "\n".join(f"  {p}: {why}" for p, why in skipped[:20])
        more = f"\n  ... and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        warnings.warn(f"sweep: skipped {len(skipped)} point(s) a map cannot run:\n{lines}{more}",
                      RuntimeWarning, stacklevel=2)
    return df


def run_points(points, rounds=1, progress=True, desc="sweep", **fixed):
    """The one sweep driver (``sweep`` and ``seqmap-nb bench`` both run through it): every
    point (a dict of :func:`run` arguments, `fixed` added to each) once per round, rounds
    outermost, so that a slow spell of a shared machine lands on one repetition of many
    points (the median absorbs it), not on every repetition of one point (which would bias
    that map's ratios). A row's ``repeat`` is its round. Points a map cannot run are
    skipped (once), listed in ``df.attrs["skipped"]`` as (point label, reason)."""
    rounds = _check_int("rounds", rounds, 1)
    if "repeats" in fixed:
        raise ValueError("run_points: give rounds=, not repeats= (every run is one repetition)")
    frames, skipped, refused = [], [], set()
    bar = _progress(total=rounds * len(points), disable=not progress, desc=desc)
    try:
        for rnd in range(rounds):
            for i, point in enumerate(points):
                label = _point_label(point)
                bar.set_postfix_str(f"round {rnd + 1}: {label}", refresh=False)
                if i not in refused:
                    try:
                        df1 = run(**point, **fixed, repeats=1)
                    except UnsupportedRun as exc:
                        skipped.append((label, str(exc)))
                        refused.add(i)
                    else:
                        df1["repeat"] = rnd
                        frames.append(df1)
                bar.update(1)
    finally:
        bar.close()
    df = pd.concat(frames, ignore_index=True) if frames else _results.frame([])
    df.attrs["skipped"] = skipped
    return df


def _progress(**kw):
    from tqdm.auto import tqdm

    return tqdm(**kw)


def _point_label(point):
    parts = []
    for k, v in point.items():
        if isinstance(v, dict):
            v = json.dumps(v, separators=(",", ":"))
        elif not isinstance(v, (str, int, float)):
            v = getattr(v, "name", v)
        parts.append(f"{k}={v}")
    return " ".join(parts)


# =========================================================================== probe study


def probe_study(map="seqmap", loads=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
                capacity=1 << 16, seed=0, key_dtype="uint64", value_dtype="uint64",
                map_options=None, machine=None):
    """Probe-length distributions of a fixed table of `capacity` slots filled to each load.

    For each load: a fresh map whose table has `capacity` slots (built not to grow, sized by
    :func:`_build_for_slots`, its real slot count read back), random keys inserted to
    ``load * slots``, then
    ``m.probe_lengths()`` (slots inspected by a successful lookup of each key). A long
    frame: map, load_factor, slots (the real table size), capacity (what the map reports
    as its capacity), probe_length, count, knuth_hit = 1/2(1+1/(1-a)),
    knuth_miss = 1/2(1+1/(1-a)^2), and the provenance columns.
    """
    spec = resolve_spec(map)
    key_dtype, value_dtype = np.dtype(key_dtype), np.dtype(value_dtype)
    capacity = _check_int("capacity", capacity, 1, 1 << 40)
    rows = []
    prov = _results.provenance(machine)
    for load in loads:
        load = float(load)
        if not 0.0 < load < 1.0:
            raise ValueError(f"probe_study: loads must be in (0, 1), got {load}")
        options = dict(map_options or {})
        options.update(_fixed_capacity_options(spec, load))
        _, m = _build_for_slots(spec, key_dtype, value_dtype, capacity, options)
        slots = _slots_of(m)
        n = int(round(load * slots))
        k = W.key_of(np.arange(n, dtype=np.uint64), W.salt_of(seed, 7))
        m.insert_many(_as_dtype(k, key_dtype), _as_dtype(W.tag_of(k), value_dtype))
        if _slots_of(m) != slots:
            warnings.warn(f"probe_study: {spec.name} grew from {slots} slots at load {load}",
                          RuntimeWarning, stacklevel=2)
        pl = np.asarray(m.probe_lengths(), dtype=np.int64)
        lengths, counts = np.unique(pl, return_counts=True)
        kh = 0.5 * (1 + 1 / (1 - load))
        km = 0.5 * (1 + 1 / (1 - load) ** 2)
        utc = _results.utc_now()
        cap = _capacity_of(m)
        for L, c in zip(lengths.tolist(), counts.tolist()):
            rows.append(dict(map=spec.name, load_factor=load, slots=slots, capacity=cap,
                             probe_length=L, count=c, knuth_hit=kh, knuth_miss=km,
                             **dict(prov, utc_time=utc)))
        del m
    return pd.DataFrame(rows)
