"""Hello World with aio-pika on asyncio: publish a persistent message to queue `hello`,
then consume it.

Queues are declared on a channel (``channel.declare_queue``), messages are published through
an exchange (here the default one, which routes by queue name), and ``queue.iterator()``
consumes with ``async for``; ``message.process()`` acknowledges the message once its block
ends. It runs the same against leveret and RabbitMQ.

    pip install aio-pika
    python examples/hello_aio_pika.py [AMQP_URL]     # default amqp://guest:guest@localhost:5672/
"""

import asyncio
import sys

from aio_pika import DeliveryMode, Message, connect


async def main(url: str) -> None:
    connection = await connect(url)
    async with connection:
        channel = await connection.channel()

        # Create (declare) the queue
        queue = await channel.declare_queue("hello")

        # Publish the event, persistent
        await channel.default_exchange.publish(
            Message(body=b"Hello World!", delivery_mode=DeliveryMode.PERSISTENT),
            routing_key=queue.name,
        )

        # Subscribe: consume events until the first one has been handled
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    print(message.body)
                break


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@localhost:5672/"))
