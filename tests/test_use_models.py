"""Using trained models: `iugc predict` on real frames of every kind, confidence, TorchScript and
ONNX exports, and a challenge submission that runs without this package."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from iugc.conformal import calibrate
from iugc.config import load_preset, select
from iugc.data.labels import load_labels, parse_point
from iugc.export import export_onnx, export_submission, export_torchscript
from iugc.inference import load_trained_model, prepare_frames
from iugc.integrity import file_sha256
from iugc.predict import Flag
from iugc.predict import run as predict
from iugc.stages.views import finetune_config, finetune_keys, landmark_spec
from iugc.train import finetune as ft


def trained(tmp_path_factory, psfhs_root, variant: str):
    """``variant`` of the smoke preset (64 px) after one epoch on 12 real frames: a real model file."""
    params = load_preset("smoke")
    view = select(params, finetune_keys(params, {"variant": variant}))
    labels = load_labels(psfhs_root).sort_values("filename").iloc[:16].reset_index(drop=True)
    out = tmp_path_factory.mktemp(variant)
    ft.finetune(variant, landmark_spec(view, variant), finetune_config(view, variant), labels.iloc[:12],
                labels.iloc[12:], out, seed=1, stop_after=None, log=lambda _: None)
    return out


def calibrated(folder, psfhs_root):
    """Write the calibration.json of the model in ``folder``, from 20 real frames it was not
    trained on (each counted as its own acquisition: at 90 % the correction needs at least 9)."""
    frames = load_labels(psfhs_root).sort_values("filename").iloc[60:80].reset_index(drop=True)
    pred, spread = load_trained_model(folder / "model.pt", device="cpu").predict(frames, with_spread=True)
    true = frames[[f"{n}_{a}" for n in ("ps1", "ps2", "fh1") for a in "xy"]].to_numpy(float).reshape(-1, 3, 2)
    calibrate(pred, true, spread, np.arange(len(frames)), 0.9, seed=0,
              frame_sizes=zip(frames["width"], frames["height"])).save(
        folder / "calibration.json", model_sha256=file_sha256(folder / "model.pt"))
    return folder


@pytest.fixture(scope="module")
def heatmap_model(tmp_path_factory, psfhs_root):
    return calibrated(trained(tmp_path_factory, psfhs_root, "v3_moco_cbam"), psfhs_root)


@pytest.fixture(scope="module")
def coordinate_model(tmp_path_factory, psfhs_root):
    return trained(tmp_path_factory, psfhs_root, "v6_moco_cbam_coords")


@pytest.fixture(scope="module")
def real_frames(psfhs_root, tmp_path_factory):
    """A folder of real frames in every kind a user may bring, and one broken file."""
    folder = tmp_path_factory.mktemp("frames")
    labels = load_labels(psfhs_root).sort_values("filename").iloc[40:46].reset_index(drop=True)
    grey = [np.asarray(Image.open(p)) for p in labels["image_path"]]
    Image.fromarray(grey[0]).save(folder / "grey.png")
    Image.fromarray(grey[0]).convert("RGB").save(folder / "rgb.png")
    (folder / "nested").mkdir()
    Image.fromarray(grey[1]).convert("RGBA").save(folder / "nested" / "rgba.png")
    Image.fromarray(grey[2]).save(folder / "frame.bmp")
    Image.fromarray(grey[3]).save(folder / "frame.jpg", quality=95)
    Image.fromarray(grey[4].astype(np.uint16) << 8).save(folder / "deep.tif")
    _dicom(grey[5], folder / "scan.dcm", spacing=0.2)
    (folder / "broken.png").write_bytes(b"not a png")
    return folder, grey


def _dicom(pixels: np.ndarray, path, spacing: float) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelSpacing = [spacing, spacing]
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def test_predict_reads_every_kind_of_frame_and_names_the_broken_one(heatmap_model, real_frames, tmp_path):
    folder, grey = real_frames
    messages = []
    failed = predict(heatmap_model, [folder], tmp_path / "out", flag=Flag(5.0), log=messages.append)
    assert failed == 1 and any("broken.png" in m and "not an image" in m for m in messages)
    table = pd.read_csv(tmp_path / "out" / "predictions.csv").set_index("Filename")
    assert set(table.index) == {"grey.png", "rgb.png", "nested/rgba.png", "frame.bmp", "frame.jpg", "deep.tif",
                                "scan.dcm"}
    assert list(table.columns[:4]) == ["PS1", "PS2", "FH1", "AoP"]
    points = {name: [parse_point(table.loc[name, c]) for c in ("PS1", "PS2", "FH1")] for name in table.index}
    assert all(0 <= v <= 256 for pts in points.values() for p in pts for v in p)  # pixels of the 256-px frame
    assert points["grey.png"] == points["rgb.png"]  # the same frame in colour is the same frame
    assert table.loc["scan.dcm", "pixel_spacing_mm"] == pytest.approx(0.2)   # DICOM carries its spacing
    assert table.loc["scan.dcm", "spread_PS1_mm"] == pytest.approx(table.loc["scan.dcm", "spread_PS1_px"] * 0.2, abs=1e-3)
    assert np.isnan(table.loc["grey.png"].get("pixel_spacing_mm", np.nan))
    assert table["check"].dtype == bool and (table[["spread_PS1_px", "spread_FH1_px"]] > 0).all().all()
    radii = table[["radius_PS1_px", "radius_PS2_px", "radius_FH1_px"]]
    assert (radii > 0).all().all() and (table["check"] == (radii.max(axis=1) > 5.0)).all()
    assert table.loc["scan.dcm", "radius_FH1_mm"] == pytest.approx(table.loc["scan.dcm", "radius_FH1_px"] * 0.2, abs=1e-3)
    assert ((table["aop_low"] <= table["AoP"]) & (table["AoP"] <= table["aop_high"])).all()
    overlays = {p.relative_to(tmp_path / "out" / "overlays").as_posix() for p in (tmp_path / "out" / "overlays").rglob("*.png")}
    assert {"grey.png", "nested/rgba.png", "scan.png"} <= overlays


def test_frames_of_another_size_than_the_calibration_frames_are_named_once(heatmap_model, real_frames, tmp_path):
    """Radii in pixels were calibrated on 256-px frames: prediction still gives them for frames of
    another size, but says once per size that their coverage there is unknown."""
    _, grey = real_frames
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(grey[0]).save(folder / "a_as_calibrated.png")
    for name in ("b_wide.png", "c_wide.png"):
        Image.fromarray(grey[1]).resize((300, 200)).save(folder / name)
    messages = []
    assert predict(heatmap_model, [folder], tmp_path / "out", log=messages.append) == 0
    sized = [m for m in messages if "calibrated on frames of" in m]
    assert len(sized) == 1 and "b_wide.png" in sized[0] and "300x200 px" in sized[0] and "256x256 px" in sized[0]
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert len(table) == 3 and table["radius_PS1_px"].notna().all()


def test_the_command_line_exits_non_zero_when_a_frame_failed(heatmap_model, real_frames, tmp_path):
    folder, _ = real_frames
    result = subprocess.run([sys.executable, "-m", "iugc", "predict", "--model", str(heatmap_model), str(folder),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 1 and "broken.png" in result.stderr and "Traceback" not in result.stderr
    missing = subprocess.run([sys.executable, "-m", "iugc", "predict", "--model", str(tmp_path), str(folder),
                              "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_flagging_needs_the_calibration_made_for_the_model(heatmap_model, coordinate_model, real_frames, tmp_path):
    folder, _ = real_frames
    frame = str(folder / "grey.png")
    cases = [
        (["--model", str(coordinate_model), "--flag-above", "10"], "no calibration.json"),
        (["--model", str(coordinate_model), "--calibration", str(heatmap_model)], "calibrated for other weights"),
        (["--model", str(heatmap_model), "--flag-above-mm", "2"], "needs the pixel spacing"),
    ]
    for options, message in cases:
        result = subprocess.run([sys.executable, "-m", "iugc", "predict", *options, frame, "--out", str(tmp_path)],
                                capture_output=True, text=True)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_coordinate_variants_say_they_have_no_confidence(coordinate_model, real_frames, tmp_path):
    folder, _ = real_frames
    predict(coordinate_model, [folder / "grey.png"], tmp_path / "out", log=lambda _: None)
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert table[["spread_PS1_px", "spread_PS2_px", "spread_FH1_px"]].isna().all().all()


def _inputs(model, grey) -> torch.Tensor:
    return prepare_frames(grey[:4], model.spec.image_size)


@pytest.mark.parametrize("fixture", ["heatmap_model", "coordinate_model"])
def test_torchscript_and_onnx_match_pytorch_on_real_frames(fixture, request, real_frames, tmp_path):
    import onnxruntime

    model = load_trained_model(request.getfixturevalue(fixture) / "model.pt", device="cpu")
    frames = _inputs(model, real_frames[1])
    with torch.no_grad():
        expected, expected_spread = model.predictor()(frames)
    scripted = torch.jit.load(str(export_torchscript(model, tmp_path / "m.ts")))
    with torch.no_grad():
        got, spread = scripted(frames)
    assert torch.allclose(got, expected, atol=1e-3) and torch.allclose(spread, expected_spread, atol=1e-3)
    session = onnxruntime.InferenceSession(str(export_onnx(model, tmp_path / "m.onnx")))
    got, spread = session.run(None, {"frames": frames.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-3)
    np.testing.assert_allclose(spread, expected_spread.numpy(), atol=1e-3)


BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"iugc", "timm", "monai", "albumentations", "cv2"}:
            raise ImportError(f"{name} is not available to a submission")
sys.meta_path.insert(0, Block())
"""


