"""The order of one training epoch: reproducible, sharded across processes, resumable."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from ..data.transforms import stable_seed


class EpochSampler(Sampler[int]):
    """A shuffled permutation fixed by ``(seed, epoch)``, split across ``world`` ranks.

    Like ``DistributedSampler`` (indices padded by wrapping so every rank gets the same count),
    plus ``start``: skip the first ``start`` indices of this rank, to resume mid-epoch on the
    exact samples an uninterrupted run would see.
    """

    def __init__(self, size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 start: int = 0) -> None:
        if size <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.epoch = size, seed, epoch
        self.rank, self.world, self.start = rank, world, start
        self.per_rank = math.ceil(size / world)

    def indices(self) -> list[int]:
        generator = torch.Generator().manual_seed(stable_seed(self.seed, self.epoch) % 2**63)
        order = torch.randperm(self.size, generator=generator).tolist()
        order += order[: self.per_rank * self.world - self.size]
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)
