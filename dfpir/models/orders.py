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


@torch.no_grad()
def _rounding_consistent(block, prompt: torch.Tensor, order: torch.Tensor) -> bool:
    """Whether ``order`` sorts the DGM scores of ``prompt`` in descending order up to fp32
    rounding. Each score may be off by the forward error bound of the two linear layers,
    ``(n1 + n2) eps (|W2| (|W1| |x| + |b1|) + |b2|)`` (n = inputs + 1 per layer; the hidden
    layer's error carried through ``|W2|`` and the output layer's own), so two scores within
    the sum of their bounds are a near-tie either order may take."""
    dgm = block.dgm
    x = prompt.float()[None]
    scores = dgm(x)[0].cpu()
    eps = torch.finfo(torch.float32).eps
    n = dgm.fc1.in_features + 1 + dgm.fc2.in_features + 1
    hidden = x.abs() @ dgm.fc1.weight.float().abs().T + dgm.fc1.bias.float().abs()
    bound = n * eps * (hidden @ dgm.fc2.weight.float().abs().T + dgm.fc2.bias.float().abs())
    bound = bound[0].cpu()
    ordered, slack = scores[order], bound[order]
    rise = ordered[1:] - ordered[:-1]  # > 0 where a lower score is put before a higher one
    return bool((rise <= slack[1:] + slack[:-1]).all())


def check_order_record(model: DFPIR, record: Mapping) -> list[str]:
    """Notes (empty when all agree) on the orders recomputed here from the embeddings a
    checkpoint's ``record`` holds, against the orders it recorded at training: a near-tie that
    this device rounds the other way, or (starting "warning: ") recorded orders that no
    rounding of the stored weights gives: an edited file, or orders and weights of two runs."""
    names = list(record.get("names", []))
    recorded = record.get("orders", {})
    blocks = model.dgpbs()
    notes = []
    for block, order in channel_orders(model, record["embeddings"]).items():
        differ = (order != recorded[block]).any(dim=1) if block in recorded else None
        if differ is None or not differ.any():
            continue
        rows = differ.nonzero().flatten().tolist()
        wrong = [i for i in rows if not _rounding_consistent(
            blocks[block], record["embeddings"][i].to(next(model.parameters()).device),
            recorded[block][i])]
        ties = [i for i in rows if i not in wrong]
        if ties:
            notes.append(f"{block}: the channel order recomputed here differs from the one "
                         f"recorded at training for {', '.join(names[i] for i in ties)} (this "
                         "device or library rounds the DGM scores differently at a near-tie); "
                         "the network here is not exactly the trained one")
        if wrong:
            moved = int((order[wrong] != recorded[block][wrong]).sum())
            notes.append(f"warning: {block}: the channel orders recorded in the checkpoint do not "
                         f"match its DGM weights for {', '.join(names[i] for i in wrong)} "
                         f"({moved} positions), and no rounding explains it: the orders or the "
                         "weights were edited, or come from two different runs. The model runs "
                         "with the orders its weights give")
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
