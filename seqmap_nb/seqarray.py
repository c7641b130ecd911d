"""SeqArray: an array whose every cell is its own seqlock, resizable while in use.

Layout
======

A SeqArray is a fixed *header* (a uint64 numpy array owned by the Python object, its
address never changes) and a *buffer* of raw memory (``_unsafe.raw_alloc``) that a
resize replaces. Control words every thread touches sit on their own 128-byte lines
(``config.CACHE_LINE``), so a thread bumping the length never evicts the line that
every reader loads the buffer address from::

    header (uint64[4 * LINE_WORDS], 128-byte aligned)
    line 0  | ADDR | NW | STRIDE | EPOCH | ...  read-mostly: written only by a resize publish
    line 1  | LEN  | ...                        first set of a cell: fetch_add
    line 2  | RLOCK | RESIZING | ...            resize lock (CAS) and the public flag
    line 3  | READ_RETRIES | WRITE_WAITS | RESIZES | ...   statistics (only on contention)

    buffer (raw memory, 128-byte aligned)
    line 0  | CAP | GEN | NWORDS | CLASSCAP | ...   read-mostly, see "generation" below
    cells   | seq | w0 .. w(NW-1) | seq | w0 .. | ...   cell i at 16 + i * (1 + NW)

A cell is one sequence word and ``NW`` data words in canonical word form (``_codec``);
the sequence word and the reader/writer protocol are those of :mod:`seqmap_nb._seqlock`
(EMPTY = never set, FULL = set; MOVED = frozen by a resize). Cells are packed: a cell
need not start a cache line (8 uint64 cells share one 128-byte line).

The capacity lives in the buffer's own header line, not in the SeqArray header, so
that a thread that loaded a buffer address reads the capacity *of that buffer*: the
two can never be read inconsistently.

Buffers and their reuse (HAZARDS 1)
-----------------------------------
A thread may hold an old buffer address for as long as it likes (it loaded ``ADDR``,
then got descheduled), so a buffer is never freed while its SeqArray lives: buffers are
raw memory that no reference count can release under a reader. Capacities are rounded
up to a power-of-two *size class* internally (the public capacity stays exact), and
every SeqArray owns **at most one buffer per size class**, current or retired: a resize
to class ``c`` reuses the retired buffer of class ``c`` if there is one (*recycling*),
else allocates; a resize within the current class is done in place. Since the current
buffer's class never has a retired buffer (the invariant that makes this work: a
buffer is only allocated for a class that has none, and only the current buffer is
ever retired), memory is bounded by one buffer per class ever used, which is less than
twice the largest buffer. Everything is freed when the SeqArray dies
(``weakref.finalize``); ``memory_bytes()`` counts retired buffers too.

Generation
----------
``GEN`` in a buffer's header line is a sequence word *for the buffer itself*: even
while the buffer's layout (capacity, meaning of its cells) is stable, odd while a resize
re-initialises it. Every operation reads it (acquire) before touching a cell and checks
it again afterwards; a change means the buffer was resized in place or recycled under
the operation, which starts over from the header. It is bumped only by resizes, so it
costs one load from a read-shared line per operation.

Resize protocol (R1-R7), run by one thread holding the header resize lock
--------------------------------------------------------------------------
R1. ``cas(RLOCK, 0, 1, acquire)`` with backoff (resizes are serialised); set RESIZING.
R2. Pick the target: the current buffer (new capacity in the same size class: in place,
    R6), the retired buffer of the new class (recycled), or a new ``raw_alloc``
    (``MemoryError`` here leaves everything as it was).
R3. Recycled target: ``GEN += 1`` (odd) then ``fence(release)``. A stale operation that
    still holds the target's address sees GEN odd or changed and starts over; the fence
    keeps the bump visible before any cell write below (as the seqlock's W3).
R4. For each cell ``j`` below ``min(old capacity, new capacity)``: lock the target cell
    (a stale writer may be passing through), lock the old cell (waiting for a writer
    that holds it), copy the data words, unlock the target cell with the old state and a
    new version, unlock the old cell as ``s | MOVED`` (data unchanged). Writers that see
    MOVED wait with backoff until ``ADDR`` changes, then go to the new buffer; readers
    keep reading the frozen old cell, whose data stays current until R5 publishes.
    Target cells past the copied range are re-initialised EMPTY (recycled target);
    old cells past the new capacity (a shrink) are locked, counted if FULL (``LEN`` is
    decremented by the count) and unlocked MOVED.
R5. Publish: ``store(target.CAP)``, ``store(target.GEN, even, release)``, then
    ``store(ADDR, target, release)``, then ``store(EPOCH, EPOCH + 1, release)``. A thread
    that loads ADDR with acquire sees the whole buffer; a thread that loads the target's
    GEN even sees its complete contents. EPOCH counts publications and never repeats a
    value, unlike ADDR (a recycled buffer comes back at its old address).
R6. In place (same size class): ``GEN += 1`` (odd), ``fence(release)``; for a shrink,
    lock each cell past the new end, count it if FULL, clear it EMPTY with a new version;
    store CAP; ``store(GEN, even, release)``. Cells past the capacity are always EMPTY,
    so an in-place grow only changes CAP.
R7. Clear RESIZING, ``store(RLOCK, 0, release)``; the old buffer joins the retired pool.

Operations (O1-O5)
------------------
O1. ``e = load(EPOCH, acquire)``; ``addr = load(ADDR, acquire)``; ``g = load(GEN,
    acquire)``; if ``g`` is odd, back off and retry from O1. ``cap = load(CAP, acquire)``
    (a resize stores CAP after its odd GEN and a release fence: seeing the new CAP makes
    the odd GEN visible to the re-checks below); if ``i >= cap``: ``fence(acquire)`` and
    report ``IndexError`` only if GEN is still ``g`` (else retry from O1).
O2. Read: the seqlock read of cell ``i`` (``_seqlock`` R1-R4), then GEN again (after
    the seqlock's acquire fence); if it moved, retry from O1. EMPTY state reports
    ``UninitializedError``.
O3. Write: load the cell's sequence word; odd: back off, retry; MOVED: wait until
    ``EPOCH != e`` (the publication that froze the cell comes after O1's load of ``e``,
    which preceded the load of ``addr``), retry from O1; else ``try_lock`` (exact-value
    CAS, acquire). Never wait for ``ADDR != addr``: a writer that sleeps through two
    resizes finds ``addr`` current again, recycled, and would wait forever.
O4. After a successful lock, load GEN: if it is no longer ``g`` (the buffer was
    resized in place or recycled after O1), give the cell back unchanged and retry from
    O1. Why this suffices: a resize bumps GEN *before* it locks any cell, and unlocks
    each cell with release; a writer whose CAS comes after the resize's unlock of that
    cell therefore sees the bump. A writer whose CAS comes before it holds the cell
    first: either it wrote before the resize copied or dropped the cell (its write is
    linearised before the resize), or it found MOVED.
O5. Write the data words, ``LEN += 1`` if the cell was EMPTY (under the cell lock, so
    exactly once per cell and never racing a shrink's count), unlock with the next even
    sequence word (release).

Progress: operations on different cells never wait for each other. Operations wait for
a resize (GEN odd, or a MOVED cell) with backoff that escalates to ``sched_yield``, so a
resizer descheduled on an oversubscribed machine gets the CPU back (HAZARDS 5).

From numba
----------
``numba.typeof(arr)`` is a :class:`SeqArrayType` whose data model holds only the header
address (unboxing costs one attribute lookup, HAZARDS 8; no reference counting inside). Inside
``@njit(nogil=True)`` code, for bool/integer/float dtypes:

- ``arr.get(i)`` returns the value; raises ``IndexError`` (index outside the capacity,
  negative included) or :class:`UninitializedError` (never set); numba exceptions carry
  their arguments as a tuple (message, index) rather than a formatted message;
- ``arr.set(i, v)``: integer values are range-checked (``OverflowError``, never wrap),
  floats into integer cells are a ``TypingError``; ``IndexError`` as for get;
- ``len(arr)`` and ``arr.capacity``.

Record, complex and sub-array dtypes are usable from Python only (their njit methods are
a ``TypingError``); the batch and snapshot kernels handle them as words.
"""
import ctypes
import operator
import os
import weakref

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
    overload_attribute,
    overload_method,
    register_model,
    typeof_impl,
    unbox,
)

