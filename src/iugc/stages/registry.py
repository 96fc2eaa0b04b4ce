"""The study's stages, each declared once.

A stage is a function ``(view, *, <wildcards>, <inputs>, out, <options>)`` decorated with
``@stage``: its name (the Snakemake rule that runs it has the same name), the parameter keys it
reads (``reads``: a list, or a function of the parameters and the job's wildcards), the names of
its wildcards and of its input arguments, and the settings it is also handed that change how fast
it runs but never what it computes (``settings``: loader processes); those are not its
parameters, so changing them reruns nothing. ``on_device``: the stage computes with torch on
``compute.device`` (training, evaluation): the runner gives it a GPU and its kernels, and its
rule asks for a GPU. Everything else follows from the declaration: the
command line (``iugc stage NAME ...``), the view of the parameters the stage is handed, the
per-job parameter snapshot Snakemake sees, the ``params:`` of its DVC stage, and the stamp it
leaves in ``out``.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..config import select

# The modules whose @stage functions make up the study, imported on first use.
STAGE_MODULES = ("data", "training", "evaluation", "report")

KeysOf = Callable[[Mapping, Mapping[str, str]], list[str]]


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable
    reads: KeysOf
    wildcards: tuple[str, ...]
    inputs: tuple[str, ...]
    # The job owns its ``out`` folder: it is emptied before the job runs and every file in it is
    # the job's. A stage that shares its folder (the report, in reports/) returns the files it
    # wrote instead.
    owns_out: bool
    settings: tuple[str, ...] = ()
    on_device: bool = False

    def keys(self, params: Mapping, wildcards: Mapping[str, str]) -> list[str]:
        """Dotted keys of ``params`` this stage reads for a job with these ``wildcards``."""
        return self.reads(params, wildcards)

    def view(self, params: Mapping, wildcards: Mapping[str, str]) -> dict:
        """The parameters the job reads, nested as in params.yaml: its stamp, snapshot and DVC params."""
        return select(params, self.keys(params, wildcards))

    def handed(self, params: Mapping, wildcards: Mapping[str, str]) -> dict:
        """What the stage function gets: its view plus its settings (not stamped, not params)."""
        return select(params, [*self.keys(params, wildcards), *self.settings])

    def job_id(self, wildcards: Mapping[str, str]) -> str:
        """``stage`` or ``stage@value@value`` (wildcards in declared order)."""
        return "@".join([self.name, *(str(wildcards[name]) for name in self.wildcards)])


_STAGES: dict[str, Stage] = {}


def stage(name: str, *, reads: Sequence[str] | KeysOf, wildcards: Sequence[str] = (),
          inputs: Sequence[str] = (), settings: Sequence[str] = (), owns_out: bool = True,
          on_device: bool = False):
    """Declare the decorated function as stage ``name``."""
    keys = reads if callable(reads) else (lambda params, wildcards, _keys=list(reads): list(_keys))

    def register(func):
        if name in _STAGES and _STAGES[name].run.__qualname__ != func.__qualname__:
            raise ValueError(f"stage {name!r} is declared twice")
        _STAGES[name] = Stage(name, func, keys, tuple(wildcards), tuple(inputs), owns_out, tuple(settings),
                              on_device)
        return func

    return register


def stages() -> dict[str, Stage]:
    """Every stage of the study, by name."""
    for module in STAGE_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return dict(_STAGES)


def get_stage(name: str) -> Stage:
    known = stages()
    if name not in known:
        raise KeyError(f"unknown stage {name!r}; the stages are {', '.join(known)}")
    return known[name]


def parse_job_id(job_id: str) -> tuple[Stage, dict[str, str]]:
    """The stage and wildcards of a job id written by :meth:`Stage.job_id`."""
    name, *values = job_id.split("@")
    found = get_stage(name)
    if len(values) != len(found.wildcards):
        raise KeyError(f"job {job_id!r}: stage {name} has wildcards {found.wildcards}")
    return found, dict(zip(found.wildcards, values))
