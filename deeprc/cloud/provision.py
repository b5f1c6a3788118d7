"""The exact cloud CLI command that starts a cloud site's VMs with the bootstrap user-data.

`deeprc-deploy launch --site <cloud site> --dry-run` prints it; no credentials are needed
to render it. AWS uses `aws ec2 run-instances`, Google Cloud `gcloud compute instances create`.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deeprc.cloud.plan import cloud_site
from deeprc.errors import DeepRCError

if TYPE_CHECKING:
    from deeprc.sites.schema import Site

DEFAULT_USER_DATA = Path("deeprc-bootstrap") / "user-data.yaml"
# EC2 takes at most 16 KB of user-data: AWS gets the gzip'd copy (cloud-init reads it as is).
AWS_USER_DATA_LIMIT = 16 * 1024
# Public, documented defaults when the site names no machine image.
AWS_GPU_AMI = "resolve:ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
AWS_CPU_AMI = "resolve:ssm:/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id"
GCP_GPU_IMAGE = ("common-cu124-debian-11-py310", "deeplearning-platform-release")
GCP_CPU_IMAGE = ("debian-12", "debian-cloud")


def pipeline_name(pipeline: Any) -> str | None:
    """A pipeline's name from a path or a loaded spec (deeprc.pipeline.spec.Pipeline)."""
    if pipeline is None:
        return None
    if isinstance(pipeline, (str, Path)):
        return Path(pipeline).stem
    return str(getattr(pipeline, "name", "") or "") or None


def _name(site: Site, pipeline: Any) -> str:
    name = pipeline_name(pipeline)
    base = f"deeprc-{site.name}" + (f"-{name}" if name else "")
    return re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:50]


def _opt(site: Site, key: str) -> Any:
    return site.cloud.options.get(key)


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]


def aws_command(site: Site, pipeline: Any, nodes: int, user_data: Path) -> list[str]:
    """`aws ec2 run-instances` for `nodes` VMs (EFA interface and placement group when the site asks)."""
    c = site.cloud
    image = c.machine_image or (AWS_GPU_AMI if c.accelerator_count or c.efa else AWS_CPU_AMI)
    cmd = ["aws", "ec2", "run-instances"]
    if c.region:
        cmd += ["--region", c.region]
    cmd += ["--image-id", image, "--instance-type", c.instance_type, "--count", str(nodes)]
    if _opt(site, "key_name"):
        cmd += ["--key-name", str(_opt(site, "key_name"))]
    subnet = _opt(site, "subnet_id")
    groups = _list(_opt(site, "security_group_ids"))
    if c.efa:
        if not subnet:
            raise DeepRCError(
                f"site '{site.name}' field 'cloud.options.subnet_id': EFA instances need a subnet for their EFA network interface. "
                "Fix: add `subnet_id: subnet-...` (and `security_group_ids: [sg-...]` allowing all traffic within the group) under cloud.options."
            )
        nic: dict[str, Any] = {"DeviceIndex": 0, "NetworkCardIndex": 0, "InterfaceType": "efa", "SubnetId": str(subnet), "DeleteOnTermination": True}
        if groups:
            nic["Groups"] = groups
        cmd += ["--network-interfaces", json.dumps([nic], separators=(",", ":"))]
    else:
        if subnet:
            cmd += ["--subnet-id", str(subnet)]
        if groups:
            cmd += ["--security-group-ids", *groups]
    if c.placement_group:
        cmd += ["--placement", f"GroupName={c.placement_group}"]
    if c.zone and not c.placement_group and not subnet:
        cmd += ["--placement", f"AvailabilityZone={c.zone}"]
    root = str(_opt(site, "root_device") or "/dev/sda1")
    cmd += ["--block-device-mappings", json.dumps([{"DeviceName": root, "Ebs": {"VolumeSize": c.disk_gb, "VolumeType": "gp3", "DeleteOnTermination": True}}], separators=(",", ":"))]
    if _opt(site, "iam_instance_profile"):
        cmd += ["--iam-instance-profile", f"Name={_opt(site, 'iam_instance_profile')}"]
    tags = [{"Key": "Name", "Value": _name(site, pipeline)}, {"Key": "deeprc-site", "Value": site.name}]
    if pipeline_name(pipeline):
        tags.append({"Key": "deeprc-pipeline", "Value": str(pipeline_name(pipeline))})
    cmd += ["--tag-specifications", json.dumps([{"ResourceType": "instance", "Tags": tags}], separators=(",", ":"))]
    if user_data.suffix != ".gz":
        user_data = user_data.with_name(user_data.name + ".gz")
    cmd += ["--user-data", f"fileb://{user_data}"]
    return cmd