from ._codec import Codec, value_word, word_scalar
from ._seqlock import (
    EMPTY,
    FULL,
    LOCKED,
    MOVED,
    copy_out,
    copy_out_plain,
    lock,
    read_begin,
    read_validate,
    seq_next,
    seq_state,
    store_in,
    try_lock,
    unlock,
    unlock_unchanged,
)
from ._unsafe import (
    atomic_cas,
    atomic_fetch_add,
    atomic_fetch_sub,
    atomic_load,
    atomic_store,
    backoff,
    fence,
    raw_alloc,
    raw_words,
)
from .config import JIT, LINE_WORDS

__all__ = ["SeqArray", "SeqArrayType", "UninitializedError"]


class UninitializedError(LookupError):
    """A SeqArray cell was read before any ``set`` of it."""


# ------------------------------------------------------------------ header word indices
H_ADDR = 0  # line 0: current buffer address (read by every operation)
H_NW = 1  # data words per cell (constant)
H_STRIDE = 2  # words per cell, 1 + NW (constant)
H_EPOCH = 3  # publications of a buffer so far (stored after ADDR, release); only grows
H_LEN = 1 * LINE_WORDS  # line 1: initialised cells
H_RLOCK = 2 * LINE_WORDS  # line 2: resize lock (0 free, 1 held)
H_RESIZING = 2 * LINE_WORDS + 1  # 1 while a resize runs (informational)
H_READ_RETRIES = 3 * LINE_WORDS  # line 3: statistics, bumped only on contention
H_WRITE_WAITS = 3 * LINE_WORDS + 1
H_RESIZES = 3 * LINE_WORDS + 2
HEADER_WORDS = 4 * LINE_WORDS

# ------------------------------------------------------------------ buffer header words
B_CAP = 0  # public capacity of this buffer (exact)
B_GEN = 1  # buffer generation: odd while a resize re-initialises it
B_NWORDS = 2  # total words of the buffer (constant for its lifetime)
B_CLASSCAP = 3  # cells the buffer has room for (its size class, constant)
CELLS = LINE_WORDS  # first cell word

# ------------------------------------------------------------------ operation status
ST_OK = 0
ST_INDEX = 1
ST_UNINIT = 2

#: capacities above this are rejected with ValueError (2**40 cells: terabytes)
MAX_CAPACITY = 1 << 40
#: smallest size class
MIN_CLASS = 4

_MISSING = object()


# =================================================================== njit core (inline)


@numba.njit(inline="always", **JIT)
def _view(addr):
    """The buffer at `addr` as a uint64 array (its length read from its header line)."""
    n = numba.int64(raw_words(addr, LINE_WORDS)[B_NWORDS])  # constant; published by ADDR's release
    return raw_words(addr, n)


