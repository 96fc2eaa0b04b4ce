"""The study run end to end: the smoke preset on the phantom through Snakemake and DVC, and
every way it once finished with exit status 0 and a report that did not match its parameters,
replayed on the finished study.

Each test works on its own copy of the study (``finished_study`` in conftest.py, built once per
test run) or only reads it. `make test` distributes the tests by file, so this file's tests share
one worker; test_study_failed_job.py, the largest job, is apart for the other worker.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from study import (V2, assert_report_is_current, copy_study, dvc, dvc_ran, environment, iugc, run, set_param, sha,
                   snakemake, snakemake_plan)

from iugc.config import load_params

pytestmark = pytest.mark.slow


def test_study_end_to_end_snakemake_then_dvc(finished_study, tmp_path):
    work = copy_study(finished_study, tmp_path / "study")

    # 1. Snakemake built the whole study; the report is there.
    for name in ("ablation.md", "ablation.csv", "ablation.tex", "per_landmark.csv", "metrics.json",
                 "provenance.json"):
        assert (work / "reports" / name).is_file(), name
    figures = {p.name for p in (work / "reports" / "figures").glob("*.png")}
    assert {"fig4_target_heatmaps.png", "fig5_predictions.png", "training_curves.png",
            "aop_agreement.png", "error_distributions.png", "pretraining_curves.png"} <= figures
    table = (work / "reports" / "ablation.md").read_text()
    assert "phantom" in table and "smoke" in table

    # 2. ...and DVC, which the repository ships initialised, agrees that everything is up to
    # date (Snakemake's onsuccess recorded dvc.lock).
    status = dvc("status", cwd=work).stdout
    assert "up to date" in status, status
    assert snakemake_plan(work) == set()

    # 3. One parameter: both name the same stages, only the adversarial variant's and the report's.
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["finetune"]["lambda_adv"] = 0.02
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    planned = snakemake_plan(work)
    seeds = [str(seed) for seed in params["study"]["seeds"]]
    stages = ("finetune", "calibrate", "evaluate")
    assert planned == {*(f"{stage}-v2_moco_cbam_adv-{seed}" for stage in stages for seed in seeds),
                       "ablation", "figures", "export", "report"}, planned
    repro = dvc("repro", cwd=work).stdout
    assert dvc_ran(repro) == planned, repro

    # 4. After `dvc repro`, Snakemake has nothing to do, and a second repro does nothing.
    assert snakemake_plan(work) == set()
    again = dvc("repro", cwd=work).stdout
    assert dvc_ran(again) == set(), again

    metrics = json.loads((work / "reports" / "metrics.json").read_text())
    assert set(metrics) == set(params["variants"])
    show = dvc("metrics", "show", cwd=work).stdout
    assert "v2_moco_cbam_adv" in show
    plots = json.loads(dvc("plots", "show", "--json", cwd=work).stdout)
    sources = json.dumps(plots["data"])
    assert "dvclive/plots/metrics" in sources and "losses.csv" in sources, sources[:2000]


def test_settings_that_do_not_change_results_rerun_nothing(finished_study, tmp_path):
    """Loader processes are handed to the training jobs but are not their parameters: changing
    any of them, neither tool would rerun anything. compute.deterministic is one (it changes the
    kernels), and each training and evaluation stamp records it with the device that ran it."""
    work = copy_study(finished_study, tmp_path / "study")
    original = (work / "params.yaml").read_text()
    for path in (("finetune", "num_workers"), ("pretrain", "moco", "num_workers"), ("pretrain", "mae", "num_workers")):
        params = yaml.safe_load(original)
        section = params
        for key in path[:-1]:
            section = section[key]
        section[path[-1]] += 2
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert snakemake_plan(work) == set(), path
        status = dvc("status", cwd=work).stdout
        assert "up to date" in status, (path, status)

    params = yaml.safe_load(original)
    params["compute"]["deterministic"] = False
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    seeds = [str(seed) for seed in params["study"]["seeds"]]
    planned = snakemake_plan(work)
    assert {f"finetune-{V2}-{seed}" for seed in seeds} | {f"evaluate-{V2}-{seed}" for seed in seeds} <= planned
    assert not any(job.startswith(("obtain", "validate", "split", "filter")) for job in planned), planned
    stamp = json.loads((work / "results" / "finetune" / V2 / "seed1" / "stamp.json").read_text())
    assert stamp["device"]["deterministic"] is True and stamp["device"]["torch"] == torch.__version__


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[-1] if len(lines) > 1 else lines[0]


def test_a_missing_data_root_is_refused_wherever_it_is_set(finished_study, tmp_path):
    work = copy_study(finished_study, tmp_path / "study")
    result = iugc("params", "--preset", "smoke", "--set", "data.source=iugc2025",
                  "--set", f"data.root={tmp_path / 'nowhere'}", "--out", "other.yaml", cwd=work, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "data.root" in result.stderr and not (work / "other.yaml").exists()

    params = set_param(work, "data", "source", "iugc2025")
    params = set_param(work, "data", "root", str(tmp_path / "nowhere"))
    plan = snakemake("-n", cwd=work, check=False)
    assert "data.root" in one_line_error(plan) and len(plan.stderr.strip().splitlines()) <= 3
    generated = iugc("dvc-yaml", cwd=work, check=False)
    assert generated.returncode == 2 and len(generated.stderr.strip().splitlines()) == 1
    assert "data.root" in generated.stderr


def test_both_orchestrators_give_the_same_numbers(finished_study, tmp_path):
    """One job rerun by DVC in a shell whose thread settings differ from Snakemake's gives the
    same bytes; and after an edit, `dvc repro` leaves Snakemake nothing to do."""
    work = copy_study(finished_study, tmp_path / "study")
    job = "results/finetune/v4_moco/seed1"
    before = {name: sha(work / job / name) for name in ("model.pt", "losses.csv")}
    shell = environment(OMP_NUM_THREADS="2", MKL_NUM_THREADS=None)  # not what Snakemake hands its jobs
    dvc("repro", "--force", "--single-item", "finetune-v4_moco-1", cwd=work, env=shell)
    assert {name: sha(work / job / name) for name in before} == before

    set_param(work, "finetune", "lambda_adv", 0.03)  # no Snakemake run in between
    dvc("repro", cwd=work, env=shell)
    assert snakemake_plan(work) == set()


def test_a_fresh_clone_is_a_dvc_project(repo_root, tmp_path):
    from study import copy_tracked

    work = copy_tracked(repo_root, tmp_path / "clone")
    status = dvc("status", cwd=work, check=False)
    assert "not inside of a DVC repository" not in status.stdout + status.stderr
    assert (work / ".dvc" / "config").is_file()


def test_a_killed_study_resumes_with_one_command(finished_study, tmp_path):
    work = copy_study(finished_study, tmp_path / "study")
    job = work / "results" / "finetune" / "v4_moco" / "seed1"
    reference = sha(job / "model.pt")
    subprocess.run(["rm", "-r", str(job)], check=True)
    log = work / "results" / "logs" / "finetune" / "v4_moco" / "seed1.log"
    started = time.time()
    study = subprocess.Popen(["make", "study"], cwd=work, env=environment(), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (log.exists() and log.stat().st_mtime > started and "epoch" in log.read_text()):
        assert study.poll() is None and time.time() - started < 120, "the job never started"
        time.sleep(0.2)
    os.killpg(study.pid, signal.SIGKILL)  # no clean-up at all: locks and incomplete markers stay
    study.wait()
    # The killed Snakemake's job, in a process group of its own, runs on until it ends; while it
    # does, `make study` refuses to start in this folder, and says why.
    refused = run(["make", "study"], work, check=False)
    if refused.returncode:
        assert "still running in this folder" in refused.stderr
        free = ["flock", "--nonblock", str(work / ".snakemake" / "make-study.lock"), "true"]
        while run(free, work, check=False).returncode:
            assert time.time() - started < 240
            time.sleep(0.5)

    run(["make", "study"], work)
    assert sha(job / "model.pt") == reference
    assert "Nothing to be done" in snakemake("-n", cwd=work).stdout
    assert "up to date" in dvc("status", cwd=work).stdout

    # DVC's record lost (as after `dvc init` on a study Snakemake made): the same command
    # brings dvc.lock up to date without running a job.
    (work / "dvc.lock").unlink()
    result = run(["make", "study"], work)
    assert "Nothing to be done" in result.stdout + result.stderr
    assert "up to date" in dvc("status", cwd=work).stdout


def test_damaged_and_stale_results_are_found_and_rebuilt(finished_study, tmp_path):
    work = copy_study(finished_study, tmp_path / "study")
    model = work / "results" / "finetune" / "v4_moco" / "seed2" / "model.pt"
    reference = sha(model)
    with open(model, "r+b") as handle:
        handle.truncate(1000)
    evaluated = iugc("stage", "evaluate", "--variant", "v4_moco", "--seed", "2", "--dataset", "data/dataset",
                     "--split", "results/split", "--model", "results/finetune/v4_moco/seed2",
                     "--calibration", "results/calibrate/v4_moco/seed2",
                     "--out", "results/eval/v4_moco/seed2", cwd=work, check=False)
    assert evaluated.returncode == 2 and len(evaluated.stderr.strip().splitlines()) == 1
    assert "model.pt is damaged" in evaluated.stderr
    assert "finetune-v4_moco-2" in snakemake_plan(work)
    snakemake("--cores", "2", cwd=work)
    assert sha(model) == reference
    assert_report_is_current(work)

    # A frame of the data changed after the filter ran: the data stage runs again.
    frame = next((work / "data" / "dataset" / "phantom").rglob("*.png"))
    frame.write_bytes(frame.read_bytes() + b"\0")
    assert "obtain" in snakemake_plan(work)


def test_results_do_not_name_the_folder_the_study_ran_in(finished_study):
    """A result that embeds its checkout's path breaks the moment it is pulled elsewhere (the
    pretraining pool would point at the old folder); logs may name it, results may not."""
    here = str(finished_study.resolve()).encode()
    named = [str(path.relative_to(finished_study)) for folder in ("data/dataset", "results", "reports")
             for path in (finished_study / folder).rglob("*")
             if path.is_file() and "logs" not in path.parts and here in path.read_bytes()]
    assert named == []


def test_iugc_predict_takes_the_model_in_reports(finished_study, tmp_path):
    """reports/model is a model folder: the chosen run's model.pt, which `iugc predict` reads."""
    import pandas as pd

    chosen = json.loads((finished_study / "reports" / "model" / "chosen.json").read_text())
    copied = finished_study / "reports" / "model" / "model.pt"
    assert copied.read_bytes() == (finished_study / chosen["model"] / "model.pt").read_bytes()
    frames = finished_study / "data" / "dataset" / "phantom" / "Training" / "Labeled cases"
    iugc("predict", "--model", "reports/model", str(frames), "--out", str(tmp_path / "p"), cwd=finished_study)
    table = pd.read_csv(tmp_path / "p" / "predictions.csv")
    assert len(table) == len(pd.read_csv(finished_study / "data" / "dataset" / "labels.csv"))


