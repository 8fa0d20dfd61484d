"""A training loader that Lightning can checkpoint and restore in the middle of an epoch.

Lightning saves the ``state_dict`` of every training dataloader that has one with each checkpoint
and hands it back to ``load_state_dict`` before iterating again when a run resumes mid-epoch.
The state here is how many batches of the current epoch reached ``training_step``; training keys
are a pure function of (seed, epoch, index), so skipping that many batches replays the rest of
the epoch exactly as an uninterrupted run would see it.
"""

from __future__ import annotations

from torch.utils.data import DataLoader

from lfmri.data.datasets import EpochSampler


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochSampler` with fixed-size batches (``drop_last=True``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler) or not self.drop_last or self.batch_size is None:
            raise TypeError("ResumableLoader needs an EpochSampler, a batch_size and drop_last=True")
        self.trained_batches = 0  # counted by the datamodule as batches reach the training step
        self._resume_batches = 0

    def state_dict(self) -> dict[str, int]:
        return {"trained_batches": int(self.trained_batches)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_batches = int(state["trained_batches"])

    def __iter__(self):
        resume, self._resume_batches = self._resume_batches, 0
        self.sampler.skip = resume * self.batch_size
        self.trained_batches = resume
        return super().__iter__()
