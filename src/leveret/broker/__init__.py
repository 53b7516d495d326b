"""What exchanges, queues, consumers and channels mean: synchronous, no I/O.

The server feeds bytes into ``ServerConnection`` and writes out whatever it produces; every
routing and queueing decision is made here, without asyncio, sockets or ssl.
"""
