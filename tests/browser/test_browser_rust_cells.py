"""`%%rust` cells in JupyterLab (SPEC §14): the lab extension shipped in the package makes
their editor Rust's, in IPython notebooks only, while the first line is the magic.

Highlighting is read from the DOM: JupyterLab's highlight style gives each token kind one
generated class and a colour from the theme (``--jp-mirror-editor-keyword-color`` ...).
A token "is a keyword" when it carries the class of the Python cell's ``def`` and the
theme's keyword colour. Screenshots (light, dark) go to test-artifacts/browser/.
"""

from __future__ import annotations

from labkit import ARTIFACTS, DARK, LIGHT, Lab, browser_page, open_notebook, set_theme

RUST_MIME = "text/x-rustcall-rust"
RUST_CELL = """%%rust --opt-level 2
// the longer of two strings
fn longest<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.len() >= b.len() { a } else { b }
}"""
LLVM_CELL = """%%rust_llvm
/// n-th Fibonacci number
fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}"""
PYTHON_CELL = """def half(a):
    # a Python comment
    return a // 2, 'text'"""
PYTHON_META = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python", "codemirror_mode": {"name": "ipython", "version": 3}},
}
#: A notebook of another kernel: its `%%rust` first line is not rustcall_magic's.
R_META = {
    "kernelspec": {"name": "ir", "display_name": "R", "language": "R"},
    "language_info": {"name": "R", "codemirror_mode": "r"},
}

#: Leaf token spans of cell ``i`` of the current notebook: [line number, text, class, colour].
TOKENS_JS = """i => {
    const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
    const out = [];
    cell.node.querySelectorAll('.cm-content .cm-line').forEach((line, n) => {
        for (const span of line.querySelectorAll('span')) {
            if (span.querySelector('span')) continue;
            out.push([n, span.textContent, span.className, getComputedStyle(span).color]);
        }
    });
    return out;
}"""
#: The theme's colour for a CSS variable, as the browser computes it.
THEME_COLOUR_JS = """name => {
    const probe = document.createElement('span');
    probe.style.color = `var(${name})`;
    document.body.appendChild(probe);
    const colour = getComputedStyle(probe).color;
    probe.remove();
    return colour;
}"""
MIMES_JS = "() => window.jupyterapp.shell.currentWidget.content.widgets.map(w => w.model.mimeType)"
SOURCE_JS = "i => window.jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel.getSource()"


def _notebook(meta: dict, *sources: str) -> dict:
    cells = [
        {"cell_type": "code", "id": f"cell{i}", "metadata": {}, "source": s, "outputs": [], "execution_count": None}
        for i, s in enumerate(sources)
    ]
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells}


def _tokens(page, i: int) -> list[tuple[int, str, str, str]]:
    return [tuple(t) for t in page.evaluate(TOKENS_JS, i)]


def _token(page, i: int, text: str) -> tuple[int, str, str, str]:
    """The first token of cell ``i`` whose text is ``text``."""
    found = [t for t in _tokens(page, i) if t[1] == text]
    assert found, (text, _tokens(page, i))
    return found[0]


def _styles(page) -> dict[str, tuple[str, str]]:
    """(class, colour) of a keyword, a comment and a string, taken from the Python cell (index 2)."""
    keyword, comment, string = _token(page, 2, "def"), _token(page, 2, "# a Python comment"), _token(page, 2, "'text'")
    colours = {
        kind: page.evaluate(THEME_COLOUR_JS, f"--jp-mirror-editor-{kind}-color")
        for kind in ("keyword", "comment", "string")
    }
    # The Python cell itself is highlighted as JupyterLab does it: the style classes mean what we assume.
    assert keyword[3] == colours["keyword"] and comment[3] == colours["comment"] and string[3] == colours["string"]
    return {"keyword": keyword[2:], "comment": comment[2:], "string": string[2:]}


def _assert_rust(page, i: int, comment: str, styles: dict) -> None:
    tokens = _tokens(page, i)
    assert _token(page, i, "fn")[2:] == styles["keyword"], tokens
    # The whole `//` comment is one comment token (Python sees `//` as an operator).
    assert _token(page, i, comment)[2:] == styles["comment"], tokens
    assert _token(page, i, "if")[2:] == styles["keyword"], tokens
    # The magic line keeps the IPython look: nothing on it is a Rust keyword or a comment.
    assert all(t[2] not in (styles["keyword"][0], styles["comment"][0]) for t in tokens if t[0] == 0), tokens


def _wait_mime(page, i: int, mime: str) -> None:
    page.wait_for_function(f"() => ({MIMES_JS})()[{i}] === {mime!r}", timeout=20_000)
    page.wait_for_timeout(300)  # the editor loads the language, then the view redraws


def _shoot(page, theme: str) -> None:
    """The three cells of the notebook, cropped from the page."""
    boxes = [page.locator(".jp-Notebook .jp-Cell").nth(i).bounding_box() for i in range(3)]
    x0, y0 = min(b["x"] for b in boxes), min(b["y"] for b in boxes)
    x1, y1 = max(b["x"] + b["width"] for b in boxes), max(b["y"] + b["height"] for b in boxes)
    tag = "light" if theme == LIGHT else "dark"
    path = ARTIFACTS / f"rust-cells-{tag}.png"
    page.screenshot(path=str(path), clip={"x": x0, "y": y0, "width": min(x1 - x0, 900), "height": y1 - y0})
    assert path.stat().st_size > 2000, path


