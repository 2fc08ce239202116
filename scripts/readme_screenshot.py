"""Compose docs/widgets.png, the README's picture, from the browser test's light-theme shots.

Run after the browser test (``pytest tests/browser``), which saves the views it
rendered in JupyterLab under test-artifacts/browser/. The cache, handles and
benchmark views are stacked as they appear in a notebook; Debian's chromium
(or ``$RUSTCALL_CHROMIUM``) renders the page, driven by Playwright.

Usage: python scripts/readme_screenshot.py
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "browser"
OUT = ROOT / "docs" / "widgets.png"
VIEWS = ("cache", "handles", "bench")


def main() -> int:
    shots = [SHOTS / f"{view}-light.png" for view in VIEWS]
    missing = [p for p in shots if not p.exists()]
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
