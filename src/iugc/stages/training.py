"""Training stages: self-supervised pretraining of an encoder, fine-tuning of a Table 2 variant.

Both run once per seed of ``study.seeds`` (the ``seed`` wildcard): the seed decides the
initial weights, the shuffling and the augmentations; a variant's fine-tuning starts from the
encoder its method pretrained with the same seed.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..data.manifest import labelled_subsets
from .registry import stage
from .views import (FINETUNE_SETTINGS, PRETRAIN_SETTINGS, finetune_config, finetune_keys, landmark_spec,
                    mae_config, moco_config, pretrain_keys)

SUMMARY_JSON = "summary.json"


def _write_summary(out, summary: dict) -> None:
    (Path(out) / SUMMARY_JSON).write_text(json.dumps(summary, indent=1, default=str) + "\n")


@stage("pretrain", reads=pretrain_keys, wildcards=("method", "seed"), inputs=("pool",),
       settings=PRETRAIN_SETTINGS, on_device=True)
def pretrain(view, *, method, seed, pool, out, checkpoints):
    """Pretrain an encoder on the filtered pool: MoCoV2 (hrnet, resnet) or masked AE (attention U-Net)."""
    from ..data.filtering import POOL_CSV
    from ..ssl.pretrain import pretrain_mae, pretrain_moco
    from ..train.runtime import choose_device

    paths = pd.read_csv(Path(pool) / POOL_CSV)["image_path"].tolist()
    kind, encoder = method.split("_", 1)
    options = dict(seed=int(seed), out_dir=out, checkpoint_dir=checkpoints,
                   device=choose_device(view["compute"]["device"]),
                   deterministic=view["compute"]["deterministic"],
                   num_workers=view["pretrain"][kind]["num_workers"])
    if kind == "moco":
        summary = pretrain_moco(moco_config(view, encoder), paths, **options)
    else:
        summary = pretrain_mae(mae_config(view), paths, **options)
    _write_summary(out, summary)


@stage("finetune", reads=finetune_keys, wildcards=("variant", "seed"),
       inputs=("dataset", "split", "encoder"), settings=FINETUNE_SETTINGS, on_device=True)
def finetune(view, *, variant, seed, dataset, split, encoder=None, out, checkpoints):
    """Fine-tune one variant on the training split; validation MRE logged per epoch."""
    from ..ssl.pretrain import ENCODER_FILE
    from ..train.finetune import finetune as run_finetune
    from ..train.runtime import choose_device

    subsets = labelled_subsets(dataset, split)
    weights = Path(encoder) / ENCODER_FILE if encoder else None
    # Checkpoints live outside the declared output so a killed job resumes under either tool.
    summary = run_finetune(variant, landmark_spec(view, variant), finetune_config(view, variant),
                           subsets["train"], subsets["val"], out, seed=int(seed),
                           encoder_weights=weights, checkpoint_dir=checkpoints,
                           device=choose_device(view["compute"]["device"]),
                           deterministic=view["compute"]["deterministic"],
                           num_workers=view["finetune"]["num_workers"])
    _write_summary(out, summary)
