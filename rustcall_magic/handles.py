"""Python face of the ownership handles: the live-handle registry, its rows and listeners.

The handle types themselves (``RustBox``, ``RustRc``, ``RustArc``,
``RustVec``) are extension types of the runtime module (``rust_runtime/``,
built and loaded by :mod:`rustcall_magic.runtime`). This module never loads
the runtime: until something else does, no handle can exist and the registry
is empty.

Registry design (kept off the hot path): the runtime records each handle in
a Rust slot table when it is created and moves the record into a bounded
history ring when it ends (dropped, moved into a Rust function, collected).
Rows are built only when asked for (:func:`live_handles`). Listeners are not
called per operation: while at least one is attached the runtime appends the
changed handle ids to a list (one ``Vec::push`` per event) and a poller thread
wakes every *interval* seconds, and if the registry's version moved, drains
the ids and calls each listener once with a :class:`HandleEvent` — so a loop
creating 100 000 handles produces a handful of batches, not 100 000 calls.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .errors import RustcallWarning

#: Element types a handle can hold.
DTYPES = ("i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "bool")
#: Handle kinds as shown in rows.
KINDS = ("Box", "Rc", "Arc", "Vec")
#: Handle states as shown in rows.
STATES = ("alive", "dropped", "moved", "collected")

_ext: ModuleType | None = None
_origin_formatter: Callable[[str, int], str | None] | None = None
_IPYTHON_INPUT = re.compile(r"^<ipython-input-(\d+)-[0-9a-f]+>$")


@dataclass(frozen=True)
class HandleRow:
    """One handle in the registry.

    ``preview`` is the value (Box/Rc/Arc) or ``len=N [first items]`` (Vec);
    ``origin`` says where the handle was created (``cell[3]:2``,
    ``file.py:12``, or ``"rust"`` for a value returned by a cell function
    called from native code). ``strong_count`` is the current count while
    alive, the count left after the handle ended otherwise (Box/Vec: 1 / 0).
    """

    id: int
    kind: str
    dtype: str
    state: str
    strong_count: int
    preview: str
    origin: str

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (for tables and widgets)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "dtype": self.dtype,
            "state": self.state,
            "strong_count": self.strong_count,
            "preview": self.preview,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class HandleEvent:
    """A coalesced batch of registry changes handed to listeners.

    ``rows`` are the current rows of the handles that changed and are still
    known (alive, or in the ended history); ``changed`` counts every handle
    that changed since the previous batch; ``overflowed`` means some changes
    were not itemised (refresh everything); ``version`` is the registry
    version the batch brings a listener up to.
    """

    rows: tuple[HandleRow, ...]
    changed: int
    overflowed: bool
    version: int


def _attach(ext: ModuleType) -> None:
    """Called by the runtime loader once the runtime module is loaded."""
    global _ext
    _ext = ext
    if _pending_history is not None:
        ext._set_history(_pending_history)
    if _listeners:
        ext._track(True)


def runtime_module() -> ModuleType | None:
    """The loaded runtime module, or None when no handle was ever created in this process."""
    return _ext


def set_origin_formatter(formatter: Callable[[str, int], str | None] | None) -> None:
    """Install a function (filename, line) -> text naming where a handle was created.

    The IPython extension installs one that turns a kernel's cell file names
    into ``cell[N]:line``; it may return None to fall back to the default.
    """
    global _origin_formatter
    _origin_formatter = formatter


def format_origin(filename: str | None, line: int) -> str:
    """Text for where a handle was created: ``cell[N]:line`` or ``file.py:line``."""
    if not filename:
        return "rust"
    if _origin_formatter is not None:
        try:
            text = _origin_formatter(filename, line)
        except Exception:  # a broken formatter must not break the registry
            text = None
        if text:
            return text
    m = _IPYTHON_INPUT.match(filename)
    if m:
        return f"cell[{m.group(1)}]:{line}"
    n = _kernel_cell_number(filename)
    if n is not None:
        return f"cell[{n}]:{line}"
    return f"{os.path.basename(filename)}:{line}"


def _kernel_cell_number(filename: str) -> int | None:
    # A kernel names cell code after a hash; its shell's compiler maps that name to the
    # execution count. Look the shell up only if IPython is already running (no import here).
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if get is not None else None
    fmap = getattr(getattr(shell, "compile", None), "_filename_map", None)
    n = fmap.get(filename) if isinstance(fmap, dict) else None
    return n if isinstance(n, int) else None


def _preview(kind: str, state: str, raw: Any) -> str:
    if kind == "Vec":
        n, items = raw
        if items is None:
            return f"len={n}"
        shown = ", ".join(repr(x) for x in items)
        more = ", ..." if n > len(items) else ""
        return f"len={n} [{shown}{more}]"
    if raw is None:
        # Alive: an Rc read from a thread other than its creator's. Ended: a moved value.
        return "(other thread)" if state == "alive" else "-"
    return repr(raw)


def _row(t: tuple[Any, ...]) -> HandleRow:
    hid, kind, dtype, state, strong, raw, code, line = t
    filename = getattr(code, "co_filename", None) if code is not None else None
    return HandleRow(hid, kind, dtype, state, int(strong), _preview(kind, state, raw), format_origin(filename, line))


def live_handles(include_ended: bool = True) -> list[HandleRow]:
    """Rows of the handle registry, oldest first: every alive handle and, with
    *include_ended*, the most recently ended ones (dropped, moved or collected;
    the last 100 by default, see :func:`set_history`).

    Returns an empty list while the runtime is not loaded (no handle exists yet).
    """
    if _ext is None:
        return []
    return [_row(t) for t in _ext._rows(include_ended)]


def set_history(n: int) -> None:
    """Keep at most *n* ended handles in :func:`live_handles` (default 100).

    Raises ValueError when *n* is negative.
    """
    if n < 0:
        raise ValueError("history size must be >= 0")
    if _ext is not None:
        _ext._set_history(n)
    else:
        global _pending_history
        _pending_history = n


_pending_history: int | None = None


def stats() -> dict[str, int]:
    """Counters of the registry: handles created/ended/alive, payloads allocated/freed."""
    if _ext is None:
        return {"created": 0, "ended": 0, "alive": 0, "payload_allocs": 0, "payload_frees": 0}
    created, ended, alive, allocs, frees = _ext._stats()
    return {"created": created, "ended": ended, "alive": alive, "payload_allocs": allocs, "payload_frees": frees}


def handles_table(rows: list[HandleRow] | None = None) -> str:
    """The registry as a text table (what ``%rust_handles`` prints outside a notebook)."""
    rows = live_handles() if rows is None else rows
    if not rows:
        return "no Rust handles"
    cols = ("id", "kind", "dtype", "state", "strong_count", "preview", "origin")
    heads = ("id", "kind", "dtype", "state", "strong", "preview", "origin")
    cells = [[str(getattr(r, c)) for c in cols] for r in rows]
    for line in cells:
        if len(line[5]) > 40:
            line[5] = line[5][:37] + "..."
    widths = [max(len(h), *(len(line[i]) for line in cells)) for i, h in enumerate(heads)]
    fmt = "  ".join(f"{{:{'>' if i in (0, 4) else '<'}{w}}}" for i, w in enumerate(widths))
    alive = sum(r.state == "alive" for r in rows)
    out = [fmt.format(*heads).rstrip(), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line).rstrip() for line in cells]
    out.append(f"{alive} alive, {len(rows) - alive} ended (recent)")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Listeners

Listener = Callable[[HandleEvent], None]
_listeners: list[Listener] = []
_listen_lock = threading.RLock()
_poller: _Poller | None = None
_seen_version = -1


class _Poller(threading.Thread):
    """Wakes every *interval* s and flushes when the registry changed (coalescing bursts)."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="rustcall-handles-poller", daemon=True)
        self.interval = interval
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            ext = _ext
            if ext is not None and ext._version() != _seen_version:
                flush()


