"""Cell functions on Dask distributed workers (loopback LocalCluster): by reference, with artifacts from rc.dask.register."""

from __future__ import annotations

import os
import sys

import pytest

distributed = pytest.importorskip("distributed")
np = pytest.importorskip("numpy")

import rustcall_magic as rc  # noqa: E402
from rustcall_magic.errors import RustToolchainError  # noqa: E402

CELL = """
pub fn square(x: i64) -> i64 { x * x }
pub fn total(xs: &[f64]) -> f64 { xs.iter().sum() }
"""
TIMEOUT = 60


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """Two worker processes that have their own empty cache and no Rust toolchain."""
    d = tmp_path_factory.mktemp("dask")
    fake = d / "rustc-must-not-run"
    fake.write_text("#!/bin/sh\necho rustc must not run >&2\nexit 3\n")
    fake.chmod(0o755)
    env = {
        "RUSTCALL_CACHE_DIR": str(d / "worker-cache"),
        "RUSTC": str(fake),
        "PATH": os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if ".cargo" not in p),
    }
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        env=env,
    )
    c = distributed.Client(cluster, timeout=TIMEOUT)
    yield c
    rc.dask.unregister(c)
    c.close()
    cluster.close()


def _worker_env(dask_worker) -> tuple[str | None, str | None]:
    return os.environ.get("RUSTCALL_CACHE_DIR"), os.environ.get("RUSTC")


def test_workers_without_the_artifacts_fail_clearly_not_hang(client) -> None:
    m = rc.compile_rust("pub fn cube(x: i64) -> i64 { x * x * x }", quiet=True)
    envs = client.run(_worker_env)
    assert all(
        cache != os.environ["RUSTCALL_CACHE_DIR"] and rustc.endswith("must-not-run") for cache, rustc in envs.values()
    )
    fut = client.submit(m.cube, 3)
    with pytest.raises(RustToolchainError, match="cannot be built here"):
        fut.result(timeout=TIMEOUT)


def test_registered_cells_run_on_workers_without_a_toolchain(client) -> None:
    m = rc.compile_rust(CELL, quiet=True)
    names = rc.dask.register(client)
    assert any(m.key in n for n in names)
    futures = client.map(m.square, range(1000))
    assert client.gather(futures) == [x * x for x in range(1000)]
    a = np.arange(10_000, dtype=np.float64)
    assert client.submit(m.total, a).result(timeout=TIMEOUT) == a.sum()


def test_cells_compiled_after_register_are_sent_and_new_workers_get_everything(client) -> None:
    later = rc.compile_rust("pub fn twice(x: i64) -> i64 { 2 * x }", quiet=True)
    assert client.submit(later.twice, 21).result(timeout=TIMEOUT) == 42
    # A worker that joins now gets every artifact too.
    client.cluster.scale(3)
    client.wait_for_workers(3, timeout=TIMEOUT)
    results = client.run(lambda: sorted(os.listdir(os.path.join(os.environ["RUSTCALL_CACHE_DIR"], "entries"))))
    assert len({tuple(v) for v in results.values()}) == 1
    assert later.key in next(iter(results.values()))
    client.cluster.scale(2)


def test_handles_and_values_cross_too(client) -> None:
    m = rc.compile_rust(
        """
#[derive(Clone)]
pub struct Point { pub x: f64, pub y: f64 }
pub fn norm(p: &Point) -> f64 { (p.x * p.x + p.y * p.y).sqrt() }
pub fn total(v: &Vec<i64>) -> i64 { v.iter().sum() }
""",
        quiet=True,
    )
    rc.dask.register(client)  # the runtime loaded with RustVec: it is sent too
    v = rc.create_rust_vec(list(range(100)), "i64")
    assert client.submit(m.total, v).result(timeout=TIMEOUT) == sum(range(100))
    assert client.submit(m.norm, m.Point(3.0, 4.0)).result(timeout=TIMEOUT) == 5.0


def test_a_tampered_artifact_is_refused(client) -> None:
    rc.dask.unregister(client)  # this cell's artifact is sent by hand below
    m = rc.compile_rust("pub fn neg(x: i64) -> i64 { -x }", quiet=True)
    plugin = rc.dask.ArtifactPlugin.from_entry(m.entry)
    plugin.data = plugin.data[:-1] + bytes([plugin.data[-1] ^ 0xFF])
    client.register_plugin(plugin, name=plugin.name)
    with pytest.raises(RustToolchainError, match=r"refused.*SHA-256"):
        client.submit(m.neg, 1).result(timeout=TIMEOUT)


def test_register_needs_a_client() -> None:
    with pytest.raises(TypeError, match=r"distributed\.Client"):
        rc.dask.register("tcp://127.0.0.1:8786")


def test_the_package_does_not_import_dask() -> None:
    import subprocess

    code = (
        "import sys, rustcall_magic as rc; rc.compile_rust; print('distributed' in sys.modules, 'dask' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_misaligned_buffer_is_read_through_a_copy_for_a_shared_slice() -> None:
    # What a numpy array received into a message frame (Dask, pickle protocol 5) may look like.
    m = rc.compile_rust(CELL + "pub fn halve(xs: &mut [f64]) { for x in xs { *x /= 2.0; } }", quiet=True)
    raw = bytearray(8 * 100 + 1)
    a = np.frombuffer(raw, dtype=np.float64, count=100, offset=1)
    a[:] = np.arange(100)
    assert a.ctypes.data % 8 != 0
    assert m.total(a) == a.sum()
    with pytest.raises(BufferError, match="not aligned"):
        m.halve(a)
