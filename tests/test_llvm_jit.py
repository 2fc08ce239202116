"""The LLVM path: %%rust_llvm / %rust_llvm, jit_rust, get_llvm_module, the optimization switches, the object cache."""

from __future__ import annotations

import array
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from IPython.core.error import UsageError

import rustcall_magic as rc
from rustcall_magic import llvm_jit

MIXED = """\
pub fn add(a: i64, b: i64) -> i64 { a + b }
pub fn mul32(a: i32, b: i32) -> i32 { a.wrapping_mul(b) }
pub fn hyp(x: f64, y: f64) -> f64 { (x * x + y * y).sqrt() }
pub fn next_char(c: char) -> char { char::from_u32(c as u32 + 1).unwrap_or(c) }
pub fn both(a: bool, b: bool) -> bool { a && b }
pub fn total(xs: &[f64]) -> f64 { xs.iter().sum() }
pub fn greet(name: &str) -> String { format!("hello, {name}!") }
pub fn checked_div(a: i64, b: i64) -> i64 {
    if b == 0 {
        panic!("division of {} by zero", a);
    }
    a / b
}
"""

# (function, args) pairs compared between %%rust and %%rust_llvm.
MIXED_CALLS = [
    ("add", (2, 40)),
    ("add", (-(2**62), 2**62 - 1)),
    ("mul32", (123456, 789)),
    ("hyp", (3.0, 4)),
    ("next_char", ("a",)),
    ("both", (True, False)),
    ("both", (True, True)),
    ("total", ([0.5, 1.5, 2.0],)),
    ("total", (array.array("d", [1.0, 2.0, 3.5]),)),
    ("greet", ("Ferris",)),
    ("checked_div", (84, 2)),
]

INVARIANT_LOOP = """\
#[no_mangle]
pub extern "C" fn licm_probe(n: i64, a: i64, b: i64) -> i64 {
    let mut s: i64 = 0;
    let mut i: i64 = 0;
    while i < n {
        s = s.wrapping_add(i ^ a.wrapping_mul(b));
        i += 1;
    }
    s
}
"""

VECTORIZABLE = """\
pub fn xor_mix(n: u32, k: u32) -> u32 {
    let mut s: u32 = 0;
    let mut i: u32 = 0;
    while i < n {
        s = s.wrapping_add(i.wrapping_mul(k) ^ (i >> 3));
        i += 1;
    }
    s
}
"""

PANICS_AT_LINE_3 = """\
pub fn first_cell(x: i64) -> i64 {
    if x < 0 {
        panic!("negative: {}", x);
    }
    x
}
"""

OTHER_CELL = "pub fn other_cell(x: i64) -> i64 { x * 2 }\n"

BAD = "pub fn broken(a: i64) -> i64 {\n    a + undefined_name\n}\n"

PACKED_OPS = re.compile(r"\bv?p(?:add|sub|xor|mul|srl|sll)\w*\b")


def _magics(ip):
    return ip.magics_manager.registry["RustMagics"]


def _loop_blocks_with(ir: str, needle: str) -> list[bool]:
    """For each basic block holding *needle*: does that block branch back to itself (a loop body)?"""
    out = []
    for block in re.split(r"\n(?=[\w.]+:)", ir):
        label = block.split(":", 1)[0].strip()
        if needle in block:
            out.append(re.search(r"\bbr\b[^\n]*%" + re.escape(label) + r"\b", block) is not None)
    return out


def _defs_with(ir: str, attr: str) -> tuple[int, int]:
    """(definitions whose attribute comment names *attr*, all definitions)."""
    pairs = re.findall(r"^; Function Attrs: ([^\n]*)\ndefine ", ir, re.M)
    return sum(attr in p.split() for p in pairs), len(re.findall(r"^define ", ir, re.M))


# -- same results as %%rust ---------------------------------------------------------


def test_rust_llvm_cell_matches_rust_cell(ip):
    ip.run_cell_magic("rust", "-q", MIXED)
    native = {name: ip.user_ns[name] for name, _ in MIXED_CALLS}
    ip.run_cell_magic("rust_llvm", "-q", MIXED)
    jitted = {name: ip.user_ns[name] for name, _ in MIXED_CALLS}
    for name, args in MIXED_CALLS:
        assert jitted[name] is not native[name]
        assert type(jitted[name]).__name__ == "builtin_function_or_method"
        assert jitted[name](*args) == native[name](*args), (name, args)
    assert jitted["greet"]("Ferris") == "hello, Ferris!"
    assert jitted["hyp"](3.0, 4) == 5.0

    with pytest.raises(rc.RustPanic) as jit_panic:
        jitted["checked_div"](7, 0)
    with pytest.raises(rc.RustPanic) as native_panic:
        native["checked_div"](7, 0)
    assert jit_panic.value.message == native_panic.value.message == "division of 7 by zero"
    assert (jit_panic.value.file, jit_panic.value.line) == (native_panic.value.file, native_panic.value.line) == ("cell", 10)
    assert jitted["checked_div"](9, 3) == 3  # still working after the panic

    with pytest.raises(TypeError, match="takes 2 arguments but 1 was given"):
        jitted["add"](1)
    with pytest.raises(OverflowError):
        jitted["add"](2**64, 1)
    with pytest.raises(TypeError):
        jitted["hyp"]("x", 1.0)


