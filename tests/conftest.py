"""Shared fixtures: tiny model configurations that run in milliseconds on a CPU."""

from __future__ import annotations

from collections.abc import Iterator

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


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: tiny models run faster and steadier so on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
