"""The embeddable broker: ``async with leveret.Broker(port=0)`` in the current loop."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys

import aio_pika
import aiormq
import pytest

import leveret


async def test_async_with_broker_round_trip() -> None:
    async with leveret.Broker(port=0) as broker:
        assert broker.port != 0
        assert broker.url == f"amqp://guest:guest@127.0.0.1:{broker.port}/"
        connection = await aio_pika.connect(broker.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("", exclusive=True)
            await channel.default_exchange.publish(aio_pika.Message(b"hi"), queue.name)
            message = await queue.get(timeout=5)
            assert message is not None and message.body == b"hi"
            await message.ack()


async def test_stop_closes_clients_with_connection_forced() -> None:
    broker = leveret.Broker(port=0)
    await broker.start()
    connection = await aiormq.connect(broker.url)
    await broker.stop()
    with pytest.raises(aiormq.exceptions.ConnectionClosed) as info:
        await asyncio.wait_for(connection.closing, 5)
    assert info.value.args[0] == 320
    assert "CONNECTION_FORCED" in info.value.args[1]


def test_public_api_is_pinned() -> None:
    assert sorted(leveret.__all__) == ["Broker", "__version__"]


def test_the_root_package_imports_the_broker_on_first_use() -> None:
    from leveret.runtime.embedded import Broker

    assert leveret.Broker is Broker and "Broker" in dir(leveret)
    assert leveret.__version__ == leveret.version.__version__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        leveret.Nope  # noqa: B018


@pytest.mark.parametrize("library", ["leveret", "leveret.events", "leveret.events.cli",
                                     "leveret.client"])
def test_importing_a_library_does_not_import_the_broker(library: str) -> None:
    """``import leveret.events`` in an application imports neither the broker, the server
    nor the store (the root package's ``Broker`` is imported on first use)."""
    code = (f"import sys, {library}\n"
            "print(sorted({m.split('.')[1] for m in sys.modules"
            " if m.startswith('leveret.')}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    loaded = set(ast.literal_eval(out))
    assert not loaded & {"server", "store", "broker", "runtime", "management"}, loaded
