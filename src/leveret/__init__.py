"""leveret: a message broker in Python that speaks AMQP 0-9-1 like RabbitMQ.

    async with leveret.Broker(port=0) as broker:
        print(broker.url)
"""

from leveret.runtime.embedded import Broker
from leveret.version import __version__

__all__ = ["Broker", "__version__"]
