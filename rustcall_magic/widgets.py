"""Notebook views over plain results: the compile cache, benchmark tables, the handle registry.

The only module importing ipywidgets. Each view is an ``ipywidgets.VBox``
built from stock widgets (buttons, a progress bar, HTML tables) styled by
``static/rustcall.css``, which ships in the package and uses JupyterLab's
theme variables only: nothing is fetched at run time, and light and dark
themes both read well. A view's ``repr`` is the same text table the magics
print outside a notebook.

Live views (cache, handles) follow changes through listeners and coalesce
them: a burst of events becomes at most a few redraws per second, and a
redraw never takes more than a small share of the time (see :class:`_Coalescer`).
A listener holds its view through a weak reference (it unregisters itself
when the view is gone), and a view stops listening once the frontend reports
it is no longer displayed anywhere (or when ``pause()`` is called, as the
magics do for an earlier view a newer one of the same kind supersedes); it
starts again when it is displayed again.
"""

from __future__ import annotations

import html
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import ipywidgets as w

from . import api, handles
from . import cache as cache_mod
from .bench import BenchResult, format_ns, format_ratio
from .cache import CachedLibrary, CacheStats, human_size
from .compiler import RustCompiler
from .errors import RustcallError

#: Most table rows a view sends to the frontend (the rest is summarised in one line).
MAX_ROWS = 200
#: Most alive handles offered in the Drop selector.
MAX_CHOICES = 300
#: Most ended handles (dropped, moved, collected) a handles view lists; alive ones come first.
MAX_ENDED = 10
#: What a row's preview says when the value could not be read on this thread (an Rc).
OFF_THREAD = "(other thread)"
_BUTTON = {"width": "auto", "min_width": "76px"}
_HANDLE_TYPES = frozenset({"RustBox", "RustRc", "RustArc", "RustVec"})


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The views' CSS (``static/rustcall.css``, shipped in the package)."""
    return resources.files(__package__).joinpath("static/rustcall.css").read_text(encoding="utf-8")


def _style_html() -> w.HTML:
    # Sent once per view, in a child that never changes, so table updates stay small.
    return w.HTML(f"<style>{stylesheet()}</style>", layout=w.Layout(display="none"))


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


class _Coalescer:
    """Runs *fn* in a timer thread after pokes, at most once per *interval* seconds, and
    keeps its duty cycle under *max_share*: after a redraw that took t seconds the next
    one waits at least t / max_share. Pokes in between are merged into one run.

    :meth:`flush` runs *fn* at once in the calling thread when anything was poked since
    the last flush: the magics call it (through :func:`flush_views`) at the end of every
    cell, so what a view shows when its cell ends is sent in that cell's context. A
    timer run that lands after the cell went idle is attributed to a finished request,
    and headless runners (nbclient, nbval) drop it.
    """

    def __init__(self, fn: Callable[[], None], interval: float = 0.25, max_share: float = 0.05) -> None:
        self.fn = fn
        self.interval = interval
        self.max_share = max_share
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._next = 0.0
        self.runs = 0
        #: Seconds spent running *fn* so far (what the view cost the process).
        self.busy = 0.0
        self.closed = False
        #: Poked since the last flush (a timer run does not clear it: see the class docstring).
        self.dirty = False
        _coalescers.add(self)

    def poke(self) -> None:
        """Ask for a run (soon, but not before the rate limit allows)."""
        with self._lock:
            if self.closed:
                return
            self.dirty = True
            if self._timer is not None:
                return
            delay = max(0.02, self._next - time.monotonic())
            self._timer = threading.Timer(delay, self._run)
            self._timer.daemon = True
            self._timer.start()

    def _run(self) -> None:
        with self._lock:
            self._timer = None
            if self.closed:
                return
        self._run_now()

    def _run_now(self) -> None:
        t0 = time.monotonic()
        try:
            self.fn()
        finally:
            cost = time.monotonic() - t0
            self.runs += 1
            self.busy += cost
            self._next = t0 + max(self.interval, cost / self.max_share)

    def flush(self) -> bool:
        """Run *fn* now, in this thread, if poked since the last flush (a pending timer run
        is cancelled); True when it ran."""
        with self._lock:
            if not self.dirty or self.closed:
                return False
            self.dirty = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._run_now()
        return True

    def close(self) -> None:
        """Cancel a pending run and refuse later pokes."""
        with self._lock:
            self.closed = True
            self.dirty = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


