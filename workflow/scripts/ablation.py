"""Write the ablation table (Table 2 layout) and the DVC metrics."""
from iugc.stages.report import ablation
from iugc.stages.runner import script_main

script_main("ablation", ablation)
