"""``leveret serve`` whose shovels record every delivery they receive from their source, for
kill tests where the broker hosting the shovel is the one killed (tests/test_shovel_kills.py).

    python tests/shovel_recorder.py RECORD serve --port ... --data-dir ...

Each delivery appends one line, ``<body> <redelivered 0|1>``, to RECORD with its own
unbuffered ``write`` before the shovel publishes it, so a SIGKILL loses no record of a
delivery that went on. A restarted broker appends to the same file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any


def read_record(path: Path) -> list[tuple[bytes, bool]]:
    """The recorded deliveries, (body, redelivered), in order."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        body, _, flag = line.rpartition(b" ")
        out.append((body, flag == b"1"))
    return out


def main(record: str, argv: list[str]) -> int:
    from leveret.cli.main import main as leveret_main
    from leveret.runtime import shovels

    fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    original = shovels._Transfer.deliver

    def deliver(self: Any, tag: int, redelivered: bool, exchange: str, key: str,
                props: bytes, body: bytes) -> None:
        os.write(fd, body + (b" 1\n" if redelivered else b" 0\n"))
        original(self, tag, redelivered, exchange, key, props, body)

    shovels._Transfer.deliver = deliver  # type: ignore[method-assign]
    return leveret_main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2:]))
