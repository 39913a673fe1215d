"""Credentials: where a role's come from, and keeping them out of what tessy prints or stores.

A role's server credentials are, in order: `--teacher-api-key` / `--student-api-key` (or the
`api_key` of a config file), `--api-key` (both roles), the environment (`TESSY_TEACHER_API_KEY`
/ `TESSY_STUDENT_API_KEY`, then `OPENAI_API_KEY`), sent as `Authorization: Bearer`; or the
user:password of a URL (`http://user:secret@host/v1`), sent as Basic auth and cut off the URL
before it is used anywhere. Neither is written to a config, record, error row or summary;
worker processes and Ray tasks get them by name in their environment (`role_env`). `redact`
removes credential-shaped text from what a server or an exception says before it is stored
or printed.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

ROLES = ("teacher", "student")
FALLBACK_KEY = "OPENAI_API_KEY"


def key_env(role: str) -> str:
    return f"TESSY_{role.upper()}_API_KEY"


def auth_env(role: str) -> str:
    return f"TESSY_{role.upper()}_BASIC_AUTH"


def env_api_key(role: str) -> str | None:
    """The role's key from the environment: its own variable, else OPENAI_API_KEY."""
    return os.environ.get(key_env(role)) or os.environ.get(FALLBACK_KEY) or None


def credentials_from_env(config: Any) -> None:
    """Fill each HTTP role's missing credentials from the environment (`run_synthesis` does,
    so a library caller gets what the CLI gets)."""
    for role in ROLES:
        rc = config.role(role)
        if rc.backend == "openai_http":
            rc.api_key = rc.api_key or env_api_key(role)
            rc.basic_auth = rc.basic_auth or os.environ.get(auth_env(role)) or None


def split_userinfo(url: str) -> tuple[str, str | None]:
    """(the URL without `user:password@`, "user:password" or None)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    return urlunsplit(parts._replace(netloc=netloc)), f"{user}:{password}"


def role_env(role: str, api_key: str | None, basic_auth: str | None) -> dict[str, str]:
    """The environment variables that hand a role's credentials to a worker process."""
    env = {}
    if api_key:
        env[key_env(role)] = api_key
    if basic_auth:
        env[auth_env(role)] = basic_auth
    return env


_PATTERNS = [
    (re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 ***"),
    (re.compile(r"\b(sk|hf|rk|pk|ghp|gho|xox[a-z])[-_][A-Za-z0-9._-]{8,}"), r"\1-***"),
    (re.compile(r"(?i)(api[_-]?key|token|password|secret)([\"']?\s*[:=]\s*[\"']?)[^\s\"',&]{4,}"),
     r"\1\2***"),
    (re.compile(r"(://)[^/@\s:]*:[^/@\s]*@"), r"\1***@"),
]


def redact(text: str) -> str:
    """`text` with tokens, keys, passwords and URL userinfo replaced by ***."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
