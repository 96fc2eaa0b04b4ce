"""Evaluation stage: one trained model on the held-out test split."""
from __future__ import annotations

import json
from pathlib import Path

from ..data.manifest import labelled_subsets
from .registry import stage

PREDICTIONS_CSV = "predictions.csv"
METRICS_JSON = "metrics.json"


@stage("evaluate", reads=["evaluate", "seed", "compute"], wildcards=("variant", "seed"),
       inputs=("dataset", "split", "model"), on_device=True)
def evaluate(view, *, variant, seed, dataset, split, model, out):
    """Predict the held-out test split and score it (MRE, per landmark, AoP MAE, intervals over
    its acquisitions); the per-frame table is what the ablation pools over seeds."""
    from ..geometry import LANDMARKS
    from ..inference import load_trained_model
    from ..metrics import prediction_table, summarize
    from ..train.predict import MODEL_FILE

    test = labelled_subsets(dataset, split)["test"]
    trained = load_trained_model(Path(model) / MODEL_FILE, variant=variant, device=view["compute"]["device"])
    pred, spread = trained.predict(test, with_spread=True)
    table = prediction_table(test, pred, spread)
    true = table[[f"{n}_{a}" for n in LANDMARKS for a in "xy"]].to_numpy(float).reshape(-1, 3, 2)
    ev = view["evaluate"]
    metrics = summarize(pred, true, test["group"], radii=ev["success_radii"],
                        n_samples=ev["bootstrap_samples"], confidence=ev["confidence"], seed=view["seed"])
    metrics.update(variant=variant, seed=int(seed))
    table.to_csv(Path(out) / PREDICTIONS_CSV, index=False)
    (Path(out) / METRICS_JSON).write_text(json.dumps(metrics, indent=1) + "\n")
