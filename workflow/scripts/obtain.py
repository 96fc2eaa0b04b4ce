"""Obtain the data (built-in phantom, PSFHS release or IUGC 2025 tree) as a manifest."""
from iugc.stages.data import obtain
from iugc.stages.runner import script_main

script_main("obtain", obtain)
