"""leveret: a message broker in Python that speaks AMQP 0-9-1 like RabbitMQ.

    async with leveret.Broker(port=0) as broker:
        print(broker.url)

``leveret.Broker`` is imported on first use (a module ``__getattr__``), so that importing a
library of the package (``leveret.events``, ``leveret.client``, ``leveret.config``) does not
import the broker, the server and the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leveret.lazy import lazy_getattr
from leveret.version import __version__

if TYPE_CHECKING:
    from leveret.runtime.embedded import Broker

__all__ = ["Broker", "__version__"]

# name -> the module that defines it, imported when the name is first read
_LAZY = {"Broker": "leveret.runtime.embedded"}


__getattr__ = lazy_getattr("leveret", _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
