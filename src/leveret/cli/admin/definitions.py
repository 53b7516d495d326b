"""``leveret export|import definitions``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from leveret.cli.admin.api import AdminError, ManagementAPI, Resource, segment
from leveret.cli.admin.output import done


def export_definitions(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    if args.vhost is None:
        definitions = api.get("/definitions")
    else:
        definitions = api.get(f"/definitions/{segment(args.vhost)}",
                              about=Resource("vhost", args.vhost))
    text = json.dumps(definitions, indent=2, ensure_ascii=False) + "\n"
    if args.file == "-":
        out.write(text)
        return 0
    try:
        Path(args.file).write_text(text)
    except OSError as exc:
        raise AdminError(f"cannot write {args.file}: {exc.strerror or exc}") from None
    counts = ", ".join(f"{len(definitions.get(k) or [])} {k}"
                       for k in ("vhosts", "users", "queues", "exchanges", "bindings",
                                 "policies") if k in definitions)
    return done(args, out, f"exported definitions to {args.file} ({counts})")


def import_definitions(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except OSError as exc:
        raise AdminError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    try:
        definitions = json.loads(text)
    except ValueError as exc:
        raise AdminError(f"{args.file} is not JSON: {exc}") from None
    if not isinstance(definitions, dict):
        raise AdminError(f"{args.file} is not a definitions export (a JSON object)")
    if args.vhost is None:
        api.call("POST", "/definitions", definitions)
    else:
        api.call("POST", f"/definitions/{segment(args.vhost)}", definitions,
                 about=Resource("vhost", args.vhost))
    return done(args, out, f"imported definitions from {args.file}")
