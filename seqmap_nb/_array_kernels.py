"""SeqArray kernels: cells that are their own seqlocks, resized by a job every writer helps.

``seqarray`` is the thin public layer (validation, numpy scalars, the numba methods); this
module holds the kernels, on the buffer life of ``_lifecycle`` (read that first: the
header prefix, jobs J1-J6, chunk claims, the waits) and the lock of ``_seqlock``.

Layout
======
Header: the lifecycle prefix, then on line 0 the words per cell's data (NW) and the cell
stride (1 + NW); one line holds LEN (cells ever set, minus those a shrink dropped), one the
statistics (read retries, write waits), so that no counter shares a line with what every
operation reads.

A buffer (raw memory, never freed while the array lives)::

    +- line 0 ------------------------------------+- cells -----------------------------+- chunks -+
    | NBYTES | CAP | CLASSCAP | LOG2 | NCHUNKS | OFF | seq | w0 .. w(NW-1) | seq | w0 .. | ...   | one per  |
    +---------------------------------------------+-------------------------------------+ 1024 cells
      CAP      the capacity (exact) while this buffer is current; CLASSCAP the cells it has
               room for (its size class: a power of two, at least 4)

A cell is a sequence word and NW data words (``_codec``'s canonical words), state EMPTY
(never set) or FULL. Cells are packed: a cell need not start a cache line.

Operations
==========
  A1. ``e = load(EPOCH, acquire)``, ``o = load(BUF, acquire)``; in a move phase (odd ``e``)
      also ``n = load(NEXT, acquire)`` (``o == n``: the publication is under way, wait for
      EPOCH and start over). The capacity that counts is that of ``o``, or of ``n`` in a
      move phase: a resize takes effect at its flip. An index past it is an IndexError
      once the EPOCH check (A4) confirms the capacity read was current.
  A2. Read cell ``i``: the seqlock read (S1-S4) of ``o``'s cell; in a move phase, for an
      index below both capacities, ``fence(acquire)`` and the state of ``i``'s chunk: done
      means the cell was copied into ``n`` before the chunk went done (release), and only
      ``n``'s copy is written from then on: read ``n``'s cell instead. An index below
      ``n``'s capacity only (a grow) is read from ``n`` at once: no cell of ``o`` holds it.
      While the chunk is not done, writers of ``i`` wait for it (A3), so ``o``'s cell is
      current: the read linearizes at the load of the chunk state.
  A3. Write cell ``i``: in a move phase first the move-phase duties (one chunk of the job in
      order, then ``i``'s own chunk: claim and move it, or wait while its mover finishes),
      then write ``n``; else write ``o``. Lock the cell (``_seqlock`` L1-L3, seq_cst), then
      the EPOCH check of ``_lifecycle.epoch_ok``: in ``o``, EPOCH must still be ``e`` (a
      flip since means the job's mover may already have copied this cell: give it back
      unchanged, start over), in ``n`` it may also be ``e+1`` (``n`` published). Write the
      data, count LEN if the cell was EMPTY (under the cell's lock: once per cell, never
      racing a shrink's count), unlock (L4).
  A4. After a read, ``fence(acquire)`` and ``load(EPOCH) == e``, else start over: a recycled
      buffer's cells, or a later buffer, cannot pass for ours (EPOCH never repeats).

Resize (``_lifecycle`` J1-J6; driven to its end by the thread that calls ``resize``)
=================================================================================
The target is a buffer of the new capacity's size class: the pool's (recycled, cleared
cooperatively first) or a fresh one. Moving chunk ``c``: for each cell below both
capacities that is FULL, wait while it is locked (a writer that locked before the flip
finishes), lock the target cell, copy the data words, check the source's sequence word
again (S3-S4: a pre-flip writer could still be inside), unlock the target cell FULL with
its next version. Cells past the new capacity (a shrink) are counted if FULL, and LEN
drops by that count. Nothing written is lost: a write that returned did so in ``o`` before
the flip (its chunk's mover saw it) or in ``n``.

Memory: buffers are recycled, never freed while the array lives (a stale operation may
still be reading one); the pool keeps at most two per size class, so the array holds less
than four times the largest buffer it ever used (``memory_bytes`` counts them all).
"""
import numba
import numpy as np

