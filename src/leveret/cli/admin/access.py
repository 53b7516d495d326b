"""``leveret add|delete|set|clear`` for users, vhosts, permissions and policies."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from leveret.cli.admin.api import ApiError, ManagementAPI, Resource, segment
from leveret.cli.admin.options import columns_option, json_object, vhost_of
from leveret.cli.admin.output import done


def add_user(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    tags = ",".join(columns_option(args.tags))
    api.call("PUT", f"/users/{segment(args.name)}", {"password": args.new_password, "tags": tags})
    return done(args, out, f"added user '{args.name}'" + (f" (tags: {tags})" if tags else ""))


def delete_user(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    api.call("DELETE", f"/users/{segment(args.name)}", about=Resource("user", args.name))
    return done(args, out, f"deleted user '{args.name}'")


def add_vhost(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {}
    if args.description is not None:
        body["description"] = args.description
    if args.tags is not None:
        body["tags"] = ",".join(columns_option(args.tags))
    if args.default_queue_type is not None:
        body["default_queue_type"] = args.default_queue_type
    api.call("PUT", f"/vhosts/{segment(args.name)}", body)
    return done(args, out, f"added vhost '{args.name}'")


def delete_vhost(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    api.call("DELETE", f"/vhosts/{segment(args.name)}", about=Resource("vhost", args.name))
    return done(args, out, f"deleted vhost '{args.name}'")


def _user_in_vhost(api: ManagementAPI, user: str, vhost: str) -> Resource:
    """For a 404 on /permissions/{vhost}/{user}: is it the vhost or the user?"""
    try:
        api.get(f"/vhosts/{segment(vhost)}", about=Resource("vhost", vhost))
    except ApiError as exc:
        if exc.code == 404:
            return Resource("vhost", vhost)
        raise
    return Resource("user", user)


def set_permissions(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    body = {"configure": args.configure, "write": args.write, "read": args.read}
    try:
        api.call("PUT", f"/permissions/{segment(vhost)}/{segment(args.user_name)}", body)
    except ApiError as exc:
        # RabbitMQ 3.10 answers 400 "vhost_or_user_not_found"
        if exc.code == 404 or "not_found" in exc.reason:
            missing = _user_in_vhost(api, args.user_name, vhost)
            raise ApiError(404, exc.reason, f"{missing} not found") from None
        raise
    return done(args, out, f"set permissions of user '{args.user_name}' in vhost '{vhost}': "
                            f"configure '{args.configure}' write '{args.write}' "
                            f"read '{args.read}'")


def clear_permissions(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    try:
        api.call("DELETE", f"/permissions/{segment(vhost)}/{segment(args.user_name)}")
    except ApiError as exc:
        if exc.code != 404:
            raise
        missing = _user_in_vhost(api, args.user_name, vhost)
        message = (f"vhost '{vhost}' not found" if missing.kind == "vhost" else
                   f"user '{args.user_name}' has no permissions in vhost '{vhost}'")
        raise ApiError(404, exc.reason, message) from None
    return done(args, out, f"cleared permissions of user '{args.user_name}' in vhost "
                            f"'{vhost}'")


def set_policy(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    body = {"pattern": args.pattern,
            "definition": json_object(args.definition, "DEFINITION"),
            "priority": args.priority, "apply-to": args.apply_to}
    api.call("PUT", f"/policies/{segment(vhost)}/{segment(args.name)}", body,
             about=Resource("vhost", vhost))
    return done(args, out, f"set policy '{args.name}' in vhost '{vhost}'")


def clear_policy(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    api.call("DELETE", f"/policies/{segment(vhost)}/{segment(args.name)}",
             about=Resource("policy", args.name, vhost))
    return done(args, out, f"cleared policy '{args.name}' in vhost '{vhost}'")
