"""Evaluation stages: a trained model's confidence calibrated on the validation split, then the
model scored on the held-out test split (its errors and the coverage its confidence achieves)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.manifest import labelled_subsets, true_points
from ..errors import UserError
from .registry import stage

PREDICTIONS_CSV = "predictions.csv"
METRICS_JSON = "metrics.json"


@stage("calibrate", reads=["evaluate.coverage", "compute"], wildcards=("variant", "seed"),
       inputs=("dataset", "split", "model"), on_device=True)
def calibrate(view, *, variant, seed, dataset, split, model, out):
    """Calibrate the model's radii and AoP interval on the validation split (split-conformal).

    Per landmark a radius, and for the AoP an interval, holding the truth with probability
    ``evaluate.coverage``, from whole acquisitions of the validation split, never the test
    split (``conformal.py``)."""
    from ..conformal import CALIBRATION_FILE
    from ..conformal import calibrate as conformal_calibration
    from ..inference import load_trained_model
    from ..integrity import file_sha256
    from ..train.predict import MODEL_FILE

    val = labelled_subsets(dataset, split)["val"]
    model_file = Path(model) / MODEL_FILE
    trained = load_trained_model(model_file, variant=variant, device=view["compute"]["device"])
    pred, spread = trained.predict(val, with_spread=True)
    # One frame per acquisition is drawn with the job's seed (conformal.py: why).
    calibration = conformal_calibration(pred, true_points(val), spread, val["group"], view["evaluate"]["coverage"],
                                        seed=int(seed), frame_sizes=zip(val["width"], val["height"]))
    # The digest ties the calibration to the weights it holds for: prediction refuses another model.
    calibration.save(Path(out) / CALIBRATION_FILE, variant=variant, seed=int(seed), split="val",
                     model_sha256=file_sha256(model_file))


@stage("evaluate", reads=["evaluate.confidence", "evaluate.success_radii", "compute"], wildcards=("variant", "seed"),
       inputs=("dataset", "split", "model", "calibration"), on_device=True)
def evaluate(view, *, variant, seed, dataset, split, model, calibration, out):
    """Predict the held-out test split and score it (MRE, per landmark, AoP MAE, intervals over
    its acquisitions) and the calibrated confidence (coverage of the radii and AoP intervals,
    mean radius); the per-frame table is what the ablation pools over seeds."""
    from ..conformal import CALIBRATION_FILE, Calibration, coverage_columns
    from ..inference import load_trained_model
    from ..metrics import prediction_table, summarize
    from ..train.predict import MODEL_FILE

    test = labelled_subsets(dataset, split)["test"]
    trained = load_trained_model(Path(model) / MODEL_FILE, variant=variant, device=view["compute"]["device"])
    pred, spread = trained.predict(test, with_spread=True)
    failed = np.flatnonzero(~np.isfinite(pred).all(axis=(1, 2)))
    if len(failed):  # a NaN error would poison every mean and test built on it
        raise UserError(f"{variant} seed {seed}: the network predicted no finite point for frame "
                        f"{test['filename'].iloc[failed[0]]} ({len(failed)} of {len(test)} test frames); "
                        f"the model in {model} is broken (retrain it)")
    table = prediction_table(test, pred, spread)
    true = true_points(test)
    ev = view["evaluate"]
    metrics = summarize(pred, true, test["group"], radii=ev["success_radii"], confidence=ev["confidence"])
    calibrated = Calibration.load(Path(calibration) / CALIBRATION_FILE)
    for column, values in coverage_columns(pred, true, spread, calibrated).items():
        table[column] = values
    metrics["coverage"] = coverage_summary(table, calibrated, ev)
    metrics.update(variant=variant, seed=int(seed))
    table.to_csv(Path(out) / PREDICTIONS_CSV, index=False)
    (Path(out) / METRICS_JSON).write_text(json.dumps(metrics, indent=1) + "\n")


def coverage_summary(table, calibrated, ev) -> dict:
    """Achieved coverage of each landmark's radius and of the AoP interval on the test frames,
    with its interval over acquisitions, beside the target and the mean radius (width)."""
    from ..geometry import LANDMARKS
    from ..metrics import share_ci

    def achieved(column):
        values = table[column].to_numpy(float)
        lo, hi = share_ci(values, table["group"], ev["confidence"])
        return {"coverage": float(values.mean()), "coverage_ci": (lo, hi)}

    summary = {"target": calibrated.coverage, "calibration_acquisitions": calibrated.n_acquisitions}
    for name in LANDMARKS:
        summary[name] = {**achieved(f"covered_{name}"), "mean_radius": float(table[f"radius_{name}"].mean()),
                         "scaled": calibrated.landmarks[name].scaled}
    summary["aop"] = {**achieved("aop_covered"), "mean_width": float((table["aop_high"] - table["aop_low"]).mean())}
    return summary
