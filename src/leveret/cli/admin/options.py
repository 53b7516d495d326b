"""Reading the options every admin command shares."""

from __future__ import annotations

import argparse
import json
from typing import Any

from leveret.cli.admin.api import EXIT_USAGE, AdminError


def vhost_of(args: argparse.Namespace) -> str:
    return args.vhost if args.vhost is not None else "/"


def json_object(text: str | None, option: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise AdminError(f"{option} is not valid JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(value, dict):
        raise AdminError(f"{option} must be a JSON object, like '{{\"x-max-length\": 10}}'",
                         EXIT_USAGE)
    return value


def columns_option(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]
