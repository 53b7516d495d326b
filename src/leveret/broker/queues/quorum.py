"""Quorum queues, as one node runs them: a durable classic queue with quorum semantics.

leveret has no cluster to replicate to, so a quorum queue keeps its messages as a durable
classic queue does. What clients can observe of RabbitMQ's quorum queues is kept: the
declare rules and their reply texts, every redelivery counted in ``x-delivery-count``
(also stamped on every basic.get), ``x-delivery-limit`` dead-lettering, and where a returned
message goes: a reject, nack or basic.recover puts it after the messages already waiting
(RabbitMQ 3.10 appends a return to the quorum queue's log), while the messages of a closed
channel or connection go back to their original places.
"""

from __future__ import annotations

from leveret.amqp.fields import FieldTable
from leveret.broker.entry import Entry
from leveret.broker.queues.classic import ClassicQueue
from leveret.errors import NotImplemented_, PreconditionFailed

# Arguments RabbitMQ refuses for quorum queues.
QUORUM_REFUSED = ("x-max-priority", "x-queue-mode")


class QuorumQueue(ClassicQueue):
    TYPE_NAME = "quorum"

    @classmethod
    def check_declare(cls, arguments: FieldTable, durable: bool, exclusive: bool,
                      auto_delete: bool, server_named: bool, where: str) -> None:
        if server_named:
            raise PreconditionFailed("Cannot declare a server-named queue for type "
                                     "rabbit_quorum_queue")
        for key in QUORUM_REFUSED:
            if key in arguments:
                raise PreconditionFailed(
                    f"invalid arg '{key}' for {where} of queue type rabbit_quorum_queue")
        for bad, prop in ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"),
                          (not durable, "non-durable")):
            if bad:
                raise PreconditionFailed(f"invalid property '{prop}' for {where}")

    def check_delete(self, if_unused: bool, if_empty: bool) -> None:
        if if_empty:
            raise NotImplemented_(f"cannot delete queue '{self.name}' in vhost "
                                  f"'{self.vhost.name}'. queue.delete operations with if-empty "
                                  "flag set are not supported by quorum queues")
        super().check_delete(if_unused, if_empty)

    def counts_deliveries(self) -> bool:
        return True

    def reject(self, entries: list[Entry], requeue: bool) -> None:
        if requeue and self.retry_delay is None:
            self._return_to_tail(entries)
        else:
            super().reject(entries, requeue)

    def requeue_recovered(self, entries: list[Entry]) -> None:
        self._return_to_tail(entries)

    def _return_to_tail(self, entries: list[Entry]) -> None:
        self.unacked -= len(entries)
        if not self.deleted:
            self._return(entries, at_tail=True)