def test_the_split_audit_reads_a_finished_study(finished_study, tmp_path):
    """benchmarks/split_audit.py on the study: every run's test frames, and, unweighted, the
    coverage the evaluate stage measured."""
    import pandas as pd

    out = tmp_path / "audit.json"
    result = run([sys.executable, str(finished_study / "benchmarks" / "split_audit.py"), "--study", str(finished_study),
                  "--block", "10", "--halves", "5", "--json", str(out)], cwd=tmp_path)
    assert "MRE px" in result.stdout
    figures = json.loads(out.read_text())
    splits = pd.read_csv(finished_study / "results" / "split" / "splits.csv")
    assert figures["n_test"] == int((splits["subset"] == "test").sum())
    evaluated = sorted((finished_study / "results" / "eval").glob("*/seed*/metrics.json"))
    assert set(figures["variants"]) == {path.parent.parent.name for path in evaluated}
    for variant, entry in figures["variants"].items():
        measured = [json.loads(path.read_text())["coverage"]["ps1"]["coverage"]
                    for path in evaluated if path.parent.parent.name == variant]
        assert entry["covered_ps1"][0] == pytest.approx(np.mean(measured))
        assert all(0.0 <= value <= 1.0 for value in entry["covered_ps1"])


def test_the_heatmap_peaks_benchmark_reads_a_finished_study(finished_study, tmp_path):
    """benchmarks/heatmap_peaks.py on the study: every heatmap variant, predicted on the frames
    and with the points the evaluate stage had (its mean radial errors)."""
    import pandas as pd

    out = tmp_path / "peaks.json"
    run([sys.executable, str(finished_study / "benchmarks" / "heatmap_peaks.py"), "--study", str(finished_study),
         "--json", str(out)], cwd=tmp_path)
    figures = json.loads(out.read_text())["variants"]
    confidence = pd.read_csv(finished_study / "reports" / "confidence.csv").set_index("variant")
    assert set(figures) == set(confidence.index[confidence["spearman"].notna()])
    for variant, landmarks in figures.items():
        evaluated = [json.loads(path.read_text()) for path in (finished_study / "results" / "eval" / variant).glob("seed*/metrics.json")]
        for name, row in landmarks.items():
            assert row["mre_px"] == pytest.approx(np.mean([metrics[f"re_{name}"] for metrics in evaluated]), abs=1e-3)
            assert 0 <= row["mass_near"] <= 1  # the peak is a raw output: any sign at smoke scale
            # Not compared with the report's: at smoke scale the spreads of the flat heatmaps tie
            # to within float noise, and the batch sizes' rounding reorders them.
            assert all(-1 <= row[key] <= 1 for key in
                       ("spearman_spread_error", "spearman_low_peak_error", "spearman_little_mass_near_error"))


