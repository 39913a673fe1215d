"""The streaming hot path: server-sent events over keep-alive HTTP/1.1 connections."""

from tessy.transport.pool import (
    ConnectFailed,
    ConnectionDropped,
    HTTPStatusError,
    ReadTimeout,
    SSEPool,
    TransportError,
)
from tessy.transport.protocol import ProtocolError, SSEConnection

__all__ = ["ConnectFailed", "ConnectionDropped", "HTTPStatusError", "ProtocolError", "ReadTimeout",
           "SSEConnection", "SSEPool", "TransportError"]
