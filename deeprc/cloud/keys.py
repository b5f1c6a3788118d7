"""The per-cluster SSH key pair that lets MPI start ranks across the VMs.

The private key is written with mode 0600 and never printed or logged; rendered files
that embed it are written 0600 too, and :func:`redact` hides it from anything shown.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deeprc.errors import DeepRCError

REDACTED = "<redacted: cluster private key>"


@dataclass(frozen=True)
class KeyPair:
    """An OpenSSH ed25519 key pair (text)."""

    private: str
    public: str

    def __repr__(self) -> str:  # never show the private key, even in tracebacks
        return f"KeyPair(public={self.public.strip()!r}, private={REDACTED!r})"


def generate_keypair(comment: str = "deeprc-cluster") -> KeyPair:
    """A fresh ed25519 key pair made by ssh-keygen in a private temporary folder."""
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise DeepRCError(
            "bootstrap: ssh-keygen was not found, so no cluster key pair can be made. "
            "Fix: install OpenSSH's client tools (Debian/Ubuntu: apt-get install openssh-client) "
            "or pass an existing key with --ssh-key PATH."
        )
    with tempfile.TemporaryDirectory(prefix="deeprc-key-") as tmp:
        os.chmod(tmp, 0o700)
        path = Path(tmp) / "id"
        proc = subprocess.run(
            [exe, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise DeepRCError(f"bootstrap: ssh-keygen failed ({proc.stderr.strip()}). Fix: check that ssh-keygen works on this machine.")
        return KeyPair(private=path.read_text(), public=(path.with_suffix(".pub")).read_text())


def load_keypair(path: str | Path) -> KeyPair:
    """An existing private key and its `.pub` beside it (`--ssh-key PATH`)."""
    p = Path(path).expanduser()
    pub = Path(str(p) + ".pub")
    if not p.is_file() or not pub.is_file():
        raise DeepRCError(
            f"bootstrap: --ssh-key {p}: the private key and {pub.name} beside it must both exist. "
            "Fix: pass the path of an OpenSSH private key whose public half sits next to it as PATH.pub, or leave --ssh-key out to generate one."
        )
    mode = p.stat().st_mode & 0o077
    if mode:
        raise DeepRCError(f"bootstrap: --ssh-key {p} is readable by group or others. Fix: chmod 600 {p}.")
    return KeyPair(private=p.read_text(), public=pub.read_text())


def write_secret(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` with mode 0600 from the first byte (no readable window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, 0o600)


def gzip_bytes(text: str) -> bytes:
    """`text` gzip'd reproducibly (no timestamp), as cloud-init accepts compressed user-data."""
    import gzip

    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def redact(text: str, keys: KeyPair | None) -> str:
    """`text` with the private key (and any OpenSSH private key block) replaced."""
    if keys is not None and keys.private.strip():
        text = text.replace(keys.private.strip(), REDACTED)
    import re

    return re.sub(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
        REDACTED, text, flags=re.DOTALL,
    )
