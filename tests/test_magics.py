"""%%rust and %rust driven through a real IPython shell, as a user would."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
from IPython.core.error import UsageError

import rustcall_magic as rc

QUICKSTART = """\
/// Add two numbers.
pub fn add(a: i64, b: i64) -> i64 { a + b }
pub fn fib(n: u32) -> u64 { if n < 2 { n as u64 } else { fib(n - 1) + fib(n - 2) } }
pub fn boom(i: usize) -> i32 { let v = vec![1, 2, 3]; v[i] }
"""

TYPE_ERROR_CELL = """\
pub fn ok(a: i32) -> i32 { a }

pub fn bad(a: i32) -> i32 {
    let s: i32 = "text";
    a + s
}
"""


def run_cell(ip, code: str, line: str = ""):
    """Run a %%rust cell through the shell; raise what the user would see."""
    result = ip.run_cell(f"%%rust {line}\n{code}")
    if result.error_in_exec is not None:
        raise result.error_in_exec
    if result.error_before_exec is not None:
        raise result.error_before_exec
    return result


def test_quickstart_cell(ip, capfd) -> None:
    run_cell(ip, QUICKSTART)
    ns = ip.user_ns
    assert ns["add"](2, 3) == 5
    assert ns["fib"](30) == 832040
    capfd.readouterr()
    with pytest.raises(rc.RustPanic, match="index out of bounds") as info:
        ns["boom"](7)
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    assert info.value.function == "boom"
    assert info.value.file == "cell" and info.value.line == 4
    assert ns["boom"](1) == 2  # the module keeps working after a panic
    with pytest.raises(OverflowError):
        ns["add"](2**63, 1)
    with pytest.raises(TypeError, match=r"add\(\) argument 1 \(a: i64\) must be int, not str"):
        ns["add"]("x", 1)
    with pytest.raises(TypeError, match="not float"):
        ns["add"](1.5, 2)
    with pytest.raises(TypeError, match="takes 2 arguments but 1 was given"):
        ns["add"](1)
    assert ip.run_line_magic("rust", "add(1, 2)") == 3


def test_callables_are_documented_builtins(ip) -> None:
    run_cell(ip, QUICKSTART)
    add = ip.user_ns["add"]
    assert type(add).__name__ == "builtin_function_or_method"
    assert "pub fn add(a: i64, b: i64) -> i64" in add.__doc__
    assert "Add two numbers." in add.__doc__
    assert list(inspect.signature(add).parameters) == ["a", "b"]


def test_compile_error_names_cell_line_and_keeps_bindings(ip) -> None:
    run_cell(ip, "pub fn keep() -> i32 { 41 }")
    keep = ip.user_ns["keep"]
    with pytest.raises(rc.RustCompileError) as info:
        run_cell(ip, TYPE_ERROR_CELL)
    err = info.value
    errors = [d for d in err.diagnostics if d.level == "error"]
    assert errors and errors[0].line == 4
    assert "mismatched types" in str(err)
    assert "cell.rs:4:" in str(err)
    assert "glue" not in str(err)
    rendered = "\n".join(err._render_traceback_())
    assert "RustCompileError" in rendered and "expected `i32`" in rendered
    # Earlier definitions stay bound and working; the failed cell bound nothing.
    assert ip.user_ns["keep"] is keep and keep() == 41
    assert "bad" not in ip.user_ns and "ok" not in ip.user_ns


def test_compile_error_renders_without_python_traceback(ip, capsys) -> None:
    ip.run_cell(f"%%rust\n{TYPE_ERROR_CELL}")
    out = capsys.readouterr().out
    assert "mismatched types" in out
    assert "Traceback" not in out and "site-packages" not in out


def test_return_type_check(ip) -> None:
    run_cell(ip, QUICKSTART)
    assert ip.run_line_magic("rust", "add(10, 20) -> i64") == 30
    assert ip.run_line_magic("rust", "fib(10)->u64") == 55
    with pytest.raises(TypeError, match="declared to return i64, not i32"):
        ip.run_line_magic("rust", "add(10, 20) -> i32")


def test_line_magic_uses_latest_rust_definition_and_user_namespace(ip) -> None:
    run_cell(ip, "pub fn twice(x: i64) -> i64 { 2 * x }")
    ip.user_ns["twice"] = lambda x: "python"
    ip.user_ns["seven"] = 7
    assert ip.run_line_magic("rust", "twice(seven)") == 14
    run_cell(ip, "pub fn twice(x: i64) -> i64 { 3 * x }")
    assert ip.run_line_magic("rust", "twice(seven + 1)") == 24


def test_line_magic_usage_errors(ip) -> None:
    for line in ("", "1 + 2", "not_defined_anywhere(1)", "add(1,"):
        with pytest.raises(UsageError):
            ip.run_line_magic("rust", line)


def test_hot_reload_keeps_old_function_objects(ip) -> None:
    run_cell(ip, "pub fn version() -> i32 { 1 }")
    v1 = ip.user_ns["version"]
    run_cell(ip, "pub fn version() -> i32 { 2 }")
    v2 = ip.user_ns["version"]
    assert (v1(), v2()) == (1, 2)


def test_options(ip, capsys) -> None:
    code = "pub fn opt_probe(x: u8) -> u8 { x.wrapping_add(1) }"
    run_cell(ip, code, "-O 0 --timing -n probe_mod")
    out = capsys.readouterr().out
    assert "compiled in" in out or "cache hit" in out
    mod = ip.user_ns["probe_mod"]
    assert isinstance(mod, rc.RustModule) and mod.opt_probe(255) == 0
    assert mod.entry.meta["options"]["opt_level"] == 0
    run_cell(ip, code, "-O 0 --timing")
    assert "cache hit" in capsys.readouterr().out
    run_cell(ip, code, "-O 3 -g --edition 2018 --target-cpu native -n probe3")
    opts = ip.user_ns["probe3"].entry.meta["options"]
    assert opts == {"opt_level": 3, "debug": True, "edition": "2018", "target_cpu": "native", "release_gil": False}


def test_force_builds_a_new_artifact(ip) -> None:
    code = "pub fn forced() -> i32 { 5 }"
    run_cell(ip, code, "-n first")
    first = ip.user_ns["first"]
    old_fn = ip.user_ns["forced"]
    run_cell(ip, code, "-f -n second")
    second = ip.user_ns["second"]
    assert not second.info.cache_hit
    assert second.module_name != first.module_name
    assert old_fn() == 5 and ip.user_ns["forced"]() == 5


def test_bad_options_are_usage_errors(ip) -> None:
    for line in ("-O 7", "--edition 2019", "-n 1bad", "--no-such-option"):
        with pytest.raises(UsageError):
            run_cell(ip, "pub fn x() {}", line)


def test_quiet_hides_warnings(ip, capsys) -> None:
    code = "pub fn warns() -> i32 { let unused = 3; 1 }"
    run_cell(ip, code)
    assert "unused variable" in capsys.readouterr().err
    run_cell(ip, code, "-q")
    assert "unused variable" not in capsys.readouterr().err


def test_unsupported_function_warns_and_others_work(ip) -> None:
    code = "struct P;  // private: does not cross\npub fn takes(p: P) -> i32 { 1 }\npub fn fine() -> i32 { 2 }"
    with pytest.warns(rc.RustcallWarning, match=r"`takes`.*`P`"):
        run_cell(ip, code)
    assert ip.user_ns["fine"]() == 2
    assert "takes" not in ip.user_ns


def test_config_traits(ip, tmp_path: Path) -> None:
    magics = ip.magics_manager.registry["RustMagics"]
    ip.run_line_magic("config", "RustMagics.opt_level = 1")
    ip.run_line_magic("config", f"RustMagics.cache_dir = {str(tmp_path / 'c')!r}")
    try:
        run_cell(ip, "pub fn cfg_probe() -> i32 { 9 }", "-n cfgmod")
        mod = ip.user_ns["cfgmod"]
        assert mod.entry.meta["options"]["opt_level"] == 1
        assert Path(mod.entry.path).is_relative_to(tmp_path / "c")
        assert (os.stat(tmp_path / "c").st_mode & 0o777) == 0o700
    finally:
        magics.opt_level = None
        magics.cache_dir = ""


def test_bad_config_values_are_refused_when_set(ip) -> None:
    from traitlets import TraitError

    magics = ip.magics_manager.registry["RustMagics"]
    for trait, value in [("opt_level", 7), ("edition", "2030"), ("max_cache_bytes", -1)]:
        with pytest.raises(TraitError, match=f"RustMagics.{trait} must be"):
            setattr(magics, trait, value)
    assert (magics.opt_level, magics.edition, magics.max_cache_bytes) == (None, "", 0)


def test_help_is_the_docstring(ip) -> None:
    doc = ip.magics_manager.magics["cell"]["rust"].__doc__
    assert "In [2]: %%rust" in doc and "--opt-level" in doc


def test_cell_says_what_it_bound(ip, capsys) -> None:
    run_cell(ip, QUICKSTART)
    assert capsys.readouterr().out == "rust: bound add, fib, boom\n"
    run_cell(ip, QUICKSTART, "-q")
    assert capsys.readouterr().out == ""
    run_cell(ip, "fn private_only() {}")
    assert "no function to bind" in capsys.readouterr().out


def test_toolchain_line_for_notebooks(ip, monkeypatch) -> None:
    from rustcall_magic import magics as magics_mod

    magics = ip.magics_manager.registry["RustMagics"]
    line = magics_mod._toolchain_line(magics)
    assert line.startswith(f"rustcall_magic {rc.__version__} · rustc 1.") and "(LLVM " in line
    monkeypatch.setenv("RUSTC", "/nonexistent/rustc")
    assert "RustToolchainError: RUSTC='/nonexistent/rustc' is not an executable" in magics_mod._toolchain_line(magics)
    assert not magics_mod._in_kernel(ip)  # a terminal shell prints no banner on load


def test_function_names_that_collide_with_module_attributes(ip) -> None:
    code = "pub fn info() -> i32 { 1 }\npub fn signatures() -> i32 { 2 }\npub fn path() -> i32 { 3 }"
    run_cell(ip, code, "--timing -n collide")
    mod = ip.user_ns["collide"]
    assert mod.info.cache_hit in (True, False) and "info" in mod.signatures
    assert (mod["info"](), mod["signatures"](), mod["path"]()) == (1, 2, 3)
    assert (ip.user_ns["info"](), ip.user_ns["signatures"]()) == (1, 2)


def test_return_check_with_nested_types(ip) -> None:
    run_cell(ip, "pub fn pair(x: i32) -> Option<(i32, i32)> { if x > 0 { Some((x, -x)) } else { None } }")
    assert ip.run_line_magic("rust", "pair(2) -> Option<(i32, i32)>") == (2, -2)
    assert ip.run_line_magic("rust", "pair(0)->Option<(i32,i32)>") is None
    with pytest.raises(TypeError, match=r"declared to return Option<\(i32, i32\)>"):
        ip.run_line_magic("rust", "pair(1) -> Option<i32>")
    ip.user_ns["arrow"] = "->"
    assert ip.run_line_magic("rust", "pair(len('->'))") == (2, -2)


def test_magics_follow_the_default_compiler(ip, tmp_path: Path) -> None:
    magics = ip.magics_manager.registry["RustMagics"]
    old = rc.get_default_compiler()
    magics.max_cache_bytes = 10_000_000
    try:
        rc.set_default_compiler(rc.RustCompiler(optimization_level=0, cache_dir=tmp_path / "d"))
        c = magics.compiler()
        assert c.optimization_level == 0 and c.cache.root == (tmp_path / "d").absolute()
        assert c.max_cache_bytes == 10_000_000
        rc.set_default_compiler(rc.RustCompiler(optimization_level=3, cache_dir=tmp_path / "e"))
        assert magics.compiler().optimization_level == 3
    finally:
        magics.max_cache_bytes = 0
        rc.set_default_compiler(old)


def test_reload_ext_keeps_definitions(ip) -> None:
    run_cell(ip, "pub fn survives_reload(x: i32) -> i32 { x * 3 }")
    ip.run_line_magic("reload_ext", "rustcall_magic")
    assert ip.run_line_magic("rust", "survives_reload(2)") == 6
    assert sum(type(c).__name__ == "RustMagics" for c in ip.configurables) == 1
    # One end-of-cell hook (live views flush there), whatever the reloads; unload removes it.
    hooks = ip.events.callbacks["post_run_cell"]
    assert sum(getattr(f, "__module__", "") == "rustcall_magic.magics" for f in hooks) == 1
    ip.run_line_magic("unload_ext", "rustcall_magic")
    assert not any(getattr(f, "__module__", "") == "rustcall_magic.magics" for f in hooks)
    ip.run_line_magic("load_ext", "rustcall_magic")
    assert sum(getattr(f, "__module__", "") == "rustcall_magic.magics" for f in hooks) == 1
    assert ip.run_line_magic("rust", "survives_reload(3)") == 9


def test_cells_build_for_this_cpu_unless_portable(ip) -> None:
    from IPython.core.error import UsageError

    ip.run_cell_magic("rust", "-q -n native_mod", "pub fn cpu_probe() -> u8 { 1 }")
    ip.run_cell_magic("rust", "-q --portable -n portable_mod", "pub fn cpu_probe() -> u8 { 1 }")
    native, portable = ip.user_ns["native_mod"], ip.user_ns["portable_mod"]
    assert native.entry.meta["options"]["target_cpu"] == "native"
    assert portable.entry.meta["options"]["target_cpu"] is None
    assert native.key != portable.key and portable.cpu_probe() == 1
    with pytest.raises(UsageError, match="exclude each other"):
        ip.run_cell_magic("rust", "--portable --target-cpu x86-64-v3", "pub fn cpu_probe() -> u8 { 1 }")
