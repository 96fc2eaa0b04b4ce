"""Checks of results against their stamps (``iugc.integrity``), in the stage layer because they
need the registry: whether a result was made under the parameters in force now is a question
about the view of the stage that made it.

- :func:`check_inputs`: before a job runs, each stamped input is intact, was made under the
  current parameters, and was made from the same versions of the other inputs this job gets.
- :func:`verify_chain`: the report's check of every result of the study.
- :func:`study_state`: what the workflow asks before Snakemake plans: which finished jobs
  must run again because a result is damaged or an input it was made from is gone or changed,
  and under which parameters each intact result was made.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..integrity import HashCache, damage, digest, find_stamps, read_stamp, staleness
from .registry import parse_job_id

REBUILD = "rerun the study (`make study`, or `dvc repro`) to rebuild it"


class StaleResultError(UserError):
    """A result that does not match its sources, its parameters or its own stamp."""


def _param_change(params: Mapping, stamp: Mapping) -> str | None:
    """Which parameters the job that made ``stamp`` would read differently now, or None."""
    try:
        stage, wildcards = parse_job_id(stamp["job"])
        current = stage.view(params, wildcards)
    except KeyError:
        return f"it was made by job {stamp['job']}, which the study no longer has"
    if current == stamp["params"]:
        return None
    keys = sorted(_differing(current, stamp["params"]))
    return f"it was made under other parameters ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})"


def _differing(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differing(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _paths(values: Iterable) -> list[str]:
    out = []
    for value in values:
        for path in value if isinstance(value, (list, tuple)) else [value]:
            if path is not None:
                out.append(str(path))
    return out


def check_inputs(params: Mapping, inputs: Mapping[str, object], cache: HashCache | None = None) -> None:
    """Refuse (one line) to let a job use a stamped input that is damaged, was made under other
    parameters, or was made from another version of one of this job's other inputs."""
    cache = cache or HashCache()
    paths = _paths(inputs.values())
    for path in paths:
        stamp = read_stamp(path) if Path(path).is_dir() else None
        if stamp is None:
            continue
        problem = damage(path, stamp, cache) or _param_change(params, stamp)
        if problem is None:
            for source, recorded in stamp["inputs"].items():
                if source in paths and Path(source).exists() and digest(source, cache) != recorded:
                    problem = f"it was made from another version of {source}"
                    break
        if problem:
            raise StaleResultError(f"{path}: {problem}; {REBUILD}")


def verify_chain(params: Mapping, paths: Iterable[str]) -> dict:
    """Check every stamped result among ``paths``: intact, made under the current parameters, and
    made from the current version of everything it was made from. Returns, per result, its job,
    stamp digest, seconds and, for a job that computed with torch, the device that ran it (the
    provenance of the report)."""
    cache = HashCache()
    chain = {}
    for path in _paths(paths):
        stamp = read_stamp(path)
        if stamp is None:
            raise StaleResultError(f"{path}: has no stamp (an incomplete or foreign result); {REBUILD}")
        problem = damage(path, stamp, cache) or _param_change(params, stamp) or staleness(stamp, cache)
        if problem:
            raise StaleResultError(f"{path}: {problem}; {REBUILD}")
        chain[path] = {"job": stamp["job"], "stamp": digest(path, cache), "seconds": stamp.get("seconds")}
        if "device" in stamp:
            chain[path]["device"] = stamp["device"]
    return chain


@dataclass
class StudyState:
    """What the finished results say, before Snakemake plans: ``outdated`` jobs (damaged or
    stale results, with the reason) and, for every intact result, the parameters it was
    ``made_with`` (so a result DVC built under the current parameters counts as current)."""

    outdated: dict[str, str] = field(default_factory=dict)
    made_with: dict[str, dict] = field(default_factory=dict)
    intact: dict[str, tuple[Path, dict]] = field(default_factory=dict)  # job -> (folder, stamp)


def study_state(roots: Iterable[str | Path], cache: HashCache) -> StudyState:
    """Read every stamp under ``roots`` and check its result (see :class:`StudyState`).

    Parameter changes are not judged here: the per-job parameter snapshots carry them.
    """
    state = StudyState()
    for folder in find_stamps(roots):
        try:
            stamp = read_stamp(folder)
        except UserError:
            continue  # the report's check names it; there is no job to rerun from here
        problem = damage(folder, stamp, cache) or staleness(stamp, cache)
        if problem:
            state.outdated[stamp["job"]] = f"{folder}: {problem}"
        else:
            state.made_with[stamp["job"]] = stamp["params"]
            state.intact[stamp["job"]] = (folder, stamp)
    return state


def current_jobs(params: Mapping, state: StudyState) -> dict[str, tuple[Path, dict]]:
    """The intact results that were made under exactly the parameters in force now."""
    current = {}
    for job, (folder, stamp) in state.intact.items():
        try:
            stage, wildcards = parse_job_id(job)
        except KeyError:
            continue
        if stage.view(params, wildcards) == stamp["params"]:
            current[job] = (folder, stamp)
    return current
