"""``global_lock``: one reader-writer lock over one table (conc-map-bench's RwLock<HashMap>).

It is :class:`seqmap_nb.baselines.dashmap.DashMap` with ``shards=1``: every operation
goes through the same lock word, so it shows what sharding buys DashMap.
"""
from .dashmap import GlobalLockMap

__all__ = ["GlobalLockMap"]
