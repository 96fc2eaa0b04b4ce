"""Data stages: obtain -> validate -> split -> standard-plane filtering."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from ..data.manifest import SPLITS_CSV, labelled_subsets, manifest_path, portable_path, read_dataset, write_dataset
from ..errors import UserError
from .registry import stage
from .views import filter_config, obtain_keys


def _files_hash(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(map(str, paths)):
        digest.update(Path(path).name.encode())
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()[:16]


@stage("obtain", reads=obtain_keys, inputs=("source",))
def obtain(view, *, source=None, out):
    """Obtain the data: generate the phantom, convert PSFHS, or reference an IUGC 2025 tree."""
    from ..data.labels import load_labels
    from ..data.unlabeled import cap_pool, list_unlabeled
    from ..data.validate import validate_dataset

    data, out = view["data"], Path(out)
    if data["source"] != "phantom" and source is None:
        raise UserError(f"data.source is {data['source']!r}: the obtain stage needs the data root (--source)")
    if data["source"] == "phantom":
        from ..data.phantom import make_phantom

        ph = view["phantom"]
        root = make_phantom(out / "phantom", n_labeled=ph["n_labeled"], n_unlabeled=ph["n_unlabeled"],
                            seed=view["seed"], size=ph["size"],
                            standard_plane_fraction=ph["standard_plane_fraction"],
                            frames_per_acquisition=ph["frames_per_acquisition"])
    elif data["source"] == "psfhs":
        from ..data.psfhs import convert_psfhs

        root = out / "psfhs"
        report = convert_psfhs(source, root)
        (out / "psfhs_skipped.csv").write_text(
            "frame,reason\n" + "".join(f"{f},{r}\n" for f, r in report.skipped))
    else:
        root = Path(source).expanduser().resolve()

    problems = validate_dataset(root).problems
    if problems:
        raise UserError(f"{len(problems)} problem(s) in {root}; first: {problems[0]} "
                        f"(run `iugc validate-data {root}` for all)")

    labels = load_labels(root).sort_values("filename", kind="stable").reset_index(drop=True)
    unlabeled = cap_pool(list_unlabeled(root), data["max_unlabeled"], view["seed"])
    truth_file = Path(root) / "phantom_truth.csv"
    if truth_file.exists():
        truth = pd.read_csv(truth_file)[["relpath", "standard_plane", "kind"]]
        unlabeled = unlabeled.merge(truth, on="relpath", how="left")

    sizes = labels.groupby(["width", "height"]).size().sort_values(ascending=False)
    write_dataset(out, labels, unlabeled, {
        "source": data["source"],
        "root": manifest_path(root, out),
        **describe_data(data, root),
        "n_labeled": int(len(labels)),
        "n_unlabeled": int(len(unlabeled)),
        "image_sizes": {f"{w}x{h}": int(n) for (w, h), n in sizes.items()},
        "labels_hash": _files_hash(labels["image_path"]),
        "unlabeled_hash": _files_hash(unlabeled["image_path"]) if len(unlabeled) else None,
    })


def describe_data(data, root) -> dict:
    """What the report calls the data and how their landmarks were made: the parameters when
    given, else what the source says (a tree's README title names it)."""
    implied = {
        "phantom": ("the built-in phantom (synthetic frames)", "known by construction (the phantom is rendered from them)"),
        "psfhs": ("PSFHS (Chen et al., Sci Data 11:436, 2024)",
                  "derived from the PSFHS segmentation masks (iugc convert-psfhs)"),
        "iugc2025": (_readme_title(root) or Path(root).name, "as given in the tree's label files"),
    }[data["source"]]
    return {"name": data["name"] or implied[0], "landmarks": data["landmarks"] or implied[1]}


def _readme_title(root) -> str | None:
    readme = Path(root) / "README.md"
    if not readme.is_file():
        return None
    for line in readme.read_text(errors="replace").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


@stage("validate", reads=[], inputs=("dataset",))
def validate(view, *, dataset, out):
    """Validate the obtained dataset and record its summary (the run stops on any problem)."""
    from ..data.validate import validate_dataset

    _, _, source = read_dataset(dataset)
    root = Path(source["root"])
    root = root if root.is_absolute() else Path(dataset) / root
    report = validate_dataset(root)
    if report.problems:
        raise UserError(f"{len(report.problems)} problem(s) in {root}; first: {report.problems[0]}")
    (Path(out) / "validation.json").write_text(
        json.dumps({"root": str(root), "problems": 0, "summary": report.summary()}, indent=1) + "\n")


@stage("split", reads=["split", "seed", "data.max_labeled", "data.max_frames_per_acquisition"],
       inputs=("dataset", "validation"))
def split(view, *, dataset, validation, out):
    """Grouped train/val/test split by acquisition (no near-duplicates across subsets).

    ``data.max_frames_per_acquisition`` keeps that many evenly spaced frames of each acquisition,
    then ``data.max_labeled`` caps the labelled frames used: whole acquisitions drawn from across
    the set (the rest are "unused"). The organisers' own held-out sets, when their labels are
    present, stay held out: Testing rows are the test subset, Validation rows join val, and
    Training is split into train/val.
    """
    from ..data.splits import acquisition_groups, split_frames

    labels, _, _ = read_dataset(dataset)
    sp = view["split"]
    training = labels[labels["split"] == "Training"]
    official_test = (labels["split"] == "Testing").any()
    table = split_frames(training, test_fraction=0.0 if official_test else sp["test_fraction"],
                         val_fraction=sp["val_fraction"], seed=view["seed"], hash_size=sp["hash_size"],
                         same_acquisition_distance=sp["same_acquisition_distance"],
                         duplicate_distance=sp["duplicate_distance"], max_frames=view["data"]["max_labeled"],
                         max_frames_per_group=view["data"]["max_frames_per_acquisition"],
                         aop_strata_count=sp["aop_strata"])
    held_out = labels[labels["split"] != "Training"].copy()
    held_out["subset"] = held_out["split"].map({"Testing": "test", "Validation": "val"})
    # The organisers' held-out frames are grouped into acquisitions too, each of their sets on its
    # own and numbered after the training groups: the test analysis counts acquisitions and the
    # calibration takes one frame of each (one group for them all would be one acquisition).
    held_out["group"] = -1
    next_group = int(table["group"].max()) + 1 if len(table) else 0
    for _, rows in held_out.groupby("split"):
        groups = acquisition_groups(rows, sp["hash_size"], sp["same_acquisition_distance"], sp["duplicate_distance"])
        held_out.loc[rows.index, "group"] = groups + next_group
        next_group += int(groups.max()) + 1
    table = pd.concat([table, held_out], ignore_index=True)
    table[["filename", "group", "subset"]].to_csv(Path(out) / SPLITS_CSV, index=False)


@stage("filter", reads=["filter", "seed"], inputs=("dataset", "split"))
def filter_planes(view, *, dataset, split, out):
    """Select the pretraining pool: standard-plane frames, no blanks, no near-duplicates."""
    from ..data.filtering import POOL_CSV, select_pretraining_pool

    _, unlabeled, _ = read_dataset(dataset)
    train = labelled_subsets(dataset, split)["train"]
    manifest, metrics = select_pretraining_pool(unlabeled, train, filter_config(view), seed=view["seed"])
    out = Path(out)
    manifest["image_path"] = manifest["image_path"].map(portable_path)
    manifest.to_csv(out / "manifest.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    manifest.loc[manifest["kept"], ["image_path"]].to_csv(out / POOL_CSV, index=False)
