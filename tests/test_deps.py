"""Crate dependencies (deps.py): manifests, the per-set cargo workspace, progress, errors, interrupts, processes.

Real crates, no network: cargo reads Debian's crate sources under
/usr/share/cargo/registry through a CARGO_HOME whose config replaces crates.io
by that directory (what a user with a vendored registry does). Without those
packages the tests that build crates skip and say so; ``RUSTCALL_REQUIRE_CRATES=1``
(set by CI) makes that a failure. One dependency set (rand, rayon, regex,
serde_json) is shared by the session, so it is compiled once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import rustcall_magic as rc
from rustcall_magic import deps
from rustcall_magic.deps import CargoProgress, StderrProgress, collect_dependencies, normalize_spec

REGISTRY = Path("/usr/share/cargo/registry")
NEEDED = {"rand": "0.8", "rayon": "1", "regex": "1", "serde_json": "1"}

CARGO_CONFIG = """\
[source.crates-io]
replace-with = "vendored"
[source.vendored]
directory = "{registry}"
[net]
offline = true
"""

ALL_BLOCK = """\
//! ```cargo
//! [dependencies]
//! rand = "0.8"
//! rayon = "1"
//! regex = "1"
//! serde_json = "1"
//! ```
"""

RAND_CELL = (
    ALL_BLOCK
    + """use rand::{RngCore, SeedableRng};
pub fn seeded(seed: u64, n: usize) -> Vec<u64> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.next_u64()).collect()
}
"""
)

RAYON_CELL = (
    ALL_BLOCK
    + """use rayon::prelude::*;
pub fn par_sum(v: &[i64]) -> i64 { v.par_iter().sum() }
"""
)

REGEX_CELL = (
    ALL_BLOCK
    + """pub fn words(pattern: &str, text: &str) -> Vec<String> {
    regex::Regex::new(pattern).unwrap().find_iter(text).map(|m| m.as_str().to_string()).collect()
}
"""
)

JSON_CELL = (
    ALL_BLOCK
    + """pub fn roundtrip(s: &str) -> String {
    let v = serde_json::to_string(&s).unwrap();
    let back: String = serde_json::from_str(&v).unwrap();
    format!("{}|{}", v, back)
}
"""
)

# Line 8 (the 7-line cargo block first) uses an undefined name.
CELL_ERROR = ALL_BLOCK + "pub fn f() -> u64 {\n    undefined_name + 1\n}\n"
CELL_WARNING = ALL_BLOCK + "pub fn g() -> u64 {\n    let unused = 3;\n    4\n}\n"

REFERENCE_MAIN = """\
use rand::{RngCore, SeedableRng};
fn main() {
    let mut r = rand::rngs::StdRng::seed_from_u64(42);
    for _ in 0..3 { println!("{}", r.next_u64()); }
}
"""

TINY_MANIFEST = """\
[package]
name = "tinymath"
version = "0.1.0"
edition = "2021"
[features]
default = ["plus_one"]
plus_one = []
double = []
"""

TINY_LIB = """\
pub fn apply(x: i64) -> i64 {
    let unused_in_dependency = 0;
    #[allow(unused_mut)]
    let mut y = x;
    #[cfg(feature = "plus_one")]
    { y += 1; }
    #[cfg(feature = "double")]
    { y *= 2; }
    y
}
"""

TINY_CELL = """\
//! ```cargo
//! tinymath = {{ path = "{path}"{extra} }}
//! ```
pub fn via_tiny(x: i64) -> i64 {{ tinymath::apply(x) }}
"""


def _registry_problem() -> str | None:
    if not REGISTRY.is_dir():
        return f"{REGISTRY} does not exist (apt-get install librust-rand-dev librust-rayon-dev librust-regex-dev librust-serde-json-dev)"
    names = os.listdir(REGISTRY)
    missing = [n for n, v in NEEDED.items() if not any(d.startswith(f"{n.replace('_', '-')}-{v}") or d.startswith(f"{n}-{v}") for d in names)]
    if missing:
        return f"{REGISTRY} lacks {', '.join(missing)} (install Debian's librust-*-dev packages for them)"
    return None


@pytest.fixture(scope="session")
def cargo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CARGO_HOME replacing crates.io by Debian's crate directory, set for the rest of the session."""
    problem = _registry_problem()
    if problem:
        if os.environ.get("RUSTCALL_REQUIRE_CRATES") == "1":
            pytest.fail(problem + " (RUSTCALL_REQUIRE_CRATES=1)")
        pytest.skip(problem)
    home = tmp_path_factory.mktemp("cargo-home")
    (home / "config.toml").write_text(CARGO_CONFIG.format(registry=REGISTRY))
    os.environ["CARGO_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def rand_module(cargo_home: Path):
    """The first cell of the shared set: builds rand, rayon, regex and serde_json once."""
    return rc.compile_rust(RAND_CELL, quiet=True)


@pytest.fixture
def tiny_crate(tmp_path: Path) -> Path:
    root = tmp_path / "tinymath"
    (root / "src").mkdir(parents=True)
    (root / "Cargo.toml").write_text(TINY_MANIFEST)
    (root / "src" / "lib.rs").write_text(TINY_LIB)
    return root


def _child_env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "RUSTCALL_CACHE_DIR": str(cache), **extra}


