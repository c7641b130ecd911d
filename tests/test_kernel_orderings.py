"""The memory orderings the protocols rely on, read from the kernels' own LLVM IR.

On x86-64 an acquire load, a release store and a seq_cst load are the same ``mov`` as a
relaxed one, and acquire/release fences emit nothing: a stress test on this machine
cannot tell a weakened ordering from the right one, and the optimiser may exploit the
weaker one anywhere, ARM hardware at run time. So these tests compile the kernels
themselves (``update``, ``lookup``, ``lookup_many``, ``_moving_answer``, ``move_chunk``,
``place``, ``ensure_chain``, the job's ``flip`` and ``publish``; SeqArray's write, read
and move) and check every atomic instruction they emit against the ordering argument of
``_seqlock``, ``_lifecycle``, ``_map_kernels`` and ``_array_kernels``:

* each step the argument names (L2's seq_cst CAS, L3's release fence, L4's release
  unlock, S1's acquire load, S3's acquire fence, G3's fence, W3/W4's seq_cst EPOCH load
  after the lock, J4's seq_cst flip and mover's load, ...) emits, in that kernel, an
  instruction at least that strong;
* a relaxed atomic appears only at a site the argument allows one (the data words
  between the two sequence reads, counters ordered by a lock around them, ...).

An instruction is attributed to the function whose source line it was lowered from
(numba inlines the ``inline="always"`` helpers into the kernel; their instructions keep
their own file and line). Only the kernel's own body is examined: helpers compiled as
separate functions are examined as kernels of their own. The IR is captured where numba
lowers it, before LLVM's passes (which never weaken an ordering).
"""
import ast
import functools
import linecache
import os
import re

import numba
import numpy as np
import pytest
from numba.core import lowering

from seqmap_nb import _array_kernels as A
from seqmap_nb import _lifecycle as L
from seqmap_nb import _map_kernels as K
from seqmap_nb.seqarray import SeqArray
from seqmap_nb.seqmap import SeqMap

pytestmark = pytest.mark.timeout(600)

_U = numba.uint64
_ATOMIC = re.compile(r"^\s*(?:%\S+ = )?(load atomic|store atomic|cmpxchg|atomicrmw \w+|fence)\b")
_ORDER = re.compile(r"\b(monotonic|acquire|release|acq_rel|seq_cst)\b")


# ------------------------------------------------------------------ attribution


@functools.lru_cache(maxsize=None)
def _functions_of(path):
    """(first line, last line, name) of every function defined in the source file."""
    with open(path) as f:
        tree = ast.parse(f.read())
    return [(n.lineno, n.end_lineno, n.name) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]


def _site(path, line):
    """(module, innermost function, the line's text) of a source line."""
    best = None
    for a, b, name in _functions_of(path):
        if a <= line <= b and (best is None or a >= best[0]):
            best = (a, name)
    return (os.path.splitext(os.path.basename(path))[0], best[1] if best else "?",
            linecache.getline(path, line).strip())


def _instruction(text):
    """('load'|'store'|'cmpxchg'|'rmw add'|'fence', orderings); None for a compiler barrier
    (a single-thread fence: no ordering between threads, nothing to check)."""
    if "singlethread" in text:
        return None
    kind = _ATOMIC.match(text).group(1)
    kind = {"load atomic": "load", "store atomic": "store"}.get(kind, kind.replace("atomicrmw", "rmw"))
    return kind, tuple(_ORDER.findall(text))


def _lowered(wrapper, args, kernel):
    """Compile `wrapper` afresh (never from a cache) for `args`; return the list of
    ((module, function, line), (kind, orderings)) of every atomic instruction lowered into
    the body of `kernel` (the wrapper itself, or the fresh dispatcher it calls), its
    inlined helpers included, in the order numba lowered them (source order)."""
    found = []
    original = lowering.Lower.lower_inst

    def lower_inst(self, inst):
        if self.fndesc.qualname != kernel.__qualname__ or self.fndesc.modname != kernel.__module__:
            return original(self, inst)
        fn = self.function
        nblocks = len(fn.basic_blocks)
        block = self.builder.block
        ninst = len(block.instructions)
        result = original(self, inst)
        new = list(block.instructions[ninst:])
        for bb in fn.basic_blocks[nblocks:]:
            new.extend(bb.instructions)
        for ins in new:
            text = str(ins)
            if _ATOMIC.match(text):
                ins_ = _instruction(text)
                if ins_ is not None:
                    found.append((_site(inst.loc.filename, inst.loc.line), ins_))
        return result

    lowering.Lower.lower_inst = lower_inst
    try:
        numba.njit(wrapper).compile(tuple(numba.typeof(a) for a in args))
    finally:
        lowering.Lower.lower_inst = original
    return found


