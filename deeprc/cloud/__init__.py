"""Cloud VM bootstrap: cloud-init user-data, a plain bootstrap script and the launch command.

`render_provision(site, pipeline, nodes)` gives the cloud CLI command line for `deeprc-deploy launch
--site <cloud site> --dry-run`; `deeprc-deploy bootstrap` (deeprc.cloud.cli) writes the files.
"""

from deeprc.cloud.provision import provision_argv, render_provision
from deeprc.cloud.plan import BootstrapPlan, make_plan
from deeprc.cloud.render import render_script, render_user_data

__all__ = ["BootstrapPlan", "provision_argv", "make_plan", "render_provision", "render_script", "render_user_data"]
