"""The crash loop of bench/crashloop.py, short: a broker process SIGKILLed and restarted
a few times under a confirming publisher and a manual-ack consumer, then drained. Every
confirmed message must come back at least once, no ack known durable may be undone, and
redelivered messages must say so (the rules are in the script's docstring). The long run
(hundreds of kills) is ``python bench/crashloop.py --minutes 10``.

The same for a stream (bench/crashloop_stream.py): a confirming publisher and a reader
from ``first``, kills, and after every restart the whole stream read from ``first``: every
confirmed entry exactly once, offsets strictly increasing and never changed, new entries
after the old ones. Its long run is ``python bench/crashloop.py --stream --minutes 10``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "crashloop.py"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH.with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


crashloop = _load("crashloop")
crashloop_stream = _load("crashloop_stream")  # (imports crashloop: loaded first)


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


@pytest.mark.timeout(120)
async def test_kill_9_loop_keeps_every_confirmed_stream_entry_once_at_its_offset(
        tmp_path) -> None:
    seed = int.from_bytes(os.urandom(4), "little")
    cfg = crashloop_stream.Config(cycles=6, min_up=0.3, max_up=1.0, startup_kill_rate=0.2,
                                  seed=seed, workdir=tmp_path)
    report = await crashloop_stream.run(cfg)
    summary = f"seed {seed}\n{report.render()}"
    assert report.violations == [], summary
    assert report.cycles == 6, summary
    # the run did what it is meant to: entries confirmed across kills, read back each time
    assert report.confirmed > 300 and report.entries >= report.confirmed, summary
    assert report.verify_reads >= 3 and report.live_deliveries > 0, summary
    # no reader was ever handed an entry a kill then lost (readers get only what is durable)
    assert report.phantom_reads == 0, summary
