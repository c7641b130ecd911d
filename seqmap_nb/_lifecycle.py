"""The life of the buffers behind SeqArray and SeqMap: allocation, publication, cooperative
moves into a new buffer, recycling. One module and one argument for both structures.

A structure is a fixed *header* (a uint64 array that never moves; njit code and every
thread hold it) and a current *buffer* of raw memory that a resize replaces. Readers never
write shared memory and never wait for a resize; writers that meet a resize do a share of
it instead of waiting. The structure-specific parts (what a chunk of cells or slots is and
how it moves) live in ``_array_kernels`` and ``_map_kernels``; this module has the parts
they share: the header words below, buffers and their pool, the job that moves a buffer's
contents, chunk claims, publication and the waits.

Header prefix (the structure's own words follow from ``LIFE_WORDS``)::

    line 0  | BUF | EPOCH | NEXT | JOB | SYNC | (structure: 5..15) |  read by every operation
    line 1  | JEPOCH | NCLEAR | NMOVE | CCUR | MCUR | CDONE | MDONE | MOVED | CTARGET |
    line 2  | RESIZES | MEM | ALLOC_LIMIT |                               figures, test hook
    pool    | POOL_PER_CLASS buffer addresses per capacity class (log2 0 .. 47)

    BUF    the current buffer (release-stored by a publication)
    EPOCH  counts state changes and never repeats a value: even while the structure is
           stable, odd while a *move phase* carries BUF's contents into NEXT. A resize
           leaves epoch e (even) for e+1 (the *flip*) and publishes NEXT as BUF at e+2.
    NEXT   the target of the move phase; stored only just before a flip, so it stays
           the same from one flip to the next (after the publication it equals BUF)
    JOB    IDLE, PREP (a starter prepares a job), CLEAR (the recycled target is being
           cleared; EPOCH even, writers go on in BUF), MOVE (EPOCH odd), HOLD (a
           whole-structure operation such as a snapshot keeps jobs from starting)

Every buffer starts with one header line whose word 0 is its size in bytes (``B_NBYTES``:
what frees it) and holds a *chunk state* word per chunk of its cells or slots.

Jobs (a resize, a rebuild, a clear)
===================================
  J1. Begin: ``cas(JOB, IDLE, PREP)`` (one job at a time; a thread that finds JOB busy
      does not wait for it unless it must: the table still has room).
  J2. Prepare (the starter alone): the target buffer N comes from the pool of its
      capacity class (recycled) or from ``raw_alloc`` (fresh: the kernel's zero pages,
      touched first by whoever fills them, so the cost of the first touch is shared by
      the helpers). The chunk states of BUF are set to "free in move phase e+1".
  J3. A recycled N still holds its last life's cells: JOB = CLEAR, and the cells of N are
      cleared in chunks (``claim_next`` on CCUR) by every writer that passes, after its own
      operation in BUF; each cell is locked to clear it (a stale writer of N's last life may
      hold one for an instant) and its version continues, so no stale compare-exchange can
      ever succeed on it. The thread that clears the last chunk flips. A fresh N flips at once.
  J4. Flip: ``store(EPOCH, e+1, seq_cst)``: from here BUF is frozen for writers. A writer
      takes its cell's lock (``_seqlock`` L2, seq_cst) and then loads EPOCH (seq_cst): in
      the single order of seq_cst operations either its lock comes first, and the mover's
      seq_cst load of that cell (after the flip) sees it locked and waits for the write
      to finish before copying, or the flip comes first and the writer sees the odd EPOCH,
      gives the cell back unchanged and starts over. No write to BUF is lost or half-moved.
  J5. Move phase: each chunk of BUF is claimed either in order (``claim_next`` on MCUR: a
      writer's background share, one chunk per operation) or directly (a writer that needs
      the chunks holding its key or cell): ``cas(state, free, busy)``; the claimer moves
      every cell of the chunk into N and stores ``done`` (release). Readers keep reading
      BUF and read N only where every chunk their lookup depends on is done; writers write
      N only there (the structure modules say which chunks those are and why that is
      linearizable). Nobody waits while a chunk is left to claim: a writer that needs a
      chunk someone else is moving waits for that one chunk only.
  J6. Publish (the thread that completes the last chunk): ``store(BUF, N, release)``,
      ``store(EPOCH, e+2, release)``, the old buffer into the pool, JOB = IDLE.

Every claim is tagged with the epoch of its job (chunk states hold ``4 * tag + state``,
cursors ``tag << 32 | index``): a thread that slept through a whole job and wakes with a
stale epoch cannot claim or complete anything of a later job, whose tags differ. Every
wait is on a value that only moves forward or on a lock that its holder releases:

    wait                                  ends when                           monotonic
    moved cell/slot of a chunk being moved  chunk state busy -> done            yes (per tag)
    writer: structure full, job running     EPOCH != e                          yes
    writer: structure full, JOB held        JOB leaves HOLD/PREP                (retried)
    any: a cell or slot locked              its holder unlocks                  (lock)

Memory: a buffer is never freed while the structure lives (a stale reader may still be
inside it); retired buffers wait in the pool of their class for reuse, at most
``POOL_PER_CLASS`` per class, and ``MEM`` counts every buffer held.
"""
import numba