def test_the_coverage_resplit_benchmark_reads_a_finished_study(finished_study, tmp_path):
    """benchmarks/coverage_resplit.py on the study: every run, beside the coverage its evaluate
    stage measured, and re-drawn coverages that are shares."""
    out = tmp_path / "resplit.json"
    run([sys.executable, str(finished_study / "benchmarks" / "coverage_resplit.py"), "--study", str(finished_study),
         "--repetitions", "20", "--json", str(out)], cwd=tmp_path)
    figures = json.loads(out.read_text())
    evaluated = sorted((finished_study / "results" / "eval").glob("*/seed*/metrics.json"))
    assert set(figures["variants"]) == {path.parent.parent.name for path in evaluated}
    for variant, entry in figures["variants"].items():
        runs = [json.loads(path.read_text())["coverage"] for path in evaluated if path.parent.parent.name == variant]
        for key in ("ps1", "ps2", "fh1", "aop"):
            assert entry[key]["study"] == pytest.approx(np.mean([measured[key]["coverage"] for measured in runs]))
            assert 0.0 <= entry[key]["p05"] <= entry[key]["mean"] <= entry[key]["p95"] <= 1.0
            assert 0.0 <= entry[key]["in_band"] <= 1.0
        assert 0.0 <= entry["all_in_band"] <= 1.0


