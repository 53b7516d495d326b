"""The broker process as the management API and /metrics report it: resident memory and
open file descriptors, read from /proc (None where there is no /proc, as on macOS).

The resource alarms read RSS the same way (``server/alarms.py``); management keeps its own
reading because it does not import the server.
"""

from __future__ import annotations

import os


def process_rss() -> int | None:
    """This process's resident set size in bytes."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def open_fds() -> int | None:
    """How many file descriptors this process has open."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None
