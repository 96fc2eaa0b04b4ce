"""Fine-tune one Table 2 variant."""
from iugc.stages.models import finetune
from iugc.stages.runner import script_main

script_main("finetune", finetune)
