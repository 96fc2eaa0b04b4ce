"""Record the provenance of the report."""
from iugc.stages.report import provenance
from iugc.stages.runner import script_main

script_main("provenance", provenance)
