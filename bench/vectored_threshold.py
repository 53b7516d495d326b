"""Where a vectored write starts to beat one join: frames.LARGE_BODY.

An output batch of ~1 MiB of deliveries (a 60-byte head, the body, the frame end) written
to /dev/null either joined into one bytes object (one copy of every body) or cut as the
server cuts it (``vectored_parts``: the runs of small pieces joined, each body of at
least 1 KiB by itself) and written with ``os.writev``. /dev/null copies nothing, so the
difference is the user-space copy against the cost of the extra pieces; the kernel's copy
into a socket is the same either way.

    python bench/vectored_threshold.py
"""

from __future__ import annotations

import os
import time

from leveret.broker.connection import vectored_parts


def main() -> None:
    fd = os.open("/dev/null", os.O_WRONLY)
    for size in (1024, 2048, 4096, 8192, 16384, 32768, 65536):
        n = max(1, (1 << 20) // size)
        head = b"h" * 60
        out: list[bytes] = []
        for _ in range(n):
            out += [head, os.urandom(size), b"\xce"]

        def joined(out: list[bytes] = out) -> None:
            os.write(fd, b"".join(out))

        def vectored(out: list[bytes] = out) -> None:
            parts = vectored_parts(out, 1024)
            for k in range(0, len(parts), 1024):  # IOV_MAX
                os.writev(fd, parts[k : k + 1024])

        best = {}
        for f in (joined, vectored):
            runs = []
            for _ in range(7):
                t = time.perf_counter()
                for _ in range(20):
                    f()
                runs.append((time.perf_counter() - t) / 20 / n * 1e6)
            best[f.__name__] = min(runs)
        print(f"{size:6d} B: joined {best['joined']:.3f} us/message, "
              f"vectored {best['vectored']:.3f} us/message")


if __name__ == "__main__":
    main()
