"""The DGCPM channel orders a model gives its prompts, recorded in checkpoints and checked on load.

An order is a function of the prompt embedding and the DGM weights alone. Training records the
prompt embeddings it used and the order of every DGPB for each; loading recomputes them on the
current device, so a model that would run with other orders than it was trained with (another CLIP
build gave other embeddings, another BLAS rounded a near-tie the other way) says so instead of
silently being another network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .dfpir import DFPIR

__all__ = ["channel_orders", "check_order_record", "check_prompt_record", "order_record"]


@torch.no_grad()
def channel_orders(model: DFPIR, prompts: torch.Tensor) -> dict[str, torch.Tensor]:
    """The channel order (T, 2C) of every DGPB with a DGCPM for each prompt row of ``prompts``
    (T, prompt_dim), computed as the model's forward computes it; on the CPU."""
    device = next(model.parameters()).device
    prompts = prompts.to(device)
    return {name: block.dgcpm.channel_order(block.dgm(prompts))[1].cpu()
            for name, block in model.dgpbs().items() if block.dgcpm is not None}


def order_record(model: DFPIR, names: Sequence[str], embeddings: torch.Tensor) -> dict | None:
    """What a checkpoint stores: the prompt names, their embeddings (fp32) and the orders they
    give; ``None`` for a model without a DGCPM."""
    orders = channel_orders(model, embeddings)
    if not orders:
        return None
    return {"names": list(names), "embeddings": embeddings.detach().float().cpu(),
            "orders": orders}


def check_order_record(model: DFPIR, record: Mapping) -> list[str]:
    """Notes (empty when all agree) on the orders recomputed here from the embeddings a
    checkpoint's ``record`` holds, against the orders it recorded at training."""
    names = list(record.get("names", []))
    recorded = record.get("orders", {})
    notes = []
    for block, order in channel_orders(model, record["embeddings"]).items():
        differ = (order != recorded[block]).any(dim=1) if block in recorded else None
        if differ is not None and differ.any():
            which = ", ".join(names[i] for i in differ.nonzero().flatten().tolist())
            notes.append(f"{block}: the channel order recomputed here differs from the one "
                         f"recorded at training for {which} (this device or library rounds "
                         "the DGM scores differently at a near-tie); the network here is not "
                         "exactly the trained one")
    return notes


def check_prompt_record(model: DFPIR, record: Mapping,
                        current: Mapping[str, torch.Tensor]) -> list[str]:
    """A note when the embeddings this run uses (``current``: name -> embedding) differ from
    those a checkpoint's ``record`` holds for the same names, saying whether that changes an
    order (another CLIP build, another precision of the encoder)."""
    names = list(record.get("names", []))
    shared = [i for i, n in enumerate(names) if n in current]
    if not shared:
        return []
    mine = torch.stack([current[names[i]].detach().float().cpu() for i in shared])
    theirs = record["embeddings"][shared]
    gap = (mine - theirs).abs().max().item()
    if gap == 0:
        return []
    before, after = channel_orders(model, theirs), channel_orders(model, mine)
    moved = sum(int((after[b] != before[b]).any(dim=1).sum()) for b in after)
    effect = (f"they change the channel order of {moved} (block, prompt) pair(s)" if moved
              else "the channel orders are the same")
    return [f"the prompt embeddings differ from those recorded at training by up to {gap:.2e} "
            f"(another prompt encoder build?); {effect}"]
