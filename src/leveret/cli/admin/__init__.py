"""``leveret VERB OBJECT ...``: administer a running broker through its management HTTP API.

The grammar is one verb, then what it acts on (see docs/cli.md):

    leveret list queues|streams|exchanges|bindings|connections|channels|consumers|users|
                 vhosts|permissions|policies [--columns a,b.c] [--sort COL] [--all-vhosts]
    leveret show queue NAME                 (a stream: its offsets, segments and readers)
    leveret declare queue NAME [--durable] [--auto-delete] [--type quorum|stream]
                 [--max-age 7D] [--max-length-bytes N] [--max-segment-size-bytes N]
                 [--arguments JSON]
    leveret declare exchange NAME [--type topic] [--durable] [--auto-delete] [--internal]
    leveret declare binding SOURCE DESTINATION [--routing-key K] [--destination-type exchange]
    leveret delete queue|exchange|binding|user|vhost ...
    leveret purge queue NAME
    leveret add user NAME PASSWORD [--tags administrator,monitoring]
    leveret add vhost NAME [--description TEXT]
    leveret set permissions USER [--configure RE] [--write RE] [--read RE]
    leveret clear permissions USER
    leveret set policy NAME PATTERN DEFINITION [--priority N] [--apply-to queues]
    leveret clear policy NAME
    leveret export definitions FILE        leveret import definitions FILE
    leveret publish [--exchange X] [--routing-key K] (--body TEXT | --file F) [--property k=v]
    leveret get QUEUE [--count N] [--requeue]
    leveret close connection NAME [--reason TEXT]
    leveret declare shovel NAME --src-uri URI (--src-queue Q | --src-exchange X) --dest-uri URI
                 [--dest-queue Q | --dest-exchange X] [--ack-mode on-confirm] ...
    leveret list shovels        leveret delete shovel NAME        leveret restart shovel NAME
    leveret status

Every command takes --url, --user, --password, --vhost, --json, --cacert, --insecure. The API
is RabbitMQ's (3.10), so the same commands administer a RabbitMQ node too.
"""

from leveret.cli.admin.api import (
    DEFAULT_URL,
    EXIT_NOPERM,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    AdminError,
    ApiError,
    ManagementAPI,
)
from leveret.cli.admin.output import format_table
from leveret.cli.admin.parsers import add_parsers, main

__all__ = ["DEFAULT_URL", "EXIT_NOPERM", "EXIT_REFUSED", "EXIT_UNREACHABLE", "EXIT_USAGE",
           "AdminError", "ApiError", "ManagementAPI", "add_parsers", "format_table", "main"]
