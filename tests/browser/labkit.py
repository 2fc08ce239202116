"""Shared pieces of the browser tests: find the browser, run JupyterLab on 127.0.0.1, switch themes.

Needs Debian's ``chromium`` (/usr/bin/chromium, or ``$RUSTCALL_CHROMIUM``), and jupyterlab +
playwright from PyPI (Playwright drives the system browser; it downloads none). Missing
pieces skip the tests with a message naming them; ``RUSTCALL_REQUIRE_BROWSER=1`` makes
that a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
#: The flags that keep Chromium off the (closed) network here.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: JupyterLab settings for a quiet, deterministic page: no news/update toasts, every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {"theme": "JupyterLab Light"},
}
LIGHT, DARK = "JupyterLab Light", "JupyterLab Dark"


def chromium() -> str | None:
    """The browser binary: $RUSTCALL_CHROMIUM when set (only that), else Debian's chromium."""
    override = os.environ.get("RUSTCALL_CHROMIUM")
    candidates = [override] if override else ["/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _missing() -> list[str]:
    missing = []
    if chromium() is None:
        missing.append(
            f"chromium ({os.environ.get('RUSTCALL_CHROMIUM') or '/usr/bin/chromium'}; apt-get install chromium)"
        )
    for module, pip_name in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(module) is None:
            missing.append(f"{pip_name} (pip install {pip_name})")
    return missing


def require_browser() -> None:
    """Skip (or, with RUSTCALL_REQUIRE_BROWSER=1, fail) when the browser or a package is missing."""
    missing = _missing()
    if not missing:
        return
    text = "browser test needs " + ", ".join(missing)
    if os.environ.get("RUSTCALL_REQUIRE_BROWSER") == "1":
        pytest.fail(text + " (RUSTCALL_REQUIRE_BROWSER=1)")
    pytest.skip(text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: its base url, token and the directory it serves."""

    url: str
    token: str
    root: Path

    def notebook_url(self, name: str) -> str:
        """The notebook alone in a workspace of its own (tests sharing the server see no other tabs)."""
        workspace = "test-" + Path(name).stem.replace("_", "-")
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?token={self.token}"

    def put_notebook(self, name: str, nb: dict) -> None:
        """Write a notebook for the server to serve (a copy: autosave never touches the repository)."""
        (self.root / name).write_text(json.dumps(nb), encoding="utf-8")


@contextmanager
def run_lab(base: Path) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 with private settings/config dirs under ``base``; its log goes to the artifacts."""
    root = base / "root"
    root.mkdir()
    settings = base / "settings"
    for rel, value in LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = dict(os.environ)
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
    )
    if not os.environ.get("RUSTCALL_TEST_INSTALLED"):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
        "--ServerApp.port_retries=0",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(base / "server.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError("JupyterLab did not start:\n" + (base / "server.log").read_text()[-3000:])
            time.sleep(0.3)
        yield Lab(url, token, root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(base / "server.log", ARTIFACTS / "jupyterlab-server.log")


def set_theme(page, theme: str) -> None:
    """Switch JupyterLab's theme and wait until its stylesheet applies."""
    page.evaluate("t => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme)
    page.wait_for_function(
        "light => document.body.dataset.jpThemeLight === String(light)", arg=theme == LIGHT, timeout=20_000
    )
    page.wait_for_timeout(600)  # the theme's stylesheet applies after the attribute flips


def open_notebook(page, lab: Lab, name: str, *, accept_kernel: bool = True) -> None:
    """Open a notebook; answer the kernel dialog when the lab shows one (accept it, or choose no kernel)."""
    page.goto(lab.notebook_url(name), wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_function("() => !!window.jupyterapp", timeout=30_000)
    button = page.locator(".jp-Dialog .jp-mod-accept" if accept_kernel else ".jp-Dialog .jp-mod-reject")
    try:
        button.wait_for(state="visible", timeout=5_000)  # "Select Kernel", when the lab asks
        button.click()
    except Exception:
        pass


@contextmanager
def browser_page(requested: list[str] | None = None) -> Iterator:
    """A Playwright page in Debian's chromium (fresh profile); URLs it requests go to ``requested``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            if requested is not None:
                page.on("request", lambda req: requested.append(req.url))
            yield page
        finally:
            browser.close()
