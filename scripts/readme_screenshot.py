"""Make the README's pictures from the browser tests' light-theme shots.

Run after the browser tests (``pytest tests/browser``), which save what they
rendered in JupyterLab under test-artifacts/browser/. docs/widgets.png stacks the
cache, handles and benchmark views as they appear in a notebook (Debian's
chromium, or ``$RUSTCALL_CHROMIUM``, renders the page, driven by Playwright);
docs/rust-cells.png is the shot of two `%%rust` cells and a Python cell.

Usage: python scripts/readme_screenshot.py
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "browser"
OUT = ROOT / "docs" / "widgets.png"
VIEWS = ("cache", "handles", "bench")
RUST_CELLS = ("rust-cells-light.png", ROOT / "docs" / "rust-cells.png")


def main() -> int:
    shots = [SHOTS / f"{view}-light.png" for view in VIEWS]
    missing = [p for p in [*shots, SHOTS / RUST_CELLS[0]] if not p.exists()]
    if missing:
        print(f"{missing[0]} is missing: run `pytest tests/browser` first", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    images = "".join(
        f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" '
        'style="display:block;margin:0 0 12px 0">'
        for p in shots
    )
    page_html = f'<html><body style="margin:0;padding:8px;background:#fff">{images}</body></html>'
    chromium = os.environ.get("RUSTCALL_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 400})
            page.set_content(page_html)
            page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
            width = page.evaluate("() => Math.max(...[...document.images].map(i => i.naturalWidth)) + 16")
            page.set_viewport_size({"width": width, "height": 400})
            page.screenshot(path=str(OUT), full_page=True)
        finally:
            browser.close()
    print(f"wrote {OUT.relative_to(ROOT)}")
    shutil.copy(SHOTS / RUST_CELLS[0], RUST_CELLS[1])
    print(f"wrote {RUST_CELLS[1].relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
