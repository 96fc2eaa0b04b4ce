"""Glue between the two orchestrators: per-job parameter snapshots for Snakemake and dvc.yaml
generated from the Snakemake DAG, so the DAG is written once (the rule files) and DVC sees the
same jobs, commands, dependencies, outputs and parameters.

Why snapshots: Snakemake decides by modification times (and, for small files, checksums), DVC by
the values of the params each stage lists. Each job gets a small JSON file holding exactly the
parameter values its stage reads; the file is rewritten only when those values change, and then
dated now, which makes Snakemake rerun the job, unless the job's result was already made under
exactly these values (its stamp says so, e.g. after `dvc repro`): then the snapshot is dated to
the epoch, as is a snapshot that did not exist before, so that it never outdates such a result.

After `dvc pull` or `dvc checkout`, which do not keep modification times, ``align_times`` gives
the results the stamps prove current the times Snakemake needs to see them so.

Snapshots also carry a ``rebuild`` count. Before Snakemake plans, the workflow checks every
finished result against its stamp (``iugc.stages.verify.outdated_jobs``); a job whose result is
damaged, or was made from an input that is gone or changed, gets its count raised, which changes
its snapshot and so makes Snakemake run it again. DVC needs no such help: it hashes outputs.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from .stages.registry import get_stage, stages
from .stages.views import pretrain_methods

SNAPSHOT_DIR = Path(".snakemake") / "iugc-params"
HASH_CACHE = Path(".snakemake") / "iugc-hashes.json"
PARAMS_FILE = "params.yaml"
OUTPUT_ROOTS = ("data", "results", "reports")  # where stamped results live
TIMESTAMP = ".snakemake_timestamp"


def _snakemake_mtime(path: Path) -> float:
    """The time Snakemake reads for an input or output: a folder's .snakemake_timestamp when it
    has one, else the path's own modification time."""
    marker = path / TIMESTAMP if path.is_dir() else None
    return (marker if marker is not None and marker.exists() else path).stat().st_mtime


def align_times(current: Mapping[str, tuple[Path, Mapping]]) -> list[str]:
    """Make modification times tell what the stamps know: every result proven current (intact,
    made from the present version of its inputs under the present parameters) gets a time later
    than all its inputs', in the order of the chain. Only results that need it are touched
    (after `dvc pull` or `dvc checkout`, which do not keep times); returns their jobs.

    A folder result gets the marker Snakemake itself keeps in folder outputs
    (.snakemake_timestamp, which DVC ignores); the report's files are touched themselves.
    """
    folders = {str(folder): job for job, (folder, _) in current.items()}
    done: dict[str, float] = {}
    touched = []

    def visit(job: str) -> float:
        if job in done:
            return done[job]
        folder, stamp = current[job]
        newest = 0.0
        for source in stamp["inputs"]:
            upstream = folders.get(str(Path(source)))
            newest = max(newest, visit(upstream) if upstream else _mtime_or_zero(Path(source)))
        outputs = _outputs(folder, stamp)
        oldest = min(_snakemake_mtime(path) for path in outputs)
        if oldest <= newest:
            when = newest + 0.001
            for path in outputs:
                target = path / TIMESTAMP if path.is_dir() else path
                target.touch()
                os.utime(target, (when, when))
            touched.append(job)
            oldest = when
        done[job] = oldest
        return oldest

    for job in current:
        visit(job)
    return touched


def _outputs(folder: Path, stamp: Mapping) -> list[Path]:
    """What Snakemake checks of a stamped result: its folder, or (a job sharing its folder, the
    report) the files it wrote and its stamp."""
    stage = get_stage(stamp["stage"])
    if stage.owns_out:
        return [folder]
    files = [folder / name for name in stamp["files"]]
    subfolders = sorted({path.parent for path in files} - {folder})  # folder outputs of their own
    return files + subfolders + [folder / "stamp.json"]


def _mtime_or_zero(path: Path) -> float:
    try:
        return _snakemake_mtime(path)
    except FileNotFoundError:
        return 0.0


def study_jobs(params: Mapping) -> list[tuple[str, dict[str, str]]]:
    """(stage, wildcards) of every job of the study: each stage's wildcards range over the
    pretraining methods, the variants and the seeds."""
    dimensions = {"method": pretrain_methods(params), "variant": list(params["variants"]),
                  "seed": [str(seed) for seed in params["study"]["seeds"]]}
    jobs = []
    for name, stage in stages().items():
        combos = [{}]
        for wildcard in stage.wildcards:
            combos = [{**c, wildcard: value} for c in combos for value in dimensions[wildcard]]
        jobs += [(name, combo) for combo in combos]
    return jobs


def snapshot_path(stage: str, wildcards: Mapping[str, str] | None = None) -> str:
    """Where the snapshot of a job's parameters is (relative to the working directory)."""
    return str(SNAPSHOT_DIR / f"{get_stage(stage).job_id(dict(wildcards or {}))}.json")


def write_snapshots(params: Mapping, outdated: Mapping[str, str], made_with: Mapping[str, Mapping],
                    root: Path | str = ".") -> None:
    """Write the snapshot of every job of the study before Snakemake plans (see param_snapshot):
    they must all exist when it looks, whatever it was asked to build."""
    for stage, wildcards in study_jobs(params):
        job = get_stage(stage).job_id(wildcards)
        param_snapshot(params, stage, wildcards, root, rebuild=job in outdated, made_with=made_with.get(job))


