"""The whole order service in one process, end to end: workers, RPC, retries, dead letters.

    python -m examples.orders.demo [AMQP_URL] [--reset]

``--reset`` deletes the service's queues first (and after), for a clean run on a broker
that has seen earlier runs.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from examples.orders.app import bus, done
from examples.orders.publish import ORDERS, place_orders


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out; so far: {dict(done)}")
        await asyncio.sleep(0.05)


async def main(url: str | None, reset: bool) -> None:
    if reset:
        await bus.delete_topology(url)
    await bus.start(url)
    try:
        await place_orders(bus)
        dead_letters = bus.dead_letters("fraud-check")

        async def finished() -> bool:  # mallory's order never clears: it is dead-lettered
            return (done["billed"] == done["shipped"] == len(ORDERS)
                    and done["cleared"] == len(ORDERS) - 1 and await dead_letters.count() == 1)

        await wait_for(finished)
        count = await dead_letters.count()
        print(f"billing: {done['billed']} orders billed")
        print(f"shipping: {done['shipped']} orders shipped")
        print(f"fraud-check: {done['cleared']} cleared, {count} dead-lettered")
        for letter in await dead_letters.peek():
            print(f"dead letter {letter.event_id} ({letter.event_type}) after "
                  f"{letter.attempts} attempts: {letter.error}")
    finally:
        await bus.close()
        if reset:
            await bus.delete_topology(url)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(args[0] if args else None, "--reset" in sys.argv))
