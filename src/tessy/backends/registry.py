"""Where each backend lives: adding a backend is one module plus one entry here.

Entries name a module and a class, imported only when that backend is used, so the HTTP path
never imports torch. Every class takes a `RoleConfig` and implements `backends.base.Backend`.
"""

from __future__ import annotations

BACKENDS: dict[str, str] = {
    "openai_http": "tessy.backends.openai_http:OpenAIHTTPBackend",
    "local": "tessy.backends.local:LocalBackend",
    "llama_server": "tessy.backends.llama_server:LlamaServerBackend",
    "fake": "tessy.backends.fake:FakeBackend",
}
