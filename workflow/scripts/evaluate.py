"""Evaluate one variant on the held-out split."""
from iugc.stages.models import evaluate
from iugc.stages.runner import script_main

script_main("evaluate", evaluate)
