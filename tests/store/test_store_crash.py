"""kill -9 in the middle of writing: every committed message is there after a restart, no
committed ack is undone, and delivered marks survive. Several kills on one data directory,
so recovery, then appends after recovery, are crashed too."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from leveret.store import DiskStore

sys.path.insert(0, str(Path(__file__).parent))
from crash_writer import payload

WRITER = Path(__file__).parent / "crash_writer.py"


def run_and_kill(path: Path, policy: str, seed: int, lines: int, *extra: str) -> list[str]:
    """Let the writer report ``lines`` lines, kill it, and return everything it wrote
    (it may have gone on a little before the signal landed)."""
    with subprocess.Popen([sys.executable, str(WRITER), str(path), policy, str(seed), *extra],
                          stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout.readline().strip() == "ready"
            got = [child.stdout.readline() for _ in range(lines)]
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert all(line.endswith("\n") for line in got), "the writer died on its own"
        got += child.stdout.read().splitlines(keepends=True)
    assert child.returncode == -signal.SIGKILL
    if got and not got[-1].endswith("\n"):
        got.pop()  # cut by the kill: the batch it describes never committed
    return got


@pytest.mark.parametrize(("policy", "mode"), [
    ("always", ()), ("interval:50", ()), ("off", ()),
    # emptied newest segments rolled and reclaimed by the commit that follows the acks
    ("always", ("drain",)), ("interval:50", ("drain",))])
def test_kill_9_loses_nothing_committed(tmp_path, policy, mode):
    rng = random.Random(policy)
    committed: set[int] = set()
    acked: set[int] = set()
    marked: set[int] = set()
    for round_ in range(3):
        lines = run_and_kill(tmp_path, policy, rng.randrange(1 << 30), rng.randint(60, 300),
                             *mode)
        maybe_acked: set[int] = set()  # the batch in flight at the kill: committed or not
        for line, status in zip(lines[::2], [*lines[1::2], ""], strict=False):
            appended, ack, mark = (set(map(int, part.split())) for part in line.split("|"))
            if status == "ok\n":
                committed |= appended
                acked |= ack
                marked |= mark
            else:
                maybe_acked = ack
        with DiskStore(tmp_path) as store:
            log = store.open_queue("/", "q")
            live = {x.offset: x for x in log.live()}
            acked |= maybe_acked - set(live)
            missing = committed - acked - set(live)
            assert not missing, f"round {round_}: committed messages lost: {sorted(missing)[:10]}"
            back = acked & set(live)
            assert not back, f"round {round_}: acked messages came back: {sorted(back)[:10]}"
            for o, x in live.items():
                assert log.read(o) == payload(o)
                if o in marked:
                    assert x.redelivered and x.delivery_count >= 1
            assert log.next_offset > max(committed)
