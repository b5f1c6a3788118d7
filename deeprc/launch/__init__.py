"""`launch`, `status`, `logs`, `cancel`: render and submit a pipeline to a site and follow it."""

from deeprc.launch.plan import LaunchPlan, make_plan
from deeprc.launch.render import render, submit_script

__all__ = ["LaunchPlan", "make_plan", "render", "submit_script"]
