"""Single-thread micro-benchmark: what the seqlock costs, and how SeqMap compares.

``python -m seqmap_nb.micro`` (or ``seqmap-nb micro``) prints, from one run:

1. ``get_many`` of N random u64 keys (all hits) in a table at load 0.5, SeqMap vs
   PlainMap (the same kernels and hash with the seqlock compiled out). Goal <= 1.15x.
   Beside them the memory floor: a random gather of one 32-byte slot per key, at the
   key's hash, from a numpy array of the same size as the map's slots (what any hash
   lookup pays: hash the key, fetch its line); goal get_many <= 2.0x the floor. All
   three write into preallocated output arrays (``out=``/``found=``), so the clocks time
   lookups, not allocation and first touch of fresh memory. Repeated with 16K keys in
   32K slots (the table in L2), each timing then covering as many lookups as the big one.
2. ``insert_many`` of the same keys into a pre-sized empty table, SeqMap vs PlainMap.
   Goal <= 1.5x.
3. ``get`` in an njit loop: SeqMap vs ``numba.typed.Dict`` (goal: >= 5x faster) and vs a
   Python ``dict`` loop. PlainMap's own ratio to ``typed.Dict`` in the same rounds is
   printed beside it: the ceiling that no synchronisation scheme over this table can pass
   on the machine at hand (both loops wait on memory, so it moves with the machine).
4. Scalar ``m.get(k)`` from Python vs calling the jitted kernel it runs as a bare jitted
   function with the same arguments, ``get1(header_address, k)`` (goal <= 1.3x). Also
   shown: that kernel's compiled entry point called directly (what ``m.get`` does, so
   the ratio is the Python method's own cost), a user's ``@njit f(m, k)`` returning
   ``m.get(k)`` (numba must type and unbox the map object on every call), and a no-op
   njit function. Keys below 2**63 (a Python int above int64 cannot take numba's int64
   argument path, so ``m.get`` sends it through the codec: correct, but slower).

5. What each path costs, per key, in one table beside ``dict``, ``numba.typed.Dict`` and a
   numpy array (the README's table comes from it): a scalar call from Python (get, and
   set/insert of a present key), a batch call from Python (``get_many``/``insert_many``;
   ``[d.get(k) for k in keys]``; fancy indexing), an njit loop, and the call overhead of
   a user's ``@njit`` function that takes the structure and an int, and returns the int.
   SeqArray is measured on the same keys' cells (index = position).

Method: everything is compiled and every input generated before any clock starts (a
clock that times compilation or key generation measures those); the contestants of one figure are timed in interleaved rounds (A, B, A, B, ...),
and each ratio is reported as the median of the per-round ratios (both sides measured
seconds apart, so a slow spell of a shared machine moves both) next to the ratio of the
best times; results are verified (every key found with its value, the right counts)
before they are printed. Timings on a shared machine are noisy: read the ratios, and rerun.
"""
import argparse
import platform
import statistics
import sys
import time
import warnings

import numba
import numpy as np

from ._hash import mix64
from .seqarray import SeqArray
from .seqmap import PlainMap, SeqMap


def _rounds(fns, reps, setups=None):
    """Time ``fns`` in interleaved rounds; per function a list of seconds, and the results."""
    ts = [[] for _ in fns]
    outs = [None] * len(fns)
    for _ in range(reps):
        for j, fn in enumerate(fns):
            arg = setups[j]() if setups is not None else None
            t0 = time.perf_counter()
            outs[j] = fn(arg) if setups is not None else fn()
            ts[j].append(time.perf_counter() - t0)
    return ts, outs


def _get_many_rounds(sm, pm, lookup, cap, reps, inner):
    """Interleaved rounds of get_many on SeqMap and PlainMap (preallocated outputs) and of
    the memory floor on an array of the same bytes as their slots; each timing runs
    `inner` calls. Returns (three lists of seconds, the last outputs)."""
    n = lookup.shape[0]
    bufs = [(np.empty(n, np.uint64), np.empty(n, np.bool_)) for _ in range(2)]
    table = np.random.default_rng(7).integers(0, 2**63, cap * 4, dtype=np.uint64)
    fout = np.empty(n, np.uint64)
    _gather_floor(table, lookup[:8], fout[:8])  # compile outside the clocks

    def gm(m, b):
        def run():
            for _ in range(inner):
                r = m.get_many(lookup, out=b[0], found=b[1])
            return r
        return run

    def floor():
        for _ in range(inner):
            _gather_floor(table, lookup, fout)
        return fout

    return _rounds([gm(sm, bufs[0]), gm(pm, bufs[1]), floor], reps)


