"""Which parameters each stage reads: the single source for Snakemake's snapshots, DVC's
``params:`` lists and the view each stage is handed."""
from __future__ import annotations

from typing import Callable

def _obtain(params, _):
    keys = ["data.source", "data.root", "data.max_labeled", "data.max_unlabeled", "seed"]
    return keys + (["phantom"] if params["data"]["source"] == "phantom" else [])


def _split(params, _):
    return ["split", "seed"]


def _filter(params, _):
    return ["filter", "seed"]


def pretrain_method(variant: dict) -> str | None:
    """The pretraining job a variant needs, e.g. 'moco_hrnet', or None."""
    if variant["pretrain"] == "none":
        return None
    return f"{variant['pretrain']}_{variant['encoder']}"


def pretrain_methods(params) -> list[str]:
    return sorted({m for v in params["variants"].values() if (m := pretrain_method(v))})


def _pretrain(params, method):
    from ..ssl.pretrain import mae_param_keys, moco_param_keys

    kind, encoder = method.split("_", 1)
    return moco_param_keys(encoder) if kind == "moco" else mae_param_keys()


def _finetune(params, variant_name):
    from ..train.finetune import finetune_param_keys

    return finetune_param_keys(params, variant_name)


def _evaluate(params, variant_name):
    from ..models.landmark_net import model_param_keys

    return [*model_param_keys(params, variant_name), "augment.normalize_mean", "augment.normalize_std",
            "evaluate", "seed"]


def _ablation(params, _):
    return ["preset", "data.source", "variants", "encoders.hrnet", "encoders.resnet"]


def _figures(params, _):
    return ["preset", "variants", "report", "model.heatmap_sigma", "model.image_size"]


def _provenance(params, _):
    # The provenance records the hash of the whole parameter set, so it reads all of it.
    return list(params)


_KEYS: dict[str, Callable] = {
    "obtain": _obtain,
    "validate": lambda params, _: [],
    "split": _split,
    "filter": _filter,
    "pretrain": _pretrain,
    "finetune": _finetune,
    "evaluate": _evaluate,
    "ablation": _ablation,
    "figures": _figures,
    "provenance": _provenance,
}
STAGES = tuple(_KEYS)


def param_keys(stage: str, params: dict, wildcard: str | None = None) -> list[str]:
    """Dotted keys of ``params`` that ``stage`` (for ``wildcard``) reads."""
    if stage not in _KEYS:
        raise KeyError(f"unknown stage {stage!r}")
    return _KEYS[stage](params, wildcard)