# ---------------------------------------------------------------------------
# Declaring dependencies (no cargo)


def test_cargo_block_and_dep_lines_merge() -> None:
    src = '//! ```cargo\n//! rand = "0.8"\n//! [dependencies]\n//! regex = { version = "1", default-features = false, features = ["std"] }\n//! ```\npub fn f() {}\n'
    got = collect_dependencies(src, ['serde_json = "1"', 'rand = "0.7"'], {"rayon": "1"})
    assert got == {
        "rand": {"version": "0.7"},
        "rayon": {"version": "1"},
        "regex": {"version": "1", "default-features": False, "features": ["std"]},
        "serde_json": {"version": "1"},
    }


@pytest.mark.parametrize(
    "text",
    [
        'rand = "0.8"\n',
        '[dependencies]\nrand = "0.8" # comment\n\n# note\nregex="1"\n',
        'rand = "0.8"\n[dependencies]\nregex = "1"\n',
        'a = "x\\\\y"\n',
        'a = "1"\na = "2"\n',
        'a = { version = "1" }\n',
        '[ dependencies ]\nx-y_z = "=1.2"\n',
        'a = "1"\n[dependencies]\nb = "2"\n[dependencies]\nc = "3"\n',
    ],
)
def test_quick_fragment_reader_agrees_with_tomllib(text: str) -> None:
    tomllib = deps._toml()

    quick = deps._simple_fragment(text)
    try:
        reference = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        reference = None
    assert quick is None or quick == reference


def test_cell_without_block_has_no_dependencies() -> None:
    assert collect_dependencies("// ```cargo\npub fn f() {}\n") == {}
    assert deps.cell_manifest("pub fn f() {}\n//! ```cargo\n") is None


def test_relative_path_dependency_becomes_absolute(tmp_path: Path) -> None:
    assert normalize_spec("x", {"path": "lib"}, base=tmp_path) == {"path": str(tmp_path / "lib")}


@pytest.mark.parametrize(
    "src, text",
    [
        ('//! ```cargo\n//! rand = "0.8"\npub fn f() {}\n', "not closed"),
        ('//! ```cargo\n//! rand = = "0.8"\n//! ```\n', "invalid Cargo manifest fragment"),
        ('//! ```cargo\n//! [package]\n//! name = "x"\n//! ```\n', "[dependencies] only"),
        ('//! ```cargo\n//! rand = { version = "0.8", color = "red" }\n//! ```\n', "unsupported key 'color'"),
        ("//! ```cargo\n//! rand = 8\n//! ```\n", "a version string or a table"),
    ],
)
def test_bad_cargo_block_is_a_compile_error(src: str, text: str) -> None:
    with pytest.raises(rc.RustCompileError) as info:
        collect_dependencies(src)
    assert text in str(info.value)
    assert "Traceback" not in "\n".join(info.value._render_traceback_())