def _ratio(ta, tb):
    """(median of per-round ratios a/b, ratio of the best times)."""
    return statistics.median(a / b for a, b in zip(ta, tb)), min(ta) / min(tb)


@numba.njit(nogil=True, cache=True)
def _gather_floor(table, keys, out):
    """The floor of a hash lookup: per key, hash it and load one word of the 32-byte slot
    it selects in `table` (4 words a slot, as SeqMap's u64 -> u64 slots). No probing, no
    compare, no synchronisation; loads of different keys overlap freely."""
    mask = np.int64(table.shape[0] // 4 - 1)
    for q in range(keys.shape[0]):
        i = np.int64(mix64(keys[q])) & mask
        out[q] = table[i * 4 + 2]


@numba.njit(nogil=True, cache=True)
def _njit_get_sum(m, keys):
    s = numba.uint64(0)
    for k in keys:
        v = m.get(k)
        if v is not None:
            s += v
    return s


@numba.njit(nogil=True, cache=True)
def _dict_get_sum(d, keys):
    s = numba.uint64(0)
    for k in keys:
        v = d.get(k)
        if v is not None:
            s += v
    return s


@numba.njit(nogil=True, cache=True)
def _dict_fill(d, keys):
    for k in keys:
        d[k] = k


@numba.njit(nogil=True, cache=True)
def _noop(a, k):
    return k


@numba.njit(nogil=True, cache=True)
def _njit_insert_loop(m, keys, vals):
    for i in range(keys.shape[0]):
        m.insert(keys[i], vals[i])


@numba.njit(nogil=True, cache=True)
def _set_loop(x, keys, vals):
    """``x[keys[i]] = vals[i]`` for every i: a typed.Dict, a SeqArray or a numpy array."""
    for i in range(keys.shape[0]):
        x[keys[i]] = vals[i]


@numba.njit(nogil=True, cache=True)
def _array_get_sum(a, idx):
    s = numba.uint64(0)
    for i in idx:
        s += a[i]
    return s


@numba.njit(nogil=True, cache=True)
def _public_get(m, k):
    return m.get(k)


def _py_dict_loop(d, keys):
    s = 0
    get = d.get
    for k in keys:
        v = get(k)
        if v is not None:
            s += v
    return s


def _positive_int(text):
    try:
        v = int(float(text)) if "e" in text.lower() else int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def add_arguments(p):
    """The command's options (shared by ``seqmap-nb micro`` and ``python -m seqmap_nb.micro``)."""
    p.add_argument("--n", type=_positive_int, default=1_000_000, metavar="KEYS",
                   help="random u64 keys per table (default 1000000); table of the next power "
                        "of two >= 2n slots, load about 0.5")
    p.add_argument("--reps", type=_positive_int, default=9,
                   help="interleaved rounds per figure (default 9); ratios are medians of rounds")
    p.add_argument("--scalar-calls", type=_positive_int, default=200_000, metavar="CALLS",
                   help="Python-level calls per scalar timing (default 200000)")
    p.add_argument("--json", metavar="PATH",
                   help="also write the ratios (and the run's parameters) as JSON to PATH")
    return p


def parser(prog="seqmap-nb micro"):
    return add_arguments(argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        epilog="Prints one table: per figure the best and median ns per op, then each ratio "
               "with its goal. At the default size about 10 s on a 2-core VM, about 30 s on a "
               "first run (compilation); --n 100000 --reps 3 is a quick look."))


def main(argv=None):
    """Run from the command line; returns the exit status (0: ran and verified)."""
    args = parser().parse_args(argv)
    results = run(args)
    paths = results.pop("paths_ns")
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(dict(n=args.n, reps=args.reps, scalar_calls=args.scalar_calls,
                           ratios=results, paths_ns=paths), f, indent=2)
        print(f"\nwritten: {args.json}")
    return 0