def gcp_command(site: Site, pipeline: Any, nodes: int, user_data: Path) -> list[str]:
    """`gcloud compute instances create` for `nodes` VMs (GPUs need maintenance policy TERMINATE)."""
    c = site.cloud
    if not c.zone:
        raise DeepRCError(
            f"site '{site.name}' field 'cloud.zone': Google Cloud VMs are created in a zone. Fix: add e.g. `zone: us-central1-a` under cloud."
        )
    base = _name(site, pipeline)
    names = [base] if nodes == 1 else [f"{base}-{i}" for i in range(nodes)]
    cmd = ["gcloud", "compute", "instances", "create", *names]
    if _opt(site, "project"):
        cmd += ["--project", str(_opt(site, "project"))]
    cmd += ["--zone", c.zone, "--machine-type", c.instance_type]
    gpu = bool(c.accelerator or c.accelerator_count)
    if c.accelerator:
        cmd += ["--accelerator", f"type={c.accelerator},count={max(c.accelerator_count, 1)}"]
    if gpu:
        cmd += ["--maintenance-policy", "TERMINATE"]
    image = c.machine_image
    if image and "/family/" in image:  # projects/P/global/images/family/F
        parts = image.split("/")
        cmd += ["--image-family", parts[-1], "--image-project", parts[1]]
    elif image:
        cmd += ["--image", image]
    else:
        family, project = GCP_GPU_IMAGE if gpu else GCP_CPU_IMAGE
        cmd += ["--image-family", family, "--image-project", project]
    cmd += ["--boot-disk-size", f"{c.disk_gb}GB"]
    for key, flag in (("network", "--network"), ("subnet", "--subnet"), ("placement_policy", "--resource-policies")):
        if _opt(site, key):
            cmd += [flag, str(_opt(site, key))]
    if c.placement_group and not _opt(site, "placement_policy"):
        cmd += ["--resource-policies", c.placement_group]
    labels = f"deeprc-site={re.sub(r'[^a-z0-9_-]', '-', site.name.lower())}"
    cmd += ["--labels", labels]
    if gpu:
        cmd += ["--metadata", "install-nvidia-driver=True"]
    cmd += ["--metadata-from-file", f"user-data={user_data}"]
    return cmd


def render_provision(site: Site, pipeline: Any, nodes: int, user_data: str | Path | None = None) -> str:
    """The exact cloud CLI command (one shell line) that starts `nodes` VMs of `site`.

    `site` is a loaded cloud site (`deeprc.sites.load_site`) or its name; `user_data` is the
    file `deeprc-deploy bootstrap --out DIR` writes (default deeprc-bootstrap/user-data.yaml;
    AWS gets its gzip'd copy user-data.yaml.gz, since EC2 accepts at most 16 KB).
    :func:`provision_argv` gives the same command as a list.
    """
    return shlex.join(provision_argv(site, pipeline, nodes, user_data))


def provision_argv(site: Site, pipeline: Any, nodes: int, user_data: str | Path | None = None) -> list[str]:
    """:func:`render_provision` as an argv list."""
    if isinstance(site, (str, Path)):
        from deeprc.sites import load_site

        site = load_site(site)
    site = cloud_site(site)
    if nodes < 1:
        raise DeepRCError("launch: --nodes must be 1 or more. Fix: pass the number of VMs, e.g. --nodes 2.")
    path = Path(user_data) if user_data is not None else DEFAULT_USER_DATA
    provider = site.cloud.provider
    if provider == "aws":
        return aws_command(site, pipeline, nodes, path)
    if provider == "gcp":
        return gcp_command(site, pipeline, nodes, path)
    raise DeepRCError(
        f"site '{site.name}' field 'cloud.provider': {provider!r} has no launch command in DeepRC yet. "
        "Fix: use provider aws or gcp, or start the VMs yourself with the user-data from `deeprc-deploy bootstrap --out DIR`."
    )


