"""Standard-plane filtering of the pretraining pool."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from iugc.data.filtering import FilterConfig, exact_duplicates, select_pretraining_pool
from iugc.data.images import read_grey
from iugc.data.labels import load_labels
from iugc.data.phantom import make_phantom
from iugc.data.unlabeled import list_unlabeled
from iugc.config import load_preset

FILTER = FilterConfig(**load_preset("paper")["filter"])


@pytest.fixture(scope="module")
def phantom_pool(tmp_path_factory):
    root = make_phantom(tmp_path_factory.mktemp("ph") / "ph", n_labeled=30, n_unlabeled=360, seed=3, size=128,
                        standard_plane_fraction=0.5, frames_per_acquisition=3)
    truth = pd.read_csv(root / "phantom_truth.csv")
    pool = list_unlabeled(root).merge(truth[["relpath", "standard_plane", "kind"]], on="relpath")
    pool.attrs["duplicate_of"] = dict(zip(truth["relpath"], truth["duplicate_of"]))
    return pool, load_labels(root)


def test_classifier_strategy_drops_blanks_copies_and_most_non_standard_frames(phantom_pool):
    pool, train = phantom_pool
    manifest, metrics = select_pretraining_pool(pool, train, FILTER, seed=0)
    assert metrics["strategy"] == "classifier"
    assert len(manifest) == len(pool)
    assert (manifest["reason"] == "").equals(manifest["kept"])
    blanks = manifest[manifest["kind"] == "blank"]
    assert len(blanks) and (blanks["reason"] == "blank").all()
    kept = dict(zip(manifest["relpath"], manifest["kept"]))
    paths = dict(zip(manifest["relpath"], manifest["image_path"]))
    copies = [(r, pool.attrs["duplicate_of"][r]) for r in manifest.loc[manifest["kind"] == "duplicate", "relpath"]]
    exact = [(c, o) for c, o in copies if (read_grey(paths[c]) == read_grey(paths[o])).all()]
    assert exact and not any(kept[copy] and kept[original] for copy, original in exact)
    # the classifier must beat the base rate of the pool it scores
    scored = manifest[manifest["sp_score"].notna()]
    base_rate = scored["standard_plane"].mean()
    assert metrics["classifier_precision"] > base_rate + 0.1, metrics
    assert metrics["classifier_recall"] > 0.5, metrics
    assert metrics["pool_precision"] > base_rate
    # the threshold is set for the target precision on the reader's calibration frames
    assert metrics["classifier_calibration_precision"] >= FILTER.target_precision


def _grey_png(path, value, seed):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(rng.normal(value, 40, (64, 64)), 0, 255).astype(np.uint8)).save(path)


def test_example_frames_strategy_keeps_only_example_frames(tmp_path):
    for i in range(4):
        _grey_png(tmp_path / "a" / f"Example{i}.png", 100, i)
        _grey_png(tmp_path / "b" / f"frame{i}.png", 100, 10 + i)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "a" / "Example9.png")  # blank
    (tmp_path / "a" / "Example8.png").write_bytes(b"not a png")
    rows = sorted(tmp_path.rglob("*.png"))
    pool = pd.DataFrame({"image_path": [str(p) for p in rows],
                         "relpath": [str(p.relative_to(tmp_path)) for p in rows],
                         "is_example": [p.name.startswith("Example") for p in rows]})
    manifest, metrics = select_pretraining_pool(pool, pool.iloc[:0], FILTER, seed=0)
    reasons = dict(zip(manifest["relpath"], manifest["reason"]))
    assert metrics["strategy"] == "example-frames" and metrics["kept"] == 4
    assert reasons["a/Example9.png"] == "blank" and reasons["a/Example8.png"] == "unreadable"
    assert reasons["b/frame0.png"].startswith("not an Example")


def test_without_a_pool_the_training_frames_are_used(tmp_path):
    for i in range(3):
        _grey_png(tmp_path / f"{i}.png", 90, i)
    train = pd.DataFrame({"image_path": [str(tmp_path / f"{i}.png") for i in range(3)],
                          "filename": [f"{i}.png" for i in range(3)]})
    empty = pd.DataFrame(columns=["image_path", "relpath", "is_example"])
    manifest, metrics = select_pretraining_pool(empty, train, FILTER, seed=0)
    assert metrics["strategy"] == "labelled-train-frames" and manifest["kept"].all()


def test_exact_copies_are_dropped_and_near_copies_kept():
    frame = np.arange(64, dtype=np.uint8).reshape(8, 8)
    near = frame.copy()
    near[0, 0] += 1
    images = [frame, frame.copy(), near, None, frame.copy()]
    candidates = np.array([True, True, True, False, False])
    assert exact_duplicates(images, candidates).tolist() == [-1, 0, -1, -1, -1]