def test_the_aop_lever_arm_benchmark_reads_a_finished_study(finished_study, tmp_path):
    """benchmarks/aop_lever_arm.py on the study: every run, every test frame whose predicted AoP
    is defined, and figures that are what they say (a rank correlation, a positive ratio or none
    where half the acquisitions are too few, ordered percentiles)."""
    import pandas as pd

    out = tmp_path / "lever.json"
    run([sys.executable, str(finished_study / "benchmarks" / "aop_lever_arm.py"), "--study", str(finished_study),
         "--halves", "20", "--json", str(out)], cwd=tmp_path)
    figures = json.loads(out.read_text())["runs"]
    tables = sorted((finished_study / "results" / "eval").glob("*/seed*/predictions.csv"))
    assert set(figures) == {f"{path.parent.parent.name}/{path.parent.name}" for path in tables}
    for path in tables:
        entry = figures[f"{path.parent.parent.name}/{path.parent.name}"]
        assert entry["n_frames"] == int((~pd.read_csv(path)["aop_undefined"]).sum())
        assert -1 <= entry["spearman"] <= 1
        assert np.isnan(entry["width_ratio"]) or entry["width_ratio"] > 0
        assert 0 < entry["sensitivity_p05"] <= entry["sensitivity_p50"] <= entry["sensitivity_p95"]