@numba.njit(inline="always", **JIT)
def _locate(hdr, i, stride):
    """O1: (epoch, addr, buf, gen, base, status) for cell `i` of the current buffer.

    Waits (backoff) while the buffer's generation is odd. ``status`` is ST_INDEX when
    `i` is outside the capacity of a buffer whose generation did not move meanwhile.
    """
    step = 0
    while True:
        # EPOCH before ADDR (both acquire; a publisher stores ADDR, then EPOCH): `e`
        # predates the publication of `addr` or is that publication, so a writer that
        # later finds a cell of `addr` MOVED waits for EPOCH to leave `e`, which the
        # publication that froze the cell does. ADDR itself can recur (recycled buffers).
        e = atomic_load(hdr, H_EPOCH, "acquire")
        addr = atomic_load(hdr, H_ADDR, "acquire")  # sees the published buffer whole
        buf = _view(addr)
        g = atomic_load(buf, B_GEN, "acquire")  # cap and cell loads stay below this
        if g & numba.uint64(1):
            step = backoff(step)  # a resize is re-initialising this buffer
            continue
        # acquire: a resize stores GEN odd, fences (release), then stores CAP; seeing its
        # CAP makes its odd GEN visible to every later load, so the GEN re-checks below
        # and after a writer's CAS (O4) cannot pass with a new CAP and the old GEN
        cap = atomic_load(buf, B_CAP, "acquire")
        if numba.uint64(i) >= cap:  # negative i wraps to a huge unsigned: also out
            fence("acquire")  # the cap load above is ordered before the GEN re-check
            if atomic_load(buf, B_GEN, "relaxed") == g:
                return e, addr, buf, g, 0, ST_INDEX
            continue  # resized under us: the capacity may have grown
        return e, addr, buf, g, CELLS + numba.int64(i) * stride, ST_OK


@numba.njit(inline="always", **JIT)
def _read_words(hdr, i, out, sync):
    """O1-O2 into ``out[:NW]``; returns (status, retries). ``sync=False``: the
    unsynchronised control (plain loads, no sequence checks: never use with writers)."""
    nw = numba.int64(hdr[H_NW])
    stride = numba.int64(hdr[H_STRIDE])
    retries = 0
    while True:
        e, addr, buf, g, base, st = _locate(hdr, i, stride)
        if st != ST_OK:
            return st, retries
        if not sync:
            copy_out_plain(buf, base + 1, nw, out, 0)
            return ST_OK, retries
        s1, w = read_begin(buf, base)  # R1
        retries += w
        copy_out(buf, base + 1, nw, out, 0)  # R2
        if not read_validate(buf, base, s1):  # R3-R4: torn, start over
            retries += 1
            continue
        if atomic_load(buf, B_GEN, "relaxed") != g:  # after R3's acquire fence
            retries += 1  # resized in place or recycled under us: start over
            continue
        if seq_state(s1) == EMPTY:
            return ST_UNINIT, retries
        return ST_OK, retries


@numba.njit(inline="always", **JIT)
def _read1(hdr, i):
    """O1-O2 for a one-word cell: (status, word, retries)."""
    retries = 0
    while True:
        e, addr, buf, g, base, st = _locate(hdr, i, 2)
        if st != ST_OK:
            return st, numba.uint64(0), retries
        s1, wt = read_begin(buf, base)  # R1 (acquire)
        retries += wt
        w = atomic_load(buf, base + 1, "relaxed")  # R2
        if not read_validate(buf, base, s1):  # R3-R4
            retries += 1
            continue
        if atomic_load(buf, B_GEN, "relaxed") != g:
            retries += 1
            continue
        if seq_state(s1) == EMPTY:
            return ST_UNINIT, w, retries
        return ST_OK, w, retries


# outcomes of one lock attempt on a located cell
TL_OK = 0  # locked
TL_BUSY = 1  # another writer holds the cell or won the CAS: back off, retry
TL_MOVED = 2  # frozen by a resize: wait until ADDR changes, retry from O1
TL_STALE = 3  # the buffer was resized in place or recycled since O1: retry from O1


@numba.njit(inline="always", **JIT)
def _try_lock_at(buf, base, g):
    """O3-O4: one attempt to lock the cell at `base` of a buffer located with GEN `g`.

    Returns (seq, outcome); on TL_OK the cell is locked and `seq` is its even word.
    """
    s = atomic_load(buf, base, "relaxed")  # O3 (W1)
    if s & numba.uint64(LOCKED):
        return s, TL_BUSY
    if s & numba.uint64(MOVED):
        return s, TL_MOVED
    if not try_lock(buf, base, s):  # W2-W3: exact-value CAS (acquire)
        return s, TL_BUSY
    if atomic_load(buf, B_GEN, "relaxed") != g:  # O4: ordered after the acquire CAS
        unlock_unchanged(buf, base, s)  # nothing written: readers see no change
        return s, TL_STALE
    return s, TL_OK


@numba.njit(inline="always", **JIT)
def _lock_cell(hdr, i, stride):
    """O1, O3-O4: lock cell `i` of the current buffer; (buf, base, seq, status, waits)."""
    waits = 0
    step = 0
    while True:
        e, addr, buf, g, base, st = _locate(hdr, i, stride)
        if st != ST_OK:
            return buf, base, numba.uint64(0), st, waits
        s, outcome = _try_lock_at(buf, base, g)
        if outcome == TL_OK:
            return buf, base, s, ST_OK, waits
        waits += 1
        if outcome == TL_BUSY:
            step = backoff(step)
        elif outcome == TL_MOVED:  # wait for the publication of the new buffer
            # on EPOCH, which only grows: waiting for ADDR to change never ends for a
            # writer that sleeps through A -> B -> A (A recycled at the same address)
            while atomic_load(hdr, H_EPOCH, "acquire") == e:
                step = backoff(step)
        # TL_STALE: start over from the header at once


@numba.njit(inline="always", **JIT)
def _finish_write(hdr, buf, base, s):
    """O5 (after the data words are stored): count a first set, then unlock (W4)."""
    if seq_state(s) == EMPTY:
        atomic_fetch_add(hdr, H_LEN, 1, "relaxed")  # under the cell lock: once per cell
    unlock(buf, base, seq_next(s, FULL))


@numba.njit(inline="always", **JIT)
def _write_words(hdr, i, src):
    """Set cell `i` to the words ``src[:NW]``; returns (status, waits)."""
    buf, base, s, st, waits = _lock_cell(hdr, i, numba.int64(hdr[H_STRIDE]))
    if st != ST_OK:
        return st, waits
    store_in(buf, base + 1, numba.int64(hdr[H_NW]), src, 0)
    _finish_write(hdr, buf, base, s)
    return ST_OK, waits


