"""widgets.py driven from Python: buttons clicked with .click(), live updates, magics' widget branch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import rustcall_magic as rc
from rustcall_magic import api, bench, handles, widgets
from rustcall_magic import cache as cache_mod
from rustcall_magic.cache import Cache, make_key
from rustcall_magic.magics import RustMagics
from rustcall_magic.signature import UNIT, FnSig

CELL_A = "pub fn wa_one(a: i64) -> i64 { a + 1 }"
CELL_B = "pub fn wa_two(a: i64) -> i64 { a + 2 }"


def wait_for(condition, timeout: float = 5.0) -> bool:
    """Poll *condition* until true (live views update from a timer thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def fake_entry(cache_root: Path, name: str, size: int = 1000) -> str:
    """Publish an entry this process never loaded (so Clear/Clean may remove it)."""
    cache = Cache(cache_root)
    cache.ensure()
    key = make_key({"fake": name})
    build = cache.new_build_dir(key)
    artifact = build / f"_fake_{name}.so"
    artifact.write_bytes(b"\0" * size)
    sig = FnSig(name, (), UNIT).to_json()
    cache.publish(key, build, artifact, {"module": f"_fake_{name}", "functions": [sig]})
    return key


def table_keys(view: widgets.CacheView) -> list[str]:
    return re.findall(r'<tr data-key="([0-9a-f]+)"', view.table.value)


def row_states(view: widgets.HandlesView) -> dict[int, str]:
    return {int(i): s for i, s in re.findall(r'data-id="(\d+)" data-state="(\w+)"', view.table.value)}


def test_import_does_not_import_ipywidgets() -> None:
    code = (
        "import sys, rustcall_magic as rc; rc.benchmark; rc.BenchResult; rc.cache_widget; "
        "print(sorted(m for m in ('ipywidgets', 'IPython', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stylesheet_ships_in_the_package_and_uses_theme_variables() -> None:
    css = widgets.stylesheet()
    assert ".rustcall-view" in css and "http" not in css and "@import" not in css
    colour_props = re.findall(r"(?:^|[;{\s])(color|background|background-color|border[\w-]*)\s*:\s*([^;}]+)", css)
    assert len(colour_props) > 10
    for prop, value in colour_props:
        # every colour is a theme variable (a plain fallback is allowed inside var())
        literal = re.sub(r"var\(--jp-[\w-]+(?:,\s*[^()]+)?\)", "", value)
        assert not re.search(r"#[0-9a-fA-F]{3,6}\b|rgb|hsl", literal), (prop, value)


def test_cache_view_buttons(fresh_cache) -> None:
    loaded = rc.compile_rust(CELL_A)
    ghost = fake_entry(fresh_cache, "ghost", 5000)
    small = fake_entry(fresh_cache, "small", 10)
    view = rc.cache_widget()
    try:
        assert set(table_keys(view)) == {loaded.key, ghost, small}
        assert re.search(r'class="rustcall-count">3<', view.header.value)
        assert "wa_one" in view.table.value and "ghost" in view.table.value
        assert str(fresh_cache) in view.header.value
        assert "3 entries" in repr(view)  # the text table, for frontends without widgets

        view.sort.value = "size"
        assert table_keys(view).index(ghost) < table_keys(view).index(small)

        # Clean: only entries unused for longer than the days field go.
        old = time.time() - 40 * 86400
        os.utime(Cache(fresh_cache).entry_path(small), (old, old))
        view.days.value = 30
        view.clean_button.click()
        assert set(table_keys(view)) == {loaded.key, ghost}
        assert "removed 1 entry (small)" in view.status.value

        # Verify: a corrupted artifact is evicted and reported as an error.
        art = next(Cache(fresh_cache).entry_path(ghost).glob("*.so"))
        art.write_bytes(b"\1" * 5000)
        view.verify_button.click()
        assert "rustcall-error" in view.status.value and "checksum" in view.status.value
        assert table_keys(view) == [loaded.key]

        # Clear: everything not loaded in this process goes; the loaded entry stays.
        fake_entry(fresh_cache, "ghost2")
        view.refresh_button.click()
        assert len(table_keys(view)) == 2 and "refreshed" in view.status.value
        view.clear_button.click()
        assert table_keys(view) == [loaded.key]
        assert "removed 1 entry (ghost2)" in view.status.value and "kept 1 loaded" in view.status.value
    finally:
        view.close()
    assert view._on_cache_event not in __import__("rustcall_magic.cache").cache.listeners


def test_cache_view_follows_compiles_and_evictions(fresh_cache) -> None:
    view = rc.cache_widget()
    try:
        assert table_keys(view) == []
        assert "The cache is empty" in view.table.value
        m = rc.compile_rust(CELL_B)
        assert wait_for(lambda: table_keys(view) == [m.key])
        assert "wa_two" in view.table.value
        key = fake_entry(fresh_cache, "later")
        assert wait_for(lambda: key in table_keys(view))
        api.clear_cache()  # evicted by someone else than the view: the view follows
        assert wait_for(lambda: table_keys(view) == [m.key])
    finally:
        view.close()


def test_views_are_current_when_a_cell_ends(ip, fresh_cache) -> None:
    # A view's timer redraw can land after its cell went idle (headless runners drop it):
    # the end-of-cell hook redraws at once, in the cell's thread, whatever the timer's back-off.
    cache_view = rc.cache_widget()
    handles_view = widgets.HandlesView({})
    try:
        for view in (cache_view, handles_view):
            view._coalescer._next = time.monotonic() + 3600  # the timer would wait an hour
        ip.user_ns.update(rc=rc, _cell_a=CELL_A)
        result = ip.run_cell("_m = rc.compile_rust(_cell_a); _b = rc.RustBox(5, 'u8')")
        assert result.success
        key, box = ip.user_ns["_m"].key, ip.user_ns["_b"]
        assert key in table_keys(cache_view)
        assert sorted(table_keys(cache_view)) == sorted(e.key for e in rc.cache_stats().entries)
        assert row_states(handles_view)[box.id] == "alive"
        ip.run_cell("_b.drop()")
        assert row_states(handles_view)[box.id] == "dropped"
        # Nothing changed in the next cell: nothing is redrawn.
        runs = handles_view._coalescer.runs
        ip.run_cell("1 + 1")
        assert handles_view._coalescer.runs == runs
    finally:
        cache_view.close()
        handles_view.close()


def test_cache_gauge_against_the_cap(fresh_cache) -> None:
    fake_entry(fresh_cache, "big", 9000)
    compiler = rc.RustCompiler(cache_dir=fresh_cache, max_cache_bytes=10_000)
    view = widgets.CacheView(compiler)
    try:
        assert "rustcall-gauge rustcall-warn" in view.header.value  # 9 KB of a 10 KB cap
        assert "of 9.8 KiB cap" in view.header.value
    finally:
        view.close()


def test_bench_view_rows_per_backend(fresh_cache) -> None:
    m = rc.compile_rust(CELL_A)

    def py_one(a):
        return a + 1

    view = widgets.BenchView()
    seen = []
    view.bar.observe(lambda ch: seen.append(ch["new"]), names="value")
    result = bench.benchmark(["py_one(1)", "wa_one(1)"], {"py_one": py_one, "wa_one": m.wa_one}, 100, 2, view.progress)
    view.show(result)
    assert seen == [1, 2]  # progress moved while the rows were timed
    assert view.progress_box.layout.display == "none"
    backends = re.findall(r'<tr data-backend="([^"]+)"', view.table.value)
    assert backends == ["python", "%%rust"]
    assert view.table.value.count("1.00x") >= 1 and "rustcall-bar rustcall-ref" in view.table.value
    assert "subtracted" in view.note.value
    assert repr(view) == result.table()


def test_handles_view_drop_button_and_live_rows() -> None:
    ns: dict = {}
    ns["b"] = rc.RustBox(42, "i64")
    ns["v"] = rc.RustVec([1, 2, 3], "i32")
    view = rc.handles_widget(ns)
    try:
        b, v = ns["b"], ns["v"]
        assert row_states(view)[b.id] == "alive" and row_states(view)[v.id] == "alive"
        assert b.id in [value for _, value in view.choice.options]

        view.choice.value = b.id
        view.drop_button.click()
        assert b.state == "dropped"
        assert row_states(view)[b.id] == "dropped"
        assert f"dropped #{b.id}" in view.status.value
        assert b.id not in [value for _, value in view.choice.options]

        # A change made elsewhere shows up without a refresh call.
        rc.drop(v)
        assert wait_for(lambda: row_states(view).get(v.id) == "dropped")

        view.hide_ended.value = True
        assert b.id not in row_states(view) and v.id not in row_states(view)

        # A handle not reachable from the namespace is reported, not guessed.
        other = rc.RustBox(1, "i32")
        view.drop(other.id)
        assert "rustcall-error" in view.status.value and other.state == "alive"
    finally:
        view.close()
    assert view._on_event not in handles.listeners()


def test_handles_view_coalesces_a_burst() -> None:
    view = widgets.HandlesView({})
    updates = []
    view.table.observe(lambda ch: updates.append(time.monotonic()), names="value")
    try:
        t0 = time.monotonic()
        for i in range(100_000):
            rc.RustBox(i, "i32")
        last = rc.RustBox(-1, "i32")
        elapsed = time.monotonic() - t0
        assert wait_for(lambda: last.id in row_states(view))
        # at most one redraw per interval (0.25 s) while the loop ran, plus the final one
        assert 1 <= len(updates) <= elapsed / 0.25 + 3
    finally:
        view.close()


def test_magics_show_views_in_a_frontend(ip, monkeypatch, fresh_cache) -> None:
    shown = []
    monkeypatch.setattr(RustMagics, "_frontend", lambda self: True)
    monkeypatch.setattr(RustMagics, "_display", lambda self, view: shown.append(view))
    ip.run_cell_magic("rust", "", CELL_A)
    ip.run_line_magic("rustcache", "")
    ip.run_line_magic("rust_handles", "")
    result = ip.run_line_magic("rust_bench", "-o -n 50 -r 1 wa_one(1)")
    try:
        assert [type(v).__name__ for v in shown] == ["CacheView", "HandlesView", "BenchView"]
        assert "wa_one" in shown[0].table.value
        assert shown[2].result is result and result.rows[0]["backend"] == "%%rust"
    finally:
        for v in shown:
            v.close()


def test_magics_print_text_in_a_terminal(ip, capsys, fresh_cache) -> None:
    assert not ip.find_magic("rustcache").__self__._frontend()  # the test shell has no frontend
    ip.run_cell_magic("rust", "", CELL_A)
    ip.run_line_magic("rustcache", "")
    assert "rustcall cache" in capsys.readouterr().out
    box = rc.RustBox(7, "i64")
    ip.run_line_magic("rust_handles", "")
    out = capsys.readouterr().out
    assert re.search(rf"^\s*{box.id}\s+Box\s+i64\s+alive", out, re.M)


def test_frontend_detection(monkeypatch) -> None:
    class ZMQInteractiveShell:  # what ipykernel's shell class is called
        pass

    class TerminalInteractiveShell:
        pass

    kernel, terminal = SimpleNamespace(shell=ZMQInteractiveShell()), SimpleNamespace(shell=TerminalInteractiveShell())
    monkeypatch.delenv("RUSTCALL_WIDGETS", raising=False)
    assert RustMagics._frontend(kernel) is True
    assert RustMagics._frontend(terminal) is False
    monkeypatch.setenv("RUSTCALL_WIDGETS", "0")
    assert RustMagics._frontend(kernel) is False


# -- views read what they show; views do not leak listeners ----------------------------------


def _handle_listeners_of(view: widgets.HandlesView) -> list:
    return [cb for cb in handles.listeners() if cb == view._on_event]


def _cache_listeners_of(view: widgets.CacheView) -> list:
    return [cb for cb in cache_mod.listeners if cb == view._on_cache_event]


def test_handles_view_redraw_reads_only_the_rows_it_shows(monkeypatch) -> None:
    keep = [rc.RustBox(i, "i64") for i in range(3000)]
    keep[0].drop()
    ext = handles.runtime_module()
    fetched = []

    class Counting:
        def __getattr__(self, name):
            return getattr(ext, name)

        def _rows(self, *args):
            out = ext._rows(*args)
            fetched.append(len(out))
            return out

        def _select(self, *args):
            out = ext._select(*args)
            fetched.append(len(out[0]) + len(out[1]))
            return out

    monkeypatch.setattr(handles, "_ext", Counting())
    view = widgets.HandlesView({})
    try:
        fetched.clear()
        view.refresh()
        assert sum(fetched) <= widgets.MAX_CHOICES + widgets.MAX_ENDED
        states = row_states(view)
        assert keep[-1].id in states and keep[0].id in states and keep[1].id not in states
        alive = handles.stats()["alive"]
        assert f"{alive - widgets.MAX_ROWS:,} older alive" in view.table.value
        assert f"alive {alive:,}<" in view.header.value
        assert len(view.choice.options) == widgets.MAX_CHOICES
        assert len(repr(view).splitlines()) <= widgets.MAX_ROWS + widgets.MAX_ENDED + 3
    finally:
        view.close()


def test_views_superseded_by_the_magic_stop_listening(ip, monkeypatch, fresh_cache) -> None:
    import IPython.display

    shown = []
    monkeypatch.setattr(RustMagics, "_frontend", lambda self: True)
    monkeypatch.setattr(IPython.display, "display", lambda view: shown.append(view))
    try:
        for _ in range(3):
            ip.run_line_magic("rust_handles", "")
            ip.run_line_magic("rustcache", "")
        hviews = [v for v in shown if isinstance(v, widgets.HandlesView)]
        cviews = [v for v in shown if isinstance(v, widgets.CacheView)]
        assert len(hviews) == len(cviews) == 3
        # nothing renders here, so the earlier views are displayed nowhere: only the latest follows
        assert [len(_handle_listeners_of(v)) for v in hviews] == [0, 0, 1]
        assert [len(_cache_listeners_of(v)) for v in cviews] == [0, 0, 1]
        paused = hviews[0].table.value
        b = rc.RustBox(77, "u8")
        assert wait_for(lambda: b.id in row_states(hviews[2]))
        time.sleep(0.3)
        assert hviews[0].table.value == paused, "a paused view does not redraw"

        # A view the frontend reports as displayed keeps following when a newer one is shown ...
        hviews[2]._view_count = 1
        ip.run_line_magic("rust_handles", "")
        assert len(_handle_listeners_of(hviews[2])) == 1
        # ... stops once it is displayed nowhere (its cell was re-run) ...
        hviews[2]._view_count = 0
        assert _handle_listeners_of(hviews[2]) == []
        # ... and follows again, redrawn, when it is displayed again.
        c = rc.RustBox(78, "u8")
        hviews[0]._view_count = 1
        assert len(_handle_listeners_of(hviews[0])) == 1 and c.id in row_states(hviews[0])
    finally:
        for v in shown:
            v.close()
    assert not any(_handle_listeners_of(v) for v in shown if isinstance(v, widgets.HandlesView))


def test_a_collected_view_leaves_no_listener(fresh_cache) -> None:
    import gc
    import weakref

    from comm import get_comm_manager
    from ipywidgets.widgets.widget import _instances

    existing = set(_instances)
    hview, cview = widgets.HandlesView({}), widgets.CacheView()
    refs = [weakref.ref(hview), weakref.ref(cview)]
    before_h, before_c = len(handles.listeners()), len(cache_mod.listeners)
    # ipywidgets and the comm manager keep every open widget alive; drop those references
    # (the views' and their parts') to see whether the listeners keep the views alive too
    comms = get_comm_manager().comms
    for model_id in set(_instances) - existing:
        comms.pop(model_id, None)
        _instances.pop(model_id).comm = None
    del hview, cview
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert len(handles.listeners()) == before_h - 1
    assert len(cache_mod.listeners) == before_c - 1


def test_listeners_of_closed_views_are_gone(fresh_cache) -> None:
    hview, cview = widgets.HandlesView({}), widgets.CacheView()
    assert len(_handle_listeners_of(hview)) == 1 and len(_cache_listeners_of(cview)) == 1
    hview.close()
    cview.close()
    assert _handle_listeners_of(hview) == [] and _cache_listeners_of(cview) == []
    hview.resume()  # a closed view stays closed
    assert _handle_listeners_of(hview) == []
