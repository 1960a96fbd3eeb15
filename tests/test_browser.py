"""The dashboards in a real browser: JupyterLab (started here on 127.0.0.1, a free port and a random
token) and Debian's Chromium driven headless by Playwright. A notebook showing ``KernelExplorer`` (then
``SpectrumExplorer``) runs; moving the ``W_std`` slider with the keyboard must change the rendered figure.

Skips only when ``NTKRS_SKIP_BROWSER=1``; a missing Chromium or Playwright skips on a development
machine but fails in CI (``CI`` set), where ``.ci/run`` installs both.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupyterlab  # noqa: F401  (the server the test starts)
import nbformat
import pytest


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI must run the browser test (install it, or set NTKRS_SKIP_BROWSER=1 explicitly)")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout} s:\n{log.read_text()[-3000:]}")


def _descendants(pid: int) -> list[int]:
    """Process ids of every descendant of ``pid`` (Linux ``/proc``)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        frontier += kids
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _stop(proc: subprocess.Popen, children: list[int]) -> None:
    """Terminate the server's process group (then kill it), and any kernel it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    for pid in children:  # kernels run in their own sessions: the server ends them; if not, we do, by id
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _pixels(png: bytes):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


IMG = ".jp-OutputArea-output img.widget-image"  # the dashboard's figure (an ipywidgets Image)
NOTEBOOK_SOURCE = "from ntkrs.widgets import KernelExplorer\nke = KernelExplorer(n_points=64)\nke"
SPECTRUM_SOURCE = ("from ntkrs.widgets import SpectrumExplorer\n"
                   "se = SpectrumExplorer(draws=3, sizes=(8, 32, 128), n_max=300)\nse")


def test_kernel_explorer_slider_redraws_in_chromium(tmp_path):
    _slider_redraws_in_chromium(tmp_path, NOTEBOOK_SOURCE, "W_std")


def test_spectrum_explorer_slider_redraws_in_chromium(tmp_path):
    """SpectrumExplorer's W_std slider recomputes the spectrum and the measured curves in the kernel."""
    _slider_redraws_in_chromium(tmp_path, SPECTRUM_SOURCE, "W_std")


def _slider_redraws_in_chromium(tmp_path, source: str, label: str) -> None:
    """Run a notebook cell showing a dashboard in JupyterLab, move the slider labelled ``label`` six steps
    with the keyboard and check that the rendered figure changed."""
    if os.environ.get("NTKRS_SKIP_BROWSER") == "1":
        pytest.skip("NTKRS_SKIP_BROWSER=1")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        _unavailable("Debian's chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright (Python) is not installed")

    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "dash.ipynb")

    # Private Jupyter directories: a kernelspec running this interpreter, fresh settings and workspaces.
    env = dict(os.environ)
    for name in ("config", "data", "runtime"):
        (tmp_path / name).mkdir()
        env[f"JUPYTER_{name.upper()}_DIR"] = str(tmp_path / name)
    spec_dir = tmp_path / "data" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    env["JUPYTER_PATH"] = str(tmp_path / "data")
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p)

    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyter.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           "--ServerApp.allow_root=True", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    children: list[int] = []
    shots = {}
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", proc, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/lab/tree/dash.ipynb?token={token}")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                # Wait for the kernel, then run the cell; the indicator may read "idle" before the kernel
                # takes requests, so retry until the prompt shows that the cell ran or runs.
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
                prompt = page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt").first
                for _ in range(6):
                    page.locator(".jp-Notebook .jp-Cell").first.click()
                    page.keyboard.press("Shift+Enter")
                    try:
                        page.wait_for_function("e => !/\\[ \\]/.test(e.textContent)", arg=prompt.element_handle(),
                                               timeout=10_000)
                        break
                    except Exception:
                        continue
                img = page.locator(IMG).first
                img.wait_for(state="visible", timeout=120_000)
                page.wait_for_function(f"() => {{ const i = document.querySelector('{IMG}');"
                                       " return i && i.complete && i.naturalWidth > 0; }", timeout=60_000)
                children = _descendants(proc.pid)
                src0 = img.get_attribute("src")
                shots["before"] = img.screenshot()
                slider = page.locator(".widget-hslider", has=page.locator(".widget-label", has_text=label))
                handle = slider.locator(".noUi-handle").first
                readout = slider.locator(".widget-readout").first
                value0 = readout.inner_text()
                handle.focus()
                for _ in range(6):
                    page.keyboard.press("ArrowRight")
                page.wait_for_function(
                    "src => { const i = document.querySelector('" + IMG + "');"
                    " return i && i.src !== src && i.complete && i.naturalWidth > 0; }", arg=src0, timeout=60_000)
                page.wait_for_timeout(1500)  # let the last keypress's redraw land
                shots["after"] = img.screenshot()
                value1 = readout.inner_text()
                (tmp_path / "before.png").write_bytes(shots["before"])
                (tmp_path / "after.png").write_bytes(shots["after"])
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"))
                (tmp_path / "failure.html").write_text(page.content())
                print(f"screenshot of the failure: {tmp_path / 'failure.png'}; server log: {log}")
                raise
            finally:
                browser.close()
    finally:
        _stop(proc, children)
    assert proc.returncode is not None
    assert not _port_open(port), "the Jupyter server still listens after the test"
    assert children and not [c for c in children if _alive(c)], "a kernel was left running"

    assert float(value1) > float(value0), (value0, value1)
    a, b = _pixels(shots["before"]), _pixels(shots["after"])
    assert a.shape == b.shape and a.shape[0] > 100 and a.shape[1] > 300
    changed = (abs(a - b).sum(axis=-1) > 30).sum()
    assert changed > 500, f"only {changed} pixels of the figure changed after moving the slider"
