"""Shared fixtures: tiny model configurations that run in milliseconds on a CPU."""

from __future__ import annotations

import pytest
import torch

from dfpir.models import DFPIRConfig


def tiny_config(**overrides) -> DFPIRConfig:
    """dim 8, one block per level: every code path of the full model, a thousandth of the cost."""
    base = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 2, 4])
    base.update(overrides)
    return DFPIRConfig(**base)


@pytest.fixture
def tiny() -> DFPIRConfig:
    return tiny_config()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
