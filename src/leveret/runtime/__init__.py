"""The composition root: what builds a running broker out of the other packages.

``embedded.Broker`` (``leveret.Broker``) wires the node, the store, the group committer,
the AMQP listeners, the resource alarms and the management API together in the current
event loop; ``threaded.BrokerThread`` runs one in a background thread. lavinmq's
``launcher.cr`` has the same role.

It sits above ``leveret.server`` (the asyncio adapter) and ``leveret.management`` (the
HTTP API) so that neither imports the other: the management API gets what it shows of the
running broker from the ``Broker`` handed to it (``management.context.Runtime``).
tests/test_layering.py keeps it so.
"""
