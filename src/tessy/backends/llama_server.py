"""A GGUF model on a llama-server that this backend starts and stops (`--teacher model.gguf`).

Requests go over HTTP like any OpenAI-compatible server's, so everything the HTTP backend does
(streaming, cuts that close the stream, the server's own chat template from `/props`) applies.
The server gets one slot per request the role may have in flight, at most MAX_SLOTS: every slot
reserves its context's KV cache up front (64 slots of 4096 tokens would hold ~7.5 GB for a 1.5B
model), and requests beyond the slots wait in the server's queue.
"""

from __future__ import annotations

from dataclasses import replace

from tessy.backends.naming import model_name
from tessy.backends.openai_http import OpenAIHTTPBackend
from tessy.config import RoleConfig
from tessy.serving.llama_server import LlamaServer

MAX_SLOTS = 8


class LlamaServerBackend(OpenAIHTTPBackend):
    """OpenAIHTTPBackend over a managed llama-server."""

    def __init__(self, config: RoleConfig) -> None:
        assert config.model
        self.server = LlamaServer(config.model, slots=min(config.concurrency, MAX_SLOTS),
                                  context=config.context, threads=config.threads or None,
                                  alias=config.model_name or model_name(config.model))
        super().__init__(replace(config, backend="openai_http", base_urls=[self.server.url], model=None))

    async def start(self) -> None:
        """Start the server, then probe it like any other."""
        await self.server.start()
        await super().start()

    async def close(self) -> None:
        """Close the connections, then stop the server."""
        try:
            await super().close()
        finally:
            await self.server.stop()
