"""Data stages: obtain -> validate -> split -> standard-plane filtering."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd

from ..errors import UserError

LABELS_CSV = "labels.csv"
UNLABELED_CSV = "unlabeled.csv"
SOURCE_JSON = "source.json"


# --- the dataset manifest written by `obtain` and read by every later stage -------------------

def _relative_to(path: str, folder: Path) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(p.resolve())


def read_dataset(dataset: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Labels, unlabeled pool and source record of a manifest folder, paths made absolute."""
    dataset = Path(dataset)
    try:
        labels = pd.read_csv(dataset / LABELS_CSV)
        unlabeled = pd.read_csv(dataset / UNLABELED_CSV)
        source = json.loads((dataset / SOURCE_JSON).read_text())
    except FileNotFoundError as err:
        raise UserError(f"{dataset}: not a dataset manifest ({Path(err.filename).name} missing); run the obtain stage") from None
    for frame in (labels, unlabeled):
        frame["image_path"] = [str(p if Path(p).is_absolute() else (dataset / p).resolve())
                               for p in frame["image_path"]]
    return labels, unlabeled, source


def _files_hash(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(map(str, paths)):
        digest.update(Path(path).name.encode())
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()[:16]


def obtain(params, *, out):
    """Obtain the data: generate the phantom, convert PSFHS, or reference an IUGC 2025 tree."""
    from ..data.labels import load_labels
    from ..data.unlabeled import list_unlabeled
    from ..data.validate import validate_dataset

    data = params["data"]
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if data["source"] == "phantom":
        from ..data.phantom import make_phantom

        ph = params["phantom"]
        root = make_phantom(out / "phantom", n_labeled=ph["n_labeled"], n_unlabeled=ph["n_unlabeled"],
                            seed=params["seed"], size=ph["size"],
                            standard_plane_fraction=ph["standard_plane_fraction"],
                            frames_per_acquisition=ph["frames_per_acquisition"])
    elif data["source"] == "psfhs":
        from ..data.psfhs import convert_psfhs

        root = out / "psfhs"
        report = convert_psfhs(data["root"], root)
        (out / "psfhs_skipped.csv").write_text(
            "frame,reason\n" + "".join(f"{f},{r}\n" for f, r in report.skipped))
    else:
        root = Path(data["root"]).expanduser().resolve()

    problems = validate_dataset(root).problems
    if problems:
        raise UserError(f"{len(problems)} problem(s) in {root}; first: {problems[0]} "
                        f"(run `iugc validate-data {root}` for all)")

    labels = load_labels(root).sort_values("filename", kind="stable").reset_index(drop=True)
    if data["max_labeled"]:
        labels = labels.iloc[: data["max_labeled"]]  # leading frames: whole acquisitions stay whole
    unlabeled = list_unlabeled(root)
    truth_file = Path(root) / "phantom_truth.csv"
    if truth_file.exists():
        truth = pd.read_csv(truth_file)[["relpath", "standard_plane", "kind"]]
        unlabeled = unlabeled.merge(truth, on="relpath", how="left")
    if data["max_unlabeled"]:
        unlabeled = unlabeled.iloc[: data["max_unlabeled"]]

    for frame, name in ((labels, LABELS_CSV), (unlabeled, UNLABELED_CSV)):
        frame = frame.copy()
        frame["image_path"] = [_relative_to(p, out) for p in frame["image_path"]]
        frame.to_csv(out / name, index=False)
    record = {
        "source": data["source"],
        "root": str(root) if data["source"] == "iugc2025" else str(Path(root).relative_to(out)),
        "n_labeled": int(len(labels)),
        "n_unlabeled": int(len(unlabeled)),
        "labels_hash": _files_hash(labels["image_path"]),
        "unlabeled_hash": _files_hash(unlabeled["image_path"]) if len(unlabeled) else None,
    }
    (out / SOURCE_JSON).write_text(json.dumps(record, indent=1) + "\n")


def validate(params, *, dataset, out):
    """Validate the obtained dataset and record its summary (the run stops on any problem)."""
    from ..data.validate import validate_dataset

    _, _, source = read_dataset(dataset)
    root = Path(source["root"])
    root = root if root.is_absolute() else Path(dataset) / root
    report = validate_dataset(root)
    if report.problems:
        raise UserError(f"{len(report.problems)} problem(s) in {root}; first: {report.problems[0]}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({"root": str(root), "problems": 0, "summary": report.summary()}, indent=1) + "\n")


def split(params, *, dataset, validation, out):
    """Grouped train/val/test split by acquisition (no near-duplicates across subsets).

    The organisers' own held-out sets, when their labels are present, stay held out: Testing
    rows are the test subset, Validation rows join val, and Training is split into train/val.
    """
    from ..data.splits import split_frames

    labels, _, _ = read_dataset(dataset)
    sp = params["split"]
    training = labels[labels["split"] == "Training"]
    official_test = (labels["split"] == "Testing").any()
    table = split_frames(training, test_fraction=0.0 if official_test else sp["test_fraction"],
                         val_fraction=sp["val_fraction"], seed=params["seed"], hash_size=sp["hash_size"],
                         same_acquisition_distance=sp["same_acquisition_distance"],
                         duplicate_distance=sp["duplicate_distance"])
    held_out = labels[labels["split"] != "Training"].copy()
    held_out["group"] = -1
    held_out["subset"] = held_out["split"].map({"Testing": "test", "Validation": "val"})
    table = pd.concat([table, held_out], ignore_index=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    table[["filename", "group", "subset"]].to_csv(out, index=False)


def labelled_subsets(dataset, splits) -> dict[str, pd.DataFrame]:
    """Labels joined with the split, as {'train': df, 'val': df, 'test': df}."""
    labels, _, _ = read_dataset(dataset)
    table = labels.merge(pd.read_csv(splits), on="filename", how="inner", validate="one_to_one")
    return {name: table[table["subset"] == name].reset_index(drop=True) for name in ("train", "val", "test")}


def filter_planes(params, *, dataset, splits, pool, out):
    """Select the pretraining pool: standard-plane frames, no blanks, no near-duplicates."""
    from ..data.filtering import select_pretraining_pool

    _, unlabeled, _ = read_dataset(dataset)
    train = labelled_subsets(dataset, splits)["train"]
    manifest, metrics = select_pretraining_pool(unlabeled, train, params["filter"], seed=params["seed"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(out / "manifest.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    Path(pool).parent.mkdir(parents=True, exist_ok=True)
    manifest.loc[manifest["kept"], ["image_path"]].to_csv(pool, index=False)