@numba.njit(inline="always", **JIT)
def _write1(hdr, i, w):
    """Set one-word cell `i` to word `w`; returns (status, waits)."""
    buf, base, s, st, waits = _lock_cell(hdr, i, 2)
    if st != ST_OK:
        return st, waits
    atomic_store(buf, base + 1, w, "relaxed")  # W3 (the fence is in try_lock)
    _finish_write(hdr, buf, base, s)
    return ST_OK, waits


@numba.njit(inline="always", **JIT)
def _count(hdr, idx, n):
    """Add `n` to a statistics counter (callers only call this when ``n > 0``)."""
    atomic_fetch_add(hdr, idx, n, "relaxed")


@numba.njit(inline="always", **JIT)
def _capacity(hdr):
    """The current capacity, read consistently with the buffer's generation."""
    step = 0
    while True:
        buf = _view(atomic_load(hdr, H_ADDR, "acquire"))
        g = atomic_load(buf, B_GEN, "acquire")
        if g & numba.uint64(1):
            step = backoff(step)
            continue
        cap = atomic_load(buf, B_CAP, "acquire")  # see _locate
        fence("acquire")
        if atomic_load(buf, B_GEN, "relaxed") == g:
            return cap


def _cast_to(v, tok):
    raise NotImplementedError("only callable from njit code")


@overload(_cast_to, inline="always")
def _ov_cast_to(v, tok):
    target = tok.dtype
    return lambda v, tok: target(v)


# =================================================================== kernels (Python fast path)


@numba.njit(**JIT)
def _k_get1(hdr, i, tok):
    """get of a one-word scalar cell; the dtype comes from the empty token array."""
    st, w, retries = _read1(hdr, i)
    if retries:
        _count(hdr, H_READ_RETRIES, retries)
    if st == ST_INDEX:
        raise IndexError("SeqArray.get: index out of range", i)
    if st == ST_UNINIT:
        raise UninitializedError("SeqArray.get: cell was never set", i)
    return word_scalar(w, tok)


@numba.njit(**JIT)
def _k_set1(hdr, i, v, tok):
    """set of a one-word scalar cell (the caller checked that `v` fits the dtype)."""
    st, waits = _write1(hdr, i, value_word(_cast_to(v, tok)))
    if waits:
        _count(hdr, H_WRITE_WAITS, waits)
    if st == ST_INDEX:
        raise IndexError("SeqArray.set: index out of range", i)


@numba.njit(**JIT)
def _k_getn(hdr, i, out):
    """get of a multi-word cell into `out` (canonical words)."""
    st, retries = _read_words(hdr, i, out, True)
    if retries:
        _count(hdr, H_READ_RETRIES, retries)
    if st == ST_INDEX:
        raise IndexError("SeqArray.get: index out of range", i)
    if st == ST_UNINIT:
        raise UninitializedError("SeqArray.get: cell was never set", i)


@numba.njit(**JIT)
def _k_setn(hdr, i, src):
    """set of a multi-word cell from canonical words `src`."""
    st, waits = _write_words(hdr, i, src)
    if waits:
        _count(hdr, H_WRITE_WAITS, waits)
    if st == ST_INDEX:
        raise IndexError("SeqArray.set: index out of range", i)


@numba.njit(**JIT)
def _k_capacity(hdr):
    return _capacity(hdr)


@numba.njit(**JIT)
def _k_snapshot(hdr):
    """A consistent-per-cell copy: (words[cap * NW], initialised[cap]).

    Each cell is a seqlock read; the whole copy is repeated if the buffer was resized
    under it (GEN moved), so every cell comes from one buffer generation.
    """
    nw = numba.int64(hdr[H_NW])
    stride = numba.int64(hdr[H_STRIDE])
    step = 0
    retries = 0
    while True:
        buf = _view(atomic_load(hdr, H_ADDR, "acquire"))
        g = atomic_load(buf, B_GEN, "acquire")
        if g & numba.uint64(1):
            step = backoff(step)
            continue
        cap = numba.int64(atomic_load(buf, B_CAP, "acquire"))  # see _locate
        out = np.zeros(cap * nw, np.uint64)
        init = np.zeros(cap, np.bool_)
        for j in range(cap):
            base = CELLS + j * stride
            while True:
                s1, w = read_begin(buf, base)
                retries += w
                copy_out(buf, base + 1, nw, out, j * nw)
                if read_validate(buf, base, s1):
                    break
                retries += 1
            init[j] = seq_state(s1) != EMPTY
        if atomic_load(buf, B_GEN, "relaxed") == g:  # after the last R3 acquire fence
            if retries:
                _count(hdr, H_READ_RETRIES, retries)
            return out, init
        retries += 1


@numba.njit(**JIT)
def _k_fill(hdr, words, init):
    """Set every cell `j` with ``init[j]`` to ``words[j*NW : (j+1)*NW]`` (a copy's fill)."""
    nw = numba.int64(hdr[H_NW])
    for j in range(init.shape[0]):
        if init[j]:
            _write_words(hdr, j, words[j * nw:(j + 1) * nw])


@numba.njit(**JIT)
def _k_new_buffer(nwords, classcap):
    """Allocate a zeroed buffer of `nwords` words for `classcap` cells; 0 on failure."""
    addr = raw_alloc(nwords * 8)
    if addr != 0:
        hv = raw_words(addr, LINE_WORDS)
        hv[B_NWORDS] = nwords  # constants, published later by ADDR's release store
        hv[B_CLASSCAP] = classcap
    return addr


@numba.njit(**JIT)
def _k_set_cap(addr, cap):
    """Capacity of a buffer nobody else can see yet (construction)."""
    raw_words(addr, LINE_WORDS)[B_CAP] = cap


