"""Split the labelled frames by acquisition into train, val and test."""
from iugc.stages.data import split
from iugc.stages.runner import script_main

script_main("split", split)
