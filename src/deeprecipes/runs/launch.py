"""``deeprecipes run NAME --nproc N``: a shortcut that starts the same command under torchrun on this machine.

It is ``torchrun --standalone --nproc-per-node N -m deeprecipes run NAME ...``: every rank runs the command
without ``--nproc``, :func:`deeprecipes.training.strategy.current_strategy` finds the ranks, and rank 0 writes the
run directory. For several machines, call torchrun yourself with its rendezvous flags (``--nnodes``,
``--node-rank``, ``--rdzv-endpoint``); see the README.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..errors import DeepRecipesError
from ..training.strategy import launched_by_torchrun

__all__ = ["torchrun_args", "launch"]


def torchrun_args(argv: Sequence[str], nproc: int) -> list[str]:
    """torchrun's arguments for ``deeprecipes ARGV`` on ``nproc`` local processes."""
    return ["--standalone", f"--nproc-per-node={nproc}", "-m", "deeprecipes", *argv]


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run ``deeprecipes ARGV`` on ``nproc`` processes under torchrun; 0, or the exit status of the first rank
    that failed (its own error line is already printed)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if nproc < 1:
        raise DeepRecipesError(f"--nproc must be at least 1, got {nproc}")
    if launched_by_torchrun():
        raise DeepRecipesError("--nproc inside a torchrun job: torchrun already started the processes")
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        run(parse_args(torchrun_args(argv, nproc)))
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        code = failure.exitcode if failure.exitcode and failure.exitcode > 0 else 1
        print(f"error: rank {rank} of {nproc} exited with status {failure.exitcode}", file=sys.stderr)
        return code
    return 0
