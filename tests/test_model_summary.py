"""`iugc model-summary`: shapes and parameter counts, traced on the meta device."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from iugc.config import load_preset
from iugc.errors import UserError
from iugc.models.summary import format_summary
from iugc.models.summary import model_summary as summarize
from iugc.stages.views import landmark_spec

KEYS = {"encoder_out", "generator_out", "discriminator_out", "encoder_params",
        "generator_params", "discriminator_params", "layers"}


def model_summary(params, variant, size=None):
    return summarize(variant, landmark_spec(params, variant),
                     adversarial=params["variants"][variant]["adversarial"],
                     discriminator_channels=params["model"]["discriminator_channels"],
                     leaky_relu_slope=params["model"]["leaky_relu_slope"], size=size)


@pytest.fixture(scope="module")
def paper():
    return load_preset("paper")


@pytest.fixture(scope="module")
def paper_summary(paper):
    return model_summary(paper, "v2_moco_cbam_adv")


def test_cli_json_for_the_smoke_preset(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "iugc", "model-summary", "v2_moco_cbam_adv", "--json", "--preset", "smoke"],
        capture_output=True, text=True, cwd=repo_root, check=True)
    summary = json.loads(result.stdout)
    assert KEYS <= set(summary)
    size = load_preset("smoke")["model"]["image_size"]
    assert summary["generator_out"] == [3, size, size]
    assert summary["encoder_out"][1:] == [size // 32, size // 32]
    assert summary["discriminator_out"] == [1, size // 8 - 2, size // 8 - 2]
    assert all(set(row) == {"name", "type", "output", "params"} for row in summary["layers"])


def test_paper_shapes_are_the_papers(paper_summary):
    assert paper_summary["input"] == [1, 512, 512]
    assert paper_summary["encoder_out"] == [1024, 16, 16]  # Sec. 2.1
    assert paper_summary["generator_out"] == [3, 512, 512]  # Eq. 7
    assert paper_summary["coords_out"] == [3, 2]
    assert paper_summary["discriminator_out"] == [1, 62, 62]  # Eq. 10


def test_paper_layers_follow_eq7_and_eq10(paper_summary):
    layers = paper_summary["layers"]
    head = [row for row in layers if row["name"].startswith("generator.head.")]
    assert [row["type"] for row in head] == ["ConvCBAM2D", "Upsample"] * 5 + ["Conv2d"]
    assert [row["output"][0] for row in head[::2]] == [512, 256, 128, 64, 32, 3]
    disc = [row for row in layers if row["name"].startswith("discriminator.")]
    assert [row["output"] for row in disc] == [[64, 256, 256], [128, 128, 128], [256, 64, 64],
                                               [512, 63, 63], [1, 62, 62]]


def test_parameter_counts_add_up(paper_summary):
    s = paper_summary
    assert s["generator_params"] == s["encoder_params"] + s["head_params"]
    rows = {row["name"]: row["params"] for row in s["layers"]}
    assert rows["generator.encoder"] == s["encoder_params"]
    assert sum(v for k, v in rows.items() if k.startswith("generator.head.")) == s["head_params"]
    assert sum(v for k, v in rows.items() if k.startswith("discriminator.")) == s["discriminator_params"]
    assert 60e6 < s["encoder_params"] < 70e6  # HRNet-W48 feature extractor, about 67 M


@pytest.fixture(scope="module")
def smoke():
    return load_preset("smoke")


def test_coordinate_variant_has_no_discriminator(smoke):
    summary = model_summary(smoke, "v7_attunet_mae_coords", size=64)
    assert summary["generator_out"] == [3, 2]
    assert summary["encoder_out"] == [smoke["encoders"]["attention_unet_channels"][0], 64, 64]
    assert summary["discriminator_out"] is None and summary["discriminator_params"] is None
    assert not any(row["name"].startswith("discriminator.") for row in summary["layers"])


def test_size_override_and_bad_size(smoke):
    assert model_summary(smoke, "v4_moco", size=256)["encoder_out"] == [1024, 8, 8]
    with pytest.raises(UserError, match="multiple of 32"):
        model_summary(smoke, "v4_moco", size=100)


def test_format_summary_lists_layers_and_totals(paper_summary):
    text = format_summary(paper_summary)
    assert "generator.head.10" in text and "discriminator.4" in text
    assert "1024 x 16 x 16" in text and "1 x 62 x 62" in text
    assert f"discriminator {paper_summary['discriminator_params']:,}" in text


def test_cli_names_an_unknown_variant_in_one_line(repo_root):
    result = subprocess.run([sys.executable, "-m", "iugc", "model-summary", "v9_missing"],
                            capture_output=True, text=True, cwd=repo_root)
    assert result.returncode == 2 and "no variant" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