#: Every coalescer of a live view (weakly held), for :func:`flush_views`.
_coalescers: weakref.WeakSet[_Coalescer] = weakref.WeakSet()


def flush_views() -> int:
    """Redraw now, in this thread, every live view that saw changes since its last flush;
    returns how many redrew. The magics call it when a cell finishes."""
    handles.flush()  # hand pending registry changes to the handles views (their poller may be asleep)
    return sum(c.flush() for c in list(_coalescers))


class _WeakListener:
    """A listener calling *view.<name>(...)* through a weak reference: it keeps no view
    alive, and once the view is collected *unregister(self)* removes it.

    It compares equal to the bound method it stands for, so code holding
    ``view._on_event`` can still find and remove it.
    """

    def __init__(self, view: Any, name: str, unregister: Callable[[_WeakListener], None]) -> None:
        self._name = name
        self._func = getattr(type(view), name)
        self._hash = hash(getattr(view, name))
        self._ref = weakref.ref(view, lambda _: unregister(self))

    def __call__(self, *args: Any) -> None:
        view = self._ref()
        if view is not None:
            getattr(view, self._name)(*args)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _WeakListener):
            return self is other
        view = self._ref()
        return (
            view is not None
            and getattr(other, "__self__", None) is view
            and getattr(other, "__func__", None) is self._func
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"<weak listener {self._name} of {self._ref()!r:.60}>"


class _LiveMixin:
    """Following changes while displayed: ``pause()`` / ``resume()`` and the frontend's view count."""

    following = False
    _ever_displayed = False

    def _start_view_tracking(self) -> None:
        # None means "not tracked"; 0 asks the frontend to report each view it creates and removes.
        self._view_count = 0  # type: ignore[attr-defined]
        self.observe(self._on_view_count, names="_view_count")  # type: ignore[attr-defined]

    def _on_view_count(self, change: Mapping[str, Any]) -> None:
        n = change["new"] or 0
        if n > 0:
            self._ever_displayed = True
            if not self.following:
                self.resume()
        elif self._ever_displayed and self.following:
            self.pause()  # shown before, displayed nowhere now (cell re-run, output cleared)

    def displayed(self) -> bool:
        """True while the frontend reports at least one view of this widget."""
        return (getattr(self, "_view_count", None) or 0) > 0

    def _listen(self, on: bool) -> None:
        raise NotImplementedError

    def pause(self) -> None:
        """Stop following changes (the view keeps showing what it last drew)."""
        if self.following:
            self.following = False
            self._listen(False)

    def resume(self) -> None:
        """Follow changes again, starting with a redraw."""
        if not self.following and not getattr(self._coalescer, "closed", False):  # type: ignore[attr-defined]
            self.following = True
            self._listen(True)
            self.refresh()  # type: ignore[attr-defined]


def _remove_cache_listener(listener: Any) -> None:
    try:
        cache_mod.listeners.remove(listener)
    except ValueError:
        pass


# ---------------------------------------------------------------------------
# Cache view


def _entry_label(e: CachedLibrary) -> str:
    return ", ".join(e.functions) or f"({e.kind})"


def cache_table_html(stats: CacheStats, sort: str = "last_used") -> str:
    """The entries of *stats* as an HTML table, sorted by ``last_used`` or ``size`` (largest/newest first)."""
    if not stats.entries:
        return '<div class="rustcall-empty">The cache is empty.</div>'
    key = (lambda e: e.size) if sort == "size" else (lambda e: e.last_used)
    entries = sorted(stats.entries, key=key, reverse=True)
    now = datetime.now()

    def head(label: str, col: str | None = None, num: bool = False) -> str:
        cls = ["rustcall-num"] if num else []
        if col == sort:
            cls.append("rustcall-sorted")
            label += " ▾"
        return f'<th class="{" ".join(cls)}">{_e(label)}</th>'

    out = [
        '<table class="rustcall-table rustcall-cache-table"><thead><tr>',
        head("functions"),
        head("key"),
        head("size", "size", num=True),
        head("created"),
        head("last used", "last_used"),
        head("hits", num=True),
        head("loaded"),
        "</tr></thead><tbody>",
    ]
    for e in entries[:MAX_ROWS]:
        kind = f' <span class="rustcall-muted">{_e(e.kind)}</span>' if e.functions and e.kind != "cdylib" else ""
        out.append(
            f'<tr data-key="{_e(e.key)}"><td class="rustcall-fns">{_e(_entry_label(e))}{kind}</td>'
            f'<td><code class="rustcall-muted">{_e(e.key[:12])}</code></td>'
            f'<td class="rustcall-num">{_e(human_size(e.size))}</td>'
            f"<td>{_e(_when(e.created, now))}</td><td>{_e(_when(e.last_used, now))}</td>"
            f'<td class="rustcall-num">{e.hits}</td>'
            f"<td>{'<span class=rustcall-ok>● yes</span>' if e.loaded else '<span class=rustcall-muted>no</span>'}</td></tr>"
        )
    out.append("</tbody></table>")
    if len(entries) > MAX_ROWS:
        out.append(f'<div class="rustcall-muted">… and {len(entries) - MAX_ROWS} more entries</div>')
    return "".join(out)


def _when(t: datetime, now: datetime) -> str:
    secs = (now - t).total_seconds()
    if secs < 60:
        ago = "just now"
    elif secs < 3600:
        ago = f"{int(secs // 60)} min ago"
    elif secs < 86400:
        ago = f"{int(secs // 3600)} h ago"
    else:
        ago = f"{int(secs // 86400)} d ago"
    return f"{t:%Y-%m-%d %H:%M} ({ago})"


def cache_header_html(stats: CacheStats) -> str:
    """Title, directory, entry count and total size beside the LRU cap as a gauge."""
    n = len(stats.entries)
    size = human_size(stats.total_size)
    if stats.max_bytes:
        share = stats.total_size / stats.max_bytes
        cls = "rustcall-full" if share >= 1 else "rustcall-warn" if share >= 0.8 else ""
        gauge = (
            f'<span class="rustcall-gauge {cls}" title="{share:.0%} of the cap">'
            f'<span style="width:{min(share, 1) * 100:.1f}%"></span></span>'
            f"{_e(size)} of {_e(human_size(stats.max_bytes))} cap ({share:.0%})"
        )
    else:
        gauge = f'<b class="rustcall-size">{_e(size)}</b> <span class="rustcall-muted">(no size cap)</span>'
    loaded = sum(e.loaded for e in stats.entries)
    return (
        f'<div><span class="rustcall-title">Rust compile cache</span>'
        f'<b class="rustcall-count">{n}</b> entr{"y" if n == 1 else "ies"}'
        f"{f' ({loaded} loaded here)' if loaded else ''} · {gauge}</div>"
        f'<div class="rustcall-muted"><code>{_e(stats.root)}</code></div>'
    )


class CacheView(_LiveMixin, w.VBox):
    """A live view of the compile cache: summary, size gauge, sortable entry table and
    Clean / Clear / Verify / Refresh buttons whose outcome shows in the view.

    It follows compiles and evictions made in this process by itself.
    """

    def __init__(self, compiler: RustCompiler | None = None, **kwargs: Any) -> None:
        self._compiler = compiler
        self.header = w.HTML()
        self.refresh_button = w.Button(
            description="Refresh", icon="refresh", tooltip="Read the cache again", layout=_BUTTON
        )
        self.verify_button = w.Button(
            description="Verify", icon="check", tooltip="Re-check every checksum", layout=_BUTTON
        )
        self.clean_button = w.Button(
            description="Clean",
            icon="broom",
            tooltip="Remove entries not used for the given number of days",
            layout=_BUTTON,
        )
        self.days = w.BoundedFloatText(value=30, min=0, max=36500, step=1, layout=w.Layout(width="64px"))
        self.clear_button = w.Button(
            description="Clear",
            icon="trash",
            button_style="danger",
            tooltip="Remove every entry not loaded here",
            layout=_BUTTON,
        )
        self.sort = w.ToggleButtons(
            options=[("last used", "last_used"), ("size", "size")],
            value="last_used",
            tooltips=["Most recently used first", "Largest first"],
            style={"button_width": "86px"},
        )
        self.status = w.HTML()
        self.table = w.HTML()
        for b, fn in (
            (self.refresh_button, self._on_refresh),
            (self.verify_button, self._on_verify),
            (self.clean_button, self._on_clean),
            (self.clear_button, self._on_clear),
        ):
            b.on_click(fn)
        self.sort.observe(lambda _: self._render(), names="value")
        controls = w.HBox(
            [
                self.refresh_button,
                self.verify_button,
                self.clean_button,
                w.HTML('<span class="rustcall-muted">unused for</span>'),
                self.days,
                w.HTML('<span class="rustcall-muted">days</span>', layout=w.Layout(margin="0 12px 0 0")),
                self.clear_button,
                w.HTML('<span class="rustcall-muted">sort by</span>', layout=w.Layout(margin="0 0 0 14px")),
                self.sort,
            ]
        )
        controls.add_class("rustcall-controls")
        self.status.add_class("rustcall-status")
        super().__init__([_style_html(), self.header, controls, self.status, self.table], **kwargs)
        self.add_class("rustcall-view")
        self.add_class("rustcall-cache")
        self.stats: CacheStats | None = None
        self._lock = threading.RLock()
        self._coalescer = _Coalescer(self.refresh, interval=0.2)
        self._listener = _WeakListener(self, "_on_cache_event", _remove_cache_listener)
        self._start_view_tracking()
        self.resume()

    def _listen(self, on: bool) -> None:
        if on:
            if self._listener not in cache_mod.listeners:
                cache_mod.listeners.append(self._listener)
        else:
            _remove_cache_listener(self._listener)

    def compiler(self) -> RustCompiler:
        """The compiler whose cache this view shows (the default compiler unless one was given)."""
        return self._compiler or api.get_default_compiler()

    def refresh(self) -> None:
        """Read the cache again and redraw (what the Refresh button does)."""
        with self._lock:  # the timer thread and the kernel's main thread both redraw
            try:
                self.stats = api.cache_stats(self.compiler())
            except RustcallError as e:
                self._say(f"cannot read the cache: {e}", error=True)
                return
            self._render()

    def _render(self) -> None:
        stats = self.stats
        if stats is None:
            return
        self.header.value = cache_header_html(stats)
        self.table.value = cache_table_html(stats, self.sort.value)

    def _on_cache_event(self, root: Path, event: str, key: str) -> None:
        if root == self.compiler().cache.root:
            self._coalescer.poke()

    def _say(self, text: str, error: bool = False) -> None:
        cls = "rustcall-error" if error else "rustcall-ok"
        self.status.value = f'<span class="{cls}">{_e(text)}</span>'

    def _removed(self, before: CacheStats | None, what: str) -> str:
        keys_now = {e.key for e in (self.stats.entries if self.stats else ())}
        gone = [e for e in (before.entries if before else ()) if e.key not in keys_now]
        n = len(gone)
        text = f"{what}: removed {n} entr{'y' if n == 1 else 'ies'}"
        if gone:
            names = "; ".join(_entry_label(e) for e in gone[:8]) + (" …" if n > 8 else "")
            text += f" ({names})"
        return text

    def _on_refresh(self, _: Any = None) -> None:
        self.refresh()
        self._say(f"refreshed at {datetime.now():%H:%M:%S}")

    def _on_clear(self, _: Any = None) -> None:
        before = self.stats
        try:
            api.clear_cache(self.compiler())
        except (RustcallError, OSError) as e:
            self._say(f"clear failed: {e}", error=True)
            return
        self.refresh()
        text = self._removed(before, "clear")
        kept = sum(e.loaded for e in self.stats.entries) if self.stats else 0
        if kept:
            text += f"; kept {kept} loaded in this process"
        self._say(text)

    def _on_clean(self, _: Any = None) -> None:
        before = self.stats
        days = float(self.days.value)
        try:
            api.cleanup_old_cache(days, self.compiler())
        except (RustcallError, OSError, ValueError) as e:
            self._say(f"clean failed: {e}", error=True)
            return
        self.refresh()
        self._say(self._removed(before, f"clean (not used for {days:g} days)"))

    def _on_verify(self, _: Any = None) -> None:
        try:
            good, bad = api.verify_cache(self.compiler())
        except (RustcallError, OSError) as e:
            self._say(f"verify failed: {e}", error=True)
            return
        self.refresh()
        if not bad:
            self._say(f"verified {good} entr{'y' if good == 1 else 'ies'}: all good")
            return
        problems = "; ".join(f"{k[:12]}: {p}" for k, p in bad)
        self._say(f"verified {good + len(bad)} entries: {good} good, {len(bad)} bad ({problems})", error=True)

    def close(self) -> None:
        """Stop following the cache and close the widgets."""
        self.pause()
        self._coalescer.close()
        super().close()

    def __repr__(self) -> str:
        return str(self.stats) if self.stats is not None else "CacheView()"


# ---------------------------------------------------------------------------
# Benchmark view


def bench_table_html(result: BenchResult) -> str:
    """The rows of *result* as an HTML table with a horizontal bar per row."""
    if not result.rows:
        return '<div class="rustcall-empty">No timings.</div>'
    slowest = max(r["ns_per_call"] for r in result.rows) or 1.0
    out = [
        '<table class="rustcall-table rustcall-bench-table"><thead><tr>'
        '<th>expression</th><th>backend</th><th class="rustcall-num">best / call</th>'
        '<th class="rustcall-num">median / call</th><th class="rustcall-num">ratio</th><th></th></tr></thead><tbody>'
    ]
    for i, r in enumerate(result.rows):
        width = 100 * r["ns_per_call"] / slowest if slowest > 0 else 0
        ref = " rustcall-ref" if i == 0 else ""
        out.append(
            f'<tr data-backend="{_e(r["backend"])}"><td><code>{_e(r["expr"])}</code></td>'
            f'<td class="rustcall-backend">{_e(r["backend"])}</td>'
            f'<td class="rustcall-num">{_e(format_ns(r["ns_per_call"]))}</td>'
            f'<td class="rustcall-num">{_e(format_ns(r["median_ns"]))}</td>'
            f'<td class="rustcall-num">{_e(format_ratio(r["ratio"]))}</td>'
            f'<td class="rustcall-bar-cell"><div class="rustcall-bar{ref}" style="width:{width:.1f}%"></div></td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


class BenchView(w.VBox):
    """A benchmark table: progress while the rows are timed, then expression, backend,
    best and median ns/call, ratio to the first row and a bar per row."""

    def __init__(self, result: BenchResult | None = None, **kwargs: Any) -> None:
        self.header = w.HTML('<span class="rustcall-title">Benchmark</span>')
        self.bar = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="240px"))
        self.label = w.HTML('<span class="rustcall-muted">waiting…</span>')
        self.progress_box = w.HBox([self.bar, self.label])
        self.table = w.HTML()
        self.note = w.HTML()
        super().__init__([_style_html(), self.header, self.progress_box, self.table, self.note], **kwargs)
        self.add_class("rustcall-view")
        self.add_class("rustcall-bench")
        self.result: BenchResult | None = None
        if result is not None:
            self.show(result)

    def progress(self, done: int, total: int, label: str) -> None:
        """Show that row *done* of *total* (*label*) is being timed."""
        self.bar.max = max(total, 1)
        self.bar.value = done
        text = f"timing {done + 1}/{total}: <code>{_e(label)}</code>" if done < total else "done"
        self.label.value = f'<span class="rustcall-muted">{text}</span>'

    def show(self, result: BenchResult) -> None:
        """Display *result* (and hide the progress bar)."""
        self.result = result
        self.progress_box.layout.display = "none"
        self.table.value = bench_table_html(result)
        self.note.value = f'<div class="rustcall-muted">{_e(result.note())}</div>'

    def __repr__(self) -> str:
        return self.result.table() if self.result is not None else "BenchView()"


