"""RabbitMQ's native stream protocol (port 5552), sans I/O: its frames, the AMQP 1.0 types
and messages it carries, and osiris chunks. The broker's side of a connection is
broker/stream_connection.py; the asyncio adapter is server/stream_protocol.py."""
