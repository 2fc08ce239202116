"""Python face of the ownership handles: the live-handle registry, its rows and listeners.

The handle types themselves (``RustBox``, ``RustRc``, ``RustArc``,
``RustVec``) are extension types of the runtime module (``rust_runtime/``,
built and loaded by :mod:`rustcall_magic.runtime`). This module never loads
the runtime: until something else does, no handle can exist and the registry
is empty.

Registry design (kept off the hot path): the runtime records each handle in
a Rust slot table when it is created and moves the record into a bounded
history ring when it ends (dropped, moved into a Rust function, collected).
Rows are built only when asked for, and only for what is asked:
:func:`live_handles` builds every row, :func:`snapshot` only the newest alive
ones and the latest ended ones (what a view shows), so showing 200 rows of a
registry holding 200 000 handles costs a scan in Rust and 200 rows.
Listeners are not called per operation, and attaching one adds nothing to a
handle operation: a poller thread wakes every *interval* seconds, and if the
registry's version moved, calls each listener once with a
:class:`HandleEvent` describing the batch from the registry's counters (ids
are handed out in order, so the handles created since the last batch are the
ids above the last one seen) — a loop creating 100 000 handles produces a
handful of batches, not 100 000 calls, and a batch's rows are built only if a
listener reads them.
"""

from __future__ import annotations

import math
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


class HandleEvent:
    """A coalesced batch of registry changes handed to listeners.

    ``rows`` are the current rows of the handles that changed and are still
    known (alive, or in the ended history), oldest id first; they are built
    on first access (a listener that only redraws never pays for them).
    ``changed`` counts every handle that changed since the previous batch;
    ``overflowed`` means some changes were not itemised (more handles ended
    than the history keeps: refresh everything); ``version`` is the registry version the batch brings a listener up to.
    """

    __slots__ = ("_load", "_lock", "_rows", "changed", "overflowed", "version")

    def __init__(
        self,
        rows: tuple[HandleRow, ...] | Callable[[], tuple[HandleRow, ...]],
        changed: int,
        overflowed: bool,
        version: int,
    ) -> None:
        self._rows = None if callable(rows) else tuple(rows)
        self._load = rows if callable(rows) else None
        self._lock = threading.Lock()
        self.changed = changed
        self.overflowed = overflowed
        self.version = version

    @property
    def rows(self) -> tuple[HandleRow, ...]:
        """The current rows of the changed handles (built once, on first access)."""
        with self._lock:
            if self._rows is None:
                assert self._load is not None
                self._rows = self._load()
                self._load = None
            return self._rows

    def __repr__(self) -> str:
        more = ", overflowed" if self.overflowed else ""
        return f"<HandleEvent: {self.changed} changed{more}, version {self.version}>"


def _attach(ext: ModuleType) -> None:
    """Called by the runtime loader once the runtime module is loaded."""
    global _ext
    _ext = ext
    if _pending_history is not None:
        ext._set_history(_pending_history)


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


#: Cell modules with exported structs, by module name: their ``_rustcall_instances()``.
_instance_sources: dict[str, Callable[[], list[tuple[int, str, str, str]]]] = {}
#: ... and their ``_rustcall_version()`` (an instance-change counter).
_instance_versions: dict[str, Callable[[], int]] = {}


def add_instance_source(
    module_name: str, rows: Callable[[], list[tuple[int, str, str, str]]], version: Callable[[], int] | None = None
) -> None:
    """List the struct instances of cell module *module_name* in the registry's rows.

    *rows* returns one ``(id, kind, state, preview)`` tuple per instance whose
    Python object exists (the id is the object's ``id()``; kind the struct's name);
    *version*, a counter that changes with every instance change, lets listeners
    hear of them.
    """
    _instance_sources[module_name] = rows
    if version is not None:
        _instance_versions[module_name] = version


def _instances_version() -> int:
    # Each counter only grows, so their sum changes whenever one does.
    return sum(v() for v in list(_instance_versions.values()))