# ---------------------------------------------------------------------------
# Handles view


def _state_badge(state: str, count: int | None = None) -> str:
    text = state if count is None else f"{state} {count:,}"
    return f'<span class="rustcall-badge rustcall-state-{_e(state)}">{_e(text)}</span>'


def handles_table_html(
    rows: list[handles.HandleRow],
    hide_ended: bool = False,
    max_rows: int = MAX_ROWS,
    max_ended: int = MAX_ENDED,
    ended_order: Mapping[int, tuple[int, ...]] | None = None,
    totals: Mapping[str, int] | None = None,
) -> str:
    """Registry rows as an HTML table: the newest *max_rows* alive handles by id, then
    (unless *hide_ended*) *max_ended* ended ones, latest first by *ended_order* (id -> sort
    key, larger = more recent; default: by id); states colour-coded. *totals*
    (``{"alive": n, "ended": m}``) counts the handles *rows* leaves out, for the
    "not listed" line (default: *rows* is everything)."""
    alive = [r for r in rows if r.state == "alive"]
    ended = [] if hide_ended else [r for r in rows if r.state != "alive"]
    order = ended_order or {}
    ended.sort(key=lambda r: order.get(r.id, (-1, 0, r.id)), reverse=True)
    shown = alive[len(alive) - min(len(alive), max_rows) :] + ended[:max_ended]
    if not shown:
        return '<div class="rustcall-empty">No Rust handles{}.</div>'.format(" alive" if hide_ended else "")
    out = []
    alive_total = max(len(alive), (totals or {}).get("alive", 0))
    ended_total = 0 if hide_ended else max(len(ended), (totals or {}).get("ended", 0))
    hidden_alive = alive_total - min(len(alive), max_rows)
    hidden_ended = ended_total - min(len(ended), max_ended)
    out.append(
        '<table class="rustcall-table rustcall-handles-table"><thead><tr>'
        '<th class="rustcall-num">id</th><th>kind</th><th>dtype</th><th>state</th>'
        '<th class="rustcall-num">strong</th><th>preview</th><th>origin</th></tr></thead><tbody>'
    )
    for r in shown:
        preview = r.preview if len(r.preview) <= 48 else r.preview[:45] + "…"
        ended = "" if r.state == "alive" else ' class="rustcall-ended"'
        out.append(
            f'<tr data-id="{r.id}" data-state="{_e(r.state)}"{ended}><td class="rustcall-num">{r.id}</td>'
            f"<td>{_e(r.kind)}</td><td><code>{_e(r.dtype)}</code></td><td>{_state_badge(r.state)}</td>"
            f'<td class="rustcall-num">{r.strong_count}</td><td><code>{_e(preview)}</code></td>'
            f'<td class="rustcall-muted">{_e(r.origin)}</td></tr>'
        )
    out.append("</tbody></table>")
    if hidden_alive or hidden_ended:
        parts = [f"{n:,} older {what}" for n, what in ((hidden_alive, "alive"), (hidden_ended, "ended")) if n]
        out.append(f'<div class="rustcall-muted">… {" and ".join(parts)} not listed</div>')
    return "".join(out)


