"""rustcall::check_interrupt(): Ctrl-C (SIGINT) and kernel interrupts stop a long Rust call with KeyboardInterrupt.

The signal goes to a real IPython in a subprocess (and to a real Jupyter
kernel), never to the test process.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rustcall_magic as rc

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")

SPIN = """\
pub struct Noisy;
impl Drop for Noisy { fn drop(&mut self) { println!("DROPPED"); } }
pub fn spin(n: u64) -> u64 {
    let _guard = Noisy;
    let mut s = 0u64;
    for i in 0..n { rustcall::check_interrupt(); s = s.wrapping_add(i ^ (s >> 3)); }
    s
}
"""
IPYTHON = Path(sys.executable).with_name("ipython")


class Repl:
    """A real terminal IPython (simple prompt) driven through its stdin."""

    def __init__(self, tmp_path: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", IPYTHONDIR=str(tmp_path / "ipython"))
        self.proc = subprocess.Popen(
            [str(IPYTHON), "--simple-prompt", "--no-banner", "--colors=NoColor", "--HistoryManager.enabled=False"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.seen: list[str] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def cell(self, magic: str, body: str) -> None:
        # A cell magic ends at two blank lines in the simple prompt.
        self.send(f"{magic}\n{body.rstrip()}\n\n\n")

    def wait_for(self, marker: str, timeout: float) -> str:
        end = time.monotonic() + timeout
        out: list[str] = []
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                continue
            out.append(line)
            if marker in line:
                self.seen += out
                return "".join(out)
        self.seen += out
        raise AssertionError(f"no {marker!r} within {timeout} s; IPython printed:\n{''.join(self.seen)}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("exit\n")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def repl(tmp_path):
    r = Repl(tmp_path)
    yield r
    r.close()


def _interrupt_and_recover(r: Repl) -> float:
    r.send("print('START', flush=True); spin(10**15)\n")
    r.wait_for("START", 30)
    time.sleep(0.3)  # well inside the loop
    t0 = time.monotonic()
    r.proc.send_signal(signal.SIGINT)
    out = r.wait_for("KeyboardInterrupt", 5)
    latency = time.monotonic() - t0
    assert "RustPanic" not in out
    # The shell keeps working, and so does the function.
    r.send("print('AFTER', spin(1000))\n")
    r.wait_for("AFTER 8968425615673229001", 10)
    return latency


@pytest.mark.slow
@pytest.mark.parametrize("magic", ["%%rust", "%%rust --release-gil", "%%rust_llvm"])
def test_ctrl_c_in_terminal_ipython_stops_the_call(repl, magic) -> None:
    if magic == "%%rust_llvm":
        pytest.importorskip("llvmlite")
    repl.send("%load_ext rustcall_magic\n")
    repl.cell(magic, SPIN)
    repl.send("print('READY', spin(10))\n")
    repl.wait_for("READY", 120)
    latency = _interrupt_and_recover(repl)
    assert latency < 1.0, latency
    assert any("DROPPED" in line for line in repl.seen)  # destructors ran while unwinding
    # A Ctrl-C while Python code runs is Python's alone: the next call is not interrupted.
    repl.send("import os, signal; os.kill(os.getpid(), signal.SIGINT)\n")
    repl.wait_for("KeyboardInterrupt", 5)
    repl.send("print('AGAIN', spin(2000))\n")
    repl.wait_for("AGAIN", 10)
    # Twice in a row: the handler is chained again before each cell.
    assert _interrupt_and_recover(repl) < 1.0


@pytest.mark.slow
def test_jupyter_kernel_interrupt_stops_the_call(tmp_path) -> None:
    jupyter_client = pytest.importorskip("jupyter_client")
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython")))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive("%load_ext rustcall_magic\n", timeout=60)
        assert reply["content"]["status"] == "ok"
        reply = kc.execute_interactive(f"%%rust --release-gil\n{SPIN}", timeout=120)
        assert reply["content"]["status"] == "ok"
        started = threading.Event()

        def watch(msg: dict) -> None:
            if msg["msg_type"] == "stream" and "START" in msg["content"]["text"]:
                started.set()

        result: dict = {}

        def run() -> None:
            result["reply"] = kc.execute_interactive(
                "print('START', flush=True); spin(10**15)", timeout=30, output_hook=watch
            )

        t = threading.Thread(target=run)
        t.start()
        assert started.wait(30)
        time.sleep(0.3)
        t0 = time.monotonic()
        km.interrupt_kernel()
        t.join(10)
        latency = time.monotonic() - t0
        assert not t.is_alive()
        content = result["reply"]["content"]
        assert content["status"] == "error" and content["ename"] == "KeyboardInterrupt", content
        assert latency < 1.0, latency
        reply = kc.execute_interactive("assert spin(1000) == 8968425615673229001", timeout=30)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_check_interrupt_returns_at_once_and_loads_the_runtime() -> None:
    m = rc.compile_rust(
        """
