"""One GPU per job on one machine: the two halves of ``hydra/launcher=local_gpus``.

Hydra's ``submitit_local`` launcher starts every job of a sweep at once, and gives every job
the *same* ``CUDA_VISIBLE_DEVICES``: GPUs ``0..gpus_per_node-1``, or none at all when
``gpus_per_node`` is unset (the jobs then run on the CPU without a word). It has no per-job
assignment, so ``conf/hydra/launcher/local_gpus.yaml`` splits the work in two:

1. in the launching process, :func:`launcher_gpus` lists the GPUs this process may use (its
   own ``CUDA_VISIBLE_DEVICES``, which submitit would otherwise replace by ``0..n-1``); the
   launcher's ``setup`` exports that list to every job;
2. in each job, Hydra's ``hydra.job.env_set`` narrows ``CUDA_VISIBLE_DEVICES`` to
   :func:`job_gpu` of the job's number before the job runs, so ``device=auto`` (and anything
   else that says "cuda") lands on that job's GPU.

Both are registered as OmegaConf resolvers by ``run.py``. Nothing here imports torch unless
the launching process has no ``CUDA_VISIBLE_DEVICES`` to read.
"""

from __future__ import annotations

import os

NO_GPU_HELP = "on a machine without GPUs, use hydra/launcher=submitit_local (CPU jobs) instead"


def _listed(value: str | None) -> list[str]:
    return [gpu.strip() for gpu in (value or "").split(",") if gpu.strip()]


def launcher_gpus() -> str:
    """The GPUs the launching process may use, comma-separated as ``CUDA_VISIBLE_DEVICES`` lists them.

    Ids and UUIDs are passed on as they are; without ``CUDA_VISIBLE_DEVICES`` every GPU torch
    sees is listed by index.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = _listed(visible)
    else:
        import torch

        gpus = [str(index) for index in range(torch.cuda.device_count())]
    if not gpus:
        shown = "unset" if visible is None else repr(visible)
        raise RuntimeError(f"hydra/launcher=local_gpus found no GPU (CUDA_VISIBLE_DEVICES is {shown}); {NO_GPU_HELP}.")
    return ",".join(gpus)


def job_gpu(job_num: int | str) -> str:
    """The one GPU of the job numbered ``job_num``: round-robin over the GPUs the launcher passed on.

    Jobs ``0..n-1`` of a sweep over ``n`` GPUs get one GPU each; a sweep with more jobs than
    GPUs puts several jobs on a GPU (they all start at once), which is rarely what you want:
    use ``shard.count`` = the number of GPUs.
    """
    gpus = _listed(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if not gpus:
        raise RuntimeError(f"Job {job_num} of hydra/launcher=local_gpus was given no GPU; {NO_GPU_HELP}.")
    return gpus[int(job_num) % len(gpus)]