from . import _lifecycle as L
from ._seqlock import (
    EMPTY,
    FULL,
    LOCKED,
    copy_in,
    copy_out,
    lock,
    read_begin,
    read_validate,
    seq_next,
    seq_state,
    try_lock,
    unlock,
    unlock_unchanged,
)
from ._unsafe import atomic_fetch_add, atomic_load, atomic_store, backoff, fence, lit, raw_words
from .config import JIT, LINE_WORDS

_U = numba.uint64

# ------------------------------------------------------------------ header (words)
H_NW = L.H_OWN0  # data words per cell (constant)
H_STRIDE = L.H_OWN0 + 1  # words per cell, 1 + NW (constant)
H_LEN = L.LIFE_WORDS  # cells set (first sets, minus cells a shrink dropped)
H_READ_RETRIES = L.LIFE_WORDS + LINE_WORDS
H_WRITE_WAITS = L.LIFE_WORDS + LINE_WORDS + 1
H_WORDS = L.LIFE_WORDS + 2 * LINE_WORDS

# ------------------------------------------------------------------ buffer (words)
B_CAP = 1
B_CLASSCAP = 2
B_LOG2 = 3
B_NCHUNKS = 4
B_CHUNKS = 5
CELLS0 = LINE_WORDS
CHUNK_LOG2 = 10  # cells per move chunk
CLEAR_LOG2 = 12  # cells per clear chunk
#: smallest size class (cells)
MIN_CLASS = 4
#: capacities above this are rejected with ValueError (2**40 cells: terabytes)
MAX_CAPACITY = 1 << 40

# statuses
ST_OK = 0
ST_INDEX = 1
ST_UNINIT = 2
ST_NOMEM = 3

_UEMPTY = _U(EMPTY)
_ULOCKED = _U(LOCKED)


@numba.njit(inline="always", **JIT)
def header_at(addr):
    return raw_words(addr, H_WORDS)


@numba.njit(inline="always", **JIT)
def buf_view(addr):
    """The whole buffer at `addr` as a uint64 view (its size from its header line)."""
    return raw_words(addr, raw_words(addr, LINE_WORDS)[L.B_NBYTES] >> _U(3))


@numba.njit(inline="always", **JIT)
def _cap(buf):
    return numba.int64(atomic_load(buf, B_CAP, "relaxed"))


def buffer_words(classcap, stride):
    nchunks = max(1, (classcap + (1 << CHUNK_LOG2) - 1) >> CHUNK_LOG2)
    return CELLS0 + classcap * stride + nchunks


@numba.njit(**JIT)
def new_buffer(h, classcap, log2):
    """A fresh buffer for `classcap` cells (CAP not set), or 0. Job owner (or constructor)."""
    stride = numba.int64(h[H_STRIDE])
    nchunks = max(1, (classcap + (1 << CHUNK_LOG2) - 1) >> CHUNK_LOG2)
    nwords = CELLS0 + classcap * stride + nchunks
    addr = L.alloc(h, nwords * 8)
    if addr != 0:
        w = raw_words(addr, nwords)
        w[B_CLASSCAP] = classcap
        w[B_LOG2] = log2
        w[B_NCHUNKS] = nchunks
        w[B_CHUNKS] = CELLS0 + classcap * stride
    return addr


@numba.njit(**JIT)
def init_array(h, cap, classcap, log2):
    """Allocate the first buffer; False when memory is short."""
    addr = new_buffer(h, classcap, log2)
    if addr == 0:
        return False
    raw_words(addr, LINE_WORDS)[B_CAP] = cap
    h[L.H_BUF] = addr
    h[L.H_NEXT] = addr
    return True


@numba.njit(inline="always", **JIT)
def _epoch_same(h, e):
    """A4: fence, then EPOCH == e."""
    fence("acquire")
    return atomic_load(h, L.H_EPOCH, "relaxed") == e


# ------------------------------------------------------------------ reads (A1, A2, A4)


@numba.njit(inline="always", **JIT)
def _read_at(buf, base, out, nw, SYNC):
    """S1-S4 of the cell at `base` into ``out[:nw]``: (consistent, seq word, waits)."""
    s1, w = read_begin(buf, base, SYNC)
    copy_out(buf, base + 1, nw, out, 0, SYNC)
    return read_validate(buf, base, s1, SYNC), s1, w