def test_bad_dependency_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="invalid crate name"):
        collect_dependencies("", dependencies={"bad name": "1"})
    with pytest.raises(ValueError, match="NAME = "):
        collect_dependencies("", ["rand 0.8"])
    with pytest.raises(ValueError, match="needs a version"):
        collect_dependencies("", dependencies={"rand": {"features": ["std"]}})


def test_manifest_text_is_valid_toml() -> None:
    tomllib = deps._toml()

    d = {"a-b": {"version": "1", "features": ["x", 'q"uote'], "default-features": False}}
    doc = tomllib.loads(deps.manifest_text(d, 3, True))
    assert doc["dependencies"] == d
    assert doc["profile"]["release"] == {"opt-level": 3, "debug": 2, "panic": "unwind", "incremental": False}


def test_stderr_progress_is_one_updating_line() -> None:
    import io

    out = io.StringIO()
    p = StderrProgress(out)
    p(CargoProgress(1, 10, "regex-syntax v0.6.27", 1.25))
    p(CargoProgress(2, 10, "", 1.5))
    p(CargoProgress(10, 10, "", 4.0, finished=True))
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    parts = text.split("\r")[1:]
    assert parts[0] == "cargo: 1/10 crates, compiling regex-syntax v0.6.27 (1.2 s)"
    assert parts[1].rstrip() == "cargo: 2/10 crates (1.5 s)" and len(parts[1]) == len(parts[0])
    assert parts[2].strip() == "cargo: built 10/10 crates in 4.0 s"


def test_progress_widget_follows_reports() -> None:
    from rustcall_magic.widgets import CargoProgressView

    shown: list[object] = []
    view = CargoProgressView(show=shown.append)
    view(CargoProgress(3, 19, "rand v0.8.5", 2.0))
    assert shown == [view] and (view.bar.value, view.bar.max) == (3, 19)
    assert view.label.value == "3/19 crates, compiling rand v0.8.5 (2.0 s)"
    view(CargoProgress(19, 19, "", 9.0, finished=True))
    assert shown == [view] and view.bar.value == 19 and view.bar.bar_style == "success"