# ------------------------------------------------------------------ the kernels, each compiled afresh
# Kernels that take the layout as literal arguments are compiled inside a wrapper that
# passes literals (u64 keys and values: KW=1, VW=1, SW=4). A kernel that is a function of
# its own (not inlined into its callers) is re-declared here with
# ``numba.njit(kernel.py_func)``, a dispatcher without a cache, so that its body is
# lowered now; the inlined ones (lookup, lookup_many, SeqArray's read and write) are
# lowered into the wrapper's body.

_update = numba.njit(K.update.py_func)
_moving_answer = numba.njit(K._moving_answer.py_func)  # inlined in lookups: its own dispatcher here
_move_chunk = numba.njit(K.move_chunk.py_func)
_place = numba.njit(K.place.py_func)
_ensure_chain = numba.njit(K.ensure_chain.py_func)
_flip = numba.njit(L.flip.py_func)
_publish = numba.njit(L.publish.py_func)
_amove = numba.njit(A.move_chunk.py_func)


def k_update(h, k, v):
    # OP_ADD: W3 (an existing key) and W4 (a new key: the insert counter); the remove
    # paths are lowered too (the OP test is a constant that LLVM folds later)
    return _update(h, (k,), (v,), 1, 1, 1, 4, True, numba.types.int64)


def k_lookup(h, k):
    return K.lookup(h, (k,), 1, 1, 4, True)


def k_lookup_many(h, keys, out, found):
    return K.lookup_many(h, keys, out, found, 1, 1, 4, True)


def k_lookup_moving(e, o, n, hv, k):
    return _moving_answer(e, o, n, hv, (k,), 0, (_U(0),), 0, 1, 1, 4)


def k_move_chunk(h, e1, o, n, c):
    return _move_chunk(h, e1, o, n, c, 1, 1, 4, True)


def k_place(nw, k, v):
    return _place(nw, (k,), (v,), 1, 4, True)


def k_ensure_chain(h, e1, o, hv, k):
    return _ensure_chain(h, e1, o, hv, (k,), 1, 1, 4)


def k_flip(h, e, n, nmove):
    return _flip(h, e, n, nmove)


def k_publish(h, e1, cls):
    return _publish(h, e1, cls)


def k_array_write(h, i, x):
    return A.write1(h, i, x)


def k_array_read(h, i, out):
    return A.read_cell(h, i, out, True)


def k_array_move(h, e1, o, n, c):
    return _amove(h, e1, o, n, c)


@pytest.fixture(scope="module")
def ir():
    """kernel name -> its atomic instructions by site, in source order (each kernel
    compiled once for the module)."""
    h = SeqMap(np.uint64, np.uint64)._h
    ah = SeqArray(np.int64, capacity=8)._hdr
    u, w = np.uint64(1), np.zeros(1, np.uint64)
    plan = {
        "update": (k_update, (h, u, u), K.update.py_func),
        "lookup": (k_lookup, (h, u), k_lookup),
        "lookup_many": (k_lookup_many, (h, w, w.copy(), np.zeros(1, np.bool_)), k_lookup_many),
        "lookup_moving": (k_lookup_moving, (u, u, u, 1, u), K._moving_answer.py_func),
        "move_chunk": (k_move_chunk, (h, u, u, u, 0), K.move_chunk.py_func),
        "place": (k_place, (w, u, u), K.place.py_func),
        "ensure_chain": (k_ensure_chain, (h, u, u, 1, u), K.ensure_chain.py_func),
        "flip": (k_flip, (h, u, u, 0), L.flip.py_func),
        "publish": (k_publish, (h, u, 0), L.publish.py_func),
        "array write": (k_array_write, (ah, 0, u), k_array_write),
        "array read": (k_array_read, (ah, 0, w), k_array_read),
        "array move_chunk": (k_array_move, (ah, u, u, u, 0), A.move_chunk.py_func),
    }
    return {name: _lowered(fn, args, kernel) for name, (fn, args, kernel) in plan.items()}


# ------------------------------------------------------------------ the argument, step by step

_AT_LEAST = {
    "monotonic": {"monotonic", "acquire", "release", "acq_rel", "seq_cst"},
    "acquire": {"acquire", "acq_rel", "seq_cst"},
    "release": {"release", "acq_rel", "seq_cst"},
    "acq_rel": {"acq_rel", "seq_cst"},
    "seq_cst": {"seq_cst"},
}

SL, LC, MK, AK = "_seqlock", "_lifecycle", "_map_kernels", "_array_kernels"

