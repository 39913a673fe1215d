"""What can go wrong on the wire, and the one table that turns it into tessy's errors.

Both ways to a server (tessy's own pool, and httpx where a proxy is configured) raise these:

    TransportError          the request did not get a whole answer
    ├── ConnectFailed       refused, unreachable or no answer to the connect: the server is away
    ├── ReadTimeout         no byte from the server for a whole timeout
    ├── ConnectionDropped   the connection ended before the response did
    └── HTTPStatusError     a status >= 400, with its body
    ProtocolError           the bytes on the wire are not HTTP/1.1 as expected

`mapped_errors` turns them, and an answer that is not the JSON expected, into tessy's errors:

    connect refused / connect timeout   -> TransientBackendError(server_down=True)
    read timeout                        -> TransientBackendError(timed_out=True)
    dropped connection, other failures  -> TransientBackendError
    HTTP 429, 502, 503, 504             -> TransientBackendError(server_down=True)
    HTTP 408, 409, 425, 500             -> TransientBackendError
    any other HTTP >= 400               -> RequestRejected (never retried)
    malformed response                  -> TransientBackendError
    an error event inside a stream      -> by its `code`, as the status it names; no code:
                                           TransientBackendError
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tessy.errors import BackendError, RequestRejected, TransientBackendError

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
DOWN_STATUS = frozenset({429, 502, 503, 504})  # the server (or its proxy) is away or full


class TransportError(Exception):
    """The request did not get a whole answer. `server_down`: the server is not there at all."""

    server_down = False


class ConnectFailed(TransportError):
    """Refused, unreachable or not answering the connect: the server is away."""

    server_down = True


class ReadTimeout(TransportError):
    """No byte from the server for `timeout` seconds."""


class ConnectionDropped(TransportError):
    """The connection ended before the response did."""


class HTTPStatusError(TransportError):
    """A status >= 400 with its body."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class ProtocolError(Exception):
    """The bytes on the wire are not HTTP/1.1 as expected."""


def status_error(url: str, status: int, body: str) -> BackendError:
    """The error for an HTTP status >= 400 (see the table in the module docstring)."""
    message = f"{url}: HTTP {status}: {body[:300]}".replace("\n", " ")
    if status in RETRY_STATUS:
        return TransientBackendError(message, server_down=status in DOWN_STATUS)
    return RequestRejected(message)


def stream_error(url: str, error: object) -> BackendError:
    """The error for an error event inside a 200 stream (vLLM, SGLang and llama-server send
    `data: {"error": {...}}` when a request fails after its head; llama-server, e.g., for one
    that outgrows its slot's context): classed by its `code` as that HTTP status would be (a 400
    is not retried), else worth retrying; its message in one line."""
    detail = error if isinstance(error, dict) else {"message": error}
    code, message = detail.get("code"), str(detail.get("message") or detail)
    status = code if isinstance(code, int) and code >= 400 else None
    text = f"{url}: the server's stream ended with an error ({code}): {message[:300]}".replace("\n", " ")
    if status is not None and status not in RETRY_STATUS:
        return RequestRejected(text)
    return TransientBackendError(text, server_down=status in DOWN_STATUS)


@contextmanager
def mapped_errors(url: str) -> Iterator[None]:
    """Raise what fails in the block as tessy's errors, naming `url` (the module's table)."""
    try:
        yield
    except HTTPStatusError as exc:
        raise status_error(url, exc.status, exc.body) from exc
    except ConnectFailed as exc:
        raise TransientBackendError(f"{url}: {exc}", server_down=True) from exc
    except ReadTimeout as exc:
        raise TransientBackendError(f"{url}: timed out ({exc})", timed_out=True) from exc
    except TransportError as exc:
        raise TransientBackendError(f"{url}: connection failed ({exc})") from exc
    except (ProtocolError, ValueError) as exc:
        raise TransientBackendError(f"{url}: malformed response ({exc})") from exc
