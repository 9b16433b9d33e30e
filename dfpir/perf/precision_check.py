"""Device-report section 1: precision must not change the network on this device (channel orders
under bf16/fp16 autocast and TF32 against fp32; a large fp16 restore stays finite)."""

from __future__ import annotations

import math

import torch

from ..device import autocast_context
from ..models import DFPIR, DFPIRConfig
from .measure import (
    _free,
)
from .settings import ReportSettings


def precision(settings: ReportSettings, device: torch.device) -> dict:
    """On this device: the DGCPM channel orders of every DGPB under bf16 and fp16 autocast, with
    TF32 allowed, against fp32 (four random unit prompts; they must be equal), and whether a
    1280x720 restore under fp16 is finite, with its PSNR against fp32."""
    from ..models import DGCPM
    from ..models.precision import set_backend_precision

    torch.manual_seed(0)
    model = DFPIR(DFPIRConfig(**settings.model)).to(device).eval()
    prompts = torch.nn.functional.normalize(torch.randn(4, model.config.prompt_dim), dim=-1)
    image = torch.rand(4, 3, 32, 32, device=device)
    seen: list[torch.Tensor] = []
    order_of = DGCPM.channel_order

    def recorded(self, scores):
        values, index = order_of(self, scores)
        seen.append(index.cpu())
        return values, index

    out: dict = {"orders": []}
    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark)
    DGCPM.channel_order = recorded
    try:
        orders = {}
        for amp, tf32 in (("none", False), ("none", True), ("bf16", True), ("fp16", True)):
            set_backend_precision(tf32, False)
            seen.clear()
            with torch.no_grad(), autocast_context(device, amp):
                model(image, prompts.to(device))
            orders[(amp, tf32)] = list(seen)
        reference = orders[("none", False)]
        for (amp, tf32), got in orders.items():
            out["orders"].append({
                "amp": amp, "tf32": tf32,
                "differing_positions": [int((a != b).sum()) for a, b in zip(reference, got,
                                                                            strict=True)],
                "positions": [a.numel() for a in reference]})
    finally:
        DGCPM.channel_order = order_of
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = previous
    height, width = settings.infer_sizes[0]
    big = torch.rand(1, 3, height, width, device=device)
    with torch.no_grad():
        ref = model(big, prompts[:1].to(device)).float()
        with autocast_context(device, "fp16"):
            half = model(big, prompts[:1].to(device)).float()
    mse = float(torch.mean((half - ref) ** 2))
    out["fp16_image"] = {"image": f"{width}x{height}", "finite": bool(torch.isfinite(half).all()),
                         "psnr_vs_fp32": 10 * math.log10(1 / mse) if mse else math.inf}
    del model
    _free(device)
    return out

