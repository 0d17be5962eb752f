"""Output arrays reused from one pass to the next, instead of fresh memory every time.

Every layer's forward and backward writes new arrays as large as its activations, and a fresh
large array is fresh memory: the C allocator maps new pages from the system for it and returns
them when it is freed, so the next step faults them in again.  Measured on a 2-core VM, one
batch-16 MobileNetV4 stem BN output (25 MB) took 2.4 ms to compute into memory already in use and
40-60 ms into fresh memory, nearly all of it in the kernel's page-fault handler.  A training step
allocates its activations again in the same shapes every time, so ``empty`` keeps the arrays it
hands out and gives one back out when nothing else refers to it any more.

"Nothing else refers to it" is the reference count: the pool holds one reference to each array,
and every other holder (a cache, a caller's variable, a view of it, whose ``.base`` points at it,
a kernel running on it in another thread) holds another.  An array whose count is the pool's own
is unreachable from anywhere else, so writing into it cannot change a value anyone can see.

Only arrays of at least ``MIN_BYTES`` are pooled (small ones come from the allocator's own free
lists, cheaply), and the pool stops growing at ``NPMOBILENET_BUFFER_MB`` megabytes (default 4096;
0 turns pooling off).  An array not handed out during the last ``KEEP_CALLS`` calls of ``empty``
(a few training steps) is let go once it is free, so shapes that are no longer used (another
model, another batch size) do not hold memory for long.  ``pooled_bytes()`` says how much memory
the pool holds; ``clear()`` drops it.
"""
import math
import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 18
LIMIT = int(float(os.environ.get("NPMOBILENET_BUFFER_MB", "4096")) * 2**20)
KEEP_CALLS = 4096
_pool = {}                 # (shape, dtype) -> [[array, the call count when last handed out]]
_bytes = 0
_calls = 0
_lock = threading.Lock()   # empty() may be called from several threads
_OWN_REFS = 3              # the pool's entry, the local variable, getrefcount's argument


def empty(shape, dtype):
    """An uninitialised array like ``np.empty(shape, dtype)``, reusing a pooled one if one is free."""
    global _bytes
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    nbytes = math.prod(shape) * dtype.itemsize      # (np.prod costs 4 us a call, math.prod 0.1 us)
    if nbytes < MIN_BYTES or LIMIT <= 0:
        return np.empty(shape, dtype)
    global _calls
    key = (shape, dtype)
    with _lock:
        _calls += 1
        if _calls % 256 == 0:
            _let_go(_calls - KEEP_CALLS)
        entries = _pool.setdefault(key, [])
        for entry in entries:
            a = entry[0]
            if sys.getrefcount(a) == _OWN_REFS:
                entry[1] = _calls
                return a
        a = np.empty(shape, dtype)
        if _bytes + nbytes <= LIMIT:
            entries.append([a, _calls])
            _bytes += nbytes
        return a


def _let_go(before):
    """Drop the free arrays last handed out before call number ``before`` (the lock is held)."""
    global _bytes
    for key in list(_pool):
        kept = []
        for entry in _pool[key]:
            a = entry[0]
            if entry[1] >= before or sys.getrefcount(a) != _OWN_REFS:
                kept.append(entry)
            else:
                _bytes -= a.nbytes
        if kept:
            _pool[key] = kept
        else:
            del _pool[key]


def empty_like(x):
    return empty(x.shape, x.dtype)


def pooled_bytes():
    """Bytes held by the pool (in use or free)."""
    return _bytes


def clear():
    """Forget every pooled array (arrays still in use stay valid; they are just not reused)."""
    global _bytes
    with _lock:
        _pool.clear()
        _bytes = 0