pub fn count(n: u64) -> u64 {
    let mut c = 0u64;
    for _ in 0..n { rustcall::check_interrupt(); c += 1; std::hint::black_box(c); }
    c
}
pub fn pending() -> bool { rustcall::interrupt_pending() }
""",
        quiet=True,
    )
    assert m.count(1_000_000) == 1_000_000
    assert m.pending() is False
    from rustcall_magic import runtime

    armed, pending, active = runtime.load()._interrupt_status()
    assert pending is False and active == 0
    # Armed unless this process ignores SIGINT (then there is nothing to chain to).
    assert armed == (signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, signal.SIG_DFL))


def test_cells_without_check_interrupt_do_not_reference_it() -> None:
    from rustcall_magic.codegen import generate, uses_interrupt
    from rustcall_magic.signature import parse_cell

    plain = "pub fn f(x: i64) -> i64 { x }\n"
    assert not uses_interrupt(plain)
    glue = generate("m_plain", plain, list(parse_cell(plain).functions)).files["glue.rs"]
    assert "init_interrupt" not in glue and "InterruptScope" not in glue
    checked = "pub fn f(x: i64) -> i64 { rustcall::check_interrupt(); x }\n"
    glue = generate("m_checked", checked, list(parse_cell(checked).functions)).files["glue.rs"]
    assert "init_interrupt()" in glue and "InterruptScope::enter()" in glue


THREADS = """
import os, signal, sys, threading, time
import rustcall_magic as rc
m = rc.compile_rust('''
pub fn spin(n: u64, started: &mut [u8]) -> u64 {
    started[0] = 1;
    let mut s = 0u64;
    for i in 0..n { rustcall::check_interrupt(); s = s.wrapping_add(i ^ (s >> 3)); }
    s
}
''', release_gil=True, quiet=True)
flags = [bytearray(1), bytearray(1)]
stopped = []
def run(k):
    try:
        m.spin(10**15, flags[k])
    except KeyboardInterrupt:
        stopped.append(time.monotonic())
ts = [threading.Thread(target=run, args=(k,)) for k in range(2)]
for t in ts:
    t.start()
while not all(f[0] for f in flags):  # both calls are running
    time.sleep(0.01)
print("START", flush=True)
try:
    for t in ts:
        t.join()
except KeyboardInterrupt:
    t0 = time.monotonic()
    print("MAIN", flush=True)
# Not join(): after a KeyboardInterrupt in join(), Python 3.11 may mark a running thread stopped.
deadline = time.monotonic() + 5
while len(stopped) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
print("THREADS", len(stopped), all(s - t0 < 1.0 for s in stopped), m.spin(1000, bytearray(1)), flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_stops_release_gil_calls_in_every_thread(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", THREADS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "START"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.split() == ["MAIN", "THREADS", "2", "True", "8968425615673229001"], err
