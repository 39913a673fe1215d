"""The torch side of incremental reading: the calls of concurrent sessions as one forward.

Each step keeps some of its session's cached tokens as the past and runs its new tokens after
them. The pasts are left-padded into one cache, the new tokens right-padded after it; an
additive mask lets each query attend to what the windowed path's window ending at it would
hold: the anchor's first SINKS tokens (their keys rotated to the window's start) and the cached
tokens after them (incremental.py keeps the books of what each session has cached).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tessy.boundary.classifier import TokenClassifierPredictor
    from tessy.boundary.incremental import Step

SINKS = 4  # first tokens after an anchor that every later token still attends to


def run_steps(predictor: TokenClassifierPredictor, steps: list[Step]) -> None:
    """One forward for every step with new tokens (cached pasts left-padded to the longest, new
    tokens right-padded after them); each session takes its predictions and grown cache."""
    import torch
    from transformers import DynamicCache

    for s in steps:
        if not s.ids:  # nothing new: at most a crop
            s.session.commit(s, [], [(k[:, :, :s.past], v[:, :, :s.past]) for k, v in s.session.kv])
    steps = [s for s in steps if s.ids]
    if not steps:
        return
    model, device = predictor.model, predictor.model.device
    pasts = [_past(predictor, s) for s in steps]
    past = max(len(positions) for _, positions in pasts)
    width, rows = max(len(s.ids) for s in steps), len(steps)
    ids = torch.full((rows, width), predictor.pad_id, dtype=torch.long)
    keys = torch.full((rows, past + width), -1, dtype=torch.long)  # position of each key column
    for r, (s, (_, positions)) in enumerate(zip(steps, pasts, strict=True)):
        ids[r, :len(s.ids)] = torch.tensor(s.ids)
        keys[r, past - len(positions):past] = torch.tensor(positions, dtype=torch.long)
        keys[r, past:past + len(s.ids)] = torch.arange(len(s.ids)) + s.pos + s.past
    queries = torch.tensor([s.pos + s.past for s in steps])[:, None] + torch.arange(width)
    mask = attention_mask(keys, queries, past, model.dtype)
    data = None
    if past:
        depth = len(next(kv for kv, _ in pasts if kv))
        data = [_left_padded([kv[layer] if kv else None for kv, _ in pasts], past)
                for layer in range(depth)]
    cache = DynamicCache(ddp_cache_data=data)
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                       position_ids=queries.to(device), **{predictor.cache_arg: cache},
                       use_cache=True).logits
        style = predictor.meta.style_label
        margins = (logits[..., style] - logits[..., 1 - style]).float().cpu().tolist()
        layers = [(k, v) for k, v, *_ in cache]
        for r, s in enumerate(steps):
            n, kv = len(s.ids), []
            for layer, (k, v) in enumerate(layers):
                new = k[r:r + 1, :, past:past + n], v[r:r + 1, :, past:past + n]
                if s.past:  # the kept past, then the new tokens (a copy: the batch is freed)
                    old_k, old_v = s.session.kv[layer]
                    kv.append((torch.cat([old_k[:, :, :s.past], new[0]], dim=2),
                               torch.cat([old_v[:, :, :s.past], new[1]], dim=2)))
                else:
                    kv.append((new[0].clone(), new[1].clone()))
            s.session.commit(s, margins[r][:n], kv)
    predictor.calls += rows
    predictor.token_forwards += sum(len(s.ids) for s in steps)


def _past(predictor: TokenClassifierPredictor, step: Step) -> tuple[list[tuple[Any, Any]], list[int]]:
    """What the step's new tokens attend to besides themselves, as the windowed path's window
    ending at the step's last token would hold it: the anchor's first SINKS tokens moved to the
    window's start (their keys rotated there), then the cached tokens after them. Per layer
    (keys, values), and each column's position (-1: cached but outside the window)."""
    import torch

    session = step.session
    if not step.past:
        return [], []
    kv = [(k[:, :, :step.past], v[:, :, :step.past]) for k, v in session.kv]
    start = step.pos + step.past + len(step.ids) - predictor.meta.window  # the window's start
    positions = list(range(step.pos, step.pos + step.past))
    if start <= 0 or not session.sink:  # the window still holds the anchor itself
        return kv, positions
    sinks = session.sink[0][0].shape[2]
    positions = [p if p >= start + sinks else -1 for p in positions]
    rotate = _rotation(predictor.model, start, session.sink[0][0])
    moved = [(rotate(k), v) for k, v in session.sink]
    kv = [(torch.cat([sk, k], dim=2), torch.cat([sv, v], dim=2))
          for (sk, sv), (k, v) in zip(moved, kv, strict=True)]
    return kv, list(range(start, start + sinks)) + positions


def _rotation(model: Any, delta: int, like: Any) -> Any:
    """A function that moves rotary-embedded keys `delta` positions on (RoPE composes by adding
    angles); the identity for models without rotary embeddings."""
    import torch

    rotary = getattr(model.base_model, "rotary_emb", None)
    if rotary is None:
        return lambda k: k
    cos, sin = rotary(like, position_ids=torch.tensor([[delta]], device=like.device))
    scale = getattr(rotary, "attention_scaling", 1.0) or 1.0
    cos, sin = (cos / scale)[:, None], (sin / scale)[:, None]  # (1, 1, 1, head_dim)

    def rotate(k: Any) -> Any:
        half = k.shape[-1] // 2
        return k * cos + torch.cat([-k[..., half:], k[..., :half]], dim=-1) * sin
    return rotate


def attention_mask(keys: Any, queries: Any, past: int, dtype: Any) -> Any:
    """Additive (rows, 1, queries, keys) mask: a query attends to the real keys (position >= 0)
    at or before it. A padding query sees itself, so no row is all masked (no NaN)."""
    import torch

    k, q = keys[:, None, :], queries[:, :, None]
    ok = (k >= 0) & (q - k >= 0)
    width = queries.shape[1]
    itself = torch.zeros((width, past + width), dtype=torch.bool)
    itself[:, past:] = torch.eye(width, dtype=torch.bool)
    ok |= itself[None]
    mask = torch.zeros(ok.shape, dtype=dtype).masked_fill(~ok, torch.finfo(dtype).min)
    return mask[:, None]


def _left_padded(rows: list[tuple[Any, Any] | None], past: int) -> tuple[Any, Any]:
    """One layer's (keys, values) of all rows, each right-aligned at `past` (zeros before)."""
    ref_k, ref_v = next(row for row in rows if row)
    k = ref_k.new_zeros((len(rows), ref_k.shape[1], past, ref_k.shape[3]))
    v = ref_v.new_zeros((len(rows), ref_v.shape[1], past, ref_v.shape[3]))
    for r, row in enumerate(rows):
        if row:
            n = row[0].shape[2]
            k[r, :, past - n:] = row[0][0]
            v[r, :, past - n:] = row[1][0]
    return k, v