def test_panic_is_quiet_and_works_from_threads(capfd):
    m = rc.jit_rust(PANICS_AT_LINE_3, quiet=True)
    capfd.readouterr()
    results: list[object] = []

    def call() -> None:
        try:
            m.first_cell(-4)
        except rc.RustPanic as e:
            results.append((e.message, e.line))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [("negative: -4", 3)] * 4
    assert capfd.readouterr().err == ""


def test_panic_location_survives_a_later_jit_module():
    # Every JIT'd cell installs its panic hook into the one shared libstd: the
    # location must still reach the cell that panicked.
    first = rc.jit_rust(PANICS_AT_LINE_3, quiet=True)
    second = rc.jit_rust(OTHER_CELL, quiet=True)
    assert second.other_cell(21) == 42
    with pytest.raises(rc.RustPanic) as exc:
        first.first_cell(-1)
    assert (exc.value.function, exc.value.file, exc.value.line) == ("first_cell", "cell", 3)


# -- %rust_llvm CALL ----------------------------------------------------------------------


def test_rust_llvm_call_jits_a_rust_cell(ip):
    ip.run_cell_magic("rust", "-q", "pub fn add3(a: i64, b: i64, c: i64) -> i64 { a + b + c }")
    native = ip.user_ns["add3"]
    assert ip.run_line_magic("rust_llvm", "add3(1, 2, 3)") == 6
    jit_fn = _magics(ip)._llvm_definitions()["add3"][0]
    assert jit_fn is not native and jit_fn(10, 20, 30) == 60
    assert ip.user_ns["add3"] is native  # %rust_llvm does not rebind the %%rust name
    assert ip.run_line_magic("rust_llvm", "add3(1, 1, 1) -> i64") == 3
    with pytest.raises(TypeError, match="declared to return i64"):
        ip.run_line_magic("rust_llvm", "add3(1, 1, 1) -> i32")

    # Redefining the cell with %%rust makes %rust_llvm JIT the new one.
    ip.run_cell_magic("rust", "-q", "pub fn add3(a: i64, b: i64, c: i64) -> i64 { a * b * c }")
    assert ip.run_line_magic("rust_llvm", "add3(2, 3, 4)") == 24


def test_rust_llvm_magic_options(ip, capsys):
    with pytest.raises(UsageError):
        ip.run_cell_magic("rust_llvm", "-O 7", OTHER_CELL)
    with pytest.raises(UsageError):
        ip.run_cell_magic("rust_llvm", "--preset fastest", OTHER_CELL)
    with pytest.raises(UsageError, match="no %%rust or %%rust_llvm function named 'nope'"):
        ip.run_line_magic("rust_llvm", "nope(1)")
    ip.run_cell_magic("rust_llvm", "-q --preset size -n jm --timing", OTHER_CELL)
    out = capsys.readouterr().out
    assert out.startswith("rust_llvm: ")
    assert ip.user_ns["jm"].config == llvm_jit.PRESETS["size"]
    assert ip.user_ns["other_cell"](5) == 10
    ip.run_cell_magic("rust_llvm", "-q --preset size --timing", OTHER_CELL)
    assert "object cache hit" in capsys.readouterr().out


def test_compile_error_maps_to_cell_lines(ip):
    with pytest.raises(rc.RustCompileError) as exc:
        ip.run_cell_magic("rust_llvm", "", BAD)
    assert any(d.line == 2 for d in exc.value.diagnostics)


THREAD_LOCALS = """\
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
thread_local! { static COUNT: Cell<i64> = Cell::new(0); }
thread_local! { static START: Cell<i64> = const { Cell::new(40) }; }
thread_local! { static SEEN: RefCell<Vec<String>> = RefCell::new(Vec::new()); }
pub fn bump() -> i64 { COUNT.with(|c| { c.set(c.get() + 1); c.get() }) }
pub fn from_forty() -> i64 { START.with(|c| { c.set(c.get() + 2); c.get() }) }
pub fn see(s: String) -> usize { SEEN.with(|v| { v.borrow_mut().push(s); v.borrow().len() }) }
pub fn histogram(words: Vec<String>) -> usize { let mut m = HashMap::new(); for w in words { *m.entry(w).or_insert(0) += 1; } m.len() }
"""