# Bullets of a folder README that name files a study on the phantom does not write.
ELSEWHERE = ("PSFHS only", "make bench")
KNOWN = re.compile(r"\.(csv|json|md|tex|pt|ts|onnx|zip|png|log|html|tsv|yaml)$")


def readme_entries(text: str) -> tuple[list[tuple[str, bool]], set[str]]:
    """What a folder README lists: ``(pattern, elsewhere)`` for each path its bullets name (before
    the colon: relative to the folder; after it: a bare name is inside the bullet's first folder),
    and the bare file names its other paragraphs say every folder holds (e.g. ``stamp.json``)."""
    entries, everywhere = [], set()
    for block in re.split(r"\n(?=- )|\n\n", text):
        tokens = re.findall(r"`([^`\s]+)`", block)
        if not block.startswith("- "):
            everywhere.update(t for t in tokens if "/" not in t)
            continue
        head, _, rest = block.partition(": ")
        heads = re.findall(r"`([^`\s]+)`", head)
        base = heads[0] if heads and heads[0].endswith("/") else ""
        named = heads + [t if "/" in t.rstrip("/") else base + t
                         for t in re.findall(r"`([^`\s]+)`", rest) if KNOWN.search(t) or t.endswith("/")]
        entries += [(name, any(marker in block for marker in ELSEWHERE)) for name in named]
    return entries, everywhere


def written(folder: Path, params: dict) -> set[str]:
    """Every file and folder the study wrote under ``folder``, with variant, method and seed
    generalised as the READMEs write them (folders end with '/')."""
    methods = {"moco_hrnet", "moco_resnet", "mae_attention_unet"}
    out = set()
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if path.name == "README.md" or any(part.startswith(".") for part in parts):
            continue  # this README, and tools' bookkeeping (.snakemake_timestamp)
        general = ["<variant>" if part in params["variants"] else "<method>" if part in methods
                   else re.sub(r"^seed\d+", "seed<s>", part) for part in parts]
        out.add("/".join(general) + ("/" if path.is_dir() else ""))
    return out


def _pattern(entry: str) -> re.Pattern:
    """A README's path as a pattern: ``*`` and placeholders other than <variant>, <method> and
    <s> (which :func:`written` produces) stand for one path component."""
    text = re.escape(entry).replace(r"\*", "[^/]*")
    return re.compile(re.sub(r"<(?!variant>|method>|s>)[^>]*>", "[^/]+", text))


@pytest.mark.parametrize("folder", ["data", "results", "reports"])
def test_each_folder_readme_names_what_the_study_writes(finished_study, folder):
    """Every path a folder README names is one the finished study wrote (or a bullet says where
    it comes from instead), and every file the study wrote there is named or inside a named folder."""
    entries, everywhere = readme_entries((finished_study / folder / "README.md").read_text())
    files = written(finished_study / folder, load_params(finished_study / "params.yaml"))
    dead = [name for name, elsewhere in entries
            if not elsewhere and not any(_pattern(name).fullmatch(path) for path in files)]
    assert dead == [], f"{folder}/README.md names what the study does not write"
    patterns = [_pattern(name) for name, _ in entries]
    unnamed = sorted(path for path in files if not path.endswith("/")
                     and Path(path).name not in everywhere
                     and not any(p.fullmatch(path) or (p.pattern.endswith("/") and p.match(path)) for p in patterns))
    assert unnamed == [], f"{folder}/README.md does not say what these are"


def test_a_team_shares_the_study_through_a_dvc_remote(finished_study, tmp_path):
    """dvc push from the study, dvc pull in a fresh clone: DVC and Snakemake both find it up to
    date (no --touch: the stamps prove the results current), and the report is the same bytes."""
    work = copy_study(finished_study, tmp_path / "study")
    dvc("remote", "add", "-d", "team", str(tmp_path / "remote"), cwd=work)
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "the finished study and its remote"], work)
    dvc("push", cwd=work)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(work), str(clone)], tmp_path)
    (clone / ".venv").symlink_to(Path(sys.executable).parents[1])
    dvc("pull", cwd=clone)
    assert "up to date" in dvc("status", cwd=clone).stdout
    assert snakemake_plan(clone) == set()
    for name in ("ablation.md", "claims.csv", "metrics.json", "provenance.json", "report.html"):
        assert (clone / "reports" / name).read_bytes() == (work / "reports" / name).read_bytes(), name


