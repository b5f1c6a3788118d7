"""The recipe renders into an OCI Containerfile and an Apptainer def that agree, pass
spython and shellcheck, and pin what constraints.txt pins. No image is built here."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from spython.main.parse.parsers import DockerParser, SingularityParser

from deeprc import __version__
from deeprc.errors import DeepRCError
from deeprc.images.cli import build
from deeprc.images.inputs import pycylon_version
from deeprc.images.recipe import check_copies, expand, load_recipe, resolve_args
from deeprc.images.render import write_recipes
from deeprc.images.store import image_record, load_images, save_record

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ["cpu", "cuda"]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        if m:
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def recipe() -> dict:
    return load_recipe(REPO)


@pytest.fixture(scope="module")
def rendered(recipe, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    out = {}
    for variant in VARIANTS:
        folder = tmp_path_factory.mktemp(variant)
        args = resolve_args(recipe, variant)
        out[variant] = write_recipes(REPO, recipe, variant, args, folder)
    return out


def _parse(containerfile: Path, deffile: Path):
    docker = list(DockerParser(str(containerfile)).recipe.values())[-1]
    sing = list(SingularityParser(str(deffile)).recipe.values())[-1]
    return docker, sing


def _unquote(assignment: str) -> tuple[str, str]:
    key, _, value = assignment.partition("=")
    words = shlex.split(value)  # "..." (Containerfile) or shell-quoted (the def's %post and %environment)
    return key, words[0] if words else ""


@pytest.mark.parametrize("variant", VARIANTS)
def test_containerfile_and_def_agree(rendered, recipe, variant):
    docker, sing = _parse(*rendered[variant])
    args = resolve_args(recipe, variant)
    assert docker.fromHeader == sing.fromHeader == args["BASE_IMAGE"]

    # RUN steps of the Containerfile == the step lines of %post, in order
    runs = [re.sub(r"^(--mount=\S+\s+)+", "", line) for line in docker.install
            if line.strip().startswith(("sh ", "--mount="))]
    post_steps = [line for line in sing.install if line.startswith("sh ")]
    assert runs == post_steps == [f"sh /opt/deeprc/steps/{Path(s['script']).name}" for s in recipe["steps"]]

    # the build arguments (ARG) are what %post exports, with the same values
    assigned = dict(_unquote(x) for x in docker.install if re.match(r"^[A-Z_][A-Z0-9_]*=", x))
    docker_args = {k: v for k, v in assigned.items() if k in args}  # spython lists ENV here too
    post_exports = dict(_unquote(x[len("export "):]) for x in sing.install if x.startswith("export "))
    assert docker_args == {k: v for k, v in post_exports.items() if k in args} == args

    # same environment at run time (and during the build)
    docker_env = [_unquote(e) for e in docker.environ]
    sing_env = [_unquote(e) for e in sing.environ]
    assert docker_env == sing_env and dict(docker_env)["PATH"].startswith("/opt/deeprc/venv/bin")
    assert all(post_exports[k] == v for k, v in docker_env)

    # same labels once the Containerfile's ${ARG}s take their defaults
    docker_labels = {k: expand(v, docker_args) for k, v in (_unquote(lbl[0]) for lbl in docker.labels)}
    sing_labels = dict(lbl.split(" ", 1) for lbl in sing.labels)
    assert docker_labels == sing_labels
    assert sing_labels["org.deeprc.variant"] == variant

    # same files in the same places (the def copies containers/steps as a whole)
    docker_files = {(src, dst) for src, dst in docker.files if not src.startswith("containers/steps/")}
    sing_files = {tuple(f.split()) for f in sing.files} - {("containers/steps", "/opt/deeprc/steps"),
                                                           ("containers/inputs", "/tmp/deeprc-inputs")}
    assert docker_files == sing_files
    assert docker.entrypoint == ["deeprc-deploy"] and "deeprc-deploy" in sing.cmd


def test_each_step_declares_the_arguments_its_script_reads(recipe, rendered):
    """An ARG declared after the RUN that reads it would be empty there (the build would break)."""
    text = rendered["cpu"][0].read_text()
    declared: set[str] = set()
    for line in text.splitlines():
        if line.startswith("ARG "):
            declared.add(line[4:].split("=")[0])
        m = re.match(r"^RUN .*sh /opt/deeprc/steps/(\S+)$", line)
        if m:
            script = (REPO / "containers" / "steps" / m.group(1)).read_text()
            if "pip-setup.sh" in script:
                script += (REPO / "containers" / "steps" / "pip-setup.sh").read_text()
            used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", script)) & set(recipe["args"])
            assert used <= declared, f"{m.group(1)} reads {sorted(used - declared)} before its ARG"


def test_labels_name_every_component(recipe):
    labels = recipe["labels"]
    for component in ("torch", "tensorflow", "tf-keras", "mpi", "mpi4py", "python", "pycylon",
                      "neuralforecast", "radical-pilot", "pyarrow"):
        assert f"org.deeprc.{component}" in labels
    assert labels["org.opencontainers.image.version"] == "${DEEPRC_VERSION}"


def test_default_user_is_not_root(rendered):
    text = rendered["cpu"][0].read_text()
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["deeprc-deploy"]' in text


def test_cuda_variant_uses_cuda_builds(recipe):
    args = resolve_args(recipe, "cuda")
    assert re.search(r"nvidia/cuda:12\.[\d.]+-.*runtime", args["BASE_IMAGE"])
    assert args["TORCH_VERSION"].endswith("+cu128") and args["TORCH_INDEX_URL"].endswith("/whl/cu128")
    assert args["TF_EXTRA"] == "[and-cuda]"


def test_committed_renders_are_current(recipe, tmp_path):
    for variant in VARIANTS:
        args = resolve_args(recipe, variant)
        folder = REPO / "containers" / "rendered" / variant
        cf, df = write_recipes(REPO, recipe, variant, args, tmp_path / variant)
        # the header's build hint names the rendered path, which differs here
        for fresh, committed in ((cf, folder / "Containerfile"), (df, folder / "deeprc.def")):
            want = committed.read_text()
            assert _strip_header(fresh.read_text()) == _strip_header(want), (
                f"{committed} is stale: run `python -m deeprc.images` and commit containers/rendered/")


def _strip_header(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("#   "))


def test_pins_match_constraints(recipe):
    pins = _constraints()
    for variant in VARIANTS:
        args = resolve_args(recipe, variant)
        checks = {
            "TORCH_VERSION": "torch", "TF_VERSION": "tensorflow", "TF_KERAS_VERSION": "tf-keras",
            "NEURALFORECAST_VERSION": "neuralforecast", "RADICAL_PILOT_VERSION": "radical-pilot",
            "PYARROW_VERSION": "pyarrow", "MPI4PY_VERSION": "mpi4py", "MPI_VERSION": args["MPI"],
        }
        for arg, package in checks.items():
            assert package in pins, f"constraints.txt pins no {package}"
            want, have = pins[package], args[arg]
            # constraints.txt pins the public release; the recipe names its build (+cpu, +cu128)
            want, have = want, have.split("+")[0]
            assert have == want, f"{variant}: {arg}={have} but constraints.txt pins {package}=={pins[package]}"


def test_step_scripts_pass_shellcheck():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    scripts = sorted(str(p.relative_to(REPO)) for p in (REPO / "containers" / "steps").glob("*.sh"))
    proc = subprocess.run(["shellcheck", "-x", "-s", "sh", "-S", "style", *scripts], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ignore_files_keep_the_venv_out():
    ci = (REPO / ".containerignore").read_text()
    assert ci == (REPO / ".dockerignore").read_text()
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    assert not any(ln.startswith("!") and ln[1:].startswith((".venv", "runs", ".deeprc")) for ln in lines)
    # everything the recipe copies is let back in
    for step in load_recipe(REPO)["steps"]:
        for path in step.get("copy", []) + [step["script"]]:
            assert any(path == ln[1:] or path.startswith(ln[1:] + "/") for ln in lines if ln.startswith("!")), path


def test_unknown_build_arg_is_a_clear_error(recipe):
    with pytest.raises(DeepRCError, match=r"recipe.yaml: field 'args'.*no build argument 'TORCH'.*Fix: use one of"):
        resolve_args(recipe, "cpu", {"TORCH": "1"})
    with pytest.raises(DeepRCError, match=r"no variant 'rocm'"):
        resolve_args(recipe, "rocm")


def test_dry_run_prints_exact_commands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    meta = tmp_path / "images.json"
    result = CliRunner().invoke(build, [
        "--runtime", "podman", "--dry-run", "--context", str(REPO), "--tag", "localhost/deeprc:dry",
        "--base", "localhost/debian:bookworm", "--build-arg", "MPI=mpich", "--build-arg", "MPI_VERSION=4.3.2",
        "--metadata", str(meta)])
    assert result.exit_code == 0, result.output
    containerfile = tmp_path / ".deeprc" / "build" / "localhost_deeprc_dry" / "Containerfile"
    expected = f"podman build -f {containerfile} -t localhost/deeprc:dry --network host {REPO}"
    assert expected in result.output
    text = containerfile.read_text()
    assert 'ARG MPI="mpich"' in text and 'ARG MPI_VERSION="4.3.2"' in text
    assert not meta.exists()  # nothing was built


def test_dry_run_apptainer_from_oci_archive(tmp_path, monkeypatch):
    if shutil.which("podman") is None:
        pytest.skip("needs podman on PATH to plan the OCI build that apptainer converts")
    monkeypatch.chdir(tmp_path)
    sif = tmp_path / "d.sif"
    result = CliRunner().invoke(build, [
        "--runtime", "apptainer", "--dry-run", "--context", str(REPO), "--sif", str(sif), "--push",
        "--tag", "registry.example.org/deeprc:1"])
    assert result.exit_code == 0, result.output
    archive = tmp_path / ".deeprc" / "build" / "registry.example.org_deeprc_1" / "deeprc-cpu.oci.tar"
    assert f"podman save --format oci-archive -o {archive} registry.example.org/deeprc:1" in result.output
    assert f"apptainer build --force {sif} oci-archive://{archive}" in result.output
    assert f"apptainer push {sif} oras://registry.example.org/deeprc:1" in result.output
    result = CliRunner().invoke(build, [
        "--runtime", "apptainer", "--dry-run", "--context", str(REPO), "--sif", str(sif), "--sif-from", "def"])
    assert f"apptainer build --force {sif} {tmp_path / '.deeprc/build/localhost_deeprc_0.1.0-cpu/deeprc.def'}" in result.output


def test_metadata_round_trip_and_missing_variant(tmp_path):
    meta = tmp_path / ".deeprc" / "images.json"
    save_record({"variant": "cpu", "ref": "localhost/deeprc:x", "digest": "sha256:ab"}, meta)
    assert image_record("cpu", meta)["ref"] == "localhost/deeprc:x"
    assert (tmp_path / ".deeprc" / ".gitignore").read_text() == "*\n"
    with pytest.raises(DeepRCError, match=r"images.json: field 'images.cuda'.*deeprc-deploy build --variant cuda"):
        image_record("cuda", meta)
    meta.write_text("{not json")
    with pytest.raises(DeepRCError, match="is not valid JSON"):
        load_images(meta)
    assert json.loads(json.dumps(load_images(tmp_path / "none.json"))) == {"images": {}}


def test_pycylon_wheel_is_detected(tmp_path):
    wheels = tmp_path / "containers" / "inputs" / "wheels"
    wheels.mkdir(parents=True)
    assert pycylon_version(tmp_path) is None
    (wheels / "pycylon-0.6.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
    assert pycylon_version(tmp_path) == "0.6.0"


def test_site_sets_runtime_image_variant_and_mpi(tmp_path, monkeypatch):
    """perlmutter: podman-hpc (absent here, so podman), its registry image, NVIDIA GPUs, Cray MPICH."""
    if shutil.which("podman") is None:
        pytest.skip("needs podman on PATH (the fallback runtime)")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(build, ["--site", str(REPO / "site-configs" / "perlmutter.yaml"),
                                               "--dry-run", "--context", str(REPO)])
    assert result.exit_code == 0, result.output
    containerfile = tmp_path / ".deeprc" / "build" / "registry.nersc.gov_m0000_deeprc_latest" / "Containerfile"
    assert f"build -f {containerfile} -t registry.nersc.gov/m0000/deeprc:latest" in result.output
    text = containerfile.read_text()
    assert 'ARG MPI="mpich"' in text and 'ARG MPI_VERSION="4.3.2"' in text  # MPICH ABI for the hybrid model
    assert "FROM ${BASE_IMAGE}" in text and "nvidia/cuda:12" in text


def test_bad_inputs_are_one_paragraph_errors(tmp_path):
    ctx = tmp_path / "ctx"
    shutil.copytree(REPO / "containers", ctx / "containers", ignore=shutil.ignore_patterns("*.whl", "*.crt"))
    for name in ("pyproject.toml", "constraints.txt", "README.md"):
        (ctx / name).write_text("")
    for name in ("deeprc", "site-configs", "deploy"):
        (ctx / name).mkdir()
    with pytest.raises(DeepRCError, match=r"recipe.yaml: field 'steps\[4\]\.copy': names 'pipelines'.*Fix: "):
        check_copies(ctx, load_recipe(ctx))
    result = CliRunner().invoke(build, ["--dry-run", "--runtime", "podman", "--context", str(REPO),
                                               "--build-arg", "mpi=mpich"])
    assert isinstance(result.exception, DeepRCError) and "KEY=VALUE" in str(result.exception)
    (ctx / "containers" / "recipe.yaml").write_text("args: [unclosed\n")
    with pytest.raises(DeepRCError, match=r"recipe.yaml: is not valid YAML.*Fix: correct the YAML syntax"):
        load_recipe(ctx)


def _site_file(tmp_path: Path, variant: str | None) -> Path:
    container = {"runtime": "none"} if variant is None else {"runtime": "none", "variant": variant}
    path = tmp_path / "gpusite.yaml"
    path.write_text(yaml.safe_dump({"scheduler": "local", "container": container}))
    return path


def test_variant_comes_from_the_site(tmp_path, monkeypatch):
    """`build --site S` builds the variant S names in container.variant; --variant overrides it."""
    monkeypatch.chdir(tmp_path)
    args = ["--runtime", "podman", "--dry-run", "--context", str(REPO), "--site"]
    result = CliRunner().invoke(build, [*args, str(_site_file(tmp_path, "cuda"))])
    assert result.exit_code == 0, result.output
    containerfile = tmp_path / ".deeprc" / "build" / f"localhost_deeprc_{__version__}-cuda" / "Containerfile"
    assert f"podman build -f {containerfile} -t localhost/deeprc:{__version__}-cuda" in result.output
    assert 'ARG BASE_IMAGE=docker.io/nvidia/cuda:12' in containerfile.read_text()
    result = CliRunner().invoke(build, [*args, str(_site_file(tmp_path, "cuda")), "--variant", "cpu"])
    assert result.exit_code == 0 and f"-t localhost/deeprc:{__version__}-cpu" in result.output, result.output
    result = CliRunner().invoke(build, [*args, str(_site_file(tmp_path, None))])  # no container.variant: cpu
    assert result.exit_code == 0 and f"-t localhost/deeprc:{__version__}-cpu" in result.output, result.output


def test_site_variant_the_recipe_lacks_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    site = _site_file(tmp_path, "rocm")
    result = CliRunner().invoke(build, ["--runtime", "podman", "--dry-run", "--context", str(REPO), "--site", str(site)])
    assert isinstance(result.exception, DeepRCError), result.output
    assert re.search(rf"^{re.escape(str(site))}: field 'container.variant': 'rocm' is not a variant of "
                     r"containers/recipe.yaml \(it has cpu, cuda\)\. Fix: .*--variant", str(result.exception))
    result = CliRunner().invoke(build, ["--runtime", "podman", "--dry-run", "--context", str(REPO), "--site", str(site),
                                        "--variant", "cpu"])  # the override does not read the site's variant
    assert result.exit_code == 0, result.output


def test_unknown_recipe_key_names_its_path(tmp_path):
    ctx = tmp_path / "ctx"
    shutil.copytree(REPO / "containers", ctx / "containers", ignore=shutil.ignore_patterns("*.whl", "*.crt"))
    path = ctx / "containers" / "recipe.yaml"
    data = yaml.safe_load(path.read_text())
    data["steps"][1]["scirpt"] = data["steps"][1].pop("script")
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DeepRCError, match=r"recipe.yaml: field 'steps\[1\]\.scirpt': unknown key\. "
                                          r"Fix: did you mean 'script'\? valid keys here: args, copy, inputs, name, script"):
        load_recipe(ctx)
    data["steps"][1]["script"] = data["steps"][1].pop("scirpt")
    data["variants"]["cuda"]["labelz"] = {}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DeepRCError, match=r"field 'variants\.cuda\.labelz': unknown key\. Fix: did you mean 'labels'"):
        load_recipe(ctx)
    data["variants"]["cuda"].pop("labelz")
    data["mpi_version"] = data.pop("mpi_versions")
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DeepRCError, match=r"field 'mpi_version': unknown key\. Fix: did you mean 'mpi_versions'"):
        load_recipe(ctx)


def test_variant_option_takes_the_recipes_variants(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(build, ["--runtime", "podman", "--dry-run", "--context", str(REPO), "--variant", "rocm"])
    assert isinstance(result.exception, DeepRCError)
    assert re.match(r"--variant rocm: containers/recipe.yaml has no such variant\. Fix: use one of cpu, cuda",
                    str(result.exception))


def test_a_site_whose_image_is_a_sif_file_builds_the_default_tag_with_podman(tmp_path, monkeypatch):
    """delta runs apptainer (absent here): the podman fallback must not use its .sif path as an OCI tag."""
    if shutil.which("podman") is None or shutil.which("apptainer"):
        pytest.skip("needs podman and no apptainer on PATH (the fallback case)")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(build, ["--site", str(REPO / "site-configs" / "delta.yaml"), "--dry-run",
                                        "--context", str(REPO)])
    assert result.exit_code == 0, result.output
    assert "-t /projects/" not in result.output
    assert " -t localhost/deeprc:" in result.output and "-cuda " in result.output  # delta's variant: cuda