@numba.njit(**JIT)
def _k_resize_lock(hdr):
    """R1: take the resize lock (waiting with backoff for another resize) and flag it."""
    step = 0
    while atomic_cas(hdr, H_RLOCK, 0, 1, "acquire") != 0:
        step = backoff(step)
    atomic_store(hdr, H_RESIZING, 1, "relaxed")


@numba.njit(**JIT)
def _k_resize_unlock(hdr):
    """R7: clear the flag and release the resize lock."""
    atomic_store(hdr, H_RESIZING, 0, "relaxed")
    atomic_store(hdr, H_RLOCK, 0, "release")  # the buffer swap happens-before the next resize


@numba.njit(**JIT)
def _k_resize_copy(hdr, new_addr, new_cap, recycled):
    """R3-R5: move every cell to the buffer at `new_addr` and publish it."""
    nw = numba.int64(hdr[H_NW])
    stride = numba.int64(hdr[H_STRIDE])
    old = _view(atomic_load(hdr, H_ADDR, "relaxed"))  # only resizes (we) change it
    new = _view(new_addr)
    old_cap = numba.int64(atomic_load(old, B_CAP, "relaxed"))
    g = atomic_load(new, B_GEN, "relaxed")
    if recycled:
        atomic_store(new, B_GEN, g + numba.uint64(1), "relaxed")  # R3: odd, stale operations start over
        fence("release")  # the bump is visible before any cell write below
    atomic_store(new, B_CAP, new_cap, "relaxed")
    ncopy = min(old_cap, numba.int64(new_cap))
    class_cap = numba.int64(new[B_CLASSCAP])
    for j in range(class_cap):
        nb = CELLS + j * stride
        if j < ncopy:  # R4
            s_new, _ = lock(new, nb)  # a stale writer may be passing through
            ob = CELLS + j * stride
            s_old, _ = lock(old, ob)  # waits for a writer holding the cell
            for k in range(1, nw + 1):
                atomic_store(new, nb + k, atomic_load(old, ob + k, "relaxed"), "relaxed")
            unlock(new, nb, seq_next(s_new, seq_state(s_old)))
            unlock(old, ob, s_old | numba.uint64(MOVED))  # frozen; data unchanged
        elif recycled:  # re-initialise the rest EMPTY, versions continuing
            s_new, _ = lock(new, nb)
            for k in range(1, nw + 1):
                atomic_store(new, nb + k, 0, "relaxed")
            unlock(new, nb, seq_next(s_new, EMPTY))
        else:
            break  # a fresh buffer is zero: every cell EMPTY at version 0
    dropped = 0
    for j in range(ncopy, old_cap):  # a shrink: freeze the dropped cells, count them
        ob = CELLS + j * stride
        s_old, _ = lock(old, ob)
        if seq_state(s_old) != EMPTY:
            dropped += 1
        unlock(old, ob, s_old | numba.uint64(MOVED))
    if dropped:
        atomic_fetch_sub(hdr, H_LEN, dropped, "relaxed")
    # R5: publish. GEN even (release) covers every cell write above; ADDR (release)
    # covers GEN, so an acquire load of ADDR sees the whole buffer.
    atomic_store(new, B_GEN, g + numba.uint64(2) if recycled else g, "release")
    atomic_store(hdr, H_ADDR, new_addr, "release")
    atomic_store(hdr, H_EPOCH, atomic_load(hdr, H_EPOCH, "relaxed") + numba.uint64(1), "release")  # after ADDR
    atomic_fetch_add(hdr, H_RESIZES, 1, "relaxed")


@numba.njit(**JIT)
def _k_resize_inplace(hdr, new_cap):
    """R6: change the capacity within the current buffer's size class."""
    nw = numba.int64(hdr[H_NW])
    stride = numba.int64(hdr[H_STRIDE])
    buf = _view(atomic_load(hdr, H_ADDR, "relaxed"))
    g = atomic_load(buf, B_GEN, "relaxed")
    atomic_store(buf, B_GEN, g + numba.uint64(1), "relaxed")  # odd: operations wait or start over
    fence("release")  # the bump is visible before the clears below
    old_cap = numba.int64(atomic_load(buf, B_CAP, "relaxed"))
    dropped = 0
    for j in range(numba.int64(new_cap), old_cap):
        b = CELLS + j * stride
        s, _ = lock(buf, b)
        if seq_state(s) != EMPTY:
            dropped += 1
        for k in range(1, nw + 1):
            atomic_store(buf, b + k, 0, "relaxed")
        unlock(buf, b, seq_next(s, EMPTY))  # cells past the capacity are always EMPTY
    if dropped:
        atomic_fetch_sub(hdr, H_LEN, dropped, "relaxed")
    atomic_store(buf, B_CAP, new_cap, "relaxed")
    atomic_store(buf, B_GEN, g + numba.uint64(2), "release")  # covers the clears and CAP
    atomic_fetch_add(hdr, H_RESIZES, 1, "relaxed")


# =================================================================== Python side

_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]
_libc.free.restype = None


def _free_buffers(owned):
    """Finalizer: release every buffer a SeqArray ever owned (it is dead: no reader)."""
    for addr in owned.values():
        _libc.free(ctypes.c_void_p(addr))
    owned.clear()


def _phys_bytes():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 62


def _check_capacity(n, what):
    if isinstance(n, (bool, np.bool_)):
        raise TypeError(f"{what}: capacity must be an integer, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{what}: capacity must be an integer, got {type(n).__name__} {n!r}") from None
    if n <= 0:
        raise ValueError(f"{what}: capacity must be positive, got {n}")
    if n > MAX_CAPACITY:
        raise ValueError(f"{what}: capacity {n} is absurd (at most {MAX_CAPACITY})")
    return n


def _size_class(n):
    return max(MIN_CLASS, 1 << (n - 1).bit_length())


