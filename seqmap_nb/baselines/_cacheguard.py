"""Drop this package's numba on-disk caches when any source they compile in has changed.

numba's cache (``cache=True``) checks only the timestamp of the file a cached function is
defined in; a kernel in ``dashmap.py`` that calls ``_table.find`` or ``_hash.mix64``
embeds their compiled code, so editing ``_table.py`` would leave ``dashmap.py``'s cached
kernels running the old code (silently: this bit us once, with a changed hash). At package
import we digest every source the kernels depend on and, if it differs from the digest
recorded beside the cache files, delete those cache files first.

Only this package's ``__pycache__`` is handled; code elsewhere that caches a kernel
calling these maps (a harness kernel, a test) embeds them too and must be recompiled after
such an edit (clear its ``*.nbi``/``*.nbc`` files).
"""
import glob
import hashlib
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_PKG = os.path.dirname(_HERE)
_DEPS = ("_hash.py", "_unsafe.py", "_codec.py", "config.py", "_seqlock.py")


def _digest():
    d = hashlib.sha256()
    files = sorted(glob.glob(os.path.join(_HERE, "*.py"))) + [os.path.join(_PKG, n) for n in _DEPS]
    for path in files:
        try:
            with open(path, "rb") as f:
                d.update(os.path.basename(path).encode() + b"\0" + f.read())
        except OSError:
            pass
    return d.hexdigest()


def check():
    """Delete stale ``*.nbi``/``*.nbc`` of this package if its sources changed (best effort)."""
    cache = os.path.join(_HERE, "__pycache__")
    stamp = os.path.join(cache, "kernel-sources.sha256")
    now = _digest()
    try:
        with open(stamp) as f:
            if f.read().strip() == now:
                return
    except OSError:
        pass
    try:
        os.makedirs(cache, exist_ok=True)
        for path in glob.glob(os.path.join(cache, "*.nb[ic]")):
            try:
                os.remove(path)
            except OSError:
                pass
        with open(stamp, "w") as f:
            f.write(now)
    except OSError:
        pass  # read-only install: numba then caches elsewhere or not at all
