"""Samplers of training keys and evaluation batches, split over distributed ranks without repeats."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch.distributed as dist
from torch.utils.data import Dataset, Sampler


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochSampler(Sampler):
    """Yields ``(epoch, i)`` keys, ``i`` in ``range(num_samples)``, split over distributed ranks.

    Lightning calls ``set_epoch`` before every epoch; a fresh dataloader built at a resume takes
    the restored epoch from its constructor argument. ``skip`` drops the first keys of this rank's
    share once (the next iteration only): a run resumed mid-epoch replays exactly the rest.
    """

    def __init__(self, num_samples: int, epoch: int = 0) -> None:
        self.num_samples = int(num_samples)
        self.epoch = int(epoch)
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rank, world = _rank_and_world()
        skip, self.skip = self.skip, 0
        return iter([(self.epoch, i) for i in range(rank, self.num_samples, world)][skip:])

    def __len__(self) -> int:
        rank, world = _rank_and_world()
        return max(0, math.ceil((self.num_samples - rank) / world))


class ShapeBatchSampler(Sampler):
    """Batches of consecutive slices with equal shape; each rank takes every world-th batch.

    Slices of one subject share a shape, so batches rarely break early; no index is repeated or
    padded, so every slice is scored exactly once however many processes run.
    """

    def __init__(self, dataset: Dataset, batch_size: int) -> None:
        """``dataset``: whole evaluation slices with ``shape(index)`` (:class:`lfmri.data.datasets.SliceDataset`)."""
        self.batches: list[list[int]] = []
        for index in range(len(dataset)):
            last = self.batches[-1] if self.batches else None
            if last and len(last) < batch_size and dataset.shape(last[0]) == dataset.shape(index):
                last.append(index)
            else:
                self.batches.append([index])

    def _mine(self) -> list[list[int]]:
        rank, world = _rank_and_world()
        return self.batches[rank::world]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._mine())

    def __len__(self) -> int:
        return len(self._mine())
