"""The widgets as a user sees them: JupyterLab in Chromium (driven by Playwright) runs
notebooks/11_widgets.ipynb; the test asserts what is rendered and saves screenshots of
the views in the light and the dark theme under test-artifacts/browser/.

Needs Debian's ``chromium`` (/usr/bin/chromium, or ``$RUSTCALL_CHROMIUM``), and jupyterlab +
playwright from PyPI (Playwright drives the system browser; it downloads none). Missing
pieces skip the test with a message naming them; ``RUSTCALL_REQUIRE_BROWSER=1`` makes
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
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "11_widgets.ipynb"
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


def _chromium() -> str | None:
    """The browser binary: $RUSTCALL_CHROMIUM when set (only that), else Debian's chromium."""
    override = os.environ.get("RUSTCALL_CHROMIUM")
    candidates = [override] if override else ["/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _missing() -> list[str]:
    missing = []
    if _chromium() is None:
        missing.append(f"chromium ({os.environ.get('RUSTCALL_CHROMIUM') or '/usr/bin/chromium'}; apt-get install chromium)")
    for module, pip_name in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(module) is None:
            missing.append(f"{pip_name} (pip install {pip_name})")
    return missing


def _require_browser() -> None:
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a copy of the widgets notebook: (base url, token, root)."""
    _require_browser()
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    # A copy without outputs or saved widget state: everything asserted below comes from this
    # run (and the server's autosave never touches the committed notebook).
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (root / NOTEBOOK.name).write_text(json.dumps(nb), encoding="utf-8")
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
        yield url, token, root
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


def _set_theme(page, theme: str) -> None:
    page.evaluate("t => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme)
    page.wait_for_function(
        "light => document.body.dataset.jpThemeLight === String(light)", arg=theme == LIGHT, timeout=20_000
    )
    page.wait_for_timeout(600)  # the theme's stylesheet applies after the attribute flips


def _colours(page) -> dict[str, str]:
    """Computed background and text colour of the first handles view."""
    return page.evaluate(
        """() => { const s = getComputedStyle(document.querySelector('.rustcall-handles'));
                   return {background: s.backgroundColor, text: s.color}; }"""
    )


def _luminance(css_rgb: str) -> float:
    """0 (black) .. 1 (white) for an ``rgb(r, g, b)`` / ``rgba(...)`` value."""
    r, g, b = (int(x) for x in css_rgb[css_rgb.index("(") + 1 : -1].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def _shoot(page, theme: str) -> list[Path]:
    tag = "light" if theme == LIGHT else "dark"
    shots = []
    for view in ("cache", "handles", "bench"):
        loc = page.locator(f".rustcall-{view}").first
        loc.scroll_into_view_if_needed()
        path = ARTIFACTS / f"{view}-{tag}.png"
        loc.screenshot(path=str(path))
        shots.append(path)
    page.locator(".rustcall-handles").first.scroll_into_view_if_needed()
    path = ARTIFACTS / f"page-{tag}.png"
    page.screenshot(path=str(path))
    shots.append(path)
    return shots


def test_widgets_render_in_jupyterlab(lab) -> None:
    from playwright.sync_api import sync_playwright

    url, token, _root = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        # Playwright gives the browser a fresh, empty profile of its own.
        browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requested: list[str] = []
            page.on("request", lambda req: requested.append(req.url))
            page.goto(f"{url}/lab/tree/{NOTEBOOK.name}?token={token}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_function("() => !!window.jupyterapp", timeout=30_000)
            accept = page.locator(".jp-Dialog .jp-mod-accept")
            try:
                accept.wait_for(state="visible", timeout=5_000)  # "Select Kernel", when the lab asks
                accept.click()
            except Exception:
                pass
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

            # The last cell (res.to_pandas()) renders a DataFrame once everything above ran.
            page.wait_for_selector(".jp-OutputArea-output table.dataframe", timeout=120_000)
            page.wait_for_function(
                "() => !!document.querySelector(\".rustcall-handles-table tr[data-id='1'][data-state='dropped']\")",
                timeout=20_000,
            )

            # Cache view: entry count beside the title equals the rows listed; the functions are there.
            cache = page.locator(".rustcall-cache").first
            count = int(cache.locator(".rustcall-count").inner_text())
            rows = cache.locator("tr[data-key]")
            assert rows.count() == count >= 3
            names = " ".join(rows.locator("td.rustcall-fns").all_inner_texts())
            for fn in ("add", "fib", "dot"):
                assert fn in names.replace(",", " ").split(), names

            # Handles view: b (id 1, a Box holding 42) was dropped by a later cell.
            handles = page.locator(".rustcall-handles").first
            row = handles.locator("tr[data-id='1']")
            assert row.get_attribute("data-state") == "dropped"
            assert "dropped" in row.inner_text() and "42" in row.inner_text() and "Box" in row.inner_text()
            assert handles.locator("tr[data-state='alive']").count() == 2  # r and v

            # Bench view: one row per backend, ratio 1.00x on the first.
            bench = page.locator(".rustcall-bench").first
            backends = bench.locator("tr[data-backend]")
            assert [backends.nth(i).get_attribute("data-backend") for i in range(backends.count())] == [
                "python",
                "%%rust",
                "%rust_llvm",
            ]
            assert backends.nth(0).locator("td").nth(4).inner_text() == "1.00x"

            # Every script and style came from this server (nothing from a CDN).
            outside = [u for u in requested if not u.startswith((url, "data:", "blob:"))]
            assert outside == []

            shots = _shoot(page, LIGHT)
            light = _colours(page)
            _set_theme(page, DARK)
            shots += _shoot(page, DARK)
            dark = _colours(page)
            # The views take their colours from the theme: dark background, light text in the dark theme.
            assert _luminance(light["background"]) > 0.5 > _luminance(dark["background"]), (light, dark)
            assert _luminance(light["text"]) < 0.5 < _luminance(dark["text"]), (light, dark)
            for path in shots:
                assert path.stat().st_size > 2000, path
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))
            (ARTIFACTS / "failure.html").write_text(page.content())
            raise
        finally:
            browser.close()