def test_rust_cells_are_edited_as_rust(lab: Lab) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lab.put_notebook("rust_cells.ipynb", _notebook(PYTHON_META, RUST_CELL, LLVM_CELL, PYTHON_CELL))
    (ARTIFACTS / "failure-rust-cells.png").unlink(missing_ok=True)
    requested: list[str] = []
    with browser_page(requested) as page:
        try:
            open_notebook(page, lab, "rust_cells.ipynb")
            _wait_mime(page, 0, RUST_MIME)
            assert page.evaluate(MIMES_JS) == [RUST_MIME, RUST_MIME, "text/x-ipython"]
            styles = _styles(page)
            _assert_rust(page, 0, "// the longer of two strings", styles)
            _assert_rust(page, 1, "/// n-th Fibonacci number", styles)
            # A lifetime is not the start of a string.
            assert _token(page, 0, "'a")[2] != styles["string"][0]
            # The Python cell is Python's: `//` is floor division there, `#` the comment.
            assert _token(page, 2, "//")[2:] not in (styles["comment"], styles["keyword"])
            assert _token(page, 2, "return")[2:] == styles["keyword"]

            # Brackets match as in Rust: the `{` ending line 3 pairs with the `}` closing the function.
            page.evaluate(
                """() => { const v = window.jupyterapp.shell.currentWidget.content.widgets[0].editor.editor;
                           v.focus(); v.dispatch({selection: {anchor: v.state.doc.line(3).to}}); }"""
            )
            page.wait_for_timeout(200)
            first = page.locator(".jp-Notebook .jp-Cell").nth(0)
            assert first.locator(".cm-matchingBracket").all_inner_texts() == ["{", "}"]
            assert first.locator(".cm-nonmatchingBracket").count() == 0

            # Comment toggling (Ctrl+/) uses `//` in the body, and toggles back.
            page.keyboard.press("Control+Slash")
            page.wait_for_function(f"() => ({SOURCE_JS})(0).split('\\n')[2].startsWith('// fn longest')")
            page.keyboard.press("Control+Slash")
            page.wait_for_function(f"() => ({SOURCE_JS})(0) === {RUST_CELL!r}")

            # Enter after the `{` indents the new line one unit: the Rust grammar's block indentation.
            page.keyboard.press("End")
            page.keyboard.press("Enter")
            page.keyboard.type("let n = 1;")
            lines = page.evaluate(SOURCE_JS, 0).split("\n")
            assert lines[3] == "    let n = 1;", lines
            page.evaluate(
                "s => window.jupyterapp.shell.currentWidget.content.widgets[0].model.sharedModel.setSource(s)",
                RUST_CELL,
            )

            page.evaluate("() => document.activeElement && document.activeElement.blur()")
            page.wait_for_timeout(200)
            _shoot(page, LIGHT)
            set_theme(page, DARK)
            dark = _styles(page)
            _assert_rust(page, 0, "// the longer of two strings", dark)
            assert dark["keyword"][1] != styles["keyword"][1]  # the dark theme's own keyword colour
            _shoot(page, DARK)
            set_theme(page, LIGHT)

            # Editing the magic away makes the cell Python again; editing it back makes it Rust.
            def retype_magic(name: str) -> None:
                page.evaluate(
                    """() => { const v = window.jupyterapp.shell.currentWidget.content.widgets[0].editor.editor;
                               v.focus(); v.dispatch({selection: {anchor: 2, head: v.state.doc.line(1).to}}); }"""
                )
                page.keyboard.type(name)

            retype_magic("time")
            _wait_mime(page, 0, "text/x-ipython")
            assert page.evaluate(SOURCE_JS, 0).startswith("%%time\n// the longer")
            python = _tokens(page, 0)
            assert not [t for t in python if t[1] == "fn" and t[2:] == styles["keyword"]], python
            assert not [t for t in python if t[1] == "// the longer of two strings"], python
            # ... and Python's reading of `'a` (the start of a string) is back.
            assert [t for t in python if t[1].startswith("'a") and t[2:] == styles["string"]], python
            retype_magic("rust_llvm --opt-level 2")
            _wait_mime(page, 0, RUST_MIME)
            _assert_rust(page, 0, "// the longer of two strings", styles)

            # Every script and style came from this server (nothing from a CDN).
            assert [u for u in requested if not u.startswith((lab.url, "data:", "blob:"))] == []
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "failure-rust-cells.png"))
            raise


def test_other_kernels_are_left_alone(lab: Lab) -> None:
    """A `%%rust` first line in an R notebook is not ours: the cell keeps the notebook's language."""
    lab.put_notebook("r_cells.ipynb", _notebook(R_META, RUST_CELL))
    (ARTIFACTS / "failure-r-cells.png").unlink(missing_ok=True)
    with browser_page() as page:
        try:
            # There is no R kernel here: decline the kernel dialog, the notebook keeps its R metadata.
            open_notebook(page, lab, "r_cells.ipynb", accept_kernel=False)
            page.wait_for_function(f"() => ({MIMES_JS})()[0] === 'text/x-rsrc'", timeout=20_000)
            page.wait_for_timeout(1000)  # time for a (wrong) switch to happen
            assert page.evaluate(MIMES_JS) == ["text/x-rsrc"]
            tokens = _tokens(page, 0)
            assert not [t for t in tokens if t[1] == "// the longer of two strings"], tokens
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "failure-r-cells.png"))
            raise