#: kernel -> [(module, function, instruction, at least[, text of the line])]: every
#: instruction of that kind the function (that line of it) contributes to the kernel must
#: be at least this strong, and there is at least one
LOCK = [  # _seqlock's writer, wherever a kernel takes a lock
    (SL, "try_lock", "cmpxchg", "seq_cst"),  # L2: one total order with the flip and the EPOCH loads (J4)
    (SL, "try_lock", "fence", "release"),  # L3: the odd word is visible before any new data
    (SL, "unlock", "store", "release"),  # L4: every data store happens-before the new even word
]
SEQLOCK_READ = [
    (SL, "load_seq", "load", "acquire"),  # S1: the key and value loads stay below it
    (SL, "read_validate", "fence", "acquire"),  # S3: the data loads come before the re-read (S4)
]
REQUIRED = {
    "update": LOCK + [
        (SL, "unlock_unchanged", "store", "release"),  # a slot given back: readers see it as before
        (LC, "current", "load", "acquire"),  # W1 (G1): EPOCH, then BUF stored before it (release)
        (MK, "_write_in", "load", "acquire"),  # W1's insert counter, W2's sequence words
        (MK, "_write_in", "cmpxchg", "acq_rel"),  # W4's counter CAS: release for the next W1 (never twice)
        (MK, "_write_in", "fence", "acquire"),  # a remove's miss: the probe's loads before EPOCH's
        (LC, "epoch_ok", "load", "seq_cst"),  # W3/W4: EPOCH after the lock, in J4's total order
    ],
    "lookup": SEQLOCK_READ + [
        (LC, "current", "load", "acquire"),  # G1
        (MK, "epoch_changed", "fence", "acquire"),  # G3: every slot read before the EPOCH re-read
    ],
    "lookup_many": SEQLOCK_READ + [
        (LC, "current", "load", "acquire"),
        (MK, "epoch_changed", "fence", "acquire"),
    ],
    "lookup_moving": SEQLOCK_READ + [
        (MK, "_moving_answer", "fence", "acquire"),  # BUF's slot reads before the chunk states
        (LC, "chunk_done", "load", "acquire"),  # a done chunk's placements into NEXT are visible
    ],
    "move_chunk": [
        (MK, "move_chunk", "load", "seq_cst", "s = "),  # J4: after the flip and the claim: sees a pre-flip lock
        (SL, "read_validate", "fence", "acquire"),
        (LC, "finish_chunk", "store", "release"),  # J5: the placements happen-before "done"
        (LC, "done_one", "rmw add", "acq_rel"),  # every chunk's moves happen-before the publication
    ],
    "place": LOCK + [
        (MK, "place", "load", "acquire"),
    ],
    "ensure_chain": [
        (LC, "claim_chunk", "cmpxchg", "seq_cst"),  # J5: the claim precedes the mover's loads (J4's order)
        (MK, "ensure_chain", "load", "acquire"),
    ],
    "flip": [
        (LC, "flip", "store", "seq_cst", "H_EPOCH"),  # J4: in one total order with the writers' locks
        (LC, "flip", "store", "release", "H_MCUR"),  # the cursor shows its tag after the words it guards
    ],
    "publish": [
        (LC, "publish", "store", "release", "H_BUF"),  # J6: N's contents happen-before its use as BUF
        (LC, "publish", "store", "release", "H_EPOCH"),  # ... and EPOCH moves after BUF (G1 reads EPOCH first)
        (LC, "end", "store", "release"),
    ],
    "array write": LOCK + [
        (SL, "unlock_unchanged", "store", "release"),
        (LC, "current", "load", "acquire"),  # A1
        (LC, "epoch_ok", "load", "seq_cst"),  # A3: EPOCH after the lock, in J4's total order
    ],
    "array read": [
        (SL, "read_begin", "load", "acquire"),  # S1
        (SL, "read_validate", "fence", "acquire"),  # S3
        (LC, "current", "load", "acquire"),  # A1
        (AK, "_moved", "fence", "acquire"),  # A2: the cell's loads before its chunk's state
        (LC, "chunk_done", "load", "acquire"),  # A2: the copy into NEXT is visible once done
        (AK, "_epoch_same", "fence", "acquire"),  # A4
    ],
    "array move_chunk": LOCK + [
        (AK, "move_chunk", "load", "seq_cst", "s = "),  # J4: sees a pre-flip writer's lock
        (SL, "read_validate", "fence", "acquire"),
        (LC, "finish_chunk", "store", "release"),
        (LC, "done_one", "rmw add", "acq_rel"),
    ],
}

