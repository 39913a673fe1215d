"""Every error tessy raises on purpose.

    TessyError                     base; the CLI prints its message on one line
    ├── ConfigError                a setting has a wrong type or value (names the field)
    ├── InputError                 a problem file or row is unusable (names file:line)
    ├── BackendError               a model backend failed
    │   ├── ServerUnavailable      cannot reach the server at all (names the URL); not retried per problem
    │   ├── TransientBackendError  timeout, dropped stream, 429/5xx: retried with backoff
    │   │                          (`server_down`: refused/503-like, not blamed on the problem)
    │   └── RequestRejected        the server refused this request (4xx, e.g. prompt too long): never retried
    ├── ModelLoadError             a local model or tokenizer could not be loaded
    └── GenerationError            one trajectory could not be finished (becomes an error row)
"""

from __future__ import annotations


class TessyError(Exception):
    """Base class: a failure with a message meant for the user."""


class ConfigError(TessyError):
    """A configuration field has a wrong type or value."""


class InputError(TessyError):
    """A problem file or one of its rows cannot be used."""


class BackendError(TessyError):
    """A model backend failed to answer."""


class ServerUnavailable(BackendError):
    """The server cannot be reached or is not ready."""


class TransientBackendError(BackendError):
    """A failure worth retrying: timeouts, dropped connections, 429 and 5xx.

    `server_down` marks failures that say the server as a whole is away or overloaded
    (connection refused, 429, 502/503/504): they are waited out rather than counted against
    the problem, until the server has failed for `synthesis.server_down_after` seconds.
    `timed_out`: the server sent nothing for a whole request timeout. Either takes that replica
    out of rotation while the role has others. `failover`: the role has a live replica left,
    so the request can go there at once.
    """

    def __init__(self, message: str, *, server_down: bool = False, timed_out: bool = False) -> None:
        super().__init__(message)
        self.server_down = server_down
        self.timed_out = timed_out
        self.failover = False


class RequestRejected(BackendError):
    """The server rejected this request as invalid; retrying will not help."""


class ModelLoadError(TessyError):
    """A local model or tokenizer could not be loaded."""


class GenerationError(TessyError):
    """A trajectory could not be completed (empty output, loops, retries spent)."""
