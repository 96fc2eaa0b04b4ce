import subprocess
import sys

import pytest
import yaml

from iugc.config import ParamsError, load_params, load_preset, params_hash, select, validate_params


def test_presets_resolve_and_validate():
    for name in ("paper", "quick", "smoke"):
        params = load_preset(name)
        validate_params(params, name)
        assert params["preset"] == name


def test_paper_preset_holds_the_papers_numbers():
    p = load_preset("paper")
    assert p["model"]["image_size"] == 512 and p["model"]["heatmap_sigma"] == 5
    assert p["encoders"]["hrnet"] == "hrnet_w48" and p["encoders"]["resnet"] == "resnet50"
    m = p["pretrain"]["moco"]
    assert (m["epochs"], m["batch_size"], m["queue_size"], m["momentum"], m["temperature"]) == (25, 4, 8192, 0.999, 0.2)
    assert (m["lr_deep"], m["lr_middle"], m["lr_shallow"], m["lr_head"], m["weight_decay"]) == (1e-4, 0.5e-4, 0.1e-4, 1e-3, 1e-6)
    f = p["finetune"]
    assert (f["epochs"], f["batch_size"], f["lr_generator"], f["lr_discriminator"], f["weight_decay"]) == (400, 4, 3e-4, 5e-5, 1e-4)
    assert f["unfreeze_epochs"] == [150, 250]
    assert (f["lambda_h"], f["lambda_c"], f["lambda_adv"], f["lambda_e"]) == (1, 10, 0.01, 0.001)
    paper_rows = [name for name, v in p["variants"].items() if not v.get("reference")]
    assert len(paper_rows) == 7 and list(p["variants"]) == [*paper_rows, "ref_unet_heatmaps"]


def test_presets_change_scale_never_the_method():
    paper = load_preset("paper")
    for name in ("quick", "smoke"):
        other = load_preset(name)
        assert other["variants"] == paper["variants"]
        ratio = other["model"]["image_size"] / paper["model"]["image_size"]
        for key, value in paper["augment"].items():
            pixels = key in ("elastic_alpha", "elastic_sigma", "alpha_affine")
            assert other["augment"][key] == (value * ratio if pixels else value), key
        for key in ("lambda_h", "lambda_c", "lambda_adv", "lambda_e", "lr_generator", "lr_discriminator"):
            assert other["finetune"][key] == paper["finetune"][key]
        for key in ("momentum", "temperature", "lr_deep", "lr_middle", "lr_shallow", "lr_head"):
            assert other["pretrain"]["moco"][key] == paper["pretrain"]["moco"][key]


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["finetune"].update(lambda_adv=-1), "finetune.lambda_adv"),
    (lambda p: p["variants"]["v1_hrnet_supervised"].update(encoder="vgg"), "variants.v1_hrnet_supervised.encoder"),
    (lambda p: p["data"].update(source="iugc2025"), "data.root"),
    (lambda p: p["model"].pop("heatmap_sigma"), "heatmap_sigma"),
    (lambda p: p.update(extra=1), "extra"),
])
def test_schema_refuses_bad_params_with_the_key(tmp_path, edit, message):
    params = load_preset("smoke")
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
        load_params(path)


def test_select_and_hash():
    params = load_preset("paper")
    view = select(params, ["finetune.lambda_adv", "seed"])
    assert view == {"finetune": {"lambda_adv": 0.01}, "seed": 42}
    assert params_hash(view) == params_hash({"seed": 42, "finetune": {"lambda_adv": 0.01}})
    assert params_hash(view) != params_hash(select(params, ["finetune.lambda_e", "seed"]))


def test_params_cli_writes_a_valid_file_and_refuses_unknown_keys(tmp_path):
    out = tmp_path / "p.yaml"
    ok = subprocess.run([sys.executable, "-m", "iugc", "params", "--preset", "smoke", "--set",
                         "finetune.lambda_adv=0.05", "--out", str(out)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert load_params(out)["finetune"]["lambda_adv"] == 0.05
    bad = subprocess.run([sys.executable, "-m", "iugc", "params", "--set", "finetune.nope=1", "--out", str(out)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown key" in bad.stderr and "Traceback" not in bad.stderr


def test_committed_params_yaml_is_the_quick_preset(repo_root):
    assert load_params(repo_root / "params.yaml") == load_preset("quick")