_LOC_OK = 0
_LOC_AGAIN = 1
_LOC_INDEX = 2


@numba.njit(inline="always", **JIT)
def _locate(h, i):
    """A1 for a read of cell `i`: (code, e, old buffer, buffer to read, old capacity, NEXT);
    code _LOC_OK, _LOC_AGAIN (start over) or _LOC_INDEX (an IndexError, confirmed by the
    EPOCH check of A4). A negative `i` compares as a huge unsigned: out of range too."""
    e, o, n = L.current(h, True)
    ob = buf_view(o)
    cap = _cap(ob)
    src = ob
    if e & _U(1):
        if n == 0 or n == o:  # the publication is under way
            L.wait_epoch(h, e)
            return _LOC_AGAIN, e, ob, src, cap, n
        nb = buf_view(n)
        if _U(i) >= _U(_cap(nb)):
            return (_LOC_INDEX if _epoch_same(h, e) else _LOC_AGAIN), e, ob, src, cap, n
        if _U(i) >= _U(cap):
            src = nb  # grown cells: only the new buffer has them
    elif _U(i) >= _U(cap):
        return (_LOC_INDEX if _epoch_same(h, e) else _LOC_AGAIN), e, ob, src, cap, n
    return _LOC_OK, e, ob, src, cap, n


@numba.njit(inline="always", **JIT)
def _moved(e, ob, cap, i):
    """A2 in a move phase, after reading cell `i` of the old buffer: True if its chunk is
    done, so that the new buffer's copy is the current one (read that instead)."""
    if (e & _U(1)) and _U(i) < _U(cap):
        fence("acquire")  # the cell's loads come before the chunk state load
        return L.chunk_done(ob, numba.int64(ob[B_CHUNKS]), numba.int64(i) >> CHUNK_LOG2, e)
    return False


@numba.njit(inline="always", **JIT)
def read_cell(h, i, out, SYNC):
    """A1-A4: cell `i` into ``out[:NW]``; (status, retries). ``SYNC=False`` is the
    unsynchronised control: plain loads, no sequence checks (never use it with writers)."""
    nw = numba.int64(h[H_NW])
    base = CELLS0 + numba.int64(i) * numba.int64(h[H_STRIDE])
    retries = 0
    step = 0
    while True:
        code, e, ob, src, cap, n = _locate(h, i)
        if code == _LOC_INDEX:
            return ST_INDEX, retries
        if code == _LOC_AGAIN:
            retries += 1
            continue
        ok, s, w = _read_at(src, base, out, nw, SYNC)
        if ok and _moved(e, ob, cap, i):
            ok, s, w = _read_at(buf_view(n), base, out, nw, SYNC)
        retries += w
        if not ok or not _epoch_same(h, e):  # torn (S4), or not the current buffer (A4)
            retries += 1
            step = backoff(step)
            continue
        return (ST_UNINIT if seq_state(s) == _UEMPTY else ST_OK), retries


@numba.njit(inline="always", **JIT)
def _read1_at(buf, base):
    s1, w = read_begin(buf, base, True)
    x = atomic_load(buf, base + 1, "relaxed")
    return read_validate(buf, base, s1, True), s1, x, w


@numba.njit(inline="always", **JIT)
def read1(h, i):
    """A1-A4 for a one-word cell, the word kept in a register: (status, word, retries)."""
    base = CELLS0 + numba.int64(i) * 2
    retries = 0
    step = 0
    while True:
        code, e, ob, src, cap, n = _locate(h, i)
        if code == _LOC_INDEX:
            return ST_INDEX, _U(0), retries
        if code == _LOC_AGAIN:
            retries += 1
            continue
        ok, s, x, w = _read1_at(src, base)
        if ok and _moved(e, ob, cap, i):
            ok, s, x, w = _read1_at(buf_view(n), base)
        retries += w
        if not ok or not _epoch_same(h, e):
            retries += 1
            step = backoff(step)
            continue
        return (ST_UNINIT if seq_state(s) == _UEMPTY else ST_OK), x, retries


# ------------------------------------------------------------------ writes (A1, A3)


