"""Self-supervised pretraining of one encoder (MoCoV2 or masked AE)."""
from iugc.stages.models import pretrain
from iugc.stages.runner import script_main

script_main("pretrain", pretrain)