def _aligned_header():
    raw = np.zeros(HEADER_WORDS + LINE_WORDS, np.uint64)
    off = (-raw.ctypes.data % (LINE_WORDS * 8)) // 8
    return raw[off : off + HEADER_WORDS]  # the view keeps `raw` alive


class SeqArray:
    """An array of fixed-size items whose every cell is its own seqlock.

    ``SeqArray(dtype, capacity)``: `dtype` any fixed-size numpy dtype (bool, integers,
    floats, complex, records, sub-arrays); `capacity` a positive int. All cells start
    uninitialised.

    Reads never return a torn value; reads and writes of different cells never block
    each other; :meth:`resize` may run while other threads get and set (they wait for it
    with backoff, nothing written is lost). Every method may be called from any number
    of Python threads; the scalar ones each run one ``nogil`` kernel. See the module
    docstring for the protocol and for use from ``@njit`` code.

    Indices are non-negative: negative indices raise ``IndexError`` (with a capacity
    that may change under concurrent resizes, counting from the end has no stable
    meaning).
    """

    def __init__(self, dtype, capacity):
        self._codec = Codec(dtype, is_key=False, what="SeqArray dtype")
        cap = _check_capacity(capacity, "SeqArray")
        dt = self._codec.dtype
        self.dtype = dt
        self._nw = self._codec.nwords
        self._stride = 1 + self._nw
        # one-word scalars numba handles natively (not float16 / longdouble)
        self._scalar = dt.fields is None and dt.subdtype is None and (dt.kind in "biu" or dt in (np.float32, np.float64))
        self._tok = np.empty(0, dt) if self._scalar else None
        self._type = dt.type
        self._kind = self._codec.kind
        self._lo, self._hi = self._codec.lo, self._codec.hi
        self._f32 = dt == np.float32
        self._owned = {}  # size class -> buffer address; at most one per class
        hdr = _aligned_header()
        cls = _size_class(cap)
        addr = self._alloc(cls)
        _k_set_cap(addr, cap)
        hdr[H_ADDR] = addr
        hdr[H_NW] = self._nw
        hdr[H_STRIDE] = self._stride
        self._hdr = hdr
        self._hdr_addr = int(hdr.ctypes.data)  # what njit code unboxes (see SeqArrayType)
        self._cls = cls
        self._finalizer = weakref.finalize(self, _free_buffers, self._owned)

    @classmethod
    def with_capacity(cls, dtype, capacity):
        """Same as ``SeqArray(dtype, capacity)``."""
        return cls(dtype, capacity)

    # ------------------------------------------------------------ memory
    def _buffer_bytes(self, cls):
        return (CELLS + cls * self._stride) * 8

    def _alloc(self, cls):
        """A new zeroed buffer for size class `cls`, recorded as owned; MemoryError."""
        nbytes = self._buffer_bytes(cls)
        if nbytes > _phys_bytes():
            raise MemoryError(f"SeqArray: a buffer of {cls} cells needs {nbytes} bytes, more than this machine has")
        addr = _k_new_buffer(nbytes // 8, cls)
        if addr == 0:
            raise MemoryError(f"SeqArray: could not allocate {nbytes} bytes for {cls} cells")
        self._owned[cls] = addr
        return addr

    def memory_bytes(self):
        """Bytes held: the header plus every buffer (current and retired, see module doc)."""
        return self._hdr.nbytes + sum(self._buffer_bytes(c) for c in list(self._owned))

    # ------------------------------------------------------------ scalar operations
    def _index(self, i):
        if type(i) is not int:
            if isinstance(i, (bool, np.bool_)):
                raise TypeError(f"SeqArray index must be an integer, got {i!r}")
            try:
                i = operator.index(i)
            except TypeError:
                raise TypeError(f"SeqArray index must be an integer, got {type(i).__name__} {i!r}") from None
        if i < 0 or i >= MAX_CAPACITY:
            raise IndexError(f"SeqArray index {i} out of range (capacity {self.capacity})")
        return i

    def get(self, i, default=_MISSING):
        """The value of cell `i` (a numpy scalar, or a copy for record/sub-array dtypes).

        ``IndexError`` outside the capacity; :class:`UninitializedError` if the cell was
        never set, unless `default` is given (then `default` is returned).
        """
        if type(i) is not int or not 0 <= i < MAX_CAPACITY:
            i = self._index(i)  # raises: the kernels only see 0 <= i < 2**40
        try:
            if self._tok is not None:
                return self._type(_k_get1(self._hdr, i, self._tok))
            out = np.empty(self._nw, np.uint64)
            _k_getn(self._hdr, i, out)
            return self._codec.from_words(out)
        except UninitializedError:
            if default is _MISSING:
                raise UninitializedError(f"SeqArray cell {i} was never set") from None
            return default
        except IndexError:
            raise IndexError(f"SeqArray index {i} out of range (capacity {self.capacity})") from None

    def set(self, i, v):
        """Store `v` in cell `i`.

        `v` must convert to the dtype without loss of range: ``TypeError`` (wrong kind,
        e.g. a float for an integer dtype), ``OverflowError`` (out of range),
        ``IndexError`` (outside the capacity). A rejected call changes nothing.
        """
        if type(i) is not int or not 0 <= i < MAX_CAPACITY:
            i = self._index(i)  # raises: the kernels only see 0 <= i < 2**40
        try:
            if self._tok is not None:
                t = type(v)
                kind = self._kind
                if kind in "iu":
                    if t is not int or v < self._lo or v > self._hi:
                        v = self._codec.to_item(v).item()
                elif kind == "f":
                    if t is not float or (self._f32 and not -3.4028234663852886e38 <= v <= 3.4028234663852886e38):
                        v = float(self._codec.to_item(v))
                elif t is not bool:
                    v = bool(self._codec.to_item(v))
                _k_set1(self._hdr, i, v, self._tok)
            else:
                _k_setn(self._hdr, i, self._codec.words(v))
        except IndexError:
            raise IndexError(f"SeqArray index {i} out of range (capacity {self.capacity})") from None

    # ------------------------------------------------------------ size
    @property
    def capacity(self):
        """The current capacity (exact, as given to the constructor or resize)."""
        return int(_k_capacity(self._hdr))

    def __len__(self):
        """Initialised cells. Exact when no write or resize is in flight; may lag otherwise."""
        return int(self._hdr[H_LEN])

    def is_empty(self):
        """True when no cell is initialised."""
        return len(self) == 0

    @property
    def resizing(self):
        """True while a resize is in progress."""
        return bool(self._hdr[H_RESIZING])

    def resize(self, capacity):
        """Change the capacity to `capacity`, while other threads keep using the array.

        Growing adds uninitialised cells; shrinking drops the cells past the new end
        (``len`` decreases by the initialised ones). Concurrent gets and sets wait with
        backoff while cells move and then continue on the new buffer; none is lost.
        Concurrent resizes are serialised. ``MemoryError`` if the buffer cannot be
        allocated (the array is left unchanged); ``ValueError``/``TypeError`` for a bad
        capacity.
        """
        n = _check_capacity(capacity, "SeqArray.resize")
        _k_resize_lock(self._hdr)
        try:
            cls = _size_class(n)
            if cls == self._cls:
                _k_resize_inplace(self._hdr, n)
                return
            addr = self._owned.get(cls, 0)  # the retired buffer of this class, if any
            recycled = addr != 0
            if not recycled:
                addr = self._alloc(cls)  # MemoryError: nothing has changed
            _k_resize_copy(self._hdr, addr, n, recycled)
            self._cls = cls  # the old buffer stays in _owned: retired, reused later
        finally:
            _k_resize_unlock(self._hdr)

    # ------------------------------------------------------------ bulk
    def to_numpy(self):
        """A snapshot copy as a ``numpy.ma.MaskedArray``; uninitialised cells are masked.

        Every cell is read consistently (never torn) from one buffer generation; cells
        written while the copy runs may appear with their old or new value. Masked cells
        hold zeros in ``.data``. Scalar and record dtypes give a 1-d masked array of the
        dtype (for records the mask covers every field of a cell); sub-array dtypes
        give shape ``(capacity, *item_shape)`` with the mask repeated over the item.
        The initialised mask is ``~result.mask`` (``numpy.ma.getmaskarray``).
        """
        words, init = _k_snapshot(self._hdr)
        cap = init.shape[0]
        vals = self._codec.words_array(words.reshape(cap, self._nw))
        if self.dtype.subdtype is not None:
            mask = np.broadcast_to(~init.reshape((cap,) + (1,) * len(self.dtype.shape)), vals.shape).copy()
            return np.ma.masked_array(vals, mask=mask)
        if self.dtype.fields is not None:
            mask = np.empty(cap, dtype=np.ma.make_mask_descr(self.dtype))
            for name in self.dtype.names:
                mask[name] = ~init
            return np.ma.masked_array(vals, mask=mask)
        return np.ma.masked_array(vals, mask=~init)

    # ------------------------------------------------------------ copies
    # The buffers are raw memory addressed from the header: copying attributes would
    # alias them (and outlive them), pickling would send a meaningless address. Copies
    # and pickles carry the contents instead (a snapshot, as to_numpy takes it).
    def copy(self):
        """An independent SeqArray with the same capacity and cells (a snapshot)."""
        return _rebuild_array(*self._contents())

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        c = self.copy()
        memo[id(self)] = c
        return c

    def __reduce__(self):
        return _rebuild_array, self._contents()

    def _contents(self):
        words, init = _k_snapshot(self._hdr)
        return self.dtype, int(init.shape[0]), words, init

    # ------------------------------------------------------------ statistics
    def stats(self):
        """Counters since creation or :meth:`reset_stats`: read_retries (seqlock reads
        repeated), write_waits (writes that waited for a cell or a resize), resizes."""
        h = self._hdr
        return {
            "read_retries": int(h[H_READ_RETRIES]),
            "write_waits": int(h[H_WRITE_WAITS]),
            "resizes": int(h[H_RESIZES]),
        }

    def reset_stats(self):
        """Zero the statistics counters."""
        self._hdr[H_READ_RETRIES : H_RESIZES + 1] = 0

    def __repr__(self):
        return f"SeqArray({self.dtype}, capacity={self.capacity}, len={len(self)})"


def _rebuild_array(dtype, capacity, words, init):
    arr = SeqArray(dtype, capacity)
    _k_fill(arr._hdr, np.ascontiguousarray(words, np.uint64), np.ascontiguousarray(init, np.bool_))
    return arr


# =================================================================== numba integration


#: bump whenever the data model, the header/buffer layout or the njit methods change
_LAYOUT_VERSION = 4


class SeqArrayType(types.Type):
    """numba type of a :class:`SeqArray`.

    The data model is one uint64: the address of the header array. Unboxing reads one
    int attribute, and using the header inside njit code involves no reference counting
    (a model holding the header *array* costs an atomic incref/decref pair per call of
    ``get``/``set``, measured at several ns each). Safe because the header lives as long
    as the SeqArray, which the caller of the njit function keeps alive for the call; a
    SeqArray cannot be returned from or stored by njit code (there is no boxing).
    """

    def __init__(self, dtype):
        self.dtype = dtype
        # the layout version is part of the type's key: numba's on-disk cache keys compiled
        # functions by their argument types and the *caller's* source file only, so a
        # change of this data model must change the type, or a cached caller elsewhere
        # would run against the old layout
        super().__init__(name=f"SeqArray({dtype}, layout={_LAYOUT_VERSION})")


@typeof_impl.register(SeqArray)
def _typeof_seqarray(val, c):
    return SeqArrayType(numba.from_dtype(val.dtype) if val._scalar else types.Opaque(str(val.dtype)))


@register_model(SeqArrayType)
class _SeqArrayModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("addr", types.uint64)])