def instance_rows() -> list[HandleRow]:
    """Rows of the usable struct instances of every loaded cell module: state ``alive``, or
    ``poisoned`` (a panic in a ``&mut self`` method; still owning its value until dropped).

    Moved and dropped instances are not listed: like a handle whose history entry was
    evicted, they own nothing any more.
    """
    out = []
    for rows in list(_instance_sources.values()):
        for hid, kind, state, preview in rows():
            if state in ("alive", "poisoned"):
                out.append(HandleRow(hid, kind, "", state, 1, preview, "-"))
    return out


def live_handles(include_ended: bool = True) -> list[HandleRow]:
    """Rows of the handle registry, oldest first: every alive handle and, with
    *include_ended*, the most recently ended ones (dropped, moved or collected;
    the last 100 by default, see :func:`set_history`); then the instances of
    cells' structs that own their values (kind = the struct's name, state
    ``alive`` or ``poisoned``, preview = the ``Debug`` text; see :func:`instance_rows`).

    Builds one row per alive handle; views use :func:`snapshot`, whose cost is
    set by how many rows it returns. Handles are listed once the runtime is loaded
    (none exists before).
    """
    rows = [_row(t) for t in _ext._rows(include_ended)] if _ext is not None else []
    return rows + instance_rows()


@dataclass(frozen=True)
class HandlesSnapshot:
    """What a view of the registry shows: the newest alive handles, the latest ended
    ones, and counts for everything.

    ``alive`` holds the newest alive handles (by id, oldest first), ``ended``
    the most recently ended ones in the order they ended (oldest first).
    ``counts`` has one entry per state, over the whole process: ``alive``
    counts every alive handle, the ended states every handle that ended so far
    (the rows listed come from the bounded history, see :func:`set_history`).
    ``created`` is how many handles this process created.
    """

    alive: tuple[HandleRow, ...]
    ended: tuple[HandleRow, ...]
    counts: dict[str, int]
    created: int

    @property
    def alive_total(self) -> int:
        """How many handles are alive (listed or not)."""
        return self.counts["alive"]

    @property
    def ended_total(self) -> int:
        """How many handles have ended in this process (listed or not)."""
        return sum(self.counts[s] for s in STATES[1:])

    @property
    def rows(self) -> list[HandleRow]:
        """The listed rows, alive and ended, by id."""
        return sorted(self.alive + self.ended, key=lambda r: r.id)


def snapshot(max_alive: int = 200, max_ended: int = 100) -> HandlesSnapshot:
    """The newest *max_alive* alive handles, the *max_ended* most recently ended ones, and
    counts per state: what a view shows, at a cost set by the rows returned (not by how
    many handles are alive).

    Raises ValueError when a count is negative.
    """
    if max_alive < 0 or max_ended < 0:
        raise ValueError("max_alive and max_ended must be >= 0")
    if _ext is None:
        snap = HandlesSnapshot((), (), dict.fromkeys(STATES, 0), 0)
    else:
        alive, ended, counts = _ext._select(0, max_alive, max_ended)
        snap = HandlesSnapshot(
            tuple(_row(t) for t in alive),
            tuple(_row(t) for t in ended),
            dict(zip(STATES, counts[:4], strict=True)),
            counts[4],
        )
    extra = instance_rows()
    if not extra:
        return snap
    # Struct instances that own their values are listed and counted beside the alive handles.
    counts = dict(snap.counts)
    counts["alive"] += len(extra)
    alive_rows = (snap.alive + tuple(extra))[-max_alive:] if max_alive else ()
    return HandlesSnapshot(alive_rows, snap.ended, counts, snap.created)


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


#: Most alive handles the text table lists (the newest; the rest is counted in the last line).
MAX_TEXT_ALIVE = 200
#: Most ended handles the text table lists (the most recently ended).
MAX_TEXT_ENDED = 100


