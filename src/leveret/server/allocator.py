"""Keep the C allocator from handing memory back to the kernel after every large message.

glibc's malloc returns the free top of its heap to the kernel (``brk``) once more than
``M_TRIM_THRESHOLD`` is free there, and serves blocks above ``M_MMAP_THRESHOLD`` with
their own ``mmap``. A broker moving 64 KiB messages allocates and frees megabytes per
event-loop turn (socket reads of up to 256 KiB, bodies, output batches): with the defaults
(128 KiB, adjusted upwards as it goes) the heap shrank and grew again all the time, and
every page it got back cost a page fault and zeroing: 2-3 faults and ~10 us of broker CPU
per 64 KiB message (docs/benchmarks.md, "Large bodies without copies"). Higher
thresholds keep that memory for the next turn; what a burst leaves free beyond
``TRIM_THRESHOLD`` is still returned.

Only glibc has ``mallopt`` with these parameters; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("leveret.server")

# glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 64 << 20
MMAP_THRESHOLD = 1 << 20


def tune_allocator() -> bool:
    """Raise glibc's trim and mmap thresholds for this process; False where there is no
    glibc (or it refuses)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl has no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = (mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
          and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)
    if not ok:
        log.debug("mallopt refused the allocator thresholds")
    return ok