def param_snapshot(params: Mapping, stage: str, wildcards: Mapping[str, str] | None = None,
                   root: Path | str = ".", rebuild: bool = False, made_with: Mapping | None = None) -> str:
    """Write (if changed) the snapshot of the params ``stage`` reads and return its path.

    ``rebuild`` raises the job's rebuild count (the snapshot changes, so Snakemake reruns it);
    ``made_with`` is the view the job's existing result was made under, if it has one.
    """
    found = get_stage(stage)
    wildcards = {name: str(wildcards[name]) for name in found.wildcards} if found.wildcards else {}
    job = found.job_id(wildcards)
    path = Path(root) / SNAPSHOT_DIR / f"{job}.json"
    existed = path.exists()
    count = 0
    if existed:
        try:
            count = json.loads(path.read_text()).get("rebuild", 0)
        except ValueError:
            count = 0
    view = found.view(params, wildcards)
    text = json.dumps({"params": view, "rebuild": count + bool(rebuild)}, sort_keys=True, indent=1) + "\n"
    if existed and path.read_text() == text:
        return str(SNAPSHOT_DIR / path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    if not existed or (made_with == view and not rebuild):
        os.utime(path, (0, 0))
    return str(SNAPSHOT_DIR / path.name)


def snakemake_jobs(snakefile: Path | str = "workflow/Snakefile", workdir: Path | str = ".") -> list[dict]:
    """Every job of the Snakemake DAG for target ``all``: rule, wildcards, inputs, outputs, shell.

    Uses Snakemake's Python API (pinned to 9.x in pyproject) and builds the DAG with
    ``forceall`` so that the listing does not depend on what has been run.
    """
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings

    workdir = Path(workdir).resolve()
    cwd = Path.cwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            wf = api.workflow(resource_settings=ResourceSettings(cores=1),
                              snakefile=workdir / snakefile, workdir=workdir)
            dag_api = wf.dag(dag_settings=DAGSettings(targets={"all"}, forceall=True))
            workflow = dag_api.workflow_api._workflow
            workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
            workflow._build_dag()
            jobs = []
            for job in workflow.dag.jobs:
                if not job.rule.shellcmd:
                    continue  # target-only rules such as `all`
                jobs.append({
                    "rule": job.rule.name,
                    "wildcards": dict(job.wildcards),
                    "cmd": " ".join(job.format_wildcards(job.rule.shellcmd).split()),
                    "deps": [str(f) for f in job.input],
                    "outs": [str(f) for f in job.output],
                })
    finally:
        os.chdir(cwd)
    return sorted(jobs, key=lambda j: _job_id(j))


def _job_id(job: Mapping) -> str:
    return get_stage(job["rule"]).job_id(job["wildcards"])


def dvc_stages(jobs: list[dict], params: dict) -> dict:
    """DVC's view of the Snakemake jobs: one stage per job, params by key, snapshots dropped."""
    stages = {}
    for job in jobs:
        stage = get_stage(job["rule"])
        deps = [d for d in job["deps"] if not d.startswith(str(SNAPSHOT_DIR))]
        entry = {"cmd": job["cmd"]}
        if deps:
            entry["deps"] = deps
        keys = stage.keys(params, job["wildcards"])
        if keys:
            entry["params"] = keys
        entry["outs"] = [_dvc_out(o) for o in job["outs"]]
        stages[_job_id(job).replace("@", "-")] = entry
    return stages


def _dvc_out(path: str):
    # The metrics file stays in git (experiments carry it); everything else is cached.
    if path.endswith("metrics.json"):
        return {path: {"cache": False}}
    return path


def render_dvc_yaml(jobs: list[dict], params: dict) -> str:
    header = ("# Generated by `iugc dvc-yaml` from the Snakemake DAG (workflow/rules/*.smk); do not\n"
              "# edit by hand. Regenerate after changing the rules, the variants, the seeds or data.source.\n")
    doc = {
        "stages": dvc_stages(jobs, params),
        "metrics": ["reports/metrics.json"],
        "plots": _dvc_plots(jobs),
    }
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def _dvc_plots(jobs: list[dict]) -> list:
    plots = []
    for job in jobs:
        if job["rule"] == "finetune":
            plots.append({f"{job['outs'][0]}/dvclive/plots/metrics": {"x": "step"}})
        if job["rule"] == "pretrain":
            plots.append({f"{job['outs'][0]}/losses.csv": {"x": "step", "y": "loss"}})
    return plots


def write_dvc_yaml(out: Path, check: bool = False, workdir: Path | str = ".") -> bool:
    """Write dvc.yaml (or only compare with ``check``); return True when it differed."""
    from .config import load_params

    workdir = Path(workdir)
    params = load_params(workdir / PARAMS_FILE)
    text = render_dvc_yaml(snakemake_jobs(workdir=workdir), params)
    target = workdir / out if not Path(out).is_absolute() else Path(out)
    changed = not target.exists() or target.read_text() != text
    if changed and not check:
        target.write_text(text)
    return changed