def test_missing_cargo_is_a_toolchain_error(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARGO", str(tmp_path / "no-such-cargo"))
    monkeypatch.setattr(deps.shutil, "which", lambda c: None if "cargo" in c else c)
    with pytest.raises(rc.RustToolchainError, match="cargo was not found"):
        rc.compile_rust("pub fn f() {}", dependencies={"rand": "0.8"})


# ---------------------------------------------------------------------------
# Real crates


def test_rand_matches_a_cargo_built_reference(rand_module, cargo_home: Path, tmp_path: Path) -> None:
    proj = tmp_path / "reference"
    (proj / "src").mkdir(parents=True)
    (proj / "Cargo.toml").write_text('[package]\nname = "reference"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\nrand = "0.8"\n')
    (proj / "src" / "main.rs").write_text(REFERENCE_MAIN)
    out = subprocess.run(["cargo", "run", "--quiet", "--offline"], cwd=proj, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    reference = [int(x) for x in out.stdout.split()]
    assert len(reference) == 3
    assert list(rand_module.seeded(42, 3)) == reference


def test_first_build_compiled_the_dependencies(rand_module) -> None:
    built = rand_module.info.dependencies
    if rand_module.info.cache_hit:
        pytest.skip("the session cache already held this cell")
    assert built is not None and {"rand@0.8.5", "rayon@1.6.1"} <= {*built.compiled, *built.fresh}
    assert rand_module.entry.meta["dependencies"]["rand"] == {"version": "0.8"}


def test_second_cell_reuses_the_built_dependencies(rand_module) -> None:
    m = rc.compile_rust(RAYON_CELL, quiet=True)
    assert m.par_sum(list(range(10_001))) == 50_005_000
    if m.info.cache_hit:
        pytest.skip("the session cache already held this cell")
    built = m.info.dependencies
    assert built is not None and built.compiled == []
    assert {"rand@0.8.5", "rayon@1.6.1", "regex@1.7.1", "serde_json@1.0.87"} <= set(built.fresh)


def test_regex_and_serde_json(rand_module) -> None:
    assert rc.compile_rust(REGEX_CELL, quiet=True).words(r"\b\w{5}\b", "hello big world of rust") == ["hello", "world"]
    text = 'say "hi"\n\u00e9'
    assert rc.compile_rust(JSON_CELL, quiet=True).roundtrip(text) == f"{json.dumps(text, ensure_ascii=False)}|{text}"


def test_cell_errors_keep_cell_line_numbers(rand_module) -> None:
    with pytest.raises(rc.RustCompileError) as info:
        rc.compile_rust(CELL_ERROR)
    assert [d.line for d in info.value.diagnostics if d.level == "error"] == [9]


def test_cell_warnings_shown_dependency_warnings_not(rand_module, tiny_crate: Path, capfd) -> None:
    m = rc.compile_rust(CELL_WARNING)
    assert [(d.line, "unused" in d.message) for d in m.warnings] == [(9, True)]
    capfd.readouterr()
    t = rc.compile_rust(TINY_CELL.format(path=tiny_crate, extra=""))
    assert t.via_tiny(4) == 5
    err = capfd.readouterr().err
    assert "unused_in_dependency" not in err and t.warnings == []


def test_path_dependency_and_features(cargo_home: Path, tiny_crate: Path) -> None:
    plain = rc.compile_rust(TINY_CELL.format(path=tiny_crate, extra=""), quiet=True)
    assert plain.via_tiny(10) == 11
    both = rc.compile_rust(TINY_CELL.format(path=tiny_crate, extra=', features = ["double"]'), quiet=True)
    assert both.via_tiny(10) == 22
    only = rc.compile_rust(TINY_CELL.format(path=tiny_crate, extra=', default-features = false, features = ["double"]'), quiet=True)
    assert only.via_tiny(10) == 20


def test_editing_a_path_dependency_rebuilds_the_cell(cargo_home: Path, tiny_crate: Path) -> None:
    src = TINY_CELL.format(path=tiny_crate, extra="")
    assert rc.compile_rust(src, quiet=True).via_tiny(1) == 2
    lib = tiny_crate / "src" / "lib.rs"
    lib.write_text(TINY_LIB.replace("y += 1", "y += 100"))
    os.utime(lib, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    m = rc.compile_rust(src, quiet=True)
    assert not m.info.cache_hit and m.via_tiny(1) == 101


def test_mapping_and_magic_dep_lines_share_the_set(rand_module, ip) -> None:
    body = "use rand::{RngCore, SeedableRng};\npub fn first_draw() -> u64 { rand::rngs::StdRng::seed_from_u64(42).next_u64() }\n"
    m = rc.compile_rust(body, dependencies=NEEDED, quiet=True)
    assert m.first_draw() == rand_module.seeded(42, 1)[0]
    assert m.entry.meta["deps_set"] == rand_module.entry.meta["deps_set"]
    line = " ".join(f"--dep '{n} = \"{v}\"'" for n, v in NEEDED.items())
    ip.run_cell_magic("rust", f"-q {line}", body.replace("first_draw", "first_draw_magic"))
    assert ip.user_ns["first_draw_magic"]() == m.first_draw()


def test_bad_dep_option_is_a_usage_error(ip) -> None:
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="--dep"):
        ip.run_cell_magic("rust", "--dep 'rand 0.8'", "pub fn f() {}")


def test_rust_llvm_with_dependencies_falls_back_with_a_warning(rand_module, ip) -> None:
    body = RAND_CELL.replace("seeded", "seeded_llvm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ip.run_cell_magic("rust_llvm", "-q", body)
    assert any("depends on crates (rand, rayon, regex, serde_json)" in str(w.message) for w in caught)
    assert list(ip.user_ns["seeded_llvm"](42, 2)) == list(rand_module.seeded(42, 2))
    with pytest.warns(rc.RustcallWarning, match="built as by %%rust"):
        j = rc.jit_rust("pub fn twice(x: u64) -> u64 { x * 2 }\n", dependencies={"rand": "0.8"})
    assert j.twice(21) == 42


@pytest.mark.parametrize(
    "dep, text",
    [
        ({"no_such_crate_anywhere": "1"}, "no_such_crate_anywhere"),
        ({"rand": "99"}, "rand"),
    ],
)
def test_resolution_errors_show_cargos_message(cargo_home: Path, dep: dict, text: str) -> None:
    with pytest.raises(rc.RustCompileError) as info:
        rc.compile_rust("pub fn f() {}", dependencies=dep)
    err = info.value
    assert err.summary.startswith("cargo: ") and text in err.summary
    assert text in err.rendered and "Traceback" not in err.rendered
    assert "failed to select a version" in err.rendered or "no matching package" in err.rendered
    unresolved = {n: {"version": v} for n, v in dep.items()}
    assert all(s.crates != unresolved for s in rc.api.dependency_sets())  # no workspace left behind


def test_rustcache_deps_lists_and_updates(rand_module, tiny_crate: Path, ip, capsys) -> None:
    rc.compile_rust(TINY_CELL.format(path=tiny_crate, extra=""), quiet=True)
    capsys.readouterr()
    ip.run_line_magic("rustcache", "deps")
    out = capsys.readouterr().out
    assert "rand 0.8, rayon 1, regex 1, serde_json 1" in out and "tinymath (path)" in out
    assert out.splitlines()[0].split() == ["id", "crates", "size", "last", "used", "state"]
    assert all(line.endswith("built") for line in out.splitlines()[1:] if "rand 0.8" in line or "tinymath" in line)
    ip.run_line_magic("rustcache", "")
    assert f"dependency sets: {len(rc.api.dependency_sets())}, " in capsys.readouterr().out
    tiny = next(s for s in rc.api.dependency_sets() if "tinymath" in s.crates)
    ip.run_line_magic("rustcache", f"deps update {tiny.id[:8]}")
    assert capsys.readouterr().out.strip() == f"re-resolved {tiny.id[:12]}: tinymath (path)"
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="no dependency set"):
        ip.run_line_magic("rustcache", "deps update ffffffffffff")


def test_clear_removes_dependency_sets(cargo_home: Path, fresh_cache: Path, tiny_crate: Path) -> None:
    src = TINY_CELL.format(path=tiny_crate, extra="")
    assert rc.compile_rust(src, quiet=True).via_tiny(1) == 2
    assert len(rc.api.dependency_sets()) == 1
    rc.clear_cache()
    assert rc.api.dependency_sets() == []
    m = rc.compile_rust(src.replace("via_tiny", "via_tiny_again"), quiet=True)
    assert m.via_tiny_again(2) == 3 and m.info.dependencies.compiled == ["tinymath@0.1.0"]


def test_clean_removes_sets_not_used_for_days(cargo_home: Path, fresh_cache: Path, tiny_crate: Path) -> None:
    rc.compile_rust(TINY_CELL.format(path=tiny_crate, extra=""), quiet=True)
    rc.compile_rust(TINY_CELL.format(path=tiny_crate, extra=', features = ["double"]'), quiet=True)
    old, recent = sorted(rc.api.dependency_sets(), key=lambda s: s.id)
    forty_days_ago = time.time() - 40 * 86400
    os.utime(old.path / deps.SET_FILE, (forty_days_ago, forty_days_ago))
    rc.cleanup_old_cache(30)
    assert [s.id for s in rc.api.dependency_sets()] == [recent.id]


def test_workspace_is_private_and_a_shared_one_is_refused(cargo_home: Path, fresh_cache: Path, tiny_crate: Path) -> None:
    src = TINY_CELL.format(path=tiny_crate, extra="")
    rc.compile_rust(src, quiet=True)
    (ws,) = rc.api.dependency_sets()
    assert oct(ws.path.stat().st_mode & 0o777) == oct(0o700) and oct(ws.path.parent.stat().st_mode & 0o777) == oct(0o700)
    ws.path.chmod(0o777)
    with pytest.raises(rc.RustCacheError, match="writable by"):
        rc.compile_rust(src.replace("via_tiny", "via_tiny_shared"), quiet=True)
    ws.path.chmod(0o700)
    assert rc.compile_rust(src.replace("via_tiny", "via_tiny_private"), quiet=True).via_tiny_private(1) == 2


def test_size_cap_evicts_the_least_recently_used_dependency_set(cargo_home: Path, tmp_path: Path, tiny_crate: Path) -> None:
    c = rc.RustCompiler(cache_dir=tmp_path / "capped", max_cache_bytes=1, quiet=True)
    first = c.compile(TINY_CELL.format(path=tiny_crate, extra=""))
    (only_first,) = deps.list_sets(c.cache)
    second = c.compile(TINY_CELL.format(path=tiny_crate, extra=', features = ["double"]'))
    (only_second,) = deps.list_sets(c.cache)
    assert only_second.id != only_first.id and only_second.id == second.entry.meta["deps_set"]
    # Entries loaded in this process are kept; a cell's code does not need its set once linked.
    assert sorted(e.key for e in c.cache.entries()) == sorted([first.key, second.key])
    assert first.via_tiny(1) == 2 and second.via_tiny(1) == 4


# ---------------------------------------------------------------------------
# Across processes

HIT_CHILD = """
import json, rustcall_magic as rc
m = rc.compile_rust({src!r}, quiet=True)
print(json.dumps({{"hit": m.info.cache_hit, "value": list(m.seeded(42, 2))}}))
"""


def test_fresh_process_is_a_full_hit_without_cargo(rand_module, tmp_path: Path, session_dir: Path) -> None:
    marker = tmp_path / "cargo-ran"
    fake = tmp_path / "cargo"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake.chmod(0o755)
    env = _child_env(Path(os.environ["RUSTCALL_CACHE_DIR"]), CARGO=str(fake))
    # The value is a RustVec: using it here builds the ownership runtime (once per cache)
    # before the child, whose stderr must then stay silent.
    expected = list(rand_module.seeded(42, 2))
    out = subprocess.run([sys.executable, "-c", HIT_CHILD.format(src=RAND_CELL)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"hit": True, "value": expected}
    assert not marker.exists() and out.stderr == ""


RAND_ONLY = """//! ```cargo
//! rand = "0.8"
//! ```
use rand::{RngCore, SeedableRng};
pub fn draw() -> u64 { rand::rngs::StdRng::seed_from_u64(42).next_u64() }
"""

INTERRUPTED_CHILD = """
import json, sys, rustcall_magic as rc
try:
    m = rc.compile_rust(sys.argv[1], quiet=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
print(json.dumps(m.draw()))
"""


def _processes_under(path: Path) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if str(path) in cmd or cwd.startswith(str(path)):
            found.append(f"{pid}: {cmd[:120]}")
    return found


@pytest.mark.slow
def test_sigint_during_the_dependency_build_leaves_a_working_cache(cargo_home: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = _child_env(cache)
    child = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_CHILD, RAND_ONLY], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stderr is not None
    seen = ""
    while "cargo: " not in seen:  # the progress line: cargo is compiling
        ch = child.stderr.read(1)
        assert ch, f"the child ended before cargo compiled anything: {seen}"
        seen += ch
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 3 and out == "interrupted\n", err
    time.sleep(0.2)
    assert _processes_under(cache) == []
    assert os.listdir(cache / "entries") == []
    (ws,) = (cache / "deps").iterdir()
    (listed,) = deps.list_sets(rc.RustCompiler(cache_dir=cache).cache)
    assert listed.id == ws.name and not listed.built
    from filelock import FileLock

    FileLock(str(cache / "locks" / f"deps-{ws.name}.lock"), timeout=0).acquire().lock.release()
    again = subprocess.run([sys.executable, "-c", INTERRUPTED_CHILD, RAND_ONLY], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == 9713269763989775522


TWO_CHILD = """
import json, sys, time, rustcall_magic as rc
while time.time() < float(sys.argv[2]):
    time.sleep(0.005)
m = rc.compile_rust(sys.argv[1], quiet=True, progress=lambda p: None)
print(json.dumps({"value": m.f(20), "compiled": m.info.dependencies.compiled, "fresh": m.info.dependencies.fresh}))
"""

EITHER_CELL = """//! ```cargo
//! either = "1"
//! ```
pub fn f(x: i64) -> i64 {{ let e: either::Either<i64, i64> = either::Either::Left(x); e.either(|l| l + {k}, |r| r) }}
"""


@pytest.mark.slow
def test_two_processes_build_a_new_set_once(cargo_home: Path, tmp_path: Path) -> None:
    env = _child_env(tmp_path / "cache")
    go = str(time.time() + 2.0)
    procs = [
        subprocess.Popen([sys.executable, "-c", TWO_CHILD, EITHER_CELL.format(k=k), go], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in (1, 2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["value"] for r in results) == [21, 22]
    compiled = sorted(tuple(r["compiled"]) for r in results)
    assert compiled[0] == () and compiled[1] == tuple(x for x in compiled[1] if x.startswith("either@")) != ()
    assert any(x.startswith("either@") for r in results for x in r["fresh"])


def test_offline_env_adds_the_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rustcall_magic.cache import Cache
    from rustcall_magic.toolchain import get_toolchain

    cache = Cache(tmp_path / "cache")
    ws = deps.Workspace(cache, {"rand": {"version": "0.8"}}, get_toolchain(), 2, False, None)
    monkeypatch.setenv("RUSTCALL_CARGO_OFFLINE", "1")
    assert ws._cargo("build")[-2:] == ["build", "--offline"]
    monkeypatch.setenv("RUSTCALL_CARGO_OFFLINE", "0")
    assert ws._cargo("build")[-1] == "build"


def test_notebook_shows_a_progress_bar_for_a_new_set(cargo_home: Path, tiny_crate: Path) -> None:
    """In a real kernel the first build of a set shows a progress view; nbclient keeps its final state."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    root = Path(__file__).resolve().parents[1]
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext rustcall_magic"),
            nbformat.v4.new_code_cell("%%rust -q\n" + TINY_CELL.format(path=tiny_crate, extra="").replace("via_tiny", "via_tiny_nb")),
            nbformat.v4.new_code_cell("via_tiny_nb(41)"),
            # No cargo work: a dependency-free cell, and the same cell again (a hit) make no widget.
            nbformat.v4.new_code_cell("%%rust -q\npub fn nb_plain() -> i64 { 7 }"),
            nbformat.v4.new_code_cell("%%rust -q\n" + TINY_CELL.format(path=tiny_crate, extra="").replace("via_tiny", "via_tiny_nb")),
        ]
    )
    env_before = os.environ.get("PYTHONPATH")
    if not os.environ.get("RUSTCALL_TEST_INSTALLED"):
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env_before]))
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    finally:
        if env_before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_before
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "42"
    views = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for o in nb.cells[1].outputs if "data" in o]
    assert len(views) == 1
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    children = [state[ref.removeprefix("IPY_MODEL_")] for ref in state[views[0]]["state"]["children"]]
    bar = next(c["state"] for c in children if c["model_name"] == "IntProgressModel")
    label = next(c["state"] for c in children if c["model_name"] == "LabelModel")
    assert (bar["value"], bar["max"], bar["bar_style"]) == (1, 1, "success")
    assert re.fullmatch(r"built 1/1 crates in \d+\.\d s", label["value"])
    assert [c["model_name"] for c in state.values()].count("HBoxModel") == 1
    assert nb.cells[3].outputs == [] and nb.cells[4].outputs == []