def handles_table(
    rows: list[HandleRow] | None = None, max_alive: int = MAX_TEXT_ALIVE, max_ended: int = MAX_TEXT_ENDED
) -> str:
    """The registry as a text table (what ``%rust_handles`` prints outside a notebook).

    Lists the newest *max_alive* alive handles and the *max_ended* most recently
    ended ones, by id; the last line gives the counts and how many were not listed.
    *rows* (e.g. from :func:`live_handles`) replaces the registry's current rows.
    """
    if rows is None:
        return snapshot_table(snapshot(max_alive, max_ended))
    alive = sorted((r for r in rows if r.state == "alive"), key=lambda r: r.id)
    ended = [r for r in rows if r.state != "alive"]
    return _table(
        alive[len(alive) - min(len(alive), max_alive) :],
        ended[len(ended) - min(len(ended), max_ended) :],
        len(alive),
        len(ended),
    )


def snapshot_table(snap: HandlesSnapshot) -> str:
    """A :class:`HandlesSnapshot` as the text table :func:`handles_table` prints."""
    return _table(list(snap.alive), list(snap.ended), snap.alive_total, snap.ended_total)


def _table(alive: list[HandleRow], ended: list[HandleRow], alive_total: int, ended_total: int) -> str:
    shown = sorted(alive + ended, key=lambda r: r.id)
    if not shown and not alive_total and not ended_total:
        return "no Rust handles"
    cols = ("id", "kind", "dtype", "state", "strong_count", "preview", "origin")
    heads = ("id", "kind", "dtype", "state", "strong", "preview", "origin")
    cells = [[str(getattr(r, c)) for c in cols] for r in shown]
    for line in cells:
        if len(line[5]) > 40:
            line[5] = line[5][:37] + "..."
    widths = [max(len(h), *(len(line[i]) for line in cells)) for i, h in enumerate(heads)]
    fmt = "  ".join(f"{{:{'>' if i in (0, 4) else '<'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*heads).rstrip(), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line).rstrip() for line in cells]
    summary = f"{alive_total:,} alive, {ended_total:,} ended"
    hidden = [
        f"{n:,} older {what}"
        for n, what in ((alive_total - len(alive), "alive"), (ended_total - len(ended), "ended"))
        if n > 0
    ]
    if hidden:
        summary += f"; not listed: {' and '.join(hidden)}"
    out.append(summary)
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Listeners

Listener = Callable[[HandleEvent], None]
#: Attached listeners and the interval each asked for.
_listeners: list[tuple[Listener, float]] = []
_listen_lock = threading.RLock()
_poller: _Poller | None = None
_seen_version = -1
#: The struct-instance counters' sum the last batch brought the listeners up to.
_seen_instances = 0
#: Registry counters (created, ended) the last batch brought the listeners up to.
_seen_totals = (0, 0)
#: Most ended handles a batch itemises (the history holds at most this many anyway by default).
MAX_BATCH_ENDED = 1000


class _Poller(threading.Thread):
    """Wakes every *interval* s and flushes when the registry changed (coalescing bursts)."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="rustcall-handles-poller", daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.wake = threading.Event()

    def set_interval(self, interval: float) -> None:
        """Poll every *interval* s from now on (a sleep in progress is cut short)."""
        self.interval = interval
        self.wake.set()

    def run(self) -> None:
        while not self.stop.is_set():
            self.wake.wait(self.interval)
            self.wake.clear()
            if self.stop.is_set():
                return
            ext = _ext
            if ext is not None and ext._version() != _seen_version:
                flush()
            if _instance_versions and _instances_version() != _seen_instances:
                _flush_instances()


def _check_interval(interval: float) -> float:
    try:
        value = float(interval)
    except (TypeError, ValueError):
        raise TypeError(f"interval must be a number of seconds, not {interval!r}") from None
    # NaN would make the poller spin, inf would overflow its sleep.
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"interval must be a finite number of seconds > 0, not {interval!r}")
    return value


def add_listener(callback: Listener, interval: float = 0.25) -> None:
    """Call *callback(event)* with a :class:`HandleEvent` after registry changes, at most
    once per *interval* seconds (changes in between are coalesced into one batch).

    The poller follows the smallest interval of the attached listeners. Adding a
    listener already attached updates its interval. Raises TypeError when
    *callback* is not callable or *interval* not a number, ValueError when
    *interval* is not finite or not positive.
    """
    global _poller, _seen_totals, _seen_version, _seen_instances
    if not callable(callback):
        raise TypeError("callback must be callable")
    interval = _check_interval(interval)
    with _listen_lock:
        if not _listeners:
            # A first listener hears about changes from now on, not since the runtime loaded.
            _seen_totals, _seen_version = _totals()
            _seen_instances = _instances_version()
        for i, (cb, _) in enumerate(_listeners):
            if cb == callback:
                _listeners[i] = (cb, interval)
                break
        else:
            _listeners.append((callback, interval))
        _retune()


def remove_listener(callback: Listener) -> None:
    """Stop calling *callback*; the poller then follows the remaining listeners' smallest
    interval, and stops with the last removal."""
    with _listen_lock:
        _listeners[:] = [(cb, iv) for cb, iv in _listeners if cb != callback]
        _retune()


def _retune() -> None:
    """Start, re-time or stop the poller to match the attached listeners (lock held)."""
    global _poller
    if not _listeners:
        if _poller is not None:
            _poller.stop.set()
            _poller.wake.set()
            _poller = None
        return
    fastest = min(iv for _, iv in _listeners)
    if _poller is None or not _poller.is_alive():
        _poller = _Poller(fastest)
        _poller.start()
    elif _poller.interval != fastest:
        _poller.set_interval(fastest)


def poll_interval() -> float | None:
    """Seconds between the poller's checks (None when no listener is attached)."""
    with _listen_lock:
        return _poller.interval if _poller is not None else None


def listeners() -> list[Listener]:
    """The attached listeners."""
    return [cb for cb, _ in _listeners]


def _totals() -> tuple[tuple[int, int], int]:
    ext = _ext
    if ext is None:
        return (0, 0), -1
    version = ext._version()
    created, ended = ext._stats()[:2]
    return (created, ended), version


def _deliver(event: HandleEvent) -> None:
    """Hand ``event`` to every listener (called with ``_listen_lock`` held)."""
    for cb, _ in list(_listeners):
        try:
            cb(event)
        except Exception as e:  # one broken view must not stop the others
            warnings.warn(f"handle listener {cb!r} failed: {e!r}", RustcallWarning, stacklevel=3)


def _flush_instances() -> HandleEvent | None:
    """Tell the listeners that struct instances changed (one batch for everything since the last)."""
    global _seen_instances
    with _listen_lock:
        version = _instances_version()
        if not _listeners or version == _seen_instances:
            return None
        changed, _seen_instances = version - _seen_instances, version
        event = HandleEvent(lambda: tuple(instance_rows()), max(changed, 1), False, version)
        _deliver(event)
        return event


def flush() -> HandleEvent | None:
    """Deliver pending changes to the listeners now; returns the batch (None when nothing changed).

    The cost does not depend on how many handles are alive: the batch is read from the
    registry's counters and the ended history; its rows are built only if a listener reads them.
    """
    global _seen_totals, _seen_version
    with _listen_lock:
        ext = _ext
        if ext is None or not _listeners:
            return None
        version = ext._version()
        created0, ended0 = _seen_totals
        # One call reads the ended tail and the counters together (no change can slip between);
        # it counts the alive handles above created0 in Rust, without building their rows.
        _, ended_raw, counts = ext._select(created0, 0, MAX_BATCH_ENDED)
        created, ended, born_alive = counts[4], counts[5], counts[6]
        _seen_version = version
        if (created, ended) == (created0, ended0):
            return None
        _seen_totals = (created, ended)
        n_ended = ended - ended0
        window = list(ended_raw[len(ended_raw) - min(n_ended, len(ended_raw)) :])
        overflowed = n_ended > len(window)
        # Ids are handed out in order, so the handles created in this batch are the ids above
        # created0: those still alive, plus those that ended in it (counted among n_ended).
        changed = born_alive + n_ended

        def load(ext: ModuleType = ext) -> tuple[HandleRow, ...]:
            alive, _, _ = ext._select(created0, sys.maxsize, 0)
            raw = [t for t in alive if t[0] <= created] + window
            return tuple(sorted((_row(t) for t in raw), key=lambda r: r.id))

        event = HandleEvent(load, changed, overflowed, version)
        _deliver(event)
        return event