@numba.njit(inline="always", **JIT)
def _lock_for_write(h, i):
    """A1, A3 up to the lock: (buffer, base, its even word, status, e, waits). On ST_OK the
    cell is locked in the buffer to write and the EPOCH check passed."""
    stride = numba.int64(h[H_STRIDE])
    waits = 0
    step = 0
    while True:
        e, o, n = L.current(h, True)
        ob = buf_view(o)
        tb = ob
        if e & _U(1):
            if n == 0 or n == o:
                waits += L.wait_epoch(h, e)
                continue
            waits += help_move(h, e)
            nb = buf_view(n)
            if _U(i) >= _U(_cap(nb)):
                if L.epoch_ok(h, e, True):
                    return nb, 0, _U(0), ST_INDEX, e, waits
                continue
            if _U(i) < _U(_cap(ob)):
                waits += ensure_chunk(h, e, o, n, numba.int64(i) >> CHUNK_LOG2)
            tb = nb
        elif _U(i) >= _U(_cap(ob)):
            if _epoch_same(h, e):
                return ob, 0, _U(0), ST_INDEX, e, waits
            continue
        base = CELLS0 + numba.int64(i) * stride
        s = atomic_load(tb, base, "relaxed")  # L1
        if s & _ULOCKED:
            waits += 1
            step = backoff(step)
            continue
        if not try_lock(tb, base, s, True):  # L2-L3 (seq_cst)
            waits += 1
            step = backoff(step)
            continue
        if not L.epoch_ok(h, e, True):  # A3: a flip since our A1 (see the module doc)
            unlock_unchanged(tb, base, s, True)
            waits += 1
            continue
        return tb, base, s, ST_OK, e, waits


@numba.njit(inline="always", **JIT)
def _finish_write(h, buf, base, s, e):
    """A3 after the data: count a first set, unlock (L4); then a clear phase's chunk."""
    if seq_state(s) == _UEMPTY:
        atomic_fetch_add(h, H_LEN, _U(1), "relaxed")  # under the cell lock: once per cell
    unlock(buf, base, seq_next(s, FULL), True)
    if (e & _U(1)) == 0 and atomic_load(h, L.H_JOB, "relaxed") == L.JOB_CLEAR:
        help_clear(h, e)


@numba.njit(inline="always", **JIT)
def write_cell(h, i, src):
    """Set cell `i` to the words ``src[:NW]``: (status, waits)."""
    buf, base, s, st, e, waits = _lock_for_write(h, i)
    if st != ST_OK:
        return st, waits
    copy_in(buf, base + 1, numba.int64(h[H_NW]), src, 0, True)  # L3
    _finish_write(h, buf, base, s, e)
    return ST_OK, waits


@numba.njit(inline="always", **JIT)
def write1(h, i, x):
    """Set one-word cell `i` to the word `x`: (status, waits)."""
    buf, base, s, st, e, waits = _lock_for_write(h, i)
    if st != ST_OK:
        return st, waits
    atomic_store(buf, base + 1, x, "relaxed")  # L3 (the fence is in try_lock)
    _finish_write(h, buf, base, s, e)
    return ST_OK, waits


@numba.njit(inline="always", **JIT)
def count(h, idx, n):
    """Add `n` to a statistics counter (callers only call this when ``n > 0``)."""
    atomic_fetch_add(h, idx, _U(n), "relaxed")


# ------------------------------------------------------------------ the job


@numba.njit(**JIT)
def move_chunk(h, e1, o, n, c):
    """J5: move chunk `c` of `o` into `n` (claimed by us), mark it done, publish if last."""
    nwords = numba.int64(h[H_NW])
    stride = numba.int64(h[H_STRIDE])
    ob = buf_view(o)
    nb = buf_view(n)
    ocap = _cap(ob)
    ncap = _cap(nb)
    lo = c << CHUNK_LOG2
    hi = min(ocap, lo + (1 << CHUNK_LOG2))
    dropped = 0
    step = 0
    i = lo
    while i < hi:
        base = CELLS0 + i * stride
        s = atomic_load(ob, base, "seq_cst")  # after the flip and our claim (J4)
        if s & _ULOCKED:  # a writer that locked before the flip finishes first
            step = backoff(step)
            continue
        if seq_state(s) != _UEMPTY:
            if _U(i) >= _U(ncap):  # a negative index wraps to a huge unsigned: also out
                dropped += 1  # a shrink drops the cell
            else:
                sn, _ = lock(nb, base, True)  # a stale writer of a recycled target may pass
                for k in range(1, nwords + 1):
                    atomic_store(nb, base + k, atomic_load(ob, base + k, "relaxed"), "relaxed")
                if not read_validate(ob, base, s, True):  # a pre-flip writer got in: again
                    unlock_unchanged(nb, base, sn, True)
                    continue
                unlock(nb, base, seq_next(sn, FULL), True)
        i += 1
        step = 0
    if dropped:
        atomic_fetch_add(h, H_LEN, _U(0) - _U(dropped), "relaxed")
    L.finish_chunk(ob, numba.int64(ob[B_CHUNKS]), c, e1)
    if L.done_one(h, L.H_MDONE, numba.int64(atomic_load(h, L.H_NMOVE, "relaxed"))):
        L.publish(h, e1, numba.int64(ob[B_LOG2]))


