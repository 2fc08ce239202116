"""Timing call expressions through every backend that defines the called name -> :class:`BenchResult`.

``benchmark(["add(1, 2)", "py_add(1, 2)"], namespace)`` times each call once
per backend that defines its name: ``%%rust`` and ``%rust_llvm`` definitions
(reported by *backend providers* the IPython magics register) and whatever
callable the namespace binds to the name. Like ``timeit``, the loop count is
calibrated until one run takes long enough (unless given), each run is
repeated, and the best and median runs are reported. Unlike ``timeit``, the
cost of the empty loop itself is measured and subtracted, so a ~30 ns call is
not reported as ~40 ns.
"""

from __future__ import annotations

import ast
import csv
import io
import itertools
import math
import statistics
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Backend labels, in the order rows of one expression are listed.
BACKENDS = ("python", "%%rust", "%rust_llvm")
#: A calibrated run lasts at least this long (seconds).
MIN_RUN_SECONDS = 0.02
#: Columns of :attr:`BenchResult.rows`.
COLUMNS = ("expr", "backend", "ns_per_call", "median_ns", "ratio")

Provider = Callable[[str], "list[tuple[str, Callable[..., Any]]]"]
#: Functions name -> [(backend label, callable)]; the magics register one per shell.
providers: list[Provider] = []

Progress = Callable[[int, int, str], None]


def classify(fn: Any) -> str:
    """The backend label of a callable: ``%rust_llvm`` / ``%%rust`` for rustcall builtins, else ``python``."""
    module = getattr(fn, "__module__", None) or ""
    if module.startswith(("_rustcall_llvm_", "_rustcall_ir_", "_rustcall_jit_")):
        return "%rust_llvm"
    if module.startswith("_rustcall_"):
        return "%%rust"
    return "python"


def backends_for(name: str, namespace: Mapping[str, Any]) -> list[tuple[str, Callable[..., Any]]]:
    """Every (backend label, callable) that defines *name*: registered providers, then the namespace.

    The namespace's callable is skipped when a provider already lists that same
    object. Rows are ordered python, ``%%rust``, ``%rust_llvm``.
    """
    found: list[tuple[str, Callable[..., Any]]] = []
    for provider in list(providers):
        for label, fn in provider(name):
            if not any(fn is f for _, f in found):
                found.append((label, fn))
    fn = namespace.get(name)
    if fn is None:
        import builtins

        fn = getattr(builtins, name, None)
    if callable(fn) and not any(fn is f for _, f in found):
        found.append((classify(fn), fn))
    order = {b: i for i, b in enumerate(BACKENDS)}
    return sorted(found, key=lambda bf: order.get(bf[0], len(order)))


def parse_call(expr: str) -> tuple[str, ast.Call]:
    """The called name and the call node of *expr*, which must look like ``name(args)``.

    Raises ValueError when *expr* is not a call of a plain name.
    """
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"cannot time {expr!r}: {e.msg}") from None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ValueError(f"cannot time {expr!r}: expected a call of a function by name, such as add(1, 2)")
    return call.func.id, call


_TEMPLATE = """\
def _rc_inner(_rc_number, _rc_fn, _rc_timer=_rc_perf_counter, _rc_repeat=_rc_itertools_repeat):
    _rc_it = _rc_repeat(None, _rc_number)
    _rc_t0 = _rc_timer()
    for _rc_i in _rc_it:
        {body}
    return _rc_timer() - _rc_t0
"""


def _make_loop(body: str, namespace: Mapping[str, Any]) -> Callable[[int, Any], float]:
    # Compiled like timeit's template: the function's globals are the namespace, so the
    # arguments are evaluated on every call, exactly as the expression would be.
    # The template runs in a scratch dict (exec would add __builtins__ to the caller's
    # namespace); the loop function is then rebound to the namespace as its globals, which
    # reads it without writing to it (builtins come from the namespace's __builtins__ if it
    # has one, else from this interpreter's).
    scratch: dict[str, Any] = {"_rc_perf_counter": time.perf_counter, "_rc_itertools_repeat": itertools.repeat}
    exec(compile(_TEMPLATE.format(body=body), "<rust_bench>", "exec"), scratch)
    inner = scratch["_rc_inner"]
    glob = namespace if isinstance(namespace, dict) else dict(namespace)
    return types.FunctionType(inner.__code__, glob, inner.__name__, inner.__defaults__)  # type: ignore[return-value]


