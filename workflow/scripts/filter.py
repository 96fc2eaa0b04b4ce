"""Select the standard-plane pretraining pool (and say why frames were dropped)."""
from iugc.stages.data import filter_planes
from iugc.stages.runner import script_main

script_main("filter", filter_planes)
