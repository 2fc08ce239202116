"""The compile cache: keys, hits, corruption, safety, housekeeping, and several processes at once."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import rustcall_magic as rc
from rustcall_magic.cache import Cache

ADD = "pub fn add(a: i64, b: i64) -> i64 { a + b }"

def corrupt(path: Path, data: bytes) -> None:
    """Replace a file's contents without touching its inode (it may be mapped by this process)."""
    tmp = path.with_name(path.name + ".corrupt")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def compiler(root: Path, **kw) -> rc.RustCompiler:
    return rc.RustCompiler(cache_dir=root, quiet=True, **kw)


def test_fresh_cache_dir_is_private(tmp_path: Path) -> None:
    root = tmp_path / "new" / "cache"
    m = compiler(root).compile(ADD)
    assert m.add(1, 2) == 3
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    for sub in ("entries", "locks", "tmp"):
        assert stat.S_IMODE(os.stat(root / sub).st_mode) == 0o700


def test_key_changes_with_source_and_every_option(tmp_path: Path, logged_rustc: Path) -> None:
    c = compiler(tmp_path / "c")
    base = c.compile(ADD)
    keys = {base.key}
    variants = [
        dict(src=ADD + " "),
        dict(opt_level=0),
        dict(debug=True),
        dict(edition="2018"),
        dict(target_cpu="x86-64-v2"),
    ]
    for v in variants:
        src = v.pop("src", ADD)
        m = c.compile(src, **v)
        assert not m.info.cache_hit
        keys.add(m.key)
    assert len(keys) == len(variants) + 1
    assert logged_rustc.builds() == len(variants) + 1
    again = c.compile(ADD)
    assert again.info.cache_hit and again.key == base.key
    assert logged_rustc.builds() == len(variants) + 1


def test_hits_and_last_use_are_recorded(tmp_path: Path) -> None:
    c = compiler(tmp_path / "c")
    m = c.compile(ADD)
    entry_dir = m.entry.path
    os.utime(entry_dir, (time.time() - 3600, time.time() - 3600))
    before = os.stat(entry_dir).st_mtime
    c.compile(ADD)
    c.compile(ADD)
    (lib,) = rc.list_cached_libraries(c)
    assert lib.hits == 2
    assert lib.functions == ("add",)
    assert lib.loaded is True
    assert os.stat(entry_dir).st_mtime > before
    assert lib.size == rc.get_cache_size(c) > 0


