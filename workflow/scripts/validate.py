"""Validate the obtained dataset and record its summary."""
from iugc.stages.data import validate
from iugc.stages.runner import script_main

script_main("validate", validate)
