"""Single active consumer for streams: the consumer groups of one stream (RabbitMQ 3.11+'s
rabbit_stream_sac_coordinator, as its state machine stood in 3.13).

Subscriptions with ``single-active-consumer=true`` and the same ``name`` on one stream form
a group; one member at a time is active and gets the stream, the others wait. Members hear
of their state by ConsumerUpdate requests (the session sends them, ``Member.consumer_update``),
and an active member starts reading only once the client has answered with where to start.

Which member is active:

- a plain stream (partition index -1): the oldest member; when it leaves, the next oldest;
- a partition of a super stream (subscribed with ``super-stream``): member
  ``partition index % number of members``, so that the groups of a super stream's partitions
  spread over the consumers. When a member joins or leaves and that moves the activity,
  the current active member is told to step down first (ConsumerUpdate, inactive); once it
  has answered (it may store its offset then) or has gone, the new one is activated.

A member that joins a group with an active member (or one stepping down) is told at once it
is inactive, as RabbitMQ does.
"""

from __future__ import annotations

from typing import Protocol


class Member(Protocol):
    """A subscription in a group (stream_session.GroupSubscription)."""

    def consumer_update(self, active: bool) -> None:
        """Tell the client this subscription is now active (True) or inactive (False)."""


class ConsumerGroup:
    __slots__ = ("active", "members", "partition_index", "stepping_down")

    def __init__(self, partition_index: int = -1) -> None:
        self.partition_index = partition_index
        self.members: list[Member] = []  # oldest first
        self.active: Member | None = None  # told it is active
        self.stepping_down: Member | None = None  # told to step down; its answer awaited

    def _choice(self) -> Member | None:
        """The member that should be active."""
        members = self.members
        if not members:
            return None
        if self.partition_index < 0:
            return members[0]
        return members[self.partition_index % len(members)]

    def _activate(self) -> None:
        chosen = self._choice()
        self.active = chosen
        if chosen is not None:
            chosen.consumer_update(True)

    def _step_down(self) -> None:
        former = self.active
        assert former is not None
        self.active = None
        self.stepping_down = former
        former.consumer_update(False)

    def register(self, member: Member) -> None:
        self.members.append(member)
        if self.active is None and self.stepping_down is None:
            self._activate()  # a new group: its first member
        elif (self.active is not None and self.partition_index >= 0
              and self._choice() is not self.active):
            self._step_down()
        if member is not self.active:
            member.consumer_update(False)

    def unregister(self, member: Member) -> None:
        """``member`` left (unsubscribed, or its connection closed)."""
        if member not in self.members:
            return
        self.members.remove(member)
        if member is self.active:
            self.active = None
        if member is self.stepping_down:
            self.stepping_down = None
        if not self.members:
            return
        if self.active is None:
            if self.stepping_down is None:
                self._activate()
        elif self.partition_index >= 0 and self._choice() is not self.active:
            self._step_down()

    def stepped_down(self, member: Member) -> None:
        """``member`` answered the ConsumerUpdate that told it to step down."""
        if member is self.stepping_down:
            self.stepping_down = None
            if self.active is None:
                self._activate()

    @property
    def empty(self) -> bool:
        return not self.members