@numba.njit(**JIT)
def help_move(h, e1):
    """A writer's background share of move phase `e1`: the next chunk in order, if any."""
    c = L.claim_next(h, L.H_MCUR, L.H_NMOVE, e1)
    if c < 0:
        return 0
    o = atomic_load(h, L.H_BUF, "acquire")  # our claim holds the job open: BUF, NEXT are its
    n = atomic_load(h, L.H_NEXT, "acquire")
    ob = buf_view(o)
    if L.claim_chunk(ob, numba.int64(ob[B_CHUNKS]), c, e1) == L.CLAIMED:
        move_chunk(h, e1, o, n, c)
    return 0


@numba.njit(**JIT)
def ensure_chunk(h, e1, o, n, c):
    """Make chunk `c` of move phase `e1` done: move it, or wait while its mover does."""
    ob = buf_view(o)
    off = numba.int64(ob[B_CHUNKS])
    got = L.claim_chunk(ob, off, c, e1)
    if got == L.CLAIMED:
        move_chunk(h, e1, o, n, c)
        return 0
    if got == L.BUSY:
        return L.wait_chunk(ob, off, c, e1, h, e1)
    return 0


@numba.njit(**JIT)
def clear_chunk(naddr, c):
    """J3: cells of chunk `c` of a recycled target EMPTY, under their locks, versions going on."""
    nb = buf_view(naddr)
    classcap = numba.int64(nb[B_CLASSCAP])
    stride = (numba.int64(nb[B_CHUNKS]) - CELLS0) // classcap
    lo = c << CLEAR_LOG2
    hi = min(classcap, lo + (1 << CLEAR_LOG2))
    for i in range(lo, hi):
        base = CELLS0 + i * stride
        s, _ = lock(nb, base, True)
        unlock(nb, base, seq_next(s, EMPTY), True)


@numba.njit(**JIT)
def help_clear(h, e):
    """One chunk of the clear phase of the job that left epoch `e`; the last one flips."""
    if atomic_load(h, L.H_JEPOCH, "relaxed") != e:
        return
    c = L.claim_next(h, L.H_CCUR, L.H_NCLEAR, e)
    if c < 0:
        return
    naddr = atomic_load(h, L.H_CTARGET, "relaxed")
    clear_chunk(naddr, c)
    if L.done_one(h, L.H_CDONE, numba.int64(atomic_load(h, L.H_NCLEAR, "relaxed"))):
        nmove = numba.int64(atomic_load(h, L.H_NMOVE, "relaxed"))
        L.flip(h, e, naddr, nmove)
        if nmove == 0:
            L.publish(h, e + _U(1), numba.int64(buf_view(atomic_load(h, L.H_BUF, "relaxed"))[B_LOG2]))


@numba.njit(**JIT)
def finish_job(h):
    """Help whatever job runs until it is published (resize, snapshot)."""
    while True:
        j = L.job(h)
        e = atomic_load(h, L.H_EPOCH, "acquire")
        if j == L.JOB_CLEAR and (e & _U(1)) == 0:
            help_clear(h, e)
            backoff(0)
        elif j == L.JOB_MOVE and (e & _U(1)):
            while atomic_load(h, L.H_EPOCH, "acquire") == e:
                c = L.claim_next(h, L.H_MCUR, L.H_NMOVE, e)
                if c < 0:
                    break
                o = atomic_load(h, L.H_BUF, "acquire")
                ob = buf_view(o)
                if L.claim_chunk(ob, numba.int64(ob[B_CHUNKS]), c, e) == L.CLAIMED:
                    move_chunk(h, e, o, atomic_load(h, L.H_NEXT, "acquire"), c)
            L.wait_epoch(h, e)
        elif j == L.JOB_MOVE or j == L.JOB_PREP:
            backoff(6)  # between states: the owner is about to flip or publish
        else:
            return


