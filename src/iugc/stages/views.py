"""What each stage reads of the parameters, and the typed configurations built from it.

This is the one place where params.yaml's nested keys meet the library: every ``*_keys``
function lists the dotted keys a job reads (its view, its snapshot, its DVC ``params:``), and
the builder beside it turns exactly that view into the explicit configuration a library
constructor takes. Below this module no code reads the parameters by string keys.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the builders import them when called: reading keys needs no torch or timm
    from ..data.filtering import FilterConfig
    from ..models.encoders import EncoderSpec
    from ..models.landmark_net import LandmarkNetSpec
    from ..ssl.pretrain import MaeConfig, MocoConfig
    from ..train.finetune import FinetuneConfig

COMPUTE = "compute"  # threads, device, determinism: they change the numbers, so jobs that compute read them

# Loader processes change how fast a job runs, never what it computes (every frame's randomness is
# seeded by epoch and frame): the training stages are handed them as settings, which are not
# their parameters (no snapshot, no DVC params, not in the stamp or a checkpoint's hash), so
# changing them reruns nothing.
FINETUNE_SETTINGS = ("finetune.num_workers",)
PRETRAIN_SETTINGS = ("pretrain.moco.num_workers", "pretrain.mae.num_workers")
SETTINGS = (*FINETUNE_SETTINGS, *PRETRAIN_SETTINGS)


def result_keys(params: Mapping, prefix: str = "") -> list[str]:
    """Every key of ``params`` but the settings (a section that holds one is listed key by key):
    what the report reads, hashes and checks the results against."""
    keys = []
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if any(setting.startswith(f"{dotted}.") for setting in SETTINGS):
            keys += result_keys(value, f"{dotted}.")
        elif dotted not in SETTINGS:
            keys.append(dotted)
    return keys


def pretrain_method(variant: Mapping) -> str | None:
    """The pretraining job a variant needs, e.g. 'moco_hrnet', or None."""
    if variant["pretrain"] == "none":
        return None
    return f"{variant['pretrain']}_{variant['encoder']}"


def pretrain_methods(params: Mapping) -> list[str]:
    return sorted({m for v in params["variants"].values() if (m := pretrain_method(v))})


WIDTHS = {"attention_unet": "attention_unet_channels", "unet": "unet_features"}  # U-Nets: widths, not names


def encoder_key(kind: str) -> str:
    return f"encoders.{WIDTHS.get(kind, kind)}"


def encoder_spec(view: Mapping, kind: str) -> EncoderSpec:
    from ..models.encoders import EncoderSpec

    if kind in WIDTHS:
        return EncoderSpec(kind, channels=tuple(view["encoders"][WIDTHS[kind]]))
    return EncoderSpec(kind, name=view["encoders"][kind])


# --- the landmark network of a variant ---------------------------------------------------------

def landmark_keys(params: Mapping, variant_name: str) -> list[str]:
    """The keys that decide variant ``variant_name``'s network (and no others)."""
    variant = params["variants"][variant_name]
    keys = [f"variants.{variant_name}", "model.image_size", encoder_key(variant["encoder"])]
    if variant["output"] == "heatmaps":
        keys += ["model.soft_argmax_beta"] + (["model.decoder_channels"] if variant["encoder"] != "unet" else [])
    else:
        keys += ["model.coordinate_head"]
    if variant["attention"] and variant["encoder"] != "attention_unet":  # the U-Net's gates are its own
        keys += ["model.cbam_reduction", "model.cbam_kernel"]
    return keys


def landmark_spec(view: Mapping, variant_name: str) -> LandmarkNetSpec:
    from ..models.landmark_net import LandmarkNetSpec

    variant, model = view["variants"][variant_name], view["model"]
    heatmaps = variant["output"] == "heatmaps"
    cbam = variant["attention"] and variant["encoder"] != "attention_unet"
    return LandmarkNetSpec(
        encoder=encoder_spec(view, variant["encoder"]), output=variant["output"],
        attention=variant["attention"], image_size=model["image_size"],
        # The reference U-Net's heatmap head is its own 1x1 output convolution: no decoder blocks.
        decoder_channels=tuple(model["decoder_channels"]) if heatmaps and variant["encoder"] != "unet" else (),
        soft_argmax_beta=model["soft_argmax_beta"] if heatmaps else 1.0,
        cbam_reduction=model["cbam_reduction"] if cbam else None,
        cbam_kernel=model["cbam_kernel"] if cbam else None,
        coordinate_head=None if heatmaps else dict(model["coordinate_head"]))


# --- fine-tuning -------------------------------------------------------------------------------

