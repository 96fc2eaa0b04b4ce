"""Model stages: self-supervised pretraining, fine-tuning of a Table 2 variant, evaluation."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..geometry import LANDMARKS, aop_from_landmarks
from .data import labelled_subsets

CHECKPOINT_ROOT = Path("results") / "checkpoints"


def _fresh(folder) -> Path:
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def pretrain(params, method, *, pool, out):
    """Pretrain an encoder on the filtered pool: MoCoV2 (hrnet, resnet) or masked AE (attention U-Net)."""
    from ..ssl.pretrain import pretrain_mae, pretrain_moco

    paths = pd.read_csv(pool)["image_path"].tolist()
    out = _fresh(out)
    kind, encoder = method.split("_", 1)
    options = dict(checkpoint_dir=CHECKPOINT_ROOT / method, num_workers=params["pretrain"][kind]["num_workers"])
    if kind == "moco":
        summary = pretrain_moco(params, paths, out, encoder_kind=encoder, **options)
    else:
        summary = pretrain_mae(params, paths, out, **options)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")


def finetune(params, variant, *, dataset, splits, out, encoder=None):
    """Fine-tune one variant on the training split; validation MRE logged per epoch."""
    from ..train.finetune import finetune as run_finetune

    subsets = labelled_subsets(dataset, splits)
    out = _fresh(out)
    weights = Path(encoder) / "encoder.pt" if encoder else None
    # Checkpoints live outside the declared output so a killed job resumes under either tool.
    summary = run_finetune(params, variant, subsets["train"], subsets["val"], out,
                           encoder_weights=weights, checkpoint_dir=CHECKPOINT_ROOT / variant)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")


def prediction_table(frames: pd.DataFrame, pred: np.ndarray) -> pd.DataFrame:
    """One row per frame: true and predicted points, radial errors, AoP and its error."""
    true = frames[[f"{n}_{a}" for n in LANDMARKS for a in "xy"]].to_numpy(float).reshape(-1, 3, 2)
    table = frames[["filename", "image_path"]].copy()
    for j, name in enumerate(LANDMARKS):
        table[f"{name}_x"], table[f"{name}_y"] = true[:, j, 0], true[:, j, 1]
        table[f"pred_{name}_x"], table[f"pred_{name}_y"] = pred[:, j, 0], pred[:, j, 1]
        table[f"re_{name}"] = np.linalg.norm(pred[:, j] - true[:, j], axis=-1)
    table["mre"] = table[[f"re_{n}" for n in LANDMARKS]].mean(axis=1)
    table["aop"] = aop_from_landmarks(true)
    table["pred_aop"] = aop_from_landmarks(pred)
    table["aop_error"] = (table["pred_aop"] - table["aop"]).abs()
    return table


def evaluate(params, variant, *, dataset, splits, model, out):
    """Predict the held-out test split and score it (MRE, per landmark, AoP MAE, CIs)."""
    from ..data.augment import build_eval_transform
    from ..metrics import summarize
    from ..train.finetune import load_trained_model, predict

    test = labelled_subsets(dataset, splits)["test"]
    net, device = load_trained_model(params, variant, Path(model) / "model.pt")
    pred = predict(net, test, params["model"]["image_size"], device, build_eval_transform(params["augment"]))
    table = prediction_table(test, pred)
    true = table[[f"{n}_{a}" for n in LANDMARKS for a in "xy"]].to_numpy(float).reshape(-1, 3, 2)
    ev = params["evaluate"]
    metrics = summarize(pred, true, radii=ev["success_radii"], n_samples=ev["bootstrap_samples"],
                        confidence=ev["confidence"], seed=params["seed"])
    metrics["variant"] = variant
    out = _fresh(out)
    table.to_csv(out / "predictions.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