def test_thread_locals_and_hashmaps_are_jit_compiled(recwarn):
    # The cell's thread-locals (lazy and const), and std's one behind HashMap's random keys
    # (defined in libstd), each give every thread its own copy.
    m = rc.jit_rust(THREAD_LOCALS, quiet=True)
    assert isinstance(m, llvm_jit.JitModule) and not [w for w in recwarn if "thread-local" in str(w.message)]
    assert [m.bump(), m.bump(), m.from_forty(), m.from_forty(), m.see("a"), m.see("b")] == [1, 2, 42, 44, 1, 2]
    assert m.histogram(["a", "b", "a", "c"]) == 3
    seen = []

    def other() -> None:
        seen.append((m.bump(), m.from_forty(), m.see("z"), m.histogram(["x", "x"])))

    threads = [threading.Thread(target=other) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [(1, 42, 1, 1)] * 3
    assert (m.bump(), m.see("c")) == (3, 3), "the main thread kept its own copies"
    assert rc.get_llvm_module(THREAD_LOCALS, quiet=True).thread_locals == []


def test_unplaceable_thread_locals_fall_back_once_for_every_process(monkeypatch, tmp_path):
    # A thread-local the JIT cannot reach (here: libstd's, made unresolvable) sends the cell
    # to the %%rust build; the cache remembers it, so no process lowers the cell again.
    monkeypatch.setattr(llvm_jit, "_tls_index", lambda name: None)
    compiler = rc.RustCompiler(cache_dir=tmp_path / "cache", quiet=True)
    src = THREAD_LOCALS + "pub fn fallback_marker() {}\n"
    with pytest.warns(rc.RustcallWarning, match=r"uses thread-locals \(KEYS\)"):
        module, ir = llvm_jit.jit_source(src, compiler, keep_module=True)
    assert isinstance(module, rc.RustModule) and ir is not None and ir.thread_locals
    assert module.histogram(["a", "a"]) == 1
    monkeypatch.setattr(llvm_jit, "lower", lambda *a, **k: pytest.fail("lowered again"))
    with pytest.warns(rc.RustcallWarning, match="KEYS"):
        again, ir = llvm_jit.jit_source(src, compiler)
    assert isinstance(again, rc.RustModule) and ir is None and again.bump() >= 1
    kinds = sorted(e.kind for e in rc.list_cached_libraries(compiler))
    assert kinds == ["cdylib", "llvm-fallback"]


def test_a_cell_function_named_like_libc_does_not_capture_llvm_calls():
    # LLVM lowers copies to calls of `memcpy`; the cell's own `memcpy` must not receive them.
    src = (
        '#[no_mangle]\npub extern "C" fn memcpy(x: i32) -> i32 { x + 1000 }\n'
        "pub fn repeat(x: &str) -> String { let mut v = vec![String::from(x); 50]; v.push(\"end\".into()); v.concat() }\n"
    )
    m = rc.jit_rust(src, quiet=True)
    assert m.repeat("abc") == "abc" * 50 + "end"
    assert m.memcpy(1) == 1001


# -- the switches change the code ------------------------------------------------------------


def test_vectorization_switch_changes_assembly(ip, capsys):
    ip.run_cell_magic("rust_llvm", "-q --show-asm", VECTORIZABLE)
    vectorized = capsys.readouterr().out
    ip.run_cell_magic("rust_llvm", "-q --show-asm --no-vectorize", VECTORIZABLE)
    scalar = capsys.readouterr().out
    assert "xor_mix: assembly" in vectorized
    assert len(PACKED_OPS.findall(vectorized)) >= 4
    assert PACKED_OPS.findall(scalar) == []
    assert ip.user_ns["xor_mix"](1000, 7) == sum(((i * 7) ^ (i >> 3)) for i in range(1000)) % 2**32


def test_licm_switch_changes_ir():
    def probe_ir(licm: bool) -> str:
        cfg = rc.OptimizationConfig(2, enable_vectorization=False, enable_loop_unrolling=False, enable_licm=licm)
        return rc.get_llvm_module(INVARIANT_LOOP).optimize(cfg).function_ir("licm_probe")

    hoisted, kept = probe_ir(True), probe_ir(False)
    # The invariant a*b: computed once before the loop with LICM, on every iteration without.
    assert _loop_blocks_with(hoisted, "mul i64") == [False]
    assert _loop_blocks_with(kept, "mul i64") == [True]


def test_unrolling_switch_changes_ir():
    def body(unroll: bool) -> str:
        cfg = rc.OptimizationConfig(3, enable_vectorization=False, enable_loop_unrolling=unroll)
        return rc.get_llvm_module(VECTORIZABLE).optimize(cfg).function_ir("xor_mix")

    unrolled, rolled = body(True), body(False)
    assert unrolled.count("xor i32") > rolled.count("xor i32") >= 1


def test_presets_stats_and_ir_api():
    m = rc.get_llvm_module(MIXED, quiet=True)
    before = m.stats()
    assert "define" in m.ir and "PyInit_" in m.ir and before["functions"] > 10
    assert rc.optimize_for_size(m) is m
    small = m.stats()
    assert small["instructions"] < before["instructions"]
    speed = rc.optimize_for_speed(rc.get_llvm_module(MIXED, quiet=True))
    balanced = rc.optimize_balanced(rc.get_llvm_module(MIXED, quiet=True))
    # The size preset marks every definition minsize; rustc marks only cold ones.
    assert _defs_with(m.ir, "minsize") == (small["functions"], small["functions"])
    for other in (speed, balanced):
        marked, total = _defs_with(other.ir, "minsize")
        assert marked < total
    assert speed.stats() != small
    j = speed.jit()
    assert j.add(1, 2) == 3 and j.greet("x") == "hello, x!"
    assert set(j.functions) == {name for name, _ in MIXED_CALLS}
    with pytest.raises(TypeError):
        rc.optimize_module("not a module")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        rc.OptimizationConfig(optimization_level=4)


def test_jit_rust_api():
    m = rc.jit_rust(OTHER_CELL, config=rc.OptimizationConfig(optimization_level=1), quiet=True)
    assert m.functions == {"other_cell": "pub fn other_cell(x: i64) -> i64"}
    assert m.other_cell(-4) == -8 and m["other_cell"](3) == 6
    assert m.config == rc.OptimizationConfig(optimization_level=1)
    again = rc.jit_rust(OTHER_CELL, config=rc.OptimizationConfig(optimization_level=1), quiet=True)
    assert again.info.cache_hit and again.other_cell is m.other_cell
    (lib,) = [lib for lib in rc.list_cached_libraries() if lib.key == m.key]
    assert lib.kind == "llvm-object" and lib.loaded  # its code is linked into this process


def test_llvm_version_mismatch_is_a_toolchain_error(monkeypatch):
    monkeypatch.setattr(llvm_jit, "llvm_version", lambda: (15, 0, 7))
    with pytest.raises(rc.RustToolchainError, match=r"built with LLVM \d+.*llvmlite uses LLVM 15\.0\.7"):
        rc.get_llvm_module(OTHER_CELL)


# -- the object cache, from fresh processes ---------------------------------------------------------

_SCRIPT = """\
import json, sys
import rustcall_magic as rc
m = rc.jit_rust({src!r}, config=rc.OptimizationConfig(optimization_level=2), quiet=True)
print(json.dumps({{"value": m.other_cell(21), "hit": m.info.cache_hit, "optimize": m.info.optimize_seconds,
                  "rustc": m.info.rustc_seconds, "llvm_loaded": "llvmlite" in sys.modules}}))
"""


def _logging_rustc_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose RUSTC logs every run to the returned file, and a private cache."""
    log = tmp_path / "rustc.log"
    wrapper = tmp_path / "rustc-logging"
    real = subprocess.run(["sh", "-c", "command -v rustc"], capture_output=True, text=True).stdout.strip()
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ, RUSTC=str(wrapper), RUSTCALL_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = str(Path(rc.__file__).parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return env, log


@pytest.mark.slow
def test_fresh_process_hits_object_cache(tmp_path):
    env, log = _logging_rustc_env(tmp_path)
    script = _SCRIPT.format(src=OTHER_CELL)

    def run() -> dict[str, object]:
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = run()
    runs_after_first = log.read_text().splitlines()
    assert first["value"] == 42 and first["hit"] is False
    assert any("--emit=llvm-ir" in line for line in runs_after_first)
    second = run()
    assert second["value"] == 42 and second["hit"] is True
    assert (second["rustc"], second["optimize"]) == (0.0, 0.0)
    assert log.read_text().splitlines() == runs_after_first  # no rustc process at all
    entries = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "entries").glob("*/meta.json")]
    assert [e["kind"] for e in entries] == ["llvm-object"]
    assert entries[0]["config"]["optimization_level"] == 2



@pytest.mark.slow
def test_concurrent_processes_lower_and_optimize_a_new_cell_once(tmp_path):
    env, log = _logging_rustc_env(tmp_path)
    script = _SCRIPT.format(src=OTHER_CELL.replace("x * 2", "x + x"))
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["value"] for r in results] == [42] * 4
    assert sum(not r["hit"] for r in results) == 1, results  # one built it, three linked its object
    assert sum("--emit=llvm-ir" in line for line in log.read_text().splitlines()) == 1
