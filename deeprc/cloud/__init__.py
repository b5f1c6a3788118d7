"""Cloud VM bootstrap: cloud-init user-data, a plain bootstrap script and the launch command.

`render_launch(site, pipeline, nodes)` gives the cloud CLI command line for `deeprc-deploy launch
--site <cloud site> --dry-run`; `deeprc-deploy bootstrap` (deeprc.cloud.cli) writes the files.
"""

from deeprc.cloud.launch import launch_argv, render_launch
from deeprc.cloud.plan import BootstrapPlan, make_plan
from deeprc.cloud.render import render_script, render_user_data

__all__ = ["BootstrapPlan", "launch_argv", "make_plan", "render_launch", "render_script", "render_user_data"]
