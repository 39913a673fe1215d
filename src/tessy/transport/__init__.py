"""Every HTTP request tessy makes: `Transport`, one interface with one error map; the streaming
hot path (SSE over keep-alive HTTP/1.1 on asyncio Protocols), httpx through a proxy."""

from tessy.transport.client import Transport, proxied
from tessy.transport.errors import (
    ConnectFailed,
    ConnectionDropped,
    HTTPStatusError,
    ProtocolError,
    ReadTimeout,
    TransportError,
    mapped_errors,
)
from tessy.transport.pool import SSEPool
from tessy.transport.protocol import SSEConnection, SSEParser

__all__ = ["ConnectFailed", "ConnectionDropped", "HTTPStatusError", "ProtocolError", "ReadTimeout",
           "SSEConnection", "SSEParser", "SSEPool", "Transport", "TransportError", "mapped_errors",
           "proxied"]
