"""The widgets notebook in a real kernel: executed with nbclient, then its widget outputs and
the widget state nbclient stored (``nb.metadata.widgets``) are checked."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "11_widgets.ipynb"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"


@pytest.fixture(scope="module")
def executed():
    """11_widgets.ipynb after a run in a fresh kernel: (notebook, widget models by id)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env_before = os.environ.get("PYTHONPATH")
    if not os.environ.get("RUSTCALL_TEST_INSTALLED"):
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env_before]))
    try:
        client = nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
        )
        client.execute()
    finally:
        if env_before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_before
    state = nb.metadata["widgets"][STATE_MIME]["state"]
    return nb, state


def view_of(nb, state, source_start: str, css: str) -> dict:
    """The stored state of the view shown by the cell starting with *source_start*: {child class: value}."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start))
    ids = [o["data"][VIEW_MIME]["model_id"] for o in cell.outputs if VIEW_MIME in o.get("data", {})]
    assert len(ids) == 1, cell.outputs
    box = state[ids[0]]
    assert box["model_name"] == "VBoxModel" and css in box["state"]["_dom_classes"]
    html = {}
    for ref in box["state"]["children"]:
        child = state[ref.removeprefix("IPY_MODEL_")]
        if child["model_name"] == "HTMLModel":
            html[len(html)] = child["state"]["value"]
    return html


def test_cache_view_state(executed) -> None:
    nb, state = executed
    html = view_of(nb, state, "%rustcache", "rustcall-cache")
    text = "".join(html.values())
    keys = re.findall(r'<tr data-key="([0-9a-f]+)"', text)
    count = int(re.search(r'class="rustcall-count">(\d+)<', text).group(1))
    # The view followed the cells compiled after it: add/fib, dot, the handle runtime, the JIT object.
    assert count == len(keys) == 4
    functions = [f.strip() for f in re.findall(r'<td class="rustcall-fns">([^<]*)', text)]
    assert {"add, fib", "dot", "add"} <= set(functions) and "(runtime)" in functions


def test_handles_view_state(executed) -> None:
    nb, state = executed
    html = view_of(nb, state, 'b = rc.RustBox(42, "i64")', "rustcall-handles")
    text = "".join(html.values())
    rows = dict(re.findall(r'data-id="(\d+)" data-state="(\w+)"', text))
    # b (id 1) was dropped two cells after the view was shown; r and v are alive.
    assert rows["1"] == "dropped" and rows["2"] == rows["3"] == "alive"
    assert re.search(r"rustcall-state-dropped\">dropped 1<", text)
    assert "100,003 created in this process" in text


def test_bench_view_state(executed) -> None:
    nb, state = executed
    html = view_of(nb, state, "def py_add", "rustcall-bench")
    text = "".join(html.values())
    backends = re.findall(r'<tr data-backend="([^"]+)"', text)
    assert backends == ["python", "%%rust", "%rust_llvm"]
    assert "1.00x" in text and "subtracted" in text


def test_outputs_that_are_not_widgets(executed) -> None:
    nb, _ = executed
    results = {
        c.source.splitlines()[0]: c.outputs[-1].get("data", {}).get("text/plain")
        for c in nb.cells
        if c.cell_type == "code" and c.outputs
    }
    assert results["dot([1.0, 2.0], [3.0, 4.0]), sorted(f for e in rc.cache_stats().entries for f in e.functions)"] == (
        "(11.0, ['add', 'dot', 'fib'])"
    )
    assert results["b.drop()"] == "'dropped'"