def _calibrate(loop: Callable[[int, Any], float], fn: Any, min_seconds: float) -> int:
    # timeit's autorange: 1, 2, 5, 10, 20, 50, ... until one run lasts min_seconds.
    for exp in itertools.count():
        for mult in (1, 2, 5):
            number = mult * 10**exp
            if loop(number, fn) >= min_seconds or number >= 10**9:
                return number
    raise AssertionError("unreachable")  # pragma: no cover


def loop_overhead(number: int, repeat: int = 5) -> float:
    """Seconds per iteration of the timing loop with an empty body (best of *repeat* runs)."""
    loop = _make_loop("pass", {})
    return min(loop(number, None) for _ in range(repeat)) / number


@dataclass
class BenchResult:
    """Timings of call expressions, one row per (expression, backend).

    ``rows`` is a list of dicts with keys ``expr``, ``backend``,
    ``ns_per_call`` (best run), ``median_ns`` and ``ratio`` (``ns_per_call``
    over the first row's). ``loops[i]`` is how many calls each run of row *i*
    made; ``overhead_ns`` is the empty-loop cost per call that was subtracted.
    """

    rows: list[dict[str, Any]]
    loops: list[int] = field(default_factory=list)
    repeat: int = 5
    overhead_ns: float = 0.0

    def to_csv(self, path: Any = None) -> str:
        """The rows as CSV text (header ``expr,backend,ns_per_call,median_ns,ratio``); also written to *path* if given."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: r[k] for k in COLUMNS})
        text = buf.getvalue()
        if path is not None:
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        return text

    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame. Raises ImportError when pandas is not installed."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError("BenchResult.to_pandas() needs pandas (pip install pandas)") from e
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    def table(self, bar_width: int = 20) -> str:
        """The rows as a text table with a bar per row (longest bar = slowest row)."""
        if not self.rows:
            return "no timings"
        slowest = max(r["ns_per_call"] for r in self.rows) or 1.0
        heads = ("expression", "backend", "best ns", "median ns", "ratio", "")
        cells = []
        for r in self.rows:
            n = round(bar_width * r["ns_per_call"] / slowest) if slowest > 0 else 0
            cells.append(
                (
                    r["expr"],
                    r["backend"],
                    format_ns(r["ns_per_call"]),
                    format_ns(r["median_ns"]),
                    format_ratio(r["ratio"]),
                    "█" * max(n, 1 if r["ns_per_call"] > 0 else 0),
                )
            )
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
        right = {2, 3, 4}
        fmt = "  ".join(f"{{:{'>' if i in right else '<'}{w}}}" for i, w in enumerate(widths))
        out = [fmt.format(*heads).rstrip(), fmt.format(*("-" * w for w in widths[:-1]), "").rstrip()]
        out += [fmt.format(*c).rstrip() for c in cells]
        out.append(self.note())
        return "\n".join(out)

    def note(self) -> str:
        """What the numbers mean: best/median of how many runs, and the subtracted loop cost."""
        loops = sorted(set(self.loops))
        if not loops:
            each = "?"
        elif len(loops) == 1:
            each = f"{loops[0]:,}"
        else:
            each = f"{loops[0]:,}-{loops[-1]:,}"
        return (
            f"best and median of {self.repeat} runs of {each} calls; "
            f"empty-loop cost {self.overhead_ns:.1f} ns/call measured and subtracted; ratio = best / first row's best"
        )

    def summary(self) -> str:
        """One line naming the row count and the fastest row: ``<BenchResult: 3 rows, fastest add (%%rust) 13.7 ns>``."""
        n = len(self.rows)
        head = f"<BenchResult: {n} row{'' if n == 1 else 's'}"
        if not self.rows:
            return head + ">"
        best = min(self.rows, key=lambda r: r["ns_per_call"])
        return f"{head}, fastest {best['expr']} ({best['backend']}) {format_ns(best['ns_per_call'])}>"

    def __str__(self) -> str:
        """The text table (``print(result)``)."""
        return self.table()

    # One line as a value (``Out[]`` of ``r = %rust_bench -o ...; r``, or of ``%rust_bench -o``
    # right after the magic printed or showed the table): the table is not repeated.
    def __repr__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary())


def format_ns(ns: float) -> str:
    """Nanoseconds in readable units (``35.2 ns``, ``1.24 us``, ``3.10 ms``, ``1.50 s``)."""
    if ns != ns:  # NaN
        return "-"
    if ns < 1e3:
        return f"{ns:.1f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def format_ratio(ratio: float) -> str:
    """A ratio as ``1.00x`` (``-`` when undefined)."""
    return "-" if not math.isfinite(ratio) else f"{ratio:.2f}x"


def plan(exprs: Iterable[str], namespace: Mapping[str, Any]) -> list[tuple[str, str, Callable[..., Any], str]]:
    """The rows a benchmark would time: (expression, backend, callable, loop body).

    Raises ValueError for an expression that is not a call by name or whose
    name no backend defines.
    """
    rows = []
    for expr in exprs:
        name, call = parse_call(expr)
        found = backends_for(name, namespace)
        if not found:
            raise ValueError(f"cannot time {expr!r}: no %%rust, %rust_llvm or Python function named {name!r}")
        args_node = ast.Expression(ast.Tuple([*call.args], ast.Load()))
        call.func = ast.Name("_rc_fn", ast.Load())
        body = ast.unparse(call)
        for label, fn in found:
            for row_label, row_fn in _generic_rows(label, fn, args_node, call, namespace):
                rows.append((expr.strip(), row_label, row_fn, body))
    return rows


def _generic_rows(
    label: str, fn: Any, args_node: ast.Expression, call: ast.Call, namespace: Mapping[str, Any]
) -> list[tuple[str, Callable[..., Any]]]:
    """A generic cell function gives two rows: its instance for these arguments (``%%rust total<i32>``)
    and the generic call that dispatches to it (``%%rust generic``); any other callable one."""
    infer = getattr(fn, "infer", None)
    if not callable(infer) or not hasattr(fn, "instances") or call.keywords:
        return [(label, fn)]
    try:
        args = eval(compile(ast.fix_missing_locations(args_node), "<rust_bench>", "eval"), dict(namespace))
        types_, _ = infer(args)
        inst = fn[types_]
    except Exception:  # the timed call raises it again, with its own message
        return [(label, fn)]
    kind = classify(inst)
    return [(f"{kind} {inst.__name__}", inst), (f"{kind} generic", fn)]


def benchmark(
    exprs: Sequence[str],
    namespace: Mapping[str, Any],
    number: int | None = None,
    repeat: int = 5,
    progress: Progress | None = None,
    min_seconds: float = MIN_RUN_SECONDS,
) -> BenchResult:
    """Time each call expression through every backend defining its name (see the module docstring).

    *number* calls per run (calibrated when None), *repeat* runs per row;
    *progress(done, total, label)* is called before each row and at the end.
    Raises ValueError for a bad expression, *number* or *repeat*, and
    whatever a timed call raises.
    """
    if number is not None and number < 1:
        raise ValueError(f"number must be >= 1, not {number}")
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, not {repeat}")
    todo = plan(exprs, namespace)
    total = len(todo)
    timed: list[tuple[str, str, list[float], int]] = []
    for i, (expr, label, fn, body) in enumerate(todo):
        if progress is not None:
            progress(i, total, f"{expr} [{label}]")
        loop = _make_loop(body, namespace)
        n = number if number is not None else _calibrate(loop, fn, min_seconds)
        runs = [loop(n, fn) / n for _ in range(repeat)]
        timed.append((expr, label, runs, n))
    # Measured once after the rows (same warm state), with as many iterations as the busiest row.
    busiest = max((n for *_, n in timed), default=1)
    overhead = loop_overhead(max(busiest, 10_000), repeat=max(repeat, 3))
    rows: list[dict[str, Any]] = []
    for expr, label, runs, _ in timed:
        best = max(min(runs) - overhead, 0.0) * 1e9
        median = max(statistics.median(runs) - overhead, 0.0) * 1e9
        rows.append({"expr": expr, "backend": label, "ns_per_call": best, "median_ns": median, "ratio": math.nan})
    if rows:
        first = rows[0]["ns_per_call"]
        for r in rows:
            r["ratio"] = r["ns_per_call"] / first if first > 0 else math.nan
    if progress is not None:
        progress(total, total, "done")
    return BenchResult(rows, [n for *_, n in timed], repeat, overhead * 1e9)
