"""Waiting for the SLURM jobs of a sweep also where SLURM keeps no accounting (no ``sacct``).

``hydra/launcher=slurm`` (submitit) waits for each job's result file and learns from ``sacct``
that a job ended without one (cancelled, killed, its node lost). Where SLURM runs without
accounting (no slurmdbd: small clusters, the test cluster of ``.ci/slurm-cluster``) ``sacct``
fails, every job stays "UNKNOWN" and the launcher waits forever for a job that is gone.
:class:`SqueueFallbackWatcher` asks ``squeue`` when ``sacct`` fails; the Hydra callback
:class:`lfmri.cli.common.WatchSlurmJobs` (``conf/train.yaml``) puts it in place when a multirun
goes to SLURM. A job that ended without a result then ends the launcher with submitit's error,
which names the job, its state (``CANCELLED``, ``FAILED``...) and the end of its log.

submitit has no option for this: its watcher is a class attribute of ``SlurmJob``, replaced here
by a subclass that only adds the fallback (it is submitit's own watcher wherever ``sacct`` works).
"""

from __future__ import annotations

import logging
import subprocess
import time

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

log = logging.getLogger(__name__)

# a job that squeue no longer lists has ended (SLURM keeps ended jobs for MinJobAge, 300 s by default)
ENDED = "ENDED"

# the states of a job that will not run again; any other (PENDING, CONFIGURING, SIGNALING, REQUEUED,
# PREEMPTED on its way back to the queue, SUSPENDED...) means: keep waiting
FINAL_STATES = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "REVOKED",
    "SPECIAL_EXIT", "TIMEOUT", ENDED,
})


class SqueueFallbackWatcher(SlurmInfoWatcher):
    """submitit's SLURM job watcher, with job states from ``squeue`` when ``sacct`` fails.

    ``delay_s``: the longest wait between two state queries (submitit queries at 2, 4, 8...
    seconds after a submission, then every ``delay_s``).
    """

    def __init__(self, delay_s: int = 60) -> None:
        super().__init__(delay_s=delay_s)

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        # sacct writes "CANCELLED by 1000"
        state = self.get_state(job_id, mode=mode).split(" ")[0].upper()
        return state in FINAL_STATES

    def update(self) -> None:
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        try:
            self._output = subprocess.check_output(command, stderr=subprocess.PIPE, timeout=60)
            info = self.read_info(self._output)
        except (OSError, subprocess.SubprocessError) as sacct_error:
            info = self.squeue_info()
            if info is None:
                log.warning("neither sacct (%s) nor squeue answered: job states may be late", sacct_error)
                info = {}
        self._info_dict.update(info)
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def squeue_info(self) -> dict[str, dict[str, str]] | None:
        """``{job id: {"State": ...}}`` of every watched job, from ``squeue`` (``None`` if it fails).

        ``-r`` lists every array element on its own line (``123_4``), ``-t all`` also the jobs
        that ended less than MinJobAge ago; a watched job absent from the list has ended.
        """
        try:
            output = subprocess.check_output(
                ["squeue", "--me", "--noheader", "--array", "--states=all", "--format=%i|%T"],
                stderr=subprocess.PIPE, text=True, timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        listed = dict(line.split("|", 1) for line in output.split() if "|" in line)
        return {job_id: {"State": listed.get(job_id, ENDED)} for job_id in self._registered - self._finished}


def watch_without_accounting() -> None:
    """Make every submitit SLURM job of this process use :class:`SqueueFallbackWatcher`."""
    if not isinstance(SlurmJob.watcher, SqueueFallbackWatcher):
        SlurmJob.watcher = SqueueFallbackWatcher()

