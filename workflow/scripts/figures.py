"""Draw the report figures."""
from iugc.stages.report import figures
from iugc.stages.runner import script_main

script_main("figures", figures)
