"""The crash loop of bench/crashloop.py, short: a broker process SIGKILLed and restarted
a few times under a confirming publisher and a manual-ack consumer, then drained. Every
confirmed message must come back at least once, no ack known durable may be undone, and
redelivered messages must say so (the rules are in the script's docstring). The long run
(hundreds of kills) is ``python bench/crashloop.py --minutes 10``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "crashloop.py"


def _crashloop() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crashloop", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["crashloop"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


crashloop = _crashloop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("fsync", "cycles"), [("always", 5), ("interval:50", 3)])
async def test_kill_9_loop_loses_no_confirmed_message_and_undoes_no_durable_ack(
        tmp_path, fsync, cycles) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    cfg = crashloop.Config(cycles=cycles, min_up=0.3, max_up=1.0, startup_kill_rate=0.2,
                           max_backlog=3000, fsync=fsync, seed=seed, workdir=tmp_path)
    report = await crashloop.run(cfg)
    summary = f"seed {seed}\n{report.render()}"
    assert report.violations == [], summary
    assert report.cycles == cycles
    assert report.lost == 0 and report.final_queue_depth == 0, summary
    # the run did what it is meant to: messages confirmed and acked across kills
    assert report.confirmed > 300 and report.acks_known_durable > 300, summary
    assert report.delivered_ids >= report.confirmed, summary
