"""The widgets as a user sees them: JupyterLab in Chromium (driven by Playwright) runs
notebooks/11_widgets.ipynb; the test asserts what is rendered and saves screenshots of
the views in the light and the dark theme under test-artifacts/browser/.

The browser and server come from labkit.py / conftest.py (missing pieces skip, or fail
with RUSTCALL_REQUIRE_BROWSER=1).
"""

from __future__ import annotations

import json
from pathlib import Path

from labkit import ARTIFACTS, DARK, LIGHT, ROOT, Lab, browser_page, open_notebook, set_theme

NOTEBOOK = ROOT / "notebooks" / "11_widgets.ipynb"


def _fresh_copy() -> dict:
    """The widgets notebook without outputs or saved widget state: everything asserted comes from this run."""
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return nb


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


def test_widgets_render_in_jupyterlab(lab: Lab) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lab.put_notebook(NOTEBOOK.name, _fresh_copy())
    requested: list[str] = []
    with browser_page(requested) as page:
        try:
            open_notebook(page, lab, NOTEBOOK.name)
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
            outside = [u for u in requested if not u.startswith((lab.url, "data:", "blob:"))]
            assert outside == []

            shots = _shoot(page, LIGHT)
            light = _colours(page)
            set_theme(page, DARK)
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
