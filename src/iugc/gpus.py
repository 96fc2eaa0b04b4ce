"""The GPUs of this machine, for scheduling: how many GPU jobs may run at once, and which GPU a
job takes. Nothing here starts CUDA (a job can still choose its GPU afterwards), and nothing
imports torch (the workflow asks before Snakemake plans).

A job takes its GPU through ``CUDA_VISIBLE_DEVICES``, not through ``compute.device: cuda:K``:
the device is a parameter of every training and evaluation job (it changes the numbers), so a
per-job index would make the same job a different one on another GPU, and DVC's stages share
one params.yaml. Each job sees one GPU as ``cuda``; which one is the machine's business.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOCK_DIR = Path(tempfile.gettempdir()) / "iugc-gpus"  # per machine, as the GPUs are
WAIT_SECONDS = 5.0
_claimed = None  # the lock file of this process's GPU, held until the process ends


def visible_gpus() -> list[str]:
    """The GPUs a job here may use: the entries of CUDA_VISIBLE_DEVICES when it is set (Slurm or
    the user narrowed them), else every GPU `nvidia-smi -L` lists; none without an NVIDIA driver."""
    narrowed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if narrowed is not None:
        return [entry.strip() for entry in narrowed.split(",") if entry.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    if result.returncode != 0:
        return []
    return [str(i) for i, _ in enumerate(l for l in result.stdout.splitlines() if l.startswith("GPU "))]


def uses_cuda(device: str) -> bool:
    """Whether ``compute.device`` resolves to CUDA on this machine (as ``choose_device`` does)."""
    return device == "cuda" or (device == "auto" and bool(visible_gpus()))


def claim_gpu() -> str | None:
    """Give this process a GPU of its own where it sees several: the first one no other process
    of this machine holds (a lock file per GPU, released when the process ends) becomes its only
    visible GPU. The workflow runs at most as many GPU jobs as there are GPUs, so one is free;
    where none is (another study on the same GPUs), the job waits. Returns the GPU taken, or
    None where there is nothing to choose (one GPU or none, e.g. a Slurm job given one)."""
    global _claimed
    gpus = visible_gpus()
    if len(gpus) < 2:
        return None
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    waiting = False
    while True:
        for gpu in gpus:
            handle = open(LOCK_DIR / f"gpu-{gpu}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _claimed = handle
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            return gpu
        if not waiting:
            print(f"iugc: every GPU ({', '.join(gpus)}) is held by another job; waiting", file=sys.stderr)
            waiting = True
        time.sleep(WAIT_SECONDS)