def _find_handles(namespace: Mapping[str, Any], wanted: int) -> list[Any]:
    # Handles are not tracked by the GC, so look where users keep them: the namespace
    # and containers one level down.
    found = []

    def check(v: Any) -> None:
        if type(v).__name__ in _HANDLE_TYPES and type(v).__module__.startswith("rustcall_magic"):
            try:
                if v.id == wanted:
                    found.append(v)
            except Exception:
                pass
        # An instance of a cell's struct: its row id is the object's id().
        elif (
            id(v) == wanted and type(v).__module__.startswith("_rustcall_") and callable(getattr(type(v), "drop", None))
        ):
            found.append(v)

    for name, value in list(namespace.items()):
        if name.startswith("__"):
            continue
        check(value)
        if isinstance(value, (list, tuple, set)) and len(value) <= 10_000:
            for item in value:
                check(item)
        elif isinstance(value, dict) and len(value) <= 10_000:
            for item in value.values():
                check(item)
    return found


class HandlesView(_LiveMixin, w.VBox):
    """A live table of the handle registry: id, kind, dtype, state (colour-coded),
    strong count, preview and origin; counts per state; a filter hiding ended
    handles; and a Drop button for a selected alive handle.

    It follows later drops, moves and collections by itself (coalesced, see
    :func:`rustcall_magic.handles.add_listener`). *namespace* is where the Drop
    button looks for the selected handle (default: the ``__main__`` module's).
    """

    def __init__(self, namespace: Mapping[str, Any] | None = None, interval: float = 0.25, **kwargs: Any) -> None:
        self._namespace = namespace
        self.header = w.HTML()
        self.hide_ended = w.Checkbox(value=False, description="hide ended", indent=False, layout=w.Layout(width="auto"))
        self.choice = w.Dropdown(options=[], description="handle", layout=w.Layout(width="320px"))
        self.choice.style.description_width = "50px"
        self.drop_button = w.Button(
            description="Drop",
            icon="times",
            button_style="warning",
            tooltip="Drop the selected handle now",
            layout=_BUTTON,
        )
        self.status = w.HTML()
        self.table = w.HTML()
        self.drop_button.on_click(self._on_drop)
        self.hide_ended.observe(lambda _: self.refresh(), names="value")
        controls = w.HBox([self.choice, self.drop_button, self.hide_ended])
        controls.add_class("rustcall-controls")
        self.status.add_class("rustcall-status")
        super().__init__([_style_html(), self.header, controls, self.status, self.table], **kwargs)
        self.add_class("rustcall-view")
        self.add_class("rustcall-handles")
        self.rows: list[handles.HandleRow] = []
        self.snapshot: handles.HandlesSnapshot | None = None
        self._previews: dict[int, str] = {}
        self._lock = threading.RLock()
        self._interval = interval
        self._coalescer = _Coalescer(self.refresh, interval=interval)
        self._listener = _WeakListener(self, "_on_event", handles.remove_listener)
        self._start_view_tracking()
        self.resume()

    def _listen(self, on: bool) -> None:
        if on:
            handles.add_listener(self._listener, interval=self._interval)
        else:
            handles.remove_listener(self._listener)

    def namespace(self) -> Mapping[str, Any]:
        """Where the Drop button looks for handles."""
        if self._namespace is not None:
            return self._namespace
        main = sys.modules.get("__main__")
        return vars(main) if main is not None else {}

    def _on_event(self, event: handles.HandleEvent) -> None:
        self._coalescer.poke()

    def refresh(self) -> None:
        """Read the registry and redraw."""
        with self._lock:  # the timer thread and the kernel's main thread both redraw
            self._refresh()

    def _refresh(self) -> None:
        # Only what is shown is read: the newest alive handles (the Drop choices, of which
        # the table lists the newest MAX_ROWS), the latest ended ones, and counts.
        snap = handles.snapshot(MAX_CHOICES, 0 if self.hide_ended.value else MAX_ENDED)
        alive = list(snap.alive)
        # An Rc can only be read on its owner thread; redraws from the listener thread
        # reuse the preview last read on the owner thread.
        if threading.current_thread() is threading.main_thread():
            self._previews = {r.id: r.preview for r in alive if r.kind == "Rc"}
        elif self._previews:
            alive = [
                replace(r, preview=self._previews[r.id]) if r.preview == OFF_THREAD and r.id in self._previews else r
                for r in alive
            ]
        snap = replace(snap, alive=tuple(alive))
        self.snapshot = snap
        self.rows = snap.rows
        counts = snap.counts
        badges = "".join(_state_badge(s, counts[s]) for s in handles.STATES)
        self.header.value = (
            f'<div><span class="rustcall-title">Rust handles</span>{badges}'
            f'<span class="rustcall-muted">{snap.created:,} created in this process</span></div>'
            '<div class="rustcall-muted">counts cover the whole process; the table lists the alive handles '
            "and the latest ended ones</div>"
        )
        # The registry lists ended handles in the order they ended: the latest is last.
        order = {r.id: (i,) for i, r in enumerate(snap.ended)}
        self.table.value = handles_table_html(
            alive + list(snap.ended),
            self.hide_ended.value,
            ended_order=order,
            totals={"alive": snap.alive_total, "ended": snap.ended_total},
        )
        options = [(f"#{r.id} {r.kind}<{r.dtype}> {r.preview[:24]}", r.id) for r in reversed(alive)]
        if [o[1] for o in options] != [o[1] for o in self.choice.options] or not options:
            keep = self.choice.value
            self.choice.options = options
            ids = [o[1] for o in options]
            self.choice.value = keep if keep in ids else (ids[0] if ids else None)
        self.drop_button.disabled = not options

    def drop(self, handle_id: int) -> None:
        """Drop the alive handle with id *handle_id* (found in the namespace); the outcome shows in the view."""
        found = _find_handles(self.namespace(), handle_id)
        if not found:
            self._say(
                f"handle #{handle_id} is not bound to a name in the namespace; drop it from code with rc.drop(handle)",
                error=True,
            )
            return
        try:
            found[0].drop()
        except Exception as e:  # RustHandleError, BufferError while views exist
            self._say(f"cannot drop #{handle_id}: {e}", error=True)
            return
        self.refresh()
        self._say(f"dropped #{handle_id}")

    def _on_drop(self, _: Any = None) -> None:
        if self.choice.value is None:
            self._say("no alive handle selected", error=True)
            return
        self.drop(int(self.choice.value))

    def _say(self, text: str, error: bool = False) -> None:
        cls = "rustcall-error" if error else "rustcall-ok"
        self.status.value = f'<span class="{cls}">{_e(text)}</span>'

    def close(self) -> None:
        """Stop following the registry and close the widgets."""
        self.pause()
        self._coalescer.close()
        super().close()

    def __repr__(self) -> str:
        snap = self.snapshot
        if snap is None:
            return "HandlesView()"
        return handles.snapshot_table(
            replace(snap, alive=snap.alive[len(snap.alive) - min(len(snap.alive), MAX_ROWS) :])
        )


class CargoProgressView(w.HBox):
    """A progress bar over a cargo build: crates done / total, the crate being compiled, elapsed time.

    Called with each :class:`~rustcall_magic.deps.CargoProgress` report (it is a
    progress callback). It is displayed by *show* (e.g. IPython's ``display``)
    on the first report only, so a build with nothing to compile shows nothing.
    """

    def __init__(self, show: Callable[[Any], None] | None = None) -> None:
        self.bar = w.IntProgress(value=0, min=0, max=1, description="cargo", bar_style="info")
        self.label = w.Label("")
        super().__init__([self.bar, self.label])
        self._show = show
        self._shown = False
        #: The last report's text (the same line a terminal shows).
        self.text = ""

    def __call__(self, p: Any) -> None:
        self.bar.max = max(1, p.total)
        self.bar.value = min(p.done, self.bar.max)
        if p.finished:
            self.bar.bar_style = "success" if p.ok else "danger"
        self.text = p.line()
        self.label.value = self.text.removeprefix("cargo: ")
        if not self._shown and self._show is not None:
            self._shown = True
            self._show(self)

    def __repr__(self) -> str:
        return self.text or "cargo: (no build)"