from ._unsafe import (
    atomic_cas,
    atomic_fetch_add,
    atomic_load,
    atomic_store,
    backoff,
    lit,
    plain_load,
    raw_alloc,
    raw_free,
    raw_words,
)
from .config import JIT, LINE_WORDS

_U = numba.uint64

# ------------------------------------------------------------------ header prefix (words)
H_BUF = 0
H_EPOCH = 1
H_NEXT = 2
H_JOB = 3
H_SYNC = 4
#: first word of line 0 that a structure may use for its own read-mostly constants
H_OWN0 = 5
H_JEPOCH = LINE_WORDS
H_NCLEAR = LINE_WORDS + 1
H_NMOVE = LINE_WORDS + 2
H_CCUR = LINE_WORDS + 3
H_MCUR = LINE_WORDS + 4
H_CDONE = LINE_WORDS + 5
H_MDONE = LINE_WORDS + 6
H_MOVED = LINE_WORDS + 7  # map: entries placed into NEXT; array: cells dropped by a shrink
H_CTARGET = LINE_WORDS + 8  # the recycled target while it is cleared (NEXT only at the flip)
H_RESIZES = 2 * LINE_WORDS
H_MEM = 2 * LINE_WORDS + 1
H_ALLOC_LIMIT = 2 * LINE_WORDS + 2  # largest buffer (bytes) a job may allocate; 0 = no limit
POOL_PER_CLASS = 2
NCLASSES = 48
H_POOL = 3 * LINE_WORDS
#: words of the prefix; a structure's own lines start here (a multiple of LINE_WORDS)
LIFE_WORDS = H_POOL + ((POOL_PER_CLASS * NCLASSES + LINE_WORDS - 1) // LINE_WORDS) * LINE_WORDS

# JOB states
JOB_IDLE = 0
JOB_PREP = 1
JOB_CLEAR = 2
JOB_MOVE = 3
JOB_HOLD = 4

# buffer header word 0: total bytes (what raw_free needs)
B_NBYTES = 0

# chunk states (low 2 bits of a chunk state word; the rest is the job's tag)
CH_FREE = 0
CH_BUSY = 1
CH_DONE = 2
# outcomes of claim_chunk
CLAIMED = 0
BUSY = 1
DONE = 2

_IDX_MASK = _U(0xFFFFFFFF)
_TAG_MASK = _U(0x7FFFFFFF)


# ------------------------------------------------------------------ buffers


@numba.njit(**JIT)
def alloc(h, nbytes):
    """A zeroed buffer of `nbytes` (its header word B_NBYTES set), counted in MEM; 0 when
    memory is short or the test limit refuses it. The caller owns the job (JOB = PREP)."""
    limit = numba.int64(h[H_ALLOC_LIMIT])
    if limit != 0 and nbytes > limit:
        return _U(0)
    addr = raw_alloc(nbytes)
    if addr != 0:
        raw_words(addr, LINE_WORDS)[B_NBYTES] = nbytes
        atomic_fetch_add(h, H_MEM, _U(nbytes), "relaxed")
    return addr


@numba.njit(inline="always", **JIT)
def nbytes_of(addr):
    return numba.int64(raw_words(addr, LINE_WORDS)[B_NBYTES])


@numba.njit(**JIT)
def pool_take(h, cls):
    """A retired buffer of capacity class `cls`, or 0 (job owner only)."""
    for p in range(POOL_PER_CLASS):
        pi = H_POOL + cls * POOL_PER_CLASS + p
        addr = h[pi]
        if addr != 0:
            h[pi] = 0
            return addr
    return _U(0)


@numba.njit(**JIT)
def pool_put(h, addr, cls):
    """Retire `addr` into its class's pool (job owner only). A buffer that finds the pool
    full is kept nowhere and never freed before the structure dies: it cannot be freed
    now (a stale reader may be inside it); the memory bound of the structure modules
    shows that this does not happen with their resize rules."""
    for p in range(POOL_PER_CLASS):
        pi = H_POOL + cls * POOL_PER_CLASS + p
        if h[pi] == 0:
            h[pi] = addr
            return True
    return False


@numba.njit(**JIT)
def free_all(h):
    """Free every buffer of a structure that no thread can reach any more (finaliser)."""
    seen = (h[H_BUF], h[H_NEXT] if h[H_NEXT] != h[H_BUF] else _U(0),
            h[H_CTARGET] if h[H_JOB] == JOB_CLEAR else _U(0))
    for addr in seen:
        if addr != 0:
            raw_free(addr, nbytes_of(addr))
    h[H_BUF] = 0
    h[H_NEXT] = 0
    h[H_CTARGET] = 0
    for p in range(POOL_PER_CLASS * NCLASSES):
        addr = h[H_POOL + p]
        if addr != 0:
            raw_free(addr, nbytes_of(addr))
            h[H_POOL + p] = 0


# ------------------------------------------------------------------ the job


@numba.njit(inline="always", **JIT)
def job(h):
    """The JOB state (relaxed: callers act on it only through tagged claims or a CAS)."""
    return atomic_load(h, H_JOB, "acquire")


@numba.njit(inline="always", **JIT)
def begin(h, state):
    """J1: IDLE -> `state` (PREP for a job, HOLD for a whole-structure operation). Returns
    the JOB state found: IDLE means it is ours now."""
    return atomic_cas(h, H_JOB, JOB_IDLE, state, "acq_rel")


@numba.njit(inline="always", **JIT)
def end(h):
    """Back to IDLE (release: what the job or hold did happens-before the next begin)."""
    atomic_store(h, H_JOB, JOB_IDLE, "release")


@numba.njit(inline="always", **JIT)
def tag_cursor(tag, idx):
    return ((_U(tag) & _TAG_MASK) << _U(32)) | _U(idx)


@numba.njit(**JIT)
def init_chunks(buf, off, n, tag):
    """J2: mark the `n` chunk states at ``buf[off:]`` free for the move phase `tag`."""
    v = _U(tag) * _U(4) + _U(CH_FREE)
    for c in range(n):
        atomic_store(buf, off + c, v, "relaxed")  # published by the flip (seq_cst store)


@numba.njit(**JIT)
def start_clear(h, e, naddr, nclear, nmove):
    """J3: announce the clear phase of a job that left epoch `e` (recycled target)."""
    atomic_store(h, H_CTARGET, naddr, "relaxed")
    atomic_store(h, H_JEPOCH, e, "relaxed")
    atomic_store(h, H_NCLEAR, nclear, "relaxed")
    atomic_store(h, H_NMOVE, nmove, "relaxed")
    atomic_store(h, H_CDONE, 0, "relaxed")
    # release, last: a helper whose cursor load (acquire) sees this tag sees the words above
    atomic_store(h, H_CCUR, tag_cursor(e, 0), "release")
    atomic_store(h, H_JOB, JOB_CLEAR, "release")


@numba.njit(**JIT)
def flip(h, e, naddr, nmove):
    """J4: the move phase e+1 begins; BUF is frozen for writers from here (seq_cst: see
    the module doc). `nmove` chunks of BUF are to move into `naddr`."""
    atomic_store(h, H_NEXT, naddr, "relaxed")
    atomic_store(h, H_JEPOCH, e, "relaxed")
    atomic_store(h, H_NMOVE, nmove, "relaxed")
    atomic_store(h, H_MDONE, 0, "relaxed")
    atomic_store(h, H_MOVED, 0, "relaxed")
    atomic_store(h, H_MCUR, tag_cursor(e + _U(1), 0), "release")
    atomic_store(h, H_JOB, JOB_MOVE, "relaxed")
    atomic_store(h, H_EPOCH, e + _U(1), "seq_cst")  # J4; also publishes the words above


@numba.njit(**JIT)
def publish(h, e1, ocls):
    """J6, by the thread that completed the move phase `e1`: NEXT becomes BUF, the old
    buffer goes to the pool of class `ocls`, the job ends. NEXT keeps its value (= BUF)
    until the next flip: a thread whose G1 read EPOCH = e1 and then BUF finds BUF == NEXT
    and knows that the publication is under way."""
    naddr = atomic_load(h, H_NEXT, "relaxed")
    oaddr = atomic_load(h, H_BUF, "relaxed")
    atomic_store(h, H_BUF, naddr, "release")  # N's contents happen-before its use as BUF
    atomic_store(h, H_EPOCH, e1 + _U(1), "release")  # after BUF: a G1 loads EPOCH first
    pool_put(h, oaddr, ocls)
    atomic_fetch_add(h, H_RESIZES, _U(1), "relaxed")
    end(h)


@numba.njit(inline="always", **JIT)
def claim_next(h, cur, count, tag):
    """The next unclaimed index of the cursor ``h[cur]`` for the phase `tag` (below the
    count in ``h[count]``), or -1 when none is left or the cursor belongs to another job
    (a stale helper). The count is read after the cursor shows our tag (acquire), so it is
    the count of our job (stored before the cursor, see start_clear / flip)."""
    want = _U(tag) & _TAG_MASK
    while True:
        v = atomic_load(h, cur, "acquire")
        if (v >> _U(32)) != want:
            return numba.int64(-1)
        idx = numba.int64(v & _IDX_MASK)
        if idx >= numba.int64(atomic_load(h, count, "relaxed")):
            return numba.int64(-1)
        if atomic_cas(h, cur, v, v + _U(1), "acq_rel") == v:
            return idx


@numba.njit(inline="always", **JIT)
def claim_chunk(buf, off, c, tag):
    """J5: claim chunk `c` (states at ``buf[off:]``) of move phase `tag`: CLAIMED (it is
    ours to move), BUSY (another thread moves it) or DONE. seq_cst: the mover's loads of
    the chunk's cells come after this in the order that the writers' locks share."""
    free = _U(tag) * _U(4) + _U(CH_FREE)
    got = atomic_cas(buf, off + c, free, free + _U(CH_BUSY), "seq_cst")
    if got == free:
        return CLAIMED
    if got == free + _U(CH_DONE):
        return DONE
    if got == free + _U(CH_BUSY):
        return BUSY
    # another job's tag: the caller is stale (it slept through a publication); BUSY sends
    # it to wait_chunk, which ends at once because EPOCH has left its phase
    return BUSY


@numba.njit(inline="always", **JIT)
def finish_chunk(buf, off, c, tag):
    """J5: chunk `c` is moved (release: its moved cells happen-before any reader or
    writer that sees it done)."""
    atomic_store(buf, off + c, _U(tag) * _U(4) + _U(CH_DONE), "release")


@numba.njit(inline="always", **JIT)
def chunk_done(buf, off, c, tag):
    """True if chunk `c` of move phase `tag` is done (acquire: its moved cells are visible)."""
    return atomic_load(buf, off + c, "acquire") == _U(tag) * _U(4) + _U(CH_DONE)


@numba.njit(**JIT)
def wait_chunk(buf, off, c, tag, h, e1):
    """Wait while another thread moves chunk `c` (its state only goes busy -> done); also
    ends if EPOCH leaves the move phase `e1` (then the job was published). Returns waits."""
    busy = _U(tag) * _U(4) + _U(CH_BUSY)
    step = 0
    waits = 0
    while atomic_load(buf, off + c, "acquire") == busy:
        if atomic_load(h, H_EPOCH, "acquire") != e1:
            break
        waits += 1
        step = backoff(step)
    return waits


@numba.njit(inline="always", **JIT)
def done_one(h, which, n):
    """Count one finished chunk in ``h[which]``; True for the thread that finished the last
    of `n` (acq_rel: every other chunk's moves happen-before what that thread does next)."""
    return numba.int64(atomic_fetch_add(h, which, _U(1), "acq_rel")) + 1 == n


@numba.njit(**JIT)
def wait_epoch(h, e):
    """Back off until EPOCH leaves `e` (it only grows); returns the waits."""
    step = 0
    waits = 0
    while atomic_load(h, H_EPOCH, "acquire") == e:
        waits += 1
        step = backoff(step)
    return waits


@numba.njit(inline="always", **JIT)
def current(h, SYNC):
    """The first step of every operation (G1 of the map, A1 of the array): (e, BUF, NEXT or
    0), each loaded with acquire, EPOCH first. A publication stores BUF before EPOCH, so BUF
    is the buffer current at `e` or a later one; NEXT is loaded only in a move phase (odd
    `e`) and is stored only just before a flip, so it is that phase's target (BUF == NEXT:
    the publication is under way). Without SYNC: plain loads (one thread)."""
    if lit(SYNC):
        e = atomic_load(h, H_EPOCH, "acquire")
        o = atomic_load(h, H_BUF, "acquire")
        n = _U(0)
        if e & _U(1):
            n = atomic_load(h, H_NEXT, "acquire")
        return e, o, n
    return plain_load(h, H_EPOCH), plain_load(h, H_BUF), _U(0)


@numba.njit(inline="always", **JIT)
def epoch_ok(h, e, SYNC):
    """A writer's check after it locked a cell of the buffer it found at epoch `e`
    (seq_cst, see J4): the buffer is still the one to write. At an even `e` that is BUF
    and EPOCH must still be `e`; at an odd `e` the writer writes NEXT, which stays right
    when the publication moves EPOCH to e+1 (NEXT is BUF then)."""
    if lit(SYNC):
        now = atomic_load(h, H_EPOCH, "seq_cst")
        return now == e or ((e & _U(1)) != 0 and now == e + _U(1))
    return True
