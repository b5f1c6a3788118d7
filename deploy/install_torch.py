"""Install the pinned torch build before the rest (`make install` runs this; stdlib only).

The pin lives in constraints.txt as a public version (`torch==2.13.0`), satisfiable from PyPI.
The build comes from PyTorch's own index for the chosen variant:

    TORCH_VARIANT=cpu (default) | cu128 | cu126 | ... -> https://download.pytorch.org/whl/<variant>
    TORCH_VARIANT=pypi                                -> no separate step: the default index's build
    TORCH_INDEX_URL=<url>                             -> that index (a mirror), whatever the variant

The index is probed first with a short timeout; when it cannot be reached, this says so and
leaves torch to the main install (pip's default index, or a find-links folder that holds it).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

PYTORCH_INDEX = "https://download.pytorch.org/whl"
DEFAULT_VARIANTS = ("pypi", "default")


def torch_pin(constraints: Path) -> str:
    """The public version constraints.txt pins torch to (e.g. '2.13.0')."""
    for line in constraints.read_text().splitlines():
        m = re.match(r"^torch==([^\s;#]+)", line.strip())
        if m:
            return m.group(1)
    raise SystemExit(f"make install: {constraints} has no 'torch==VERSION' line. Fix: pin torch there (make constraints).")


def index_url(variant: str, override: str = "") -> str | None:
    """The index torch comes from: the override, PyTorch's index for `variant`, or None (default index)."""
    if override:
        return override.rstrip("/")
    if variant in DEFAULT_VARIANTS:
        return None
    if not re.fullmatch(r"cpu|cu\d{3}|rocm[\d.]+|xpu", variant):
        raise SystemExit(f"make install: TORCH_VARIANT={variant!r} is not a PyTorch build. "
                         "Fix: use cpu, a CUDA tag such as cu128, rocm6.4, xpu, or pypi for the default index's build.")
    return f"{PYTORCH_INDEX}/{variant}"


def probe(url: str, timeout: float) -> str | None:
    """None when `url`/torch/ answers within `timeout` seconds, else why not (one line).

    Runs in a thread so that a slow name lookup (not covered by socket timeouts) is bounded too.
    """
    why: list[str | None] = ["no answer"]

    def ask() -> None:
        try:
            with urllib.request.urlopen(f"{url}/torch/", timeout=timeout) as resp:
                resp.read(1)
            why[0] = None
        except urllib.error.HTTPError as exc:
            why[0] = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            why[0] = str(getattr(exc, "reason", exc)) or type(exc).__name__

    t = threading.Thread(target=ask, daemon=True)
    t.start()
    t.join(timeout)
    return f"no answer within {timeout:g} s" if t.is_alive() else why[0]


def installed() -> str | None:
    """The torch version installed in this Python, or None."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--constraints", type=Path, default=Path("constraints.txt"))
    ap.add_argument("--variant", default=os.environ.get("TORCH_VARIANT") or "cpu")
    ap.add_argument("--index-url", default=os.environ.get("TORCH_INDEX_URL", ""))
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds the index has to answer the probe")
    args, pip_args = ap.parse_known_args(argv)  # the rest goes to pip (e.g. --progress-bar off)
    version = torch_pin(args.constraints)
    url = index_url(args.variant, args.index_url)
    if url is None:
        print(f"make install: torch=={version} comes from pip's default index (TORCH_VARIANT={args.variant})")
        return 0
    have = installed()
    if have and have.split("+")[0] == version and (args.index_url or have.endswith(f"+{args.variant}")):
        print(f"make install: torch {have} is installed already")
        return 0
    t0 = time.monotonic()
    why = probe(url, args.timeout)
    waited = time.monotonic() - t0
    if why:
        print(f"make install: PyTorch's index {url} cannot be reached ({why}; gave up after {waited:.1f} s). "
              f"torch=={version} now comes from pip's default index with the rest: on Linux x86_64 PyPI's torch is "
              "the CUDA build (about 3 GB more to download) unless a pip find-links folder holds the "
              f"{args.variant} wheel. To avoid that, point TORCH_INDEX_URL at a reachable mirror of {url}.",
              flush=True)
        return 0
    print(f"make install: torch=={version} from {url} (index answered in {waited:.1f} s)", flush=True)
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--index-url", url, *pip_args, f"torch=={version}"]
    if subprocess.run(cmd).returncode != 0:
        print(f"make install: torch=={version} could not be installed from {url}. Fix: check that {url}/torch/ "
              f"lists a torch-{version}+... wheel for this Python, pick another TORCH_VARIANT, or TORCH_VARIANT=pypi.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