def run(a):
    """The benchmark for parsed options `a`; prints the table and returns {figure: ratio}.

    Raises AssertionError when a value read back is wrong (nothing is printed for it)."""
    n, reps = a.n, a.reps
    cap = 1 << max(1, (2 * n - 1).bit_length())  # load 0.5 exactly for n a power-of-two-ish
    print(f"seqmap_nb micro: n={n} random u64 keys, {cap} slots (load {n / cap:.2f}), "
          f"reps={reps}; {platform.processor() or platform.machine()}, numba {numba.__version__}, "
          f"python {platform.python_version()}")

    rng = np.random.default_rng(12345)
    keys = np.unique(rng.integers(0, 2**64 - 1, int(n * 1.01) + 16, dtype=np.uint64))
    keys = rng.permutation(keys)[:n]
    vals = keys ^ np.uint64(0x5555)
    lookup = rng.permutation(keys)
    expect = lookup ^ np.uint64(0x5555)

    # ---- compile everything outside the clocks
    t0 = time.perf_counter()
    for cls in (SeqMap, PlainMap):
        w = cls(np.uint64, np.uint64, capacity=16)
        w.insert_many(keys[:8], vals[:8])
        w.get_many(keys[:8])
        w.get(int(keys[0]))
        _njit_get_sum(w, keys[:8])
    compile_s = time.perf_counter() - t0

    # ---- 1, 2: batch kernels
    maps = {}

    def filler(cls):
        def setup():
            return cls(np.uint64, np.uint64, capacity=cap * 3 // 4)  # a table of cap slots

        def run(m):
            m.insert_many(keys, vals)
            maps[cls] = m
            return m

        return run, setup

    (fs, ss), (fp, sp) = filler(SeqMap), filler(PlainMap)
    (t_ins_s, t_ins_p), _ = _rounds([fs, fp], reps, [ss, sp])
    for cls, m in maps.items():
        assert len(m) == n and m.slots == cap, "insert_many: wrong count or an unexpected resize"
    sm = maps[SeqMap]
    pm = maps[PlainMap]
    (t_gm_s, t_gm_p, t_fl), outs = _get_many_rounds(sm, pm, lookup, cap, reps, 1)
    for v, f in outs[:2]:
        assert f.all() and np.array_equal(v, expect), "get_many returned a wrong value"
    n2 = min(n, 16384)
    cap2 = 1 << max(1, (2 * n2 - 1).bit_length())
    small = [cls(np.uint64, np.uint64, capacity=cap2 * 3 // 4) for cls in (SeqMap, PlainMap)]
    for m in small:
        m.insert_many(keys[:n2], vals[:n2])
        assert m.slots == cap2
    inner = max(1, n // n2)
    (t2_s, t2_p, t2_fl), outs2 = _get_many_rounds(
        small[0], small[1], lookup[np.isin(lookup, keys[:n2])], cap2, reps, inner)  # its keys, random order
    for v, f in outs2[:2]:
        assert f.all(), "get_many (small table) missed a key"

    print(f"\n(compile, once, not timed below: {compile_s:.1f} s)")
    print(f"{'figure':58s} {'best':>9s} {'median':>9s}")

    def row(label, ts, unit_n):
        print(f"{label:58s} {min(ts) / unit_n * 1e9:7.1f}ns {statistics.median(ts) / unit_n * 1e9:7.1f}ns  per op")

    def verdict(r, goal, lower_is_better=True):
        ok = r <= goal if lower_is_better else r >= goal
        return f"  goal {'<=' if lower_is_better else '>='} {goal}: {'met' if ok else 'NOT met'}"

    results = {}
    row("get_many   SeqMap (out=, found=)", t_gm_s, n)
    row("get_many   PlainMap", t_gm_p, n)
    row("memory floor: random gather of one slot per key, same table size", t_fl, n)
    rm, rb = _ratio(t_gm_s, t_gm_p)
    print(f"  -> get_many SeqMap / PlainMap: {rm:.3f}x (median of rounds), {rb:.3f}x (best){verdict(rm, 1.15)}")
    results["get_many_ratio"] = rm
    rf, rfb = _ratio(t_gm_s, t_fl)
    print(f"  -> get_many SeqMap / memory floor: {rf:.3f}x (median of rounds), {rfb:.3f}x (best){verdict(rf, 2.0)}")
    results["get_many_vs_floor"] = rf
    tot2 = n2 * inner
    row(f"get_many   SeqMap, {n2} keys in {cap2} slots", t2_s, tot2)
    row(f"get_many   PlainMap, {n2} keys in {cap2} slots", t2_p, tot2)
    row(f"memory floor, {cap2} slots", t2_fl, tot2)
    rf2, rf2b = _ratio(t2_s, t2_fl)
    rp2, _ = _ratio(t2_s, t2_p)
    print(f"  -> small table: get_many SeqMap / floor {rf2:.3f}x (median), {rf2b:.3f}x (best); "
          f"SeqMap / PlainMap {rp2:.3f}x (median)")
    results["get_many_vs_floor_small"] = rf2
    row("insert_many SeqMap (empty pre-sized table)", t_ins_s, n)
    row("insert_many PlainMap", t_ins_p, n)
    rm, rb = _ratio(t_ins_s, t_ins_p)
    print(f"  -> insert_many SeqMap / PlainMap: {rm:.3f}x (median of rounds), {rb:.3f}x (best){verdict(rm, 1.5)}")
    results["insert_many_ratio"] = rm

    # ---- 3: njit loop vs numba.typed.Dict vs Python dict
    want = int(expect.sum(dtype=np.uint64))
    d = numba.typed.Dict.empty(numba.types.uint64, numba.types.uint64)
    _dict_fill(d, keys[:8])
    _dict_get_sum(d, keys[:8])
    d = numba.typed.Dict.empty(numba.types.uint64, numba.types.uint64)
    _dict_fill(d, keys)  # value = key here; the check below accounts for it
    (t_seq, t_pl, t_td), (s1, s2, s3) = _rounds(
        [lambda: _njit_get_sum(sm, lookup), lambda: _njit_get_sum(pm, lookup),
         lambda: _dict_get_sum(d, lookup)], reps)
    assert int(s1) == want and int(s2) == want, "njit get loop: wrong sum"
    assert int(s3) == int(lookup.sum(dtype=np.uint64)), "typed.Dict loop: wrong sum"
    pyd = dict(zip(keys.tolist(), vals.tolist()))
    lk = lookup.tolist()
    (t_py,), (s4,) = _rounds([lambda: _py_dict_loop(pyd, lk)], max(1, reps // 2))
    assert s4 == int(expect.astype(object).sum()), "python dict loop: wrong sum"
    row("njit loop m.get(k)   SeqMap", t_seq, n)
    row("njit loop m.get(k)   PlainMap", t_pl, n)
    row("njit loop d.get(k)   numba.typed.Dict", t_td, n)
    row("python loop d.get(k) dict", t_py, n)
    rm, rb = _ratio(t_td, t_seq)
    print(f"  -> SeqMap njit get vs typed.Dict: {rm:.2f}x faster (median of rounds), {rb:.2f}x (best)"
          f"{verdict(rm, 5, lower_is_better=False)}")
    rc, rcb = _ratio(t_td, t_pl)
    print(f"  -> PlainMap njit get vs typed.Dict: {rc:.2f}x (median of rounds), {rcb:.2f}x (best): the same "
          f"loop with no synchronisation at all, the most any map with this layout and hash reaches here")
    rp, rpb = _ratio(t_seq, t_pl)
    print(f"  -> SeqMap njit get vs Python dict loop: {min(t_py) / min(t_seq):.2f}x faster (best); "
          f"vs PlainMap njit get: {rp:.3f}x the time (median of rounds), {rpb:.3f}x (best)")
    results["vs_typed_dict"] = rm
    results["vs_python_dict"] = min(t_py) / min(t_seq)
    results["njit_get_vs_plain"] = rp
    results["plain_vs_typed_dict"] = rc

    # ---- 4: scalar path
    calls = a.scalar_calls
    # keys below 2**63: numba passes a Python int as int64, so larger uint64 keys take the
    # (correct, slower) codec path of m.get; see the module notes
    small = lookup[lookup < np.uint64(2**63)]
    hk = [int(k) for k in np.resize(small, calls)]
    addr = sm._hdr_addr
    kernel = sm._scalar.get1  # the jitted function m.get runs, called through numba's dispatcher
    entry = sm._get_ep[int]  # its compiled entry point, which m.get calls

    def loop_calling(fn, first):
        def run():
            for k in hk:
                fn(first, k)
        return run

    def via_method():
        g = sm.get
        for k in hk:
            g(k)

    via_kernel, via_entry = loop_calling(kernel, addr), loop_calling(entry, addr)
    via_public, via_noop = loop_calling(_public_get, sm), loop_calling(_noop, addr)

    def via_loop():
        for k in hk:
            pass

    _noop(addr, 1)
    want1 = np.uint64(hk[0]) ^ np.uint64(0x5555)
    for got in (sm.get(hk[0]), kernel(addr, hk[0]), entry(addr, hk[0])):
        assert type(got) is np.uint64 and got == want1, "scalar get: wrong value or type"
    assert _public_get(sm, hk[0]) == want1
    (tm, tk, te, tp, tn, tl), _ = _rounds(
        [via_method, via_kernel, via_entry, via_public, via_noop, via_loop], reps)
    row("scalar m.get(k) from Python", tm, calls)
    row("scalar: its kernel called as a jitted function (addr, k)", tk, calls)
    row("scalar: its kernel's compiled entry point (addr, k)", te, calls)
    row("scalar: a user's @njit f(m, k) returning m.get(k)", tp, calls)
    row("scalar: no-op njit function (addr, k)", tn, calls)
    row("scalar: the empty Python loop (not subtracted above)", tl, calls)
    rm, rb = _ratio(tm, tk)
    print(f"  -> m.get(k) / bare kernel call: {rm:.3f}x (median of rounds), {rb:.3f}x (best){verdict(rm, 1.3)}")
    re_, reb = _ratio(tm, te)
    rp, rpb = _ratio(tm, tp)
    print(f"  -> m.get(k) / the entry point alone (the method's own cost): {re_:.3f}x (median), {reb:.3f}x (best); "
          f"m.get(k) / a user's njit f(m, k): {rp:.3f}x (median)")
    results["scalar_vs_kernel"] = rm
    results["scalar_vs_entry"] = re_
    results["scalar_vs_public_njit"] = rp
    results["scalar_vs_noop"] = min(tm) / min(tn)
    results["paths_ns"] = _paths(a, sm, keys, vals, lookup, hk, t_gm_s, t_seq, t_td)
    return results


def _paths(a, sm, keys, vals, lookup, hk, t_gm_s, t_seq, t_td):
    """Section 5: the table of what each path costs (ns per key, medians of rounds)."""
    n, reps, calls = a.n, a.reps, len(hk)
    med = statistics.median
    hv = [k ^ 0x5555 for k in hk]  # the values the map holds for them
    cells = n
    arr = SeqArray(np.uint64, capacity=cells)
    npa = np.empty(cells, np.uint64)
    rng = np.random.default_rng(54321)
    idx = rng.permutation(cells).astype(np.int64)  # cells in random order, as the keys are
    arr_idx = [int(i) for i in np.resize(idx, calls)]
    pyd = dict(zip(keys.tolist(), vals.tolist()))
    td = numba.typed.Dict.empty(numba.types.uint64, numba.types.uint64)
    _set_loop(td, keys[:8], vals[:8])
    _set_loop(td, keys, vals)
    _njit_insert_loop(sm, keys[:8], vals[:8])  # compile (present keys: values unchanged)
    _set_loop(arr, idx, vals)  # every cell set (compiles, outside the clocks)
    _array_get_sum(arr, idx[:8])
    _set_loop(npa, idx, vals)
    _array_get_sum(npa, idx[:8])
    for x in (sm, arr, npa, td):
        _noop(x, 1)
    arr.set(0, int(vals[0]))
    arr.get(0)
    lk = lookup.tolist()
    td_keys = hk[: max(1, calls // 10)]  # typed.Dict from Python costs microseconds a call

    def loop(fn, args):
        def run():
            for x in args:
                fn(x)
        return run

    def loop2(fn, xs, ys):
        def run():
            for x, y in zip(xs, ys):
                fn(x, y)
        return run

    def setitem(d):
        def put(k, v):
            d[k] = v
        return put

    def getitem(d):
        return d.__getitem__

    def user_call(x):
        def run():
            for k in hk:
                _noop(x, k)
        return run

    timed = {  # name: (function, operations it performs)
        "py get SeqMap": (loop(sm.get, hk), calls),
        "py set SeqMap": (loop2(sm.insert, hk, hv), calls),
        "py get SeqArray": (loop(arr.get, arr_idx), calls),
        "py set SeqArray": (loop2(arr.set, arr_idx, hv), calls),
        "py get dict": (loop(pyd.get, hk), calls),
        "py set dict": (loop2(setitem(pyd), hk, hv), calls),
        "py get typed.Dict": (loop(td.get, td_keys), len(td_keys)),
        "py set typed.Dict": (loop2(setitem(td), td_keys, hv), len(td_keys)),
        "py get ndarray": (loop(getitem(npa), arr_idx), calls),
        "py set ndarray": (loop2(setitem(npa), arr_idx, hv), calls),
        "batch get dict": (lambda: [pyd.get(k) for k in lk], n),
        "batch set SeqMap": (lambda: sm.insert_many(keys, vals), n),
        "batch get ndarray": (lambda: npa[idx], n),
        "batch set ndarray": (lambda: npa.__setitem__(idx, vals), n),
        "njit set SeqMap": (lambda: _njit_insert_loop(sm, keys, vals), n),
        "njit get SeqArray": (lambda: _array_get_sum(arr, idx), n),
        "njit set SeqArray": (lambda: _set_loop(arr, idx, vals), n),
        "njit set typed.Dict": (lambda: _set_loop(td, keys, vals), n),
        "njit get ndarray": (lambda: _array_get_sum(npa, idx), n),
        "njit set ndarray": (lambda: _set_loop(npa, idx, vals), n),
        "call SeqMap": (user_call(sm), calls),
        "call SeqArray": (user_call(arr), calls),
        "call typed.Dict": (user_call(td), calls),
        "call ndarray": (user_call(npa), calls),
    }
    names = list(timed)
    with warnings.catch_warnings():  # typed.Dict warns about casting a Python int key
        warnings.simplefilter("ignore")
        for k in names:  # once outside the clocks: what a first call compiles or loads
            timed[k][0]()
        ts, _ = _rounds([timed[k][0] for k in names], reps)
    ns = {k: med(t) / timed[k][1] * 1e9 for k, t in zip(names, ts)}
    ns.update({"batch get SeqMap": med(t_gm_s) / n * 1e9,
               "njit get SeqMap": med(t_seq) / n * 1e9, "njit get typed.Dict": med(t_td) / n * 1e9})
    assert sm.get(hk[0]) == hv[0] and int(_array_get_sum(arr, idx)) == int(vals.sum(dtype=np.uint64)), \
        "a path wrote a wrong value"
    assert int(_array_get_sum(npa, idx)) == int(vals.sum(dtype=np.uint64))

    cols = ["SeqMap", "SeqArray", "dict", "typed.Dict", "ndarray"]
    rows = [("Python scalar call, get", "py get"), ("Python scalar call, set", "py set"),
            ("batch call from Python, get, per key", "batch get"),
            ("batch call from Python, set, per key", "batch set"),
            ("njit loop, get, per key", "njit get"), ("njit loop, set, per key", "njit set"),
            ("call of a user njit f(x, k)", "call")]
    print(f"\n5. what each path costs, ns per key (median of rounds; -: no such path). {n} "
          "present u64 keys / cells in random order; sets overwrite present keys")
    print("| path | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for label, key in rows:
        cells_ = [f"{ns[f'{key} {c}']:.0f}" if f"{key} {c}" in ns else "-" for c in cols]
        print(f"| {label} | " + " | ".join(cells_) + " |")
    print(f"  -> a user njit f(map, k) costs {ns['call SeqMap'] / ns['call ndarray']:.2f}x the same "
          f"function taking a numpy array (goal <= 2); f(typed.Dict, k): "
          f"{ns['call typed.Dict'] / ns['call ndarray']:.2f}x")
    return ns


if __name__ == "__main__":
    sys.exit(main())