@numba.njit(**JIT)
def resize(h, cap, classcap, log2):
    """J1-J6 to capacity `cap` (size class `classcap` = 2**`log2` cells), driven to its end
    by the caller (writers help). Returns ST_OK or ST_NOMEM (then nothing changed)."""
    step = 0
    while True:
        finish_job(h)
        if L.begin(h, L.JOB_PREP) == L.JOB_IDLE:
            break
        step = backoff(step)  # another resize or a snapshot: help or wait, then again
    e = atomic_load(h, L.H_EPOCH, "acquire")
    o = atomic_load(h, L.H_BUF, "relaxed")
    ob = buf_view(o)
    naddr = L.pool_take(h, log2)
    recycled = naddr != 0
    if not recycled:
        naddr = new_buffer(h, classcap, log2)
        if naddr == 0:
            L.end(h)
            return ST_NOMEM
    raw_words(naddr, LINE_WORDS)[B_CAP] = cap  # unpublished: a stale reader of it fails A4
    nmove = (_cap(ob) + (1 << CHUNK_LOG2) - 1) >> CHUNK_LOG2
    L.init_chunks(ob, numba.int64(ob[B_CHUNKS]), nmove, e + _U(1))
    if recycled:
        nclear = (classcap + (1 << CLEAR_LOG2) - 1) >> CLEAR_LOG2
        L.start_clear(h, e, naddr, nclear, nmove)
    else:
        L.flip(h, e, naddr, nmove)
        if nmove == 0:
            L.publish(h, e + _U(1), numba.int64(ob[B_LOG2]))
    finish_job(h)
    return ST_OK


@numba.njit(**JIT)
def capacity(h):
    """The capacity that counts now (the new one from a resize's flip on)."""
    while True:
        e, o, n = L.current(h, True)
        if e & _U(1):
            if n == 0 or n == o:
                L.wait_epoch(h, e)
                continue
            c = _cap(buf_view(n))
        else:
            c = _cap(buf_view(o))
        if _epoch_same(h, e):
            return c


@numba.njit(**JIT)
def snapshot(h):
    """A consistent-per-cell copy: (words[cap * NW], initialised[cap]); never-set cells
    hold zeros. Holds the array (JOB = HOLD: no resize starts) after helping a running one
    to its end, so every cell comes from one buffer."""
    nw = numba.int64(h[H_NW])
    stride = numba.int64(h[H_STRIDE])
    step = 0
    while True:
        finish_job(h)
        if L.begin(h, L.JOB_HOLD) == L.JOB_IDLE:
            break
        step = backoff(step)
    ob = buf_view(atomic_load(h, L.H_BUF, "acquire"))
    cap = _cap(ob)
    out = np.zeros(cap * nw, np.uint64)
    init = np.zeros(cap, np.bool_)
    retries = 0
    for j in range(cap):
        base = CELLS0 + j * stride
        while True:
            s1, w = read_begin(ob, base, True)
            retries += w
            copy_out(ob, base + 1, nw, out, j * nw, True)
            if read_validate(ob, base, s1, True):
                break
            retries += 1
        if seq_state(s1) == _UEMPTY:
            for k in range(nw):
                out[j * nw + k] = 0
        else:
            init[j] = True
    L.end(h)
    if retries:
        count(h, H_READ_RETRIES, retries)
    return out, init


@numba.njit(**JIT)
def fill(h, words, init):
    """Set every cell `j` with ``init[j]`` to ``words[j*NW : (j+1)*NW]`` (a copy's fill)."""
    nw = numba.int64(h[H_NW])
    for j in range(init.shape[0]):
        if init[j]:
            write_cell(h, j, words[j * nw:(j + 1) * nw])


@numba.njit(**JIT)
def free_all(h):
    L.free_all(h)