#: the sites where the argument allows a relaxed atomic, and why
RELAXED_OK = {
    (SL, "load_data"): "S2: data words between the two sequence reads",
    (SL, "store_data"): "L3: data words under the lock, after L3's release fence",
    (SL, "copy_out"): "S2",
    (SL, "copy_in"): "L3",
    (SL, "read_validate"): "S4: the re-read, after S3's acquire fence",
    (SL, "lock"): "L1: a look at the word before the CAS that orders",
    (MK, "epoch_changed"): "G3: EPOCH after the acquire fence",
    (AK, "_epoch_same"): "A4: EPOCH after the acquire fence",
    (MK, "_count"): "COUNT stripes: changed under the slot's lock; summed only as a trigger",
    (MK, "sum_counts"): "W5's trigger: a job re-checks under JOB",
    (MK, "add_stat"): "statistics",
    (MK, "move_chunk"): "MOVED, a statistic of the running job",
    (AK, "_cap"): "a buffer's capacity: written before the buffer is published; A4 confirms it",
    (AK, "_lock_for_write"): "L1",
    (AK, "write1"): "L3",
    (AK, "_finish_write"): "LEN, changed under the cell's lock; JOB, acted on through tagged claims",
    (AK, "move_chunk"): "the data copy into a locked target cell; the dropped-cell count",
    (LC, "flip"): "the job's words, published by the seq_cst EPOCH store after them",
    (LC, "publish"): "BUF and NEXT read by the job's owner (no one else stores them); RESIZES",
}


def _orders(c, module, function, kind, text):
    return [ins[1] for site, ins in c if site[:2] == (module, function) and ins[0] == kind and text in site[2]]


@pytest.mark.parametrize("kernel", sorted(REQUIRED))
def test_each_step_has_the_ordering_its_argument_names(ir, kernel):
    c = ir[kernel]
    wrong = []
    for module, function, kind, least, *text in REQUIRED[kernel]:
        found = _orders(c, module, function, kind, text[0] if text else "")
        if not found:
            wrong.append(f"{module}.{function}: no {kind}{' at ' + text[0] if text else ''} in {kernel}")
        for orders in found:
            if orders[0] not in _AT_LEAST[least]:
                wrong.append(f"{module}.{function}: {kind} {' '.join(orders)} in {kernel}, needs {least}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("kernel", sorted(REQUIRED))
def test_relaxed_atomics_only_where_the_argument_allows_them(ir, kernel):
    wrong = sorted({f"{site[0]}.{site[1]}: {ins[0]} {' '.join(ins[1])} at `{site[2]}`" for (site, ins) in ir[kernel]
                    if ins[1][0] == "monotonic" and site[:2] not in RELAXED_OK})
    assert not wrong, f"relaxed atomics in {kernel} that no step of the argument allows:\n" + "\n".join(wrong)


def test_the_attribution_sees_the_kernels():
    """The capture itself can fail: a kernel compiled without the hook, or a site that the
    attribution does not find, shows here (a fresh dispatcher of ``update`` lowers its body;
    a second compile of the same signature lowers nothing)."""
    h = SeqMap(np.uint64, np.uint64)._h
    u = np.uint64(1)
    first = _lowered(k_lookup, (h, u), k_lookup)
    assert _orders(first, SL, "load_seq", "load", "") == [("acquire",)]
    assert _lowered(k_lookup, (h, u), K.update.py_func) == []  # not this kernel


def _sequence(c, module, function):
    """The lines of `function`'s atomics in the kernel, in source order."""
    return [(ins[0], site[2]) for site, ins in c if site[:2] == (module, function)]


def test_g1_loads_epoch_before_buf_and_j6_stores_buf_before_epoch(ir):
    """G1/A1 and J6 pair up in program order, not only in strength: a reader loads EPOCH
    and then BUF, a publication stores BUF and then EPOCH, so the BUF a reader gets is the
    one current at its EPOCH or a later one. Loaded the other way round, a reader that
    lost the CPU between the loads takes an old BUF with a newer EPOCH, which G3 then
    confirms."""
    for kernel in ("lookup", "lookup_many", "update", "array read", "array write"):
        loads = [line for kind, line in _sequence(ir[kernel], LC, "current") if kind == "load"]  # one G1 for both
        assert loads, f"no G1 in {kernel}"
        for j in range(len(loads)):  # each G1: EPOCH, BUF (, NEXT)
            if "H_BUF" in loads[j]:
                assert j > 0 and "H_EPOCH" in loads[j - 1], f"{kernel}: BUF loaded before EPOCH in G1: {loads}"
    stores = [line for kind, line in _sequence(ir["publish"], LC, "publish") if kind == "store"]
    at = {name: [j for j, line in enumerate(stores) if name in line] for name in ("H_BUF", "H_EPOCH")}
    assert at["H_BUF"] and at["H_EPOCH"] and max(at["H_BUF"]) < min(at["H_EPOCH"]), (
        f"J6 must store BUF before EPOCH: {stores}")
