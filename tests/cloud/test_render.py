"""Rendered user-data and scripts: cloud-init schema, shellcheck, quoting, secrets, launch commands."""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from deeprc.cloud import provision_argv, make_plan, render_provision, render_script, render_user_data
from deeprc.cloud.keys import generate_keypair
from deeprc.errors import DeepRCError
from deeprc.sites import list_sites, load_site, validate_site

from .conftest import AWS_EFA, GCP_GPU, deeprc, need_tool, write_site

PRIVATE_MARK = "PRIVATE KEY-----"


def _render(site_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return deeprc("bootstrap", "--site", str(site_path), "--out", str(out), *extra)


@pytest.mark.parametrize("which,extra", [
    ("aws", ["--hosts", "10.0.1.11,10.0.1.12", "--pipeline", "pipelines/demo.yaml"]),
    ("aws", []),
    ("gcp", ["--hosts", "deeprc-0.internal,deeprc-1.internal"]),
    ("vm", ["--install", "venv", "--no-deps", "--package", "torch==2.13.0", "--wheels", "/mnt/wheels"]),
])
def test_rendered_files_pass_cloud_init_schema_and_shellcheck(sites, tmp_path, which, extra):
    cloud_init = need_tool("cloud-init")
    shellcheck = need_tool("shellcheck")
    out = tmp_path / "out"
    _render(sites[which], out, *extra)
    ud = out / "user-data.yaml"
    assert ud.read_text().startswith("#cloud-config\n")
    proc = subprocess.run([cloud_init, "schema", "--config-file", str(ud)], capture_output=True, text=True)
    assert proc.returncode == 0 and "Valid cloud-config" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run([shellcheck, "--severity=style", str(out / "bootstrap.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    # the script inside user-data is the plain script, byte for byte
    embedded = yaml.safe_load(ud.read_text())["write_files"][0]["content"]
    assert embedded.rstrip("\n") == (out / "bootstrap.sh").read_text().rstrip("\n")


def test_cloud_init_schema_check_can_fail(tmp_path):
    """The schema check used above really rejects bad user-data."""
    cloud_init = need_tool("cloud-init")
    bad = tmp_path / "bad.yaml"
    bad.write_text("#cloud-config\nwrite_files:\n  - path: /x\n    permissions: 600\n    bogus_key: 1\nruncmd: 7\n")
    proc = subprocess.run([cloud_init, "schema", "--config-file", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0


def test_cluster_files_modes_and_no_key_in_output(sites, tmp_path):
    out = tmp_path / "out"
    proc = _render(sites["aws"], out, "--hosts", "10.0.1.11,10.0.1.12")
    key = (out / "cluster_key").read_text()
    assert key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    for name, mode in (("cluster_key", 0o600), ("user-data.yaml", 0o600), ("bootstrap.sh", 0o700)):
        assert stat.S_IMODE((out / name).stat().st_mode) == mode, name
    assert PRIVATE_MARK not in proc.stdout + proc.stderr
    body = [ln for ln in key.splitlines() if "-----" not in ln]
    assert all(ln not in proc.stdout for ln in body)
    assert (out / "hostfile").read_text() == "10.0.1.11 slots=8\n10.0.1.12 slots=8\n"
    assert key in (out / "bootstrap.sh").read_text()  # the VMs get it, written there with umask 077
    pub = (out / "cluster_key.pub").read_text().strip()
    assert pub.startswith("ssh-ed25519 ") and pub in (out / "bootstrap.sh").read_text()
    assert f"--user-data fileb://{out}/user-data.yaml.gz" in (out / "launch.sh").read_text()
    # EC2 accepts at most 16 KB of user-data; the gzip'd copy is what AWS gets, and it is the same text
    import gzip

    gz = (out / "user-data.yaml.gz").read_bytes()
    assert len(gz) < 16 * 1024 and gzip.decompress(gz).decode() == (out / "user-data.yaml").read_text()
    assert stat.S_IMODE((out / "user-data.yaml.gz").stat().st_mode) == 0o600


def test_dry_run_redacts_key_and_writes_nothing(sites, tmp_path):
    out = tmp_path / "out"
    proc = _render(sites["aws"], out, "--hosts", "10.0.1.11,10.0.1.12", "--dry-run")
    assert not out.exists()
    assert PRIVATE_MARK not in proc.stdout + proc.stderr
    assert "<redacted: cluster private key>" in proc.stdout
    assert "#cloud-config" in proc.stdout
    assert "aws ec2 run-instances" in proc.stdout


def test_hostile_config_values_are_quoted(tmp_path):
    """Values with spaces, quotes, $(...) and backticks reach bash as data, never as code."""
    canary = tmp_path / "pwned"
    evil = f"x $(touch {canary}) `touch {canary}` ' \" ; touch {canary}"
    data = json.loads(json.dumps(AWS_EFA))
    data["container"]["image"] = evil
    data["network"]["env"] = {"FI_EFA_FORK_SAFE": evil}
    site = validate_site(data, tmp_path / "evil.yaml")
    plan = make_plan(site, hosts=["10.0.0.1"], pipeline=evil, pipeline_args=[evil], keys=generate_keypair(),
                     source=evil, packages=[evil])
    script = render_script(plan)
    settings = script[script.index("# ---- rendered settings"):script.index("STATE_DIR=")]
    probe = settings + 'printf "%s\\n" "$IMAGE" "$PIPELINE" "${PIPELINE_ARGS[0]}" "$DEEPRC_SOURCE" "${PIP_PACKAGES[0]}" "${FABRIC_ENV[0]}"\n'
    proc = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [evil] * 5 + [f"FI_EFA_FORK_SAFE={evil}"]
    assert not canary.exists()


def test_launch_command_aws_efa(sites, tmp_path):
    site = load_site(sites["aws"])
    cmd = provision_argv(site, "pipelines/demo.yaml", 4, tmp_path / "user-data.yaml")
    assert cmd[:3] == ["aws", "ec2", "run-instances"]
    args = dict(zip(cmd[3::1], cmd[4::1]))
    assert args["--count"] == "4" and args["--instance-type"] == "p4d.24xlarge"
    nic = json.loads(args["--network-interfaces"])[0]
    assert nic["InterfaceType"] == "efa" and nic["SubnetId"] == "subnet-0abc" and nic["Groups"] == ["sg-0abc"]
    assert args["--placement"] == "GroupName=deeprc-pg"
    assert cmd[-2:] == ["--user-data", f"fileb://{tmp_path / 'user-data.yaml.gz'}"]
    assert shlex.split(render_provision(site, "pipelines/demo.yaml", 4, tmp_path / "user-data.yaml")) == cmd


def test_launch_command_gcp_gpu(sites, tmp_path):
    cmd = provision_argv(load_site(sites["gcp"]), None, 2, tmp_path / "ud.yaml")
    assert cmd[:4] == ["gcloud", "compute", "instances", "create"]
    assert cmd[4:6] == ["deeprc-gcp-a100-test-0", "deeprc-gcp-a100-test-1"]
    joined = shlex.join(cmd)
    assert "--accelerator type=nvidia-tesla-a100,count=1" in joined
    assert "--maintenance-policy TERMINATE" in joined and "--project my-project" in joined
    assert cmd[-2:] == ["--metadata-from-file", f"user-data={tmp_path / 'ud.yaml'}"]


def test_shipped_cloud_sites_render(tmp_path):
    """Every cloud site in site-configs/ renders valid user-data and a launch command."""
    names = [n for n in list_sites() if load_site(n).cloud is not None]
    if not names:
        pytest.skip("no cloud site in site-configs/ yet")
    cloud_init = need_tool("cloud-init")
    for name in names:
        site = load_site(name)
        hosts = ["10.0.0.1", "10.0.0.2"]
        plan = make_plan(site, hosts=hosts, keys=generate_keypair())
        ud = tmp_path / f"{name}.yaml"
        ud.write_text(render_user_data(render_script(plan)))
        proc = subprocess.run([cloud_init, "schema", "--config-file", str(ud)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}: {proc.stdout}{proc.stderr}"
        assert render_provision(site, None, 2, ud).split()[0] in ("aws", "gcloud")


@pytest.mark.parametrize("change,needle", [
    ({"cloud": None}, "no 'cloud' section"),
    ({"cloud": {**AWS_EFA["cloud"], "options": {}}}, "cloud.options.subnet_id"),
])
def test_bad_sites_get_one_clear_error(tmp_path, change, needle):
    data = {**json.loads(json.dumps(AWS_EFA)), **change}
    if data["cloud"] is None:
        del data["cloud"]
    path = write_site(tmp_path, "bad-site", data)
    proc = deeprc("bootstrap", "--site", str(path), "--dry-run", check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and needle in proc.stderr and "Fix:" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["--nodes", "3", "--hosts", "10.0.0.1,10.0.0.2"], "--nodes 3 but --hosts lists 2"),
    (["--nodes", "2"], "needs the VMs' addresses"),
    (["--hosts", "10.0.0.1,bad host!"], "neither an IP address nor a host name"),
    (["--hosts", "10.0.0.1,10.0.0.1"], "same address twice"),
])
def test_bad_options_get_one_clear_error(sites, args, needle):
    proc = deeprc("bootstrap", "--site", str(sites["aws"]), "--dry-run", *args, check=False)
    assert proc.returncode == 2 and needle in proc.stderr and "Fix:" in proc.stderr, proc.stderr


def test_gcp_without_zone_is_an_error(tmp_path):
    data = json.loads(json.dumps(GCP_GPU))
    del data["cloud"]["zone"]
    with pytest.raises(DeepRCError, match="cloud.zone"):
        render_provision(validate_site(data, tmp_path / "g.yaml"), None, 1)
