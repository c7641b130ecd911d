"""seqmap_nb: seqlock-based concurrent hash tables for numba."""
__version__ = "0.1.0"
