"""The 64-bit hash every map in the package uses, so that benchmarks compare tables, not hashes.

``mix64`` is MurmurHash3's 64-bit finaliser (``fmix64``): a bijection on 64-bit words
whose every output bit depends on every input bit (avalanche), so both the low bits (slot
index) and the high bits (DashMap-style shard index) of the result are well spread even
for sequential integer keys. It costs two multiplies and three shift-xors: the same for
SeqMap and for every baseline.

``hash_words`` folds a key of several canonical words (records, complex, wide dtypes; see
``_codec``) held in a tuple, one word at a time, ``h = fmix64(h * golden ^ w)``: SeqMap's
hash. ``mix_words`` is the same fold over words in an array (the baselines' row kernels);
for a one-word key both equal ``mix64(word)``. This module is the only definition of the
hash, so every table here puts a key in the same home slot for the same capacity.

All are ``inline="always"`` njit functions: call them from kernels.
"""
import numba

from .config import JIT

_C1 = 0xFF51AFD7ED558CCD
_C2 = 0xC4CEB9FE1A85EC53
_SEED_STEP = 0x9E3779B97F4A7C15  # 2**64 / golden ratio (SeqMap's _GOLD)


@numba.njit(inline="always", **JIT)
def mix64(x):
    """MurmurHash3 ``fmix64`` of a uint64 (a bijection; 0 maps to 0)."""
    h = numba.uint64(x)
    h ^= h >> numba.uint64(33)
    h *= numba.uint64(_C1)
    h ^= h >> numba.uint64(33)
    h *= numba.uint64(_C2)
    h ^= h >> numba.uint64(33)
    return h


@numba.njit(inline="always", **JIT)
def mix_words(w0, rest, off, n):
    """Hash of an `n`-word key: first word `w0`, words 1..n-1 at ``rest[off+1 .. off+n-1]``.

    The first word comes as a scalar so that one-word keys (every njit scalar key) need no
    array at all; ``mix_words(w, any, any, 1) == mix64(w)``.
    """
    h = mix64(w0)
    for j in range(1, n):
        h = mix64((h * numba.uint64(_SEED_STEP)) ^ numba.uint64(rest[off + j]))
    return h


@numba.njit(inline="always", **JIT)
def hash_words(key):
    """Hash of a key given as a tuple of canonical words (equals ``mix_words`` of them)."""
    h = mix64(key[0])
    for j in range(1, len(key)):
        h = mix64((h * numba.uint64(_SEED_STEP)) ^ key[j])
    return h
