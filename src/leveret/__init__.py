"""leveret: a message broker in Python that speaks AMQP 0-9-1 like RabbitMQ.

    async with leveret.Broker(port=0) as broker:
        print(broker.url)
"""

__version__ = "0.1.0"

from leveret.runtime.embedded import Broker

__all__ = ["Broker", "__version__"]