def test_the_submission_runs_without_this_package(heatmap_model, real_frames, psfhs_root, tmp_path):
    folder, _ = real_frames
    archive = export_submission(heatmap_model, tmp_path / "submission")
    assert archive.name == "submission.zip" and archive.is_file()
    assert {p.name for p in (tmp_path / "submission").iterdir()} >= {"metadata", "model.py", "landmarks.ts"}
    predict(heatmap_model, [folder / "grey.png", folder / "frame.bmp"], tmp_path / "ours", log=lambda _: None)
    ours = pd.read_csv(tmp_path / "ours" / "predictions.csv").set_index("Filename")
    code = BLOCK + f"""
import json, numpy as np
from PIL import Image
sys.path.insert(0, {str(tmp_path / 'submission')!r})
import model as submission
m = submission.model()
m.load({str(tmp_path / 'submission')!r})
out = {{}}
for name in ("grey.png", "frame.bmp"):
    X = Image.open({str(folder)!r} + "/" + name).convert("RGB")
    out[name] = {{"points": m.predict(X).tolist(), **m.confidence(X)}}
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = json.loads(result.stdout)
    assert (tmp_path / "submission" / "calibration.json").is_file()
    for name, values in theirs.items():
        assert len(values["points"]) == 6
        expected = [v for c in ("PS1", "PS2", "FH1") for v in parse_point(ours.loc[name, c])]
        np.testing.assert_allclose(values["points"], expected, atol=0.01)
        np.testing.assert_allclose(values["radius_px"], ours.loc[name, ["radius_PS1_px", "radius_PS2_px",
                                                                        "radius_FH1_px"]].to_numpy(float), atol=0.01)
        np.testing.assert_allclose([values["aop_low"], values["aop_high"]],
                                   ours.loc[name, ["aop_low", "aop_high"]].to_numpy(float), atol=0.01)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "iugc", *args], capture_output=True, text=True)


def test_exported_files_are_refused_with_what_model_takes(heatmap_model, real_frames, tmp_path):
    folder, _ = real_frames
    model = load_trained_model(heatmap_model / "model.pt", device="cpu")
    for exported in (export_torchscript(model, tmp_path / "m.ts"), export_onnx(model, tmp_path / "m.onnx")):
        for args in (["predict", "--model", str(exported), str(folder / "grey.png"), "--out", str(tmp_path / "p")],
                     ["export", "--model", str(exported), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]):
            result = _cli(*args)
            assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert str(exported) in result.stderr and "--model takes a folder holding model.pt" in result.stderr
    assert not (tmp_path / "p").exists() and not (tmp_path / "x.onnx").exists()


def test_export_submission_replaces_an_existing_folder_only_with_force(heatmap_model, tmp_path):
    dst = tmp_path / "submission"
    assert _cli("export-submission", "--model", str(heatmap_model), str(dst)).returncode == 0
    (dst / "mine.txt").write_text("kept")
    refused = _cli("export-submission", "--model", str(heatmap_model), str(dst))
    assert refused.returncode == 2 and "--force" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert (dst / "mine.txt").read_text() == "kept"
    assert _cli("export-submission", "--model", str(heatmap_model), str(dst), "--force").returncode == 0
    assert not (dst / "mine.txt").exists() and (dst / "landmarks.ts").is_file()
