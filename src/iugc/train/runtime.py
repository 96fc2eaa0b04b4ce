"""Where and how training runs: device, threads, mixed precision, determinism, progress."""
from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import AbstractContextManager

import torch
from tqdm import tqdm  # not tqdm.auto: its asyncio variant calls iter() on the loader twice


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device ("auto" or None: CUDA when present, else the CPU)."""
    if device is not None and str(device) != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_enabled(device: torch.device, requested: bool) -> bool:
    """Mixed precision is used on CUDA only (bf16 autocast on a CPU is many times slower)."""
    return requested and device.type == "cuda"


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager:
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled)


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """Loss scaler for float16 autocast; a no-op (still checkpointable) when disabled."""
    return torch.amp.GradScaler(device.type, enabled=enabled)


def set_deterministic(enabled: bool) -> None:
    """Reproducible kernels or the fastest ones (cuDNN autotuning); ``compute.deterministic``.

    ``warn_only`` keeps the few operations without a deterministic kernel usable (torch warns
    when one runs); on a CPU every operation the project uses has one.
    """
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def device_record(device: str | torch.device | None = None) -> dict:
    """What ran a job, for provenance: the device, and on CUDA its driver, CUDA, cuDNN and
    whether the kernels were deterministic."""
    device = choose_device(device)
    record = {"device": "cpu", "torch": torch.__version__,
              "deterministic": torch.are_deterministic_algorithms_enabled()}
    if device.type == "cuda":
        record.update(device=torch.cuda.get_device_name(device), driver=_nvidia_driver(),
                      cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                      cudnn_benchmark=torch.backends.cudnn.benchmark)
    return record


def _nvidia_driver() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    result = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True)
    return result.stdout.splitlines()[0].strip() if result.returncode == 0 and result.stdout else None


def progress(iterable, **kwargs):
    """A tqdm bar on an interactive terminal; silent in log files (stderr not a TTY)."""
    return tqdm(iterable, disable=not sys.stderr.isatty(), leave=False, dynamic_ncols=True, **kwargs)
