"""The command line as a newcomer meets it: `--version`, help for every command, option and
positional (with its default), the stages listed, and no file overwritten or folder deleted
without `--force`."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import yaml

from iugc import __version__
from iugc.cli import build_parser
from iugc.config import load_params, load_preset
from iugc.stages.registry import stages
from iugc.stages.runner import _parser as stage_parser
from iugc.stages.runner import summary


def iugc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "iugc", *args], capture_output=True, text=True, cwd=cwd)


def one_line_error(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def flat(text: str) -> str:
    return " ".join(text.split())


def commands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version():
    result = iugc("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"iugc {__version__}"


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_and_positional_has_help_and_shows_its_default(name):
    parser = commands()[name]
    text = flat(parser.format_help())
    for action in parser._actions:
        assert action.help, f"iugc {name}: {action.dest} has no help"
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in text, f"iugc {name} {action.option_strings[0]}"
    if name != "stage":
        assert iugc(name, "--help").returncode == 0


def test_stage_help_and_bare_stage_list_every_stage_with_one_line(tmp_path):
    listed = iugc("stage", "--help", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    bare = iugc("stage", cwd=tmp_path)
    assert bare.returncode == 2 and bare.stderr == listed.stdout
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("  ")}
    assert list(lines) == list(stages())
    for name, stage in stages().items():
        assert lines[name].split(None, 1)[1] == summary(stage)
        assert summary(stage) and "\n" not in summary(stage)


@pytest.mark.parametrize("name", list(stages()))
def test_stage_help_needs_no_params_file_and_explains_every_option(name, tmp_path):
    result = iugc("stage", name, "--help", cwd=tmp_path)  # no params.yaml here
    assert result.returncode == 0, result.stderr
    assert flat(summary(stages()[name])) in flat(result.stdout)
    for action in stage_parser(stages()[name])._actions:
        assert action.help, f"iugc stage {name}: --{action.dest} has no help"


def test_an_unknown_stage_is_named_in_one_line(tmp_path):
    line = one_line_error(iugc("stage", "evalute", "--help", cwd=tmp_path))
    assert "unknown stage 'evalute'" in line and "evaluate" in line


def test_params_without_a_source_never_overwrites_an_existing_file(tmp_path):
    out = tmp_path / "params.yaml"
    assert iugc("params", "--out", str(out)).returncode == 0  # a new file: the quick preset
    assert load_params(out) == load_preset("quick")
    out.write_text(out.read_text().replace("lambda_adv: 0.01", "lambda_adv: 0.02"))
    before = out.read_text()
    line = one_line_error(iugc("params", "--out", str(out)))
    assert str(out) in line and "--preset" in line and "--force" in line
    assert out.read_text() == before
    assert iugc("params", "--out", str(out), "--force").returncode == 0
    assert load_params(out) == load_preset("quick")
    assert iugc("params", "--from", str(out), "--set", "finetune.lambda_adv=0.03", "--out", str(out)).returncode == 0
    assert load_params(out)["finetune"]["lambda_adv"] == 0.03
    both = iugc("params", "--preset", "smoke", "--from", str(out), "--out", "-")
    assert both.returncode == 2 and "--from: not allowed with argument --preset" in both.stderr


def test_params_keeps_a_variant_of_your_own(tmp_path):
    out = tmp_path / "params.yaml"
    params = load_preset("quick")
    params["variants"]["v8_mine"] = {**params["variants"]["v3_moco_cbam"], "attention": False, "adversarial": True}
    out.write_text(yaml.safe_dump(params, sort_keys=False))
    result = iugc("params", "--preset", "smoke", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "kept your variant(s) v8_mine" in result.stderr
    written = load_params(out)
    assert written["preset"] == "smoke" and written["variants"]["v8_mine"] == params["variants"]["v8_mine"]
    assert list(written["variants"])[:-1] == list(load_preset("smoke")["variants"])


def test_params_from_an_older_file_adds_the_keys_new_since_from_its_preset(tmp_path):
    """A params.yaml written before a key existed: stages refuse it in one line that says how to
    mend it, and `iugc params --from` mends it with the preset's value, changing nothing else
    (a variant the user removed stays removed)."""
    from iugc.config import ParamsError

    out = tmp_path / "params.yaml"
    params = load_preset("smoke")
    params["finetune"]["lambda_adv"] = 0.03
    del params["evaluate"]["aop_decision_deg"], params["variants"]["v5_resnet_moco"]
    out.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ParamsError, match=r"aop_decision_deg.*iugc params --from"):
        load_params(out)
    result = iugc("params", "--from", str(out), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "added evaluate.aop_decision_deg from preset 'smoke'" in result.stderr
    written = load_params(out)
    assert written["evaluate"]["aop_decision_deg"] == load_preset("smoke")["evaluate"]["aop_decision_deg"]
    assert written["finetune"]["lambda_adv"] == 0.03 and "v5_resnet_moco" not in written["variants"]
    # A file of its own making (preset 'custom') has no preset to take the key from.
    params["preset"] = "custom"
    out.write_text(yaml.safe_dump(params, sort_keys=False))
    line = one_line_error(iugc("params", "--from", str(out), "--out", "-"))
    assert "aop_decision_deg" in line and "is a required property" in line


def test_model_summary_lists_the_variants():
    result = iugc("model-summary")
    assert result.returncode == 0, result.stderr
    for name in load_preset("paper")["variants"]:
        assert f"  {name} " in result.stdout, name


def test_phantom_replaces_an_earlier_phantom_only_with_force(tmp_path):
    dst = tmp_path / "phantom"
    small = ["--n", "6", "--unlabeled", "0", "--size", "64"]
    assert iugc("phantom", str(dst), *small).returncode == 0
    first = sorted(p.name for p in dst.rglob("*"))
    line = one_line_error(iugc("phantom", str(dst), *small, "--seed", "1"))
    assert str(dst) in line and "--force" in line
    assert iugc("phantom", str(dst), *small, "--seed", "1", "--force").returncode == 0
    assert sorted(p.name for p in dst.rglob("*")) == first