make_attribute_wrapper(SeqArrayType, "addr", "addr")


@numba.njit(inline="always", **JIT)
def _hdr_of(arr):
    """The header of a SeqArray inside njit code, as an unowned uint64 view."""
    return raw_words(arr.addr, HEADER_WORDS)


@unbox(SeqArrayType)
def _unbox_seqarray(typ, obj, c):
    sa = cgutils.create_struct_proxy(typ)(c.context, c.builder)
    is_error = cgutils.alloca_once_value(c.builder, cgutils.false_bit)
    addr_obj = c.pyapi.object_getattr_string(obj, "_hdr_addr")
    with c.builder.if_else(cgutils.is_not_null(c.builder, addr_obj)) as (ok, failed):
        with ok:
            sa.addr = c.pyapi.long_as_ulonglong(addr_obj)
            c.pyapi.decref(addr_obj)
            c.builder.store(cgutils.is_not_null(c.builder, c.pyapi.err_occurred()), is_error)
        with failed:  # AttributeError already set
            c.builder.store(cgutils.true_bit, is_error)
    return NativeValue(sa._getvalue(), is_error=c.builder.load(is_error))


def _scalar_only(arr, what):
    if not isinstance(arr.dtype, (types.Integer, types.Float, types.Boolean)):
        raise TypingError(
            f"SeqArray.{what} in njit code supports bool/integer/float dtypes; "
            f"{arr.dtype} cells are usable from Python (and batch kernels) only"
        )


