"""report.html as people see it: `deeprc-deploy report` rewrites it, a real headless Chromium opens it.

Chromium is driven over its DevTools pipe (--remote-debugging-pipe: JSON messages on fds 3/4),
so nothing beyond the Debian `chromium` package is needed. The page must show its tables, every
image decoded (no broken plot), a link per stage log that leads to the log, the command line,
site and versions; a screenshot of the whole page is kept next to the report (report.png).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1200,900", "--remote-debugging-pipe"]

PAGE_STATE = """(async () => {
  const imgs = [...document.images];
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  return {
    title: document.title,
    text: document.body.innerText,
    command: (document.getElementById('command') || {}).textContent || '',
    images: imgs.map((i, k) => ({src: i.getAttribute('src'), decoded: decoded[k], width: i.naturalWidth,
                            height: i.naturalHeight, shown: i.getBoundingClientRect().width})),
    tables: [...document.querySelectorAll('table')].map(t => ({
      heading: (t.previousElementSibling || {}).textContent || '', rows: t.rows.length,
      cells: [...t.querySelectorAll('td')].filter(c => c.textContent.trim()).length})),
    links: [...document.querySelectorAll('a[href]')].map(a => ({href: a.getAttribute('href'), text: a.textContent})),
    height: document.documentElement.scrollHeight,
  };
})()"""


class Chromium:
    """A headless Chromium on a DevTools pipe; every wait is bounded by `timeout` seconds."""

    def __init__(self, profile: Path, timeout: float = 60) -> None:
        self.timeout, self._id, self._buf = timeout, 0, b""
        to_child, self._to_browser = os.pipe()
        self._from_browser, from_child = os.pipe()
        # the child's ends above fd 4, so that dup2 onto 3 and 4 never meets one of the pipes' own fds
        for low in (to_child, from_child):
            high = fcntl.fcntl(low, fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(low)
            to_child, from_child = (high, from_child) if low == to_child else (to_child, high)

        def fds() -> None:  # the browser reads commands on fd 3 and answers on fd 4
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.proc = subprocess.Popen(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                     preexec_fn=fds, close_fds=False,  # fds 3/4 (inheritable dup2 copies)
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child)
        os.close(from_child)
        self.session = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer within {self.timeout} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited: {self.proc.stderr.read().decode()[-2000:]}")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def wait_event(self, method: str) -> None:
        deadline = time.monotonic() + self.timeout
        while self._read(deadline).get("method") != method:
            pass

    def open(self, url: str, screenshot: Path) -> dict[str, Any]:
        """Load `url`, return PAGE_STATE's answer and write a full-page PNG screenshot."""
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")
        state = self.call("Runtime.evaluate", expression=PAGE_STATE, awaitPromise=True, returnByValue=True)
        page = state["result"]["value"]
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": 1200, "height": page["height"], "scale": 1})
        import base64

        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return page

    def close(self) -> None:
        try:
            self.session = None
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - it is closing either way
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run does)")
    b = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def report_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deeprc.cli", "report", *args], capture_output=True, text=True,
                          timeout=120)


def test_report_renders_in_chromium(diamond_pilot, browser):
    _, _, run_dir, _ = diamond_pilot
    (run_dir / "report.html").unlink()
    proc = report_cli(str(run_dir))
    assert proc.returncode == 0 and "report.html" in proc.stdout, proc.stderr
    page = browser.open((run_dir / "report.html").as_uri(), run_dir / "report.png")

    images = {Path(i["src"]).name: i for i in page["images"]}
    assert set(images) == {"timeline.png", "d-values.png"}, images
    broken = [i for i in page["images"] if not (i["decoded"] and i["width"] > 100 and i["height"] > 100)]
    assert not broken and all(i["shown"] > 100 for i in page["images"]), broken

    tables = {t["heading"]: t for t in page["tables"]}
    assert tables["stages"]["rows"] == 5 and tables["tasks"]["rows"] >= 5, tables
    assert tables["metrics of every stage"]["cells"] >= 8 and tables["versions"]["rows"] > 5, tables
    assert "sum=3" in page["text"]  # c's allreduce metric, as the table shows it

    logs = {link["href"] for link in page["links"]}
    assert logs == {f"logs/{n}.log" for n in "abcd"}, logs
    assert all((run_dir / href).read_text() for href in logs)

    status = json.loads((run_dir / "status.json").read_text())
    assert page["command"].startswith("deeprc-deploy run ") and f"--run-dir {run_dir}" in page["command"]
    assert page["command"] == status["command"]
    assert "site: local" in page["text"]
    import torch

    assert f"torch\t{torch.__version__}" in page["text"] and f"python\t{sys.version.split()[0]}" in page["text"]
    assert (run_dir / "report.png").stat().st_size > 20_000


def test_a_broken_plot_is_seen(diamond_pilot, browser, tmp_path):
    """The same check on a copy with one plot missing and one not an image: the browser shows both broken."""
    _, _, run_dir, _ = diamond_pilot
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert report_cli(str(copy)).returncode == 0
    (copy / "plots" / "d-values.png").write_text("not a png")
    (copy / "plots" / "timeline.png").unlink()
    page = browser.open((copy / "report.html").as_uri(), tmp_path / "shot.png")
    broken = {Path(i["src"]).name for i in page["images"] if not i["decoded"] and not i["width"]}
    assert broken == {"d-values.png", "timeline.png"}, page["images"]


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    proc = report_cli(str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{tmp_path} is not a DeepRC run folder" in proc.stderr and "status.json" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written
