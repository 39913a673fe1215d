"""Which engine runs the embedded teacher fastest on a CPU? Decode speed of Qwen2.5-Coder-1.5B.

    python -m benchmarks.cpu_inference [--tokens 128]

* llama-server (llama.cpp's own server as `tessy setup` builds it, the Q4_K_M GGUF, every
  core): 1 stream, then 2 streams at once (two slots, continuous batching), over
  `/v1/completions` with `ignore_eos`, the server's own timings;
* transformers in-process (the same GGUF de-quantised to fp32 once, as tessy's `local` backend
  loads it; greedy `generate`, the KV cache on): 1 stream.

Prompts: 2 fixed instructions; every stream decodes `--tokens` tokens after a warm-up request.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import time

import httpx

PROMPTS = ["Write a long story about a robot who learns to paint.",
           "Explain in detail how a hash table works, with examples."]


def chat(prompt: str) -> str:
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


def llama_rows(tokens: int) -> list[str]:
    from tessy.embedded import qwen_coder_gguf
    from tessy.serving.llama_server import LlamaServer

    server = LlamaServer(qwen_coder_gguf(), slots=2, context=1024)
    started = time.perf_counter()
    asyncio.run(server.start())
    load = time.perf_counter() - started

    def one(prompt: str) -> dict:
        body = {"prompt": chat(prompt), "max_tokens": tokens, "temperature": 0, "ignore_eos": True,
                "cache_prompt": False}
        return httpx.post(f"{server.url}/completions", json=body, timeout=600).json()["timings"]

    rows = []
    try:
        one("Hi")  # warm-up
        for streams in (1, 2):
            started = time.perf_counter()
            with cf.ThreadPoolExecutor(streams) as pool:
                timings = list(pool.map(one, PROMPTS[:streams]))
            wall = time.perf_counter() - started
            per = sum(t["predicted_per_second"] for t in timings) / streams
            rows.append(f"| llama-server (Q4_K_M) | {streams} | {per:.1f} | "
                        f"{streams * tokens / wall:.1f} | {load:.1f} |")
    finally:
        asyncio.run(server.stop())
    return rows


def transformers_row(tokens: int) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tessy.backends.loading import resolve_model_dir
    from tessy.embedded import qwen_coder_gguf

    started = time.perf_counter()
    directory = resolve_model_dir(str(qwen_coder_gguf()))  # de-quantised once, then cached
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, torch_dtype=torch.float32)
    load = time.perf_counter() - started
    ids = tokenizer(chat(PROMPTS[0]), return_tensors="pt")
    with torch.inference_mode():
        model.generate(**ids, max_new_tokens=4, do_sample=False)  # warm-up
        started = time.perf_counter()
        out = model.generate(**ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        wall = time.perf_counter() - started
    new = out.shape[1] - ids["input_ids"].shape[1]
    speed = new / wall
    return f"| transformers in-process (fp32, from the GGUF) | 1 | {speed:.1f} | {speed:.1f} | {load:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args()
    rows = llama_rows(args.tokens)
    if not args.skip_transformers:
        rows.append(transformers_row(args.tokens))
    print(f"### Qwen2.5-Coder-1.5B-Instruct decode speed on this CPU ({args.tokens} tokens per stream)\n")
    print("| engine | streams | decode tok/s per stream | aggregate tok/s (incl. prefill) | load s |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