def add_listener(callback: Listener, interval: float = 0.25) -> None:
    """Call *callback(event)* with a :class:`HandleEvent` after registry changes, at most
    once per *interval* seconds (changes in between are coalesced into one batch).

    Raises TypeError when *callback* is not callable, ValueError for a non-positive interval.
    """
    global _poller
    if not callable(callback):
        raise TypeError("callback must be callable")
    if interval <= 0:
        raise ValueError("interval must be > 0")
    with _listen_lock:
        if callback not in _listeners:
            _listeners.append(callback)
        if _ext is not None:
            _ext._track(True)
        if _poller is None or not _poller.is_alive():
            _poller = _Poller(interval)
            _poller.start()
        else:
            _poller.interval = min(_poller.interval, interval)


def remove_listener(callback: Listener) -> None:
    """Stop calling *callback*; the last removal stops event collection and the poller."""
    global _poller
    with _listen_lock:
        if callback in _listeners:
            _listeners.remove(callback)
        if not _listeners:
            if _ext is not None:
                _ext._track(False)
            if _poller is not None:
                _poller.stop.set()
                _poller = None


def listeners() -> list[Listener]:
    """The attached listeners."""
    return list(_listeners)


def flush() -> HandleEvent | None:
    """Deliver pending changes to the listeners now; returns the batch (None when nothing changed)."""
    global _seen_version
    with _listen_lock:
        ext = _ext
        if ext is None or not _listeners:
            return None
        version = ext._version()
        ids, overflowed = ext._drain()
        _seen_version = version
        if not ids and not overflowed:
            return None
        wanted = set(ids)
        rows = tuple(_row(t) for t in ext._rows(True) if t[0] in wanted)
        event = HandleEvent(rows, len(ids), bool(overflowed), version)
        for cb in list(_listeners):
            try:
                cb(event)
            except Exception as e:  # one broken view must not stop the others
                warnings.warn(f"handle listener {cb!r} failed: {e!r}", RustcallWarning, stacklevel=2)
        return event