def finetune_keys(params: Mapping, wildcards: Mapping[str, str]) -> list[str]:
    """Only what the variant uses: lambda_adv and the discriminator's keys for the adversarial
    variant, heatmap keys for heatmap outputs, CBAM keys with attention; so changing lambda_adv
    reruns the adversarial variant alone."""
    name = wildcards["variant"]
    variant = params["variants"][name]
    keys = [*landmark_keys(params, name), "augment", COMPUTE,
            "finetune.epochs", "finetune.batch_size", "finetune.lr_generator", "finetune.weight_decay",
            "finetune.unfreeze_epochs", "finetune.lambda_c", "finetune.amp"]
    if variant["output"] == "heatmaps":
        keys += ["model.heatmap_sigma", "finetune.lambda_h", "finetune.lambda_e"]
    if variant["adversarial"]:
        keys += ["model.discriminator_channels", "model.leaky_relu_slope",
                 "finetune.lr_discriminator", "finetune.lambda_adv"]
    return keys


def finetune_config(view: Mapping, variant_name: str) -> FinetuneConfig:
    from ..data.augment import AugmentConfig
    from ..train.finetune import FinetuneConfig

    variant, ft = view["variants"][variant_name], view["finetune"]
    heatmaps, adversarial = variant["output"] == "heatmaps", variant["adversarial"]
    return FinetuneConfig(
        epochs=ft["epochs"], batch_size=ft["batch_size"], lr_generator=ft["lr_generator"],
        weight_decay=ft["weight_decay"], unfreeze_epochs=tuple(ft["unfreeze_epochs"]),
        lambda_c=ft["lambda_c"], amp=ft["amp"],
        augment=AugmentConfig.from_section(view["augment"]),
        heatmap_sigma=view["model"]["heatmap_sigma"] if heatmaps else None,
        lambda_h=ft["lambda_h"] if heatmaps else None,
        lambda_e=ft["lambda_e"] if heatmaps else None,
        adversarial=adversarial,
        lr_discriminator=ft["lr_discriminator"] if adversarial else None,
        lambda_adv=ft["lambda_adv"] if adversarial else None,
        discriminator_channels=tuple(view["model"]["discriminator_channels"]) if adversarial else (),
        leaky_relu_slope=view["model"]["leaky_relu_slope"] if adversarial else None)


# --- pretraining -------------------------------------------------------------------------------

def pretrain_keys(params: Mapping, wildcards: Mapping[str, str]) -> list[str]:
    kind, encoder = wildcards["method"].split("_", 1)
    method = [f"pretrain.{kind}.{key}" for key in params["pretrain"][kind]
              if f"pretrain.{kind}.{key}" not in PRETRAIN_SETTINGS]
    model = ["model.image_size"] + (["model.projection_dim", "model.projection_hidden"] if kind == "moco" else [])
    return [*model, "augment", *method, encoder_key(encoder), COMPUTE]


def _method_section(view: Mapping, kind: str) -> dict:
    """The pretraining method's settings of Sec. 3.2, without the loader's."""
    return {key: value for key, value in view["pretrain"][kind].items()
            if f"pretrain.{kind}.{key}" not in PRETRAIN_SETTINGS}


def moco_config(view: Mapping, encoder_kind: str) -> MocoConfig:
    from ..data.augment import AugmentConfig
    from ..ssl.pretrain import MocoConfig

    moco = _method_section(view, "moco")
    return MocoConfig(encoder=encoder_spec(view, encoder_kind), image_size=view["model"]["image_size"],
                      augment=AugmentConfig.from_section(view["augment"]),
                      projection_hidden=view["model"]["projection_hidden"],
                      projection_dim=view["model"]["projection_dim"], **moco)


def mae_config(view: Mapping) -> MaeConfig:
    from ..data.augment import AugmentConfig
    from ..ssl.pretrain import MaeConfig

    return MaeConfig(encoder=encoder_spec(view, "attention_unet"), image_size=view["model"]["image_size"],
                     augment=AugmentConfig.from_section(view["augment"]), **_method_section(view, "mae"))


# --- data --------------------------------------------------------------------------------------

def obtain_keys(params: Mapping, wildcards: Mapping[str, str]) -> list[str]:
    keys = ["data.source", "data.root", "data.name", "data.landmarks", "data.max_unlabeled", "seed"]
    return keys + (["phantom"] if params["data"]["source"] == "phantom" else [])


def filter_config(view: Mapping) -> FilterConfig:
    from ..data.filtering import FilterConfig

    return FilterConfig(**view["filter"])
