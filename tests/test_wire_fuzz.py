"""Mutated client sessions against a live broker: a bounded run of tools/fuzz_amqp.py.

Every case (a realistic session with a few frames bit-flipped, cut, resized, retyped,
dropped, duplicated or spliced) must end with the broker closing the connection within the
timeout; the broker must log no ERROR record (an "internal error" is one) and a normal
client must still publish and consume afterwards. Long runs: ``python tools/fuzz_amqp.py``
(docs/robustness.md).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pika
import pytest

from leveret.runtime.threaded import BrokerThread

FRAMES = 40_000  # a few seconds; the seed makes every run the same cases
SEED = 11


def _fuzzer() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "tools" / "fuzz_amqp.py"
    spec = importlib.util.spec_from_file_location("fuzz_amqp", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


class BrokerErrors(logging.Handler):
    """Records of the broker's loggers that mean the broker, not the client, failed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR or "internal error" in message:
            self.found.append(f"{record.levelname} {record.name}: {message}")


@pytest.fixture
def broker_errors() -> Iterator[BrokerErrors]:
    handler = BrokerErrors()
    logger = logging.getLogger("leveret")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_mutated_sessions_never_crash_or_hang_the_broker(broker_errors: BrokerErrors,
                                                         tmp_path: Path) -> None:
    fuzz = _fuzzer()
    with BrokerThread(data_dir=tmp_path) as broker:  # a store: persistent paths fuzzed too
        assert broker.port is not None
        report = asyncio.run(fuzz.fuzz("127.0.0.1", broker.port, SEED, FRAMES, workers=8,
                                       timeout=10.0))
        assert report.frames >= FRAMES and report.cases > 1000
        assert report.hangs == [], f"cases without an answer or close: {report.hangs[:10]}"
        assert sum(report.closes.values()) > report.cases // 4  # most mutations are answered
        assert broker_errors.found == []
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        try:
            ch = conn.channel()
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.basic_publish("", q, b"after the fuzz")
            got: list[bytes] = []
            ch.basic_consume(q, lambda c, m, p, body: got.append(body), auto_ack=True)
            conn.process_data_events(time_limit=2)
            assert got == [b"after the fuzz"]
        finally:
            conn.close()


def test_cases_are_deterministic() -> None:
    fuzz = _fuzzer()
    assert fuzz.case(SEED, 7) == fuzz.case(SEED, 7)
    assert fuzz.case(SEED, 7) != fuzz.case(SEED, 8)
