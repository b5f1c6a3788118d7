"""How a stage attempt's environment and command reach its processes, byte for byte, in both runners.

The batch runner hands the environment to ``subprocess.Popen`` directly. Radical Pilot writes a
task's ``environment`` and ``arguments`` into a shell script inside double quotes without escaping
``$`` or backticks (``export K="V"``, ``radical.utils.sh_quote``), and dumps the environment its
agent starts with into files under the pilot sandbox. So under the pilot runner nothing DeepRC or
the user configured travels through RP as text RP would interpret:

- the task gets one argument, a base64 (URL-safe alphabet) JSON blob with the non-secret
  environment, the command and the log path (:func:`pack`); the entry point decodes it;
- secrets (a site's ``environment:`` values, and anything in the caller's environment RP
  cannot carry) never go to RP at all: the run process keeps them in memory and a :class:`Broker`
  hands them, over a socket, to the ranks that present the attempt's one-time key; the key is
  revoked when the attempt ends.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets as _secrets
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deeprc.errors import DeepRCError

if TYPE_CHECKING:
    from deeprc.sites.schema import Site

FETCH_TIMEOUT_S = 30.0
_UNSAFE = re.compile(r'[$`"\\\x00-\x1f\x7f]')  # what RP's `export K="V"` and sh_quote do not survive
_PLAIN = re.compile(r"[A-Za-z0-9_./:+=@,%-]*")  # words RP may write unquoted (its executable, paths it exports)


def rp_safe(value: str) -> bool:
    """True when RP can write `value` inside double quotes and a shell reads it back unchanged."""
    return not _UNSAFE.search(value)


def check_rp_word(value: str, what: str) -> str:
    """`value` itself when RP may write it unquoted into a shell script; else one clear DeepRCError."""
    if not _PLAIN.fullmatch(value):
        raise DeepRCError(
            f"{what} {value!r} contains characters Radical Pilot writes unquoted into its task scripts "
            "(spaces, quotes, $, backticks). Fix: move it to a path of letters, digits and / . _ - only, "
            "or use --runner batch.")
    return value


def site_secrets(site: Site) -> dict[str, str]:
    """A site's `environment:` values (tokens and the like): never written to disk, never given to RP."""
    return dict(getattr(site, "environment", None) or {}) if site is not None else {}


def withheld(site: Site, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Variables of `environ` (default: ours) that must not reach RP's agent: the site's secrets
    (a launched job exports them) and any value RP's scripts would mangle or execute."""
    environ = dict(os.environ if environ is None else environ)
    names = set(site_secrets(site))
    return {k: v for k, v in environ.items() if k in names or not rp_safe(v)}


def broker_env(site: Site, environ: dict[str, str] | None = None) -> dict[str, str]:
    """What the pilot runner hands its stages itself: the site's secrets, its fabric/MPI variables RP cannot
    write (see deeprc.rp.config.agent_env), and the caller's variables RP cannot carry."""
    site_vars = dict(site.job_env()) if site is not None and hasattr(site, "job_env") else {}
    return {**withheld(site, environ), **{k: v for k, v in site_vars.items() if not rp_safe(v)}, **site_secrets(site)}


def encode(obj: Any) -> str:
    """JSON, then URL-safe base64: letters, digits, `-`, `_` and `=` only."""
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


def decode(text: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, UnicodeError) as exc:
        raise DeepRCError(f"the task description passed to this stage is damaged ({exc}). Fix: rerun the run; "
                          "this is DeepRC's own argument, not a config value.") from None


def pack(env: dict[str, str], key: str | None, argv: list[str] | None = None, log: str | None = None) -> str:
    """The one argument a pilot task carries: environment, secret key, command and log."""
    return encode({"env": env, "key": key, "argv": argv, "log": log})


def unpack(blob: str) -> dict[str, Any]:
    """Decode :func:`pack`'s blob and fetch the secrets its key stands for into `env`."""
    task = decode(blob)
    env = dict(task.get("env") or {})
    if task.get("key"):
        env.update(fetch(task["key"]))
    task["env"] = env
    return task


class Broker:
    """Serve each attempt's secret environment from this process's memory to its ranks.

    A key is `host:port:token`; it works `uses` times (one per rank) and until :meth:`revoke`.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._offers: dict[str, tuple[dict[str, str], int]] = {}
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1" if host == "127.0.0.1" else "", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.5)
        self.host = host
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="deeprc-secret-broker", daemon=True)
        self._thread.start()

    def offer(self, env: dict[str, str], uses: int) -> str:
        token = _secrets.token_hex(32)
        with self._lock:
            self._offers[token] = (dict(env), max(1, uses))
        return f"{self.host}:{self._sock.getsockname()[1]}:{token}"

    def revoke(self, key: str | None) -> None:
        if key:
            with self._lock:
                self._offers.pop(key.rsplit(":", 1)[-1], None)

    def _take(self, token: str) -> dict[str, str] | None:
        with self._lock:
            env, uses = self._offers.get(token, (None, 0))
            if env is None:
                return None
            if uses <= 1:
                del self._offers[token]
            else:
                self._offers[token] = (env, uses - 1)
            return env

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                try:
                    conn.settimeout(5.0)
                    token = conn.makefile("r").readline().strip()
                    env = self._take(token)
                    conn.sendall((json.dumps(env) + "\n").encode())
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._sock.close()
        with self._lock:
            self._offers.clear()


def broker_host(site: Site, local: bool) -> str:
    """Where a run's ranks reach its broker: loopback on this machine; across nodes the address of the
    interface that routes to the allocation's other nodes (what RP's agent advertises), else DeepRC's
    rendezvous choice (the site's interface or a non-loopback one)."""
    if local:
        return "127.0.0.1"
    from deeprc.comm.rendezvous import interfaces, my_address
    from deeprc.pipeline.pilot_layout import agent_interface

    iface = agent_interface(site)
    return (interfaces().get(iface) if iface else None) or my_address(False)


def fetch(key: str, timeout: float = FETCH_TIMEOUT_S) -> dict[str, str]:
    """The secret environment behind `key`, from the run process that offered it (bounded wait)."""
    host, port, token = key.rsplit(":", 2)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall((token + "\n").encode())
            reply = json.loads(conn.makefile("r").readline() or "null")
    except (OSError, ValueError) as exc:
        raise DeepRCError(
            f"this stage could not fetch its site environment from the DeepRC run process at {host}:{port} ({exc}). "
            "Fix: make sure compute nodes can reach the node running `deeprc-deploy run` over TCP, or use --runner batch."
        ) from None
    if reply is None:
        raise DeepRCError(
            "this stage's key for its site environment was already used or revoked (the attempt ended, or a process "
            "that is not one of its ranks used it). Fix: rerun the stage; keep the run's rp/ folder private.")
    return reply


def apply(env: dict[str, str]) -> dict[str, str | None]:
    """Set `env` in os.environ; return the previous values (for :func:`restore`)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return old


def restore(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def private_dir(path: Path) -> Path:
    """Create `path` readable by its owner only (RP's sandbox and job scripts live there)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