def test_truncated_artifact_is_rebuilt_with_a_warning(tmp_path: Path, logged_rustc: Path) -> None:
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    art = m.entry.artifact
    data = art.read_bytes()
    corrupt(art, data[: len(data) // 2])
    # A new compiler object has no memory of the loaded module: it must check the disk.
    with pytest.warns(rc.RustcallWarning, match="corrupt"):
        m2 = compiler(root).compile(ADD, force=False)
    assert not m2.info.cache_hit
    assert logged_rustc.builds() == 2
    assert m2.add(20, 22) == 42
    assert len(m2.entry.artifact.read_bytes()) == len(data)


def test_modified_artifact_is_detected_by_checksum(tmp_path: Path) -> None:
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    art = m.entry.artifact
    data = bytearray(art.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    corrupt(art, bytes(data))
    good, bad = rc.verify_cache(compiler(root))
    assert good == 0 and bad == [(m.key, "artifact checksum does not match")]
    assert not m.entry.path.exists()


def test_unreadable_metadata_is_a_miss(tmp_path: Path) -> None:
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    (m.entry.path / "meta.json").write_text("{not json")
    m2 = compiler(root).compile(ADD)
    assert not m2.info.cache_hit and m2.add(1, 1) == 2
    (m2.entry.path / "meta.json").write_text(json.dumps({"format": 999}))
    assert not compiler(root).compile(ADD).info.cache_hit


def test_world_writable_cache_dir_is_refused(tmp_path: Path, logged_rustc: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    with pytest.raises(rc.RustCacheError, match="writable by group or others"):
        compiler(root).compile(ADD)
    assert logged_rustc.read_text() == ""
    assert not (root / "entries").exists()


def test_foreign_owned_entry_is_refused(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to chown to another user")
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    os.chown(m.entry.path, 65534, 65534)
    with pytest.raises(rc.RustCacheError, match="owned by uid 65534"):
        compiler(root).compile(ADD)


def test_symlinked_entry_is_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    elsewhere = tmp_path / "elsewhere"
    m.entry.path.rename(elsewhere)
    m.entry.path.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(rc.RustCacheError, match="symlink"):
        compiler(root).compile(ADD)


def test_disk_error_on_publish_leaves_nothing_half_written(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "c"
    c = compiler(root)
    real_rename = os.rename

    def full_disk(src, dst, *a, **kw):
        if "entries" in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_rename(src, dst, *a, **kw)

    monkeypatch.setattr(os, "rename", full_disk)
    with pytest.raises(rc.RustCacheError, match="No space left"):
        c.compile(ADD)
    monkeypatch.setattr(os, "rename", real_rename)
    assert list((root / "entries").iterdir()) == []
    assert list((root / "tmp").iterdir()) == []
    assert c.compile(ADD).add(2, 2) == 4


def test_cleanup_old_cache_removes_entries_aged_past_n_days(tmp_path: Path) -> None:
    root = tmp_path / "c"
    writer = compiler(root)
    old = writer.compile("pub fn old_fn() -> i32 { 1 }")
    new = writer.compile("pub fn new_fn() -> i32 { 2 }")
    ten_days = time.time() - 10 * 86400
    os.utime(old.entry.path, (ten_days, ten_days))
    # Loaded entries are kept; use a cache view that has loaded nothing from this dir.
    cache = Cache(root)
    removed = cache.clean_older_than(7)
    assert [e.key for e in removed] == [old.key]
    assert [e.key for e in cache.entries()] == [new.key]
    assert cache.clean_older_than(7) == []
    with pytest.raises(ValueError):
        rc.cleanup_old_cache(-1, writer)


def test_clear_keeps_loaded_entries_and_they_keep_working(tmp_path: Path) -> None:
    root = tmp_path / "c"
    c = compiler(root)
    m = c.compile("pub fn loaded_fn() -> i32 { 7 }")
    # An entry built by another process (not loaded here).
    env = {**os.environ, "RUSTCALL_CACHE_DIR": str(root)}
    code = "import rustcall_magic as rc; rc.compile_rust('pub fn other_fn() -> i32 { 8 }', quiet=True)"
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert len(rc.list_cached_libraries(c)) == 2
    assert rc.clear_cache(c) == 1
    (left,) = rc.list_cached_libraries(c)
    assert left.key == m.key and left.loaded
    assert m.loaded_fn() == 7
    # Even once its files are gone, a loaded function keeps working.
    Cache(root).clear()
    assert rc.list_cached_libraries(c) == [] and m.loaded_fn() == 7


def test_lru_cap_evicts_least_recently_used(tmp_path: Path) -> None:
    root = tmp_path / "c"
    # Built by another process, so none of them is loaded (and so protected) here.
    code = "import rustcall_magic as rc\nfor i in range(3): rc.compile_rust(f'pub fn f{i}() -> i32 {{ {i} }}', quiet=True)"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "RUSTCALL_CACHE_DIR": str(root)})
    entries = list(Cache(root).entries())
    for i, e in enumerate(entries):
        t = time.time() - (3 - i) * 100
        os.utime(e.path, (t, t))
    sizes = [e.size for e in entries]
    oldest = entries[0].key
    cap = sum(sizes) + max(sizes) // 2  # room for 3.5 entries: the 4th build evicts the oldest
    m4 = compiler(root, max_cache_bytes=cap).compile("pub fn f3() -> i32 { 3 }")
    left = {e.key for e in Cache(root).entries()}
    assert left == {e.key for e in entries[1:]} | {m4.key}
    assert oldest not in left
    assert Cache(root).total_size() <= cap


def test_cache_max_bytes_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("RUSTCALL_CACHE_MAX_BYTES", "12345")
    assert rc.RustCompiler().cache_limit() == 12345
    monkeypatch.setenv("RUSTCALL_CACHE_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="RUSTCALL_CACHE_MAX_BYTES"):
        rc.RustCompiler().cache_limit()


CONCURRENT_CHILD = textwrap.dedent(
    """
    import json, sys, time
    import rustcall_magic as rc
    go = float(sys.argv[1])
    while time.time() < go:
        time.sleep(0.001)
    m = rc.compile_rust(sys.argv[2], quiet=True)
    print(json.dumps({"hit": m.info.cache_hit, "value": m.mul(6, 7), "key": m.key}))
    """
)


@pytest.mark.slow
def test_eight_processes_compile_a_new_cell_once(tmp_path: Path, logged_rustc: Path) -> None:
    src = "pub fn mul(a: i64, b: i64) -> i64 { a * b }"
    env = {**os.environ, "RUSTCALL_CACHE_DIR": str(tmp_path / "c")}
    go = str(time.time() + 1.5)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_CHILD, go, src], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(8)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out))
    assert [r["value"] for r in results] == [42] * 8
    assert len({r["key"] for r in results}) == 1
    assert sum(not r["hit"] for r in results) == 1
    assert logged_rustc.builds() == 1
    assert list((tmp_path / "c" / "tmp").iterdir()) == []


@pytest.mark.slow
def test_cleanup_racing_builds_never_loads_half_an_entry(tmp_path: Path) -> None:
    root = tmp_path / "c"
    env = {**os.environ, "RUSTCALL_CACHE_DIR": str(root)}
    builder = textwrap.dedent(
        """
        import rustcall_magic as rc
        for i in range(6):
            m = rc.compile_rust(f"pub fn mul(a: i64, b: i64) -> i64 {{ a * b + {i} - {i} }}", quiet=True)
            assert m.mul(6, 7) == 42
            m2 = rc.compile_rust(f"pub fn mul(a: i64, b: i64) -> i64 {{ a * b + {i} - {i} }}", quiet=True)
            assert m2.mul(6, 7) == 42
        print("ok")
        """
    )
    cleaner = textwrap.dedent(
        """
        import time
        from rustcall_magic.cache import Cache
        c = Cache(__import__("os").environ["RUSTCALL_CACHE_DIR"])
        end = time.time() + 4
        n = 0
        while time.time() < end:
            c.ensure()
            n += len(c.clear())
            time.sleep(0.01)
        print("cleared", n)
        """
    )
    b = subprocess.Popen([sys.executable, "-c", builder], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.2)
    k = subprocess.Popen([sys.executable, "-c", cleaner], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    bout, berr = b.communicate(timeout=300)
    kout, kerr = k.communicate(timeout=300)
    assert b.returncode == 0, berr.decode()
    assert k.returncode == 0, kerr.decode()
    assert bout.decode().strip() == "ok"
    assert kout.decode().startswith("cleared ")  # the cleaner really ran alongside
    for entry in Cache(root).entries():
        assert Cache(root).verify(entry) is None


# ---------------------------------------------------------------------------
# %rustcache


def test_rustcache_magic_subcommands(ip, tmp_path: Path, capsys) -> None:
    magics = ip.magics_manager.registry["RustMagics"]
    magics.cache_dir = str(tmp_path / "mc")
    try:
        ip.run_cell("%%rust\npub fn cached_one() -> i32 { 1 }")
        capsys.readouterr()
        ip.run_line_magic("rustcache", "")
        out = capsys.readouterr().out
        assert "1 entry" in out and str(tmp_path / "mc") in out
        ip.run_line_magic("rustcache", "list")
        out = capsys.readouterr().out
        assert "cached_one" in out and "hits" in out and "loaded in this process" in out
        ip.run_line_magic("rustcache", "verify")
        assert "1 good, 0 bad" in capsys.readouterr().out
        ip.run_line_magic("rustcache", "clean --days 0")
        assert "removed 0 entries" in capsys.readouterr().out  # the entry is loaded here
        ip.run_line_magic("rustcache", "clear")
        assert "kept 1 loaded in this process" in capsys.readouterr().out
        from IPython.core.error import UsageError

        with pytest.raises(UsageError):
            ip.run_line_magic("rustcache", "explode")
    finally:
        magics.cache_dir = ""


def test_rustcache_in_terminal_ipython(tmp_path: Path) -> None:
    # Typed into a terminal IPython: a cell magic ends at an empty line.
    session = "%load_ext rustcall_magic\n%%rust\npub fn term_fn(x: i32) -> i32 { x + 1 }\n\n\nprint(term_fn(1))\n%rustcache list\n"
    env = {**os.environ, "RUSTCALL_CACHE_DIR": str(tmp_path / "tc"), "IPYTHONDIR": str(tmp_path / "ipy")}
    out = subprocess.run(
        [sys.executable, "-m", "IPython", "--simple-prompt", "--no-banner", "--colors=nocolor"],
        input=session,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "In [3]: 2\n" in out.stdout, out.stdout + out.stderr
    assert "term_fn" in out.stdout and "1 entry" in out.stdout and "hits" in out.stdout


def test_clean_keeps_builds_in_progress_and_sweeps_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    cache = Cache(root)
    cache.ensure()
    running = cache.new_build_dir("f" * 64)  # another kernel's build, just started
    old_build = cache.new_build_dir("e" * 64)
    stale_lock = root / "locks" / ("d" * 64 + ".lock")
    stale_lock.write_text("")
    two_hours = time.time() - 7200
    for p in (old_build, stale_lock):
        os.utime(p, (two_hours, two_hours))
    cache.clean_older_than(0)
    assert running.exists()
    assert not old_build.exists() and not stale_lock.exists()
    assert (root / "locks" / f"{m.key}.lock").exists() is False  # evicted with its entry


def test_metadata_of_the_wrong_shape_is_a_miss(tmp_path: Path) -> None:
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    meta = json.loads((m.entry.path / "meta.json").read_text())
    meta["created"] = "yesterday"
    (m.entry.path / "meta.json").write_text(json.dumps(meta))
    assert rc.list_cached_libraries(compiler(root)) == []
    assert compiler(root).compile(ADD).add(1, 2) == 3


@pytest.mark.parametrize(
    "field,value",
    [
        ("functions", [{"name": "add"}]),
        ("module", 5),
        ("skipped", "ab"),
        ("warnings", [{"x": 1}]),
        ("created", 1e300),
        ("created", float("nan")),
        ("artifact", ".."),
    ],
)
def test_consistent_but_wrong_metadata_is_a_miss_not_a_crash(tmp_path: Path, field: str, value) -> None:
    # The checksum still matches: only the metadata lies. Loading, listing and verifying survive it.
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    meta = json.loads((m.entry.path / "meta.json").read_text())
    meta[field] = value
    (m.entry.path / "meta.json").write_text(json.dumps(meta))
    assert rc.list_cached_libraries(compiler(root)) == []
    again = compiler(root).compile(ADD)
    assert not again.info.cache_hit and again.add(2, 3) == 5
    assert [e.key for e in rc.list_cached_libraries(compiler(root))] == [again.key]


def test_refused_entries_are_listed_and_cleared(tmp_path: Path) -> None:
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    m.entry.path.chmod(0o777)
    stats = rc.cache_stats(compiler(root))
    assert stats.entries == () and [name for name, _ in stats.refused] == [m.key]
    assert "1 refused" in stats.summary() and "writable by group or others" in str(stats)
    with pytest.raises(rc.RustCacheError, match="writable by group or others"):
        compiler(root).compile(ADD)
    assert rc.clear_cache(compiler(root)) == 0  # it was never an entry a process could load
    assert rc.cache_stats(compiler(root)).refused == ()
    assert compiler(root).compile(ADD).add(1, 1) == 2
    # A planted symlink: verify removes the link, not what it points to.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    (root / "entries" / ("f" * 64)).symlink_to(elsewhere, target_is_directory=True)
    good, bad = rc.verify_cache(compiler(root))
    assert good == 1 and [k for k, _ in bad] == ["f" * 64] and "symlink" in bad[0][1]
    assert (elsewhere / "keep.txt").read_text() == "mine" and not (root / "entries" / ("f" * 64)).exists()


def test_a_directory_made_unsafe_during_a_session_is_refused(tmp_path: Path) -> None:
    c = compiler(tmp_path / "c")
    c.compile(ADD)
    (tmp_path / "c" / "entries").chmod(0o777)
    with pytest.raises(rc.RustCacheError, match="writable by group or others"):
        c.compile(ADD)


def test_a_bad_size_cap_fails_before_building(tmp_path: Path, monkeypatch, logged_rustc: Path) -> None:
    monkeypatch.setenv("RUSTCALL_CACHE_MAX_BYTES", "10MB")
    with pytest.raises(ValueError, match="RUSTCALL_CACHE_MAX_BYTES"):
        compiler(tmp_path / "c").compile("pub fn capped() -> i32 { 1 }")
    assert logged_rustc.builds() == 0


def test_native_builds_are_keyed_by_the_host_cpu(tmp_path: Path, monkeypatch) -> None:
    c = compiler(tmp_path / "c", target_cpu="native")
    here = c.compile(ADD)
    monkeypatch.setattr("rustcall_magic.compiler.host_cpu_identity", lambda: "another machine")
    there = c.compile(ADD)
    assert here.key != there.key and not there.info.cache_hit
    assert compiler(tmp_path / "c").compile(ADD).key == compiler(tmp_path / "c").compile(ADD).key


#: Runs a child that obeys permission bits even as root (no DAC override), in a read-only cache.
READ_ONLY_CHILD = textwrap.dedent(
    """
    import json, sys, warnings
    import rustcall_magic as rc
    warnings.simplefilter("ignore")
    c = rc.RustCompiler(cache_dir=sys.argv[1], quiet=True)
    out = {}
    for name, call in [
        ("hit", lambda: c.compile(sys.argv[2]).add(2, 2)),
        ("new cell", lambda: c.compile("pub fn fresh() -> i32 { 9 }").fresh()),
        ("clear", lambda: rc.clear_cache(c)),
        ("clean", lambda: rc.cleanup_old_cache(0, c)),
        ("verify", lambda: rc.verify_cache(c)),
    ]:
        try:
            out[name] = ["ok", repr(call())]
        except Exception as e:
            out[name] = [type(e).__name__, str(e)]
    print(json.dumps(out))
    """
)


def _without_dac_override() -> list[str]:
    if os.getuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("as root, needs setpriv to make permission bits apply")
    caps = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def test_a_read_only_cache_serves_hits_and_says_why_it_cannot_change(tmp_path: Path) -> None:
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    corrupt_key = compiler(root).compile("pub fn other() -> i32 { 1 }").key
    corrupt(root / "entries" / corrupt_key / next(p.name for p in (root / "entries" / corrupt_key).glob("*.so")), b"x")
    for d in (root, root / "entries", root / "locks", root / "tmp"):
        d.chmod(0o500)
    try:
        out = subprocess.run(
            [*_without_dac_override(), sys.executable, "-c", READ_ONLY_CHILD, str(root), ADD],
            capture_output=True, text=True, timeout=120, env=dict(os.environ),
        )  # fmt: skip
    finally:
        for d in (root, root / "entries", root / "locks", root / "tmp"):
            d.chmod(0o700)
    assert out.returncode == 0, out.stderr
    said = json.loads(out.stdout.strip().splitlines()[-1])
    assert said["hit"] == ["ok", "4"]
    for what in ("new cell", "clear", "clean"):
        assert said[what][0] == "RustCacheError", (what, said[what])
    assert "could not remove" in said["clear"][1] and "cannot" in said["new cell"][1]
    verdict = said["verify"][1]
    assert said["verify"][0] == "ok" and corrupt_key in verdict and "could not remove it" in verdict
    assert m.add(1, 1) == 2


def test_checksum_is_sealed_and_any_change_to_the_artifact_breaks_the_seal(tmp_path: Path) -> None:
    root = tmp_path / "c"
    # Built and hit in another process: the artifact is changed in place below, and must not be mapped here.
    child = f"import rustcall_magic as rc\nc = rc.RustCompiler(cache_dir={str(root)!r}, quiet=True)\n"
    child += f"c.compile({ADD!r})\nassert c.compile({ADD!r}).info.cache_hit\n"
    subprocess.run([sys.executable, "-c", child], check=True)
    (entry,) = Cache(root).entries()
    seal = entry.path / "verified"
    assert seal.read_text().endswith(entry.meta["sha256"])  # the hit hashed the artifact once and sealed it
    art = entry.artifact
    st = os.stat(art)
    data = bytearray(art.read_bytes())
    data[len(data) // 3] ^= 0x55
    with open(art, "r+b") as f:  # in place: same inode and size
        f.write(bytes(data))
    os.utime(art, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old modification time
    with pytest.warns(rc.RustcallWarning, match="artifact checksum does not match"):
        again = compiler(root).compile(ADD)
    assert not again.info.cache_hit and again.add(2, 2) == 4


def test_a_forged_seal_does_not_skip_the_full_check(tmp_path: Path) -> None:
    root = tmp_path / "c"
    m = compiler(root).compile(ADD)
    art = m.entry.artifact
    data = bytearray(art.read_bytes())
    data[100] ^= 0xFF
    corrupt(art, bytes(data))
    st = os.stat(art)
    (m.entry.path / "verified").write_text(
        f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}:{m.entry.meta['sha256']}"
    )
    good, bad = rc.verify_cache(compiler(root))  # %rustcache verify always hashes
    assert good == 0 and bad == [(m.key, "artifact checksum does not match")]


def test_glue_library_is_built_once_and_kept_apart_from_cell_entries(tmp_path: Path, logged_rustc: Path) -> None:
    root = tmp_path / "c"
    c = compiler(root)
    assert c.compile(ADD).add(1, 2) == 3
    assert c.compile(ADD.replace("a + b", "a + b + 1")).add(1, 2) == 4
    runs = logged_rustc.read_text().splitlines()
    assert sum("--crate-type=rlib" in r for r in runs) == 1  # the glue library, once
    assert sum("--extern rustcall_glue=" in r for r in runs) == 2  # both cells link it
    assert logged_rustc.builds() == 2
    libs = list((root / "lib" / "entries").iterdir())
    assert len(libs) == 1 and (libs[0] / "librustcall_glue.rlib").is_file()
    assert stat.S_IMODE(os.stat(root / "lib").st_mode) == 0o700
    assert len(rc.list_cached_libraries(c)) == 2  # cells only
    # A corrupt library is evicted and rebuilt, never linked.
    rlib = libs[0] / "librustcall_glue.rlib"
    corrupt(rlib, rlib.read_bytes()[:-10])
    with pytest.warns(rc.RustcallWarning, match="cached glue library"):
        assert c.compile(ADD.replace("a + b", "a + b + 2")).add(1, 2) == 5
    assert sum("--crate-type=rlib" in r for r in logged_rustc.read_text().splitlines()) == 2