@overload_method(SeqArrayType, "get", jit_options=JIT)
def _ov_get(arr, i):
    _scalar_only(arr, "get")
    if not isinstance(i, types.Integer):
        raise TypingError(f"SeqArray.get: the index must be an integer, got {i}")
    dt = arr.dtype

    def impl(arr, i):
        hdr = _hdr_of(arr)
        st, w, retries = _read1(hdr, i)
        if retries:
            _count(hdr, H_READ_RETRIES, retries)
        if st == ST_INDEX:
            raise IndexError("SeqArray.get: index out of range", i)
        if st == ST_UNINIT:
            raise UninitializedError("SeqArray.get: cell was never set", i)
        return word_scalar(w, dt)

    return impl


def _range_check(vty, dt):
    """njit function raising OverflowError when a value of type `vty` does not fit `dt`."""
    if isinstance(dt, types.Integer) and isinstance(vty, types.Integer):
        lo, hi = (-(1 << (dt.bitwidth - 1)), (1 << (dt.bitwidth - 1)) - 1) if dt.signed else (0, (1 << dt.bitwidth) - 1)
        vlo, vhi = (-(1 << (vty.bitwidth - 1)), (1 << (vty.bitwidth - 1)) - 1) if vty.signed else (0, (1 << vty.bitwidth) - 1)
        if lo <= vlo and vhi <= hi:
            return None
        if vty.signed and not dt.signed:  # compare in the value's own signedness
            def check(v):
                if v < 0 or numba.uint64(v) > numba.uint64(hi):
                    raise OverflowError("SeqArray.set: value out of range for the dtype", v)
        elif not vty.signed and dt.signed:
            def check(v):
                if v > numba.uint64(hi):
                    raise OverflowError("SeqArray.set: value out of range for the dtype", v)
        else:
            def check(v):
                if v < lo or v > hi:
                    raise OverflowError("SeqArray.set: value out of range for the dtype", v)
        return numba.njit(inline="always")(check)
    return None


@overload_method(SeqArrayType, "set", jit_options=JIT)
def _ov_set(arr, i, v):
    _scalar_only(arr, "set")
    if not isinstance(i, types.Integer):
        raise TypingError(f"SeqArray.set: the index must be an integer, got {i}")
    dt = arr.dtype
    if isinstance(dt, types.Boolean):
        ok = isinstance(v, types.Boolean)
    elif isinstance(dt, types.Integer):
        ok = isinstance(v, (types.Integer, types.Boolean))
    else:
        ok = isinstance(v, (types.Integer, types.Float, types.Boolean))
    if not ok:
        raise TypingError(f"SeqArray.set: cannot store a {v} in a {dt} cell without loss")
    check = _range_check(v, dt)
    f32 = dt == types.float32 and isinstance(v, types.Float) and v.bitwidth > 32

    if check is not None:
        def impl(arr, i, v):
            check(v)
            hdr = _hdr_of(arr)
            st, waits = _write1(hdr, i, value_word(dt(v)))
            if waits:
                _count(hdr, H_WRITE_WAITS, waits)
            if st == ST_INDEX:
                raise IndexError("SeqArray.set: index out of range", i)
    elif f32:
        def impl(arr, i, v):
            x = dt(v)
            if np.isinf(x) and not np.isinf(v):
                raise OverflowError("SeqArray.set: value overflows float32", v)
            hdr = _hdr_of(arr)
            st, waits = _write1(hdr, i, value_word(x))
            if waits:
                _count(hdr, H_WRITE_WAITS, waits)
            if st == ST_INDEX:
                raise IndexError("SeqArray.set: index out of range", i)
    else:
        def impl(arr, i, v):
            hdr = _hdr_of(arr)
            st, waits = _write1(hdr, i, value_word(dt(v)))
            if waits:
                _count(hdr, H_WRITE_WAITS, waits)
            if st == ST_INDEX:
                raise IndexError("SeqArray.set: index out of range", i)

    return impl


@overload(len, jit_options=JIT)
def _ov_len(arr):
    if isinstance(arr, SeqArrayType):
        return lambda arr: atomic_load(_hdr_of(arr), H_LEN, "relaxed")


@overload_attribute(SeqArrayType, "capacity", jit_options=JIT)
def _ov_capacity(arr):
    return lambda arr: _capacity(_hdr_of(arr))
