"""A user's handler function: what it expects, and calling it (async, or sync in threads).

The payload type comes from the first parameter's annotation (or ``event=``): an event
class, a ``Union`` of them (picked by the message's type), any other type pydantic can
validate (``dict``, ``list[int]``), or nothing for plain JSON. A second parameter, if
any, receives the ``Delivery``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import types
import typing
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from leveret.events.codec import decode, event_type, is_model
from leveret.events.context import current_delivery
from leveret.events.envelope import Delivery
from leveret.events.errors import EventValidationError


def _first_annotation(fn: Callable[..., Any]) -> Any:
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not params:
        raise TypeError(f"handler {fn.__qualname__} must take the event as first parameter")
    raw = params[0].annotation
    if not isinstance(raw, str):
        return raw
    try:
        return typing.get_type_hints(fn).get(params[0].name)
    except Exception as exc:  # a silently untyped handler would skip validation
        raise TypeError(f"cannot resolve the annotation {raw!r} of {fn.__qualname__}; "
                        f"pass the type with event= (or request=)") from exc


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(annotation) if a is not type(None))
    return (annotation,)


@dataclass(frozen=True)
class Handler:
    fn: Callable[..., Any]
    payload_type: Any  # None: plain JSON
    wants_delivery: bool
    is_async: bool

    @classmethod
    def wrap(cls, fn: Callable[..., Any], payload_type: Any = None) -> Handler:
        annotation = payload_type if payload_type is not None else _first_annotation(fn)
        if annotation in (Any, inspect.Parameter.empty):
            annotation = None
        positional = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return cls(fn=fn, payload_type=annotation, wants_delivery=len(positional) >= 2,
                   is_async=inspect.iscoroutinefunction(fn))

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    @property
    def event_classes(self) -> tuple[type, ...]:
        if self.payload_type is None:
            return ()
        return tuple(m for m in _members(self.payload_type) if is_model(m))

    def payload(self, body: bytes, type_name: str) -> Any:
        """Decode and validate ``body``; raises ``EventValidationError``."""
        members = _members(self.payload_type) if self.payload_type is not None else (None,)
        if len(members) > 1:
            by_type = {event_type(m): m for m in members if is_model(m)}
            if type_name not in by_type:
                raise EventValidationError(
                    type_name, f"this handler takes {sorted(by_type)}, not {type_name!r}")
            return decode(body, by_type[type_name], type_name)
        return decode(body, members[0], type_name)

    async def __call__(self, payload: Any, delivery: Delivery,
                       executor: Executor | None) -> Any:
        args = (payload, delivery) if self.wants_delivery else (payload,)
        token = current_delivery.set(delivery)
        try:
            if self.is_async:
                return await self.fn(*args)
            # copy_context: the thread sees current_delivery, so publish_sync links ids
            call = functools.partial(contextvars.copy_context().run, self.fn, *args)
            return await asyncio.get_running_loop().run_in_executor(executor, call)
        finally:
            current_delivery.reset(token)
