"""Networks of a parameter set, built the way the stages build them (through the views)."""
from __future__ import annotations

from iugc.geometry import LANDMARKS
from iugc.models.discriminator import PatchGANDiscriminator
from iugc.models.encoders import build_encoder
from iugc.models.landmark_net import build_landmark_model
from iugc.stages.views import encoder_spec, landmark_spec


def network(params, variant: str):
    """The generator of ``variant``."""
    return build_landmark_model(landmark_spec(params, variant))


def encoder(params, kind: str):
    """The encoder ``kind`` (hrnet, resnet, attention_unet) of the parameter set."""
    return build_encoder(encoder_spec(params, kind))


def discriminator(params):
    model = params["model"]
    return PatchGANDiscriminator(len(LANDMARKS), model["discriminator_channels"], model["leaky_relu_slope"])


def augment(section, seed=None):
    """Table 1's training transform from an ``augment`` section of the parameters."""
    from iugc.data.augment import AugmentConfig, build_augment

    return build_augment(AugmentConfig.from_section(section), seed=seed)


def eval_transform(section):
    """The evaluation transform (normalisation) from an ``augment`` section."""
    from iugc.data.augment import build_eval_transform

    return build_eval_transform(section["normalize_mean"], section["normalize_std"])
