"""What made a report: code version, parameters, data, software, machine, time per stage."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from ..config import params_hash

PACKAGES = ("iugc", "torch", "torchvision", "timm", "monai", "albumentations", "numpy", "pandas",
            "scikit-learn", "matplotlib", "seaborn", "snakemake", "dvc", "dvclive")


def git_state(root: Path | str = ".") -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "HEAD")
    return {"commit": commit or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info() -> dict:
    """The machine the report ran on; each training and evaluation job's stamp records its own
    (``device``: GPU, driver, CUDA, cuDNN, torch, deterministic kernels), collected below."""
    import torch

    from ..train.runtime import device_record

    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": __import__("os").cpu_count(), "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        info.update(device_record("cuda"))
    return info


def provenance(params: dict, source: dict, chain: dict) -> dict:
    """``chain``: per result of the study, the job that made it, its stamp digest and seconds
    (``iugc.stages.verify.verify_chain``)."""
    times = {entry["job"]: entry["seconds"] for entry in chain.values()}
    return {
        "preset": params["preset"],
        "params_hash": params_hash(params),
        "data": source,
        "git": git_state(),
        "packages": package_versions(),
        "device": device_info(),
        "results": chain,
        "stage_seconds": dict(sorted(times.items())),
        "total_stage_seconds": round(sum(t or 0 for t in times.values()), 1),
    }
