"""What made a report: code version, parameters, data, software, machine, time per stage."""
from __future__ import annotations

import json
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
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": __import__("os").cpu_count(), "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def stage_times(logs_dir: Path | str) -> dict:
    times = {}
    for path in sorted(Path(logs_dir).glob("*.json")):
        record = json.loads(path.read_text())
        times[record["stage"]] = record["seconds"]
    return times


def provenance(params: dict, source: dict, logs_dir: Path | str) -> dict:
    times = stage_times(logs_dir)
    return {
        "preset": params["preset"],
        "params_hash": params_hash(params),
        "data": source,
        "git": git_state(),
        "packages": package_versions(),
        "device": device_info(),
        "stage_seconds": times,
        "total_stage_seconds": round(sum(times.values()), 1),
    }