def test_experiments_can_be_compared(finished_study, tmp_path):
    work = copy_study(finished_study, tmp_path / "study")
    run(["git", "add", "-A"], work)
    run(["git", "commit", "-qm", "the finished study"], work)
    ran = dvc("exp", "run", "-S", "finetune.lambda_adv=0.02", "--name", "adv002", cwd=work).stdout
    seeds = [str(s) for s in load_params(work / "params.yaml")["study"]["seeds"]]
    stages = ("finetune", "calibrate", "evaluate")
    assert dvc_ran(ran) == {*(f"{stage}-{V2}-{seed}" for stage in stages for seed in seeds),
                            "ablation", "figures", "export", "report"}, ran
    table = json.loads(dvc("exp", "show", "--json", cwd=work).stdout)
    experiments = [exp for entry in table for exp in (entry.get("experiments") or [])]
    found = [run_ for exp in experiments for run_ in exp.get("revs", []) if run_.get("name") == "adv002"]
    assert found, json.dumps(table)[:3000]
    metrics = found[0]["data"]["metrics"]["reports/metrics.json"]["data"]
    assert set(metrics) == set(load_params(work / "params.yaml")["variants"])
    assert all(isinstance(m["mre"], float) and isinstance(m["aop_mae"], float) for m in metrics.values())


def test_unknown_names_are_refused_in_one_line(finished_study, tmp_path):
    work = copy_study(finished_study, tmp_path / "study")
    result = iugc("params", "--preset", "smoke", "--set", "encoders.hrnet=hrnet_w99", "--out", "-",
                  cwd=work, check=False)
    assert result.returncode == 2 and "encoders.hrnet" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    params = yaml.safe_load((work / "params.yaml").read_text())
    params["finetuen"] = params.pop("finetune")
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    plan = snakemake("-n", cwd=work, check=False)
    line = one_line_error(plan)
    assert "'finetuen'" in line and "did you mean 'finetune'" in line, line
    assert len(plan.stderr.strip().splitlines()) <= 3


@pytest.fixture(scope="module")
def chromium() -> str:
    """A headless Chromium on PATH (Debian: `apt-get install chromium`; .ci/run installs it). The
    tests install nothing: where it is missing the test is skipped, and fails in CI."""
    import shutil

    found = shutil.which("chromium")
    if not found:
        message = "chromium not found on PATH (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI installs it in .ci/run")
        pytest.skip(message)
    return found


def rendered_text(chromium: str, page, tmp_path) -> str:
    """The text of ``page`` as headless Chromium renders it (scripts run, nothing fetched)."""
    import re as regex

    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "HOME": str(tmp_path)})  # its profile files (~/.pki) stay in the test's folder
    assert result.returncode == 0, result.stderr[-2000:]
    return " ".join(regex.sub(r"<[^>]+>", " ", result.stdout).split())


def test_the_report_reads_in_a_browser(finished_study, chromium, tmp_path):
    """report.html, opened in a real browser: the first section says what data and preset the
    numbers come from, and the ablation's numbers are there."""
    import pandas as pd

    work = finished_study
    text = rendered_text(chromium, work / "reports" / "report.html", tmp_path)
    params = load_params(work / "params.yaml")
    assert "iugc study: the built-in phantom (synthetic frames), preset 'smoke'" in text
    assert "The study" in text and "seeds 1, 2" in text and "commit" in text
    assert "Claims of the paper" in text and "Ablation (Table 2)" in text
    ablation = pd.read_csv(work / "reports" / "ablation.csv")
    for _, row in ablation.iterrows():
        assert f"{row['mre_mean']:.2f} ± {row['mre_sd_seeds']:.2f}" in text, row["variant"]
    assert len(ablation) == len(params["variants"])
    assert "the paper's full method (v2_moco_cbam_adv) reached an MRE of" in text
