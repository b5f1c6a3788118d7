"""`launch`, `status`, `logs`, `cancel`: render and submit a pipeline to a site and follow it."""

from deeprc.launch.plan import LaunchPlan, make_plan
from deeprc.launch.render import render
from deeprc.launch.request import LaunchRequest

__all__ = ["LaunchPlan", "LaunchRequest", "make_plan", "render"]
