"""`%%rust` against its peers on the same kernels: pure Python, numpy, numba, Cython, cffi, ctypes, `%%rust_llvm`.

Two tables from one run:

1. Steady state: ns per call of each kernel through each tool, best of
   interleaved rounds (drift on a shared machine hits every tool alike), with the
   ratio to `%%rust`. Every result is checked against the pure-Python (or numpy)
   reference before anything is timed.
2. Latency: the cold build (or first call, for numba) of the kernel module per
   tool, and the time to load it again in a fresh process from its cache.

Peers are optional (``pip install '.[bench]'``): a missing one is a row saying
"not installed". Run: ``python benchmarks/peers.py [--quick] [--json OUT]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------
# The kernels, once per language. Every version computes the same thing with the
# same floating-point operations in the same order (results are compared exactly
# where that holds, to 1e-9 relative where a tool reassociates a float sum).

W = H = 200
MAX_ITER = 100
N = 1_000_000

# The Mandelbrot loops of both Rust versions (the C-ABI one first makes its slice).
MANDELBROT_LOOPS = """    for j in 0..h {
        let ci = -1.5 + 3.0 * (j as f64) / (h as f64);
        for i in 0..w {
            let cr = -2.0 + 3.0 * (i as f64) / (w as f64);
            let (mut zr, mut zi, mut k) = (0.0f64, 0.0f64, 0u32);
            while k < max_iter && zr * zr + zi * zi <= 4.0 {
                let t = zr * zr - zi * zi + cr;
                zi = 2.0 * zr * zi + ci;
                zr = t;
                k += 1;
            }
            out[j * w + i] = k;
        }
    }
"""

RUST = """
pub fn add(a: i64, b: i64) -> i64 { a + b }

pub fn fib(n: u32) -> u64 { if n < 2 { n as u64 } else { fib(n - 1) + fib(n - 2) } }

pub fn sum(xs: &[f64]) -> f64 { xs.iter().sum() }

pub fn dot(a: &[f64], b: &[f64]) -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() }

/// Eight independent partial sums: the order the vectorizer may use (results differ in the last bits).
pub fn sum_lanes(xs: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks { for i in 0..8 { acc[i] += c[i]; } }
    acc.iter().sum::<f64>() + rest.iter().sum::<f64>()
}

pub fn dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) { for i in 0..8 { acc[i] += x[i] * y[i]; } }
    let tail = n - n % 8;
    acc.iter().sum::<f64>() + a[tail..].iter().zip(&b[tail..]).map(|(x, y)| x * y).sum::<f64>()
}

pub fn mandelbrot(out: &mut [u32], w: usize, h: usize, max_iter: u32) {
    // MANDELBROT_LOOPS
}

fn sp(c: u8) -> bool { c == b' ' || c == b'\\n' || c == b'\\t' || c == b'\\r' }

/// Words = non-space bytes that follow a space (or start the text): no loop-carried state.
pub fn word_count(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() { return 0; }
    let first = !sp(b[0]) as usize;
    first + b.iter().zip(&b[1..]).map(|(&p, &c)| (sp(p) & !sp(c)) as usize).sum::<usize>()
}

/// The same count with byte-wide partial sums (255 bytes a block): sixteen or more lanes per SIMD register.
pub fn word_count_lanes(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() { return 0; }
    let mut total = !sp(b[0]) as usize;
    for (p, c) in b[..b.len() - 1].chunks(255).zip(b[1..].chunks(255)) {
        let mut acc: u8 = 0;
        for i in 0..p.len() { acc += (sp(p[i]) & !sp(c[i])) as u8; }
        total += acc as usize;
    }
    total
}
""".replace("    // MANDELBROT_LOOPS\n", MANDELBROT_LOOPS)

# The same kernels as a C-ABI library, built by a bare rustc (also the latency baseline).
RUST_C_ABI = """
fn fib_rec(n: u32) -> u64 { if n < 2 { n as u64 } else { fib_rec(n - 1) + fib_rec(n - 2) } }
#[no_mangle] pub extern "C" fn add(a: i64, b: i64) -> i64 { a + b }
#[no_mangle] pub extern "C" fn fib(n: u32) -> u64 { fib_rec(n) }
#[no_mangle] pub unsafe extern "C" fn sum(p: *const f64, n: usize) -> f64 {
    std::slice::from_raw_parts(p, n).iter().sum()
}
#[no_mangle] pub unsafe extern "C" fn dot(a: *const f64, b: *const f64, n: usize) -> f64 {
    let (a, b) = (std::slice::from_raw_parts(a, n), std::slice::from_raw_parts(b, n));
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
#[no_mangle] pub unsafe extern "C" fn mandelbrot(out: *mut u32, w: usize, h: usize, max_iter: u32) {
    let out = std::slice::from_raw_parts_mut(out, w * h);
    // MANDELBROT_LOOPS
}
#[no_mangle] pub unsafe extern "C" fn word_count(p: *const u8, n: usize) -> usize {
    if n == 0 { return 0; }
    let b = std::slice::from_raw_parts(p, n);
    let sp = |c: u8| c == b' ' || c == b'\\n' || c == b'\\t' || c == b'\\r';
    let first = !sp(b[0]) as usize;
    first + b.iter().zip(&b[1..]).map(|(&p, &c)| (sp(p) & !sp(c)) as usize).sum::<usize>()
}
""".replace("    // MANDELBROT_LOOPS\n", MANDELBROT_LOOPS)

C_KERNELS = r"""
#include <stdint.h>
#include <stddef.h>
int64_t add(int64_t a, int64_t b) { return a + b; }
uint64_t fib(uint32_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
double sum(const double *xs, size_t n) { double s = 0.0; for (size_t i = 0; i < n; i++) s += xs[i]; return s; }
double dot(const double *a, const double *b, size_t n) {
    double s = 0.0; for (size_t i = 0; i < n; i++) s += a[i] * b[i]; return s;
}
void mandelbrot(uint32_t *out, size_t w, size_t h, uint32_t max_iter) {
    for (size_t j = 0; j < h; j++) {
        double ci = -1.5 + 3.0 * (double)j / (double)h;
        for (size_t i = 0; i < w; i++) {
            double cr = -2.0 + 3.0 * (double)i / (double)w;
            double zr = 0.0, zi = 0.0; uint32_t k = 0;
            while (k < max_iter && zr * zr + zi * zi <= 4.0) {
                double t = zr * zr - zi * zi + cr;
                zi = 2.0 * zr * zi + ci;
                zr = t;
                k++;
            }
            out[j * w + i] = k;
        }
    }
}
static int space(unsigned char b) { return b == ' ' || b == '\n' || b == '\t' || b == '\r'; }
size_t word_count(const char *s, size_t n) {
    if (n == 0) return 0;
    size_t count = !space((unsigned char)s[0]);
    for (size_t i = 1; i < n; i++) count += space((unsigned char)s[i - 1]) & !space((unsigned char)s[i]);
    return count;
}
"""

C_DECLS = """
int64_t add(int64_t a, int64_t b);
uint64_t fib(uint32_t n);
double sum(const double *xs, size_t n);
double dot(const double *a, const double *b, size_t n);
void mandelbrot(uint32_t *out, size_t w, size_t h, uint32_t max_iter);
size_t word_count(const char *s, size_t n);
"""

CYTHON = """
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
from libc.stdint cimport int64_t, uint64_t, uint32_t

cpdef int64_t add(int64_t a, int64_t b):
    return a + b

cdef uint64_t _fib(uint32_t n) noexcept nogil:
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)

def fib(uint32_t n):
    return _fib(n)

def sum(const double[::1] xs):
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(xs.shape[0]):
        s += xs[i]
    return s

def dot(const double[::1] a, const double[::1] b):
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s

def mandelbrot(uint32_t[::1] out, Py_ssize_t w, Py_ssize_t h, uint32_t max_iter):
    cdef Py_ssize_t i, j
    cdef double ci, cr, zr, zi, t
    cdef uint32_t k
    for j in range(h):
        ci = -1.5 + 3.0 * <double>j / <double>h
        for i in range(w):
            cr = -2.0 + 3.0 * <double>i / <double>w
            zr = 0.0
            zi = 0.0
            k = 0
            while k < max_iter and zr * zr + zi * zi <= 4.0:
                t = zr * zr - zi * zi + cr
                zi = 2.0 * zr * zi + ci
                zr = t
                k += 1
            out[j * w + i] = k

cdef inline bint _space(unsigned char b) noexcept nogil:
    return b == 32 or b == 10 or b == 9 or b == 13

def word_count(const unsigned char[::1] s):
    cdef Py_ssize_t i, n = s.shape[0], count = 0
    if n == 0:
        return 0
    count = not _space(s[0])
    for i in range(1, n):
        count += _space(s[i - 1]) & (not _space(s[i]))
    return count
"""

NUMBA = """
import numpy as np
from numba import njit

@njit(cache=True)
def add(a, b):
    return a + b

@njit(cache=True)
def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)

@njit(cache=True)
def sum(xs):
    s = 0.0
    for i in range(xs.shape[0]):
        s += xs[i]
    return s

@njit(cache=True)
def dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s

@njit(cache=True{fastmath})
def mandelbrot(out, w, h, max_iter):
    for j in range(h):
        ci = -1.5 + 3.0 * j / h
        for i in range(w):
            cr = -2.0 + 3.0 * i / w
            zr = 0.0
            zi = 0.0
            k = 0
            while k < max_iter and zr * zr + zi * zi <= 4.0:
                t = zr * zr - zi * zi + cr
                zi = 2.0 * zr * zi + ci
                zr = t
                k += 1
            out[j * w + i] = k

@njit(cache=True)
def _space(b):
    return (b == 32) | (b == 10) | (b == 9) | (b == 13)

@njit(cache=True)
def word_count(s):
    n = s.shape[0]
    if n == 0:
        return 0
    count = 0 if _space(s[0]) else 1
    for i in range(1, n):
        count += _space(s[i - 1]) & (not _space(s[i]))
    return count
"""


def py_add(a: int, b: int) -> int:
    return a + b


def py_fib(n: int) -> int:
    return n if n < 2 else py_fib(n - 1) + py_fib(n - 2)


def py_mandelbrot(out: Any, w: int, h: int, max_iter: int) -> None:
    for j in range(h):
        ci = -1.5 + 3.0 * j / h
        for i in range(w):
            cr = -2.0 + 3.0 * i / w
            zr = zi = 0.0
            k = 0
            while k < max_iter and zr * zr + zi * zi <= 4.0:
                zr, zi = zr * zr - zi * zi + cr, 2.0 * zr * zi + ci
                k += 1
            out[j * w + i] = k


def np_mandelbrot(out: Any, w: int, h: int, max_iter: int) -> None:
    ci = (-1.5 + 3.0 * np.arange(h, dtype=np.float64) / h)[:, None]
    cr = (-2.0 + 3.0 * np.arange(w, dtype=np.float64) / w)[None, :]
    cr, ci = np.broadcast_to(cr, (h, w)).copy(), np.broadcast_to(ci, (h, w)).copy()
    zr = np.zeros((h, w))
    zi = np.zeros((h, w))
    k = np.zeros((h, w), dtype=np.uint32)
    active = np.ones((h, w), dtype=bool)
    for _ in range(max_iter):
        active &= zr * zr + zi * zi <= 4.0
        if not active.any():
            break
        t = zr * zr - zi * zi + cr
        zi = np.where(active, 2.0 * zr * zi + ci, zi)
        zr = np.where(active, t, zr)
        k += active
    out[:] = k.ravel()


# ---------------------------------------------------------------------------


@dataclass
class Tool:
    """One way of running the kernels: its callables, or why it has none."""

    name: str
    version: str = ""
    calls: dict[str, Callable[[], Any]] = field(default_factory=dict)
    missing: str = ""
    build_s: float | None = None
    build_what: str = ""
    reload_ms: float | None = None
    reload_what: str = ""
    #: Allowed to differ from the reference (it reorders float operations); the difference is noted.
    approximate: bool = False
    notes: list[str] = field(default_factory=list)


def _version(mod: str) -> str | None:
    if importlib.util.find_spec(mod) is None:
        return None
    m = __import__(mod)
    return str(getattr(m, "__version__", ""))


def _run_child(code: str, env: dict[str, str] | None = None, cwd: str | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env or dict(os.environ), cwd=cwd
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best_child(code: str, key: str, times: int = 5, **kw: Any) -> float:
    return min(_run_child(code, **kw)[key] for _ in range(times))


def _load_module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


IMPORT_TIMER = """
import importlib.util, json, sys, time
sys.path.insert(0, {dir!r})
t0 = time.perf_counter()
import {mod}
t1 = time.perf_counter()
{mod}.add(1, 2)
t2 = time.perf_counter()
print(json.dumps({{"ms": (t2 - t0) * 1e3}}))
"""


def make_tools(data: dict[str, Any], work: Path) -> list[Tool]:
    """Build every tool's kernels; return them in table order."""
    xs, ys, img, text_s, text_b = data["xs"], data["ys"], data["img"], data["text"], data["bytes"]
    xs_list, ys_list = data["xs_list"], data["ys_list"]
    tools: list[Tool] = []

    import rustcall_magic as rc

    # The glue library is built once per toolchain and target CPU (and the toolchain probed once per cache):
    # out of the way first, so the cold builds below are the kernel module's own, as on any edit.
    rc.compile_rust("pub fn warm_up() {}", quiet=True)
    rc.compile_rust("pub fn warm_up() {}", quiet=True, target_cpu="portable")
    rc.jit_rust("pub fn warm_up() {}", quiet=True)

    # %%rust: compile_rust is what the magic binds.
    t = Tool("%%rust", rc.__version__)
    t0 = time.perf_counter()
    m = rc.compile_rust(RUST, quiet=True)
    t.build_s, t.build_what = time.perf_counter() - t0, "cold build (rustc -O2, this machine's CPU)"
    t.calls = {
        "add": m.add,
        "fib": lambda: m.fib(30),
        "sum": lambda: m.sum(xs),
        "dot": lambda: m.dot(xs, ys),
        "sum (8 lanes)": lambda: m.sum_lanes(xs),
        "dot (8 lanes)": lambda: m.dot_lanes(xs, ys),
        "mandelbrot": lambda: m.mandelbrot(img, W, H, MAX_ITER),
        "word count": lambda: m.word_count(text_s),
        "word count (u8 lanes)": lambda: m.word_count_lanes(text_s),
    }
    hit = "import json,sys,time\nt0=time.perf_counter()\nimport rustcall_magic as rc\nt1=time.perf_counter()\n"
    hit += "m=rc.{fn}(sys.argv[1] if len(sys.argv)>1 else {src!r}, quiet=True)\nt2=time.perf_counter()\n"
    hit += "print(json.dumps({{'ms': (t2 - t1) * 1e3, 'hit': m.info.cache_hit}}))"
    t.reload_ms = _best_child(hit.format(fn="compile_rust", src=RUST), "ms")
    t.reload_what = "fresh process: compile_rust() hit, after import"
    tools.append(t)

    # The default builds for this machine's CPU; --portable is rustc's default CPU (what a bare rustc builds).
    t = Tool("%%rust --portable", rc.__version__)
    t0 = time.perf_counter()
    mp = rc.compile_rust(RUST, quiet=True, target_cpu="portable")
    t.build_s, t.build_what = time.perf_counter() - t0, "cold build (rustc -O2, rustc's default CPU)"
    t.calls = {
        "sum (8 lanes)": lambda: mp.sum_lanes(xs),
        "dot (8 lanes)": lambda: mp.dot_lanes(xs, ys),
        "mandelbrot": lambda: mp.mandelbrot(img, W, H, MAX_ITER),
        "word count": lambda: mp.word_count(text_s),
        "word count (u8 lanes)": lambda: mp.word_count_lanes(text_s),
    }
    tools.append(t)

    t = Tool("%%rust_llvm", rc.__version__)
    t0 = time.perf_counter()
    j = rc.jit_rust(RUST, quiet=True)
    t.build_s, t.build_what = time.perf_counter() - t0, "cold build (rustc IR -> llvmlite O3 -> JIT)"
    t.calls = {
        "add": j.add,
        "fib": lambda: j.fib(30),
        "sum": lambda: j.sum(xs),
        "dot": lambda: j.dot(xs, ys),
        "sum (8 lanes)": lambda: j.sum_lanes(xs),
        "dot (8 lanes)": lambda: j.dot_lanes(xs, ys),
        "mandelbrot": lambda: j.mandelbrot(img, W, H, MAX_ITER),
        "word count": lambda: j.word_count(text_s),
        "word count (u8 lanes)": lambda: j.word_count_lanes(text_s),
    }
    t.reload_ms = _best_child(hit.format(fn="jit_rust", src=RUST), "ms")
    t.reload_what = "fresh process: jit_rust() object-cache hit, after import"
    tools.append(t)

    # ctypes -> a Rust cdylib built by a bare rustc (also the build-latency baseline).
    import ctypes

    t = Tool("ctypes -> Rust cdylib", "stdlib")
    src = work / "kernels.rs"
    src.write_text(RUST_C_ABI)
    lib_path = work / "libkernels.so"
    t0 = time.perf_counter()
    subprocess.run(
        ["rustc", "--crate-type=cdylib", "--edition=2021", "-C", "opt-level=2", "-o", str(lib_path), str(src)],
        check=True,
        capture_output=True,
    )
    t.build_s, t.build_what = time.perf_counter() - t0, "bare rustc --crate-type=cdylib -O2"
    lib = ctypes.CDLL(str(lib_path))
    c_i64, c_dbl, c_sz, c_u32 = ctypes.c_int64, ctypes.c_double, ctypes.c_size_t, ctypes.c_uint32
    p_dbl = ctypes.POINTER(c_dbl)
    sigs = {
        "add": ([c_i64, c_i64], c_i64),
        "fib": ([c_u32], ctypes.c_uint64),
        "sum": ([p_dbl, c_sz], c_dbl),
        "dot": ([p_dbl, p_dbl, c_sz], c_dbl),
        "mandelbrot": ([ctypes.POINTER(c_u32), c_sz, c_sz, c_u32], None),
        "word_count": ([ctypes.c_char_p, c_sz], c_sz),
    }
    for name, (argtypes, restype) in sigs.items():
        f = getattr(lib, name)
        f.argtypes, f.restype = argtypes, restype
    t.calls = {
        "add": lib.add,
        "fib": lambda: lib.fib(30),
        "sum": lambda: lib.sum(xs.ctypes.data_as(p_dbl), len(xs)),
        "dot": lambda: lib.dot(xs.ctypes.data_as(p_dbl), ys.ctypes.data_as(p_dbl), len(xs)),
        "mandelbrot": lambda: lib.mandelbrot(img.ctypes.data_as(ctypes.POINTER(c_u32)), W, H, MAX_ITER),
        "word count": lambda: lib.word_count(text_b, len(text_b)),
    }
    tools.append(t)

    # Cython: typed memoryviews, bounds checks off, built -O2 like the rest.
    version = _version("Cython")
    t = Tool("Cython", version or "")
    if version is None:
        t.missing = "not installed"
    else:
        t.calls, t.build_s, t.reload_ms = _cython(work, xs, ys, img, text_b)
        t.build_what = "cythonize + C compile (-O2)"
        t.reload_what = "fresh process: import the built module"
    tools.append(t)

    version = _version("cffi")
    for native in (False, True):
        t = Tool("cffi (API mode)" + (" -O3 -march=native" if native else ""), version or "")
        if version is None:
            t.missing = "not installed"
        else:
            t.calls, t.build_s, t.reload_ms = _cffi(work, xs, ys, img, text_b, native)
            t.build_what = "ffi.compile (C, " + ("-O3 -march=native)" if native else "-O2)")
            t.reload_what = "fresh process: import the built module"
            if native:  # the kernels a host CPU's SIMD can change
                t.calls = {k: v for k, v in t.calls.items() if k in ("sum", "dot", "mandelbrot", "word count")}
        tools.append(t)

    version = _version("numba")
    for fastmath in (False, True):
        t = Tool("numba @njit" + (" fastmath" if fastmath else ""), version or "")
        if version is None:
            t.missing = "not installed"
        else:
            t.calls, t.build_s, t.reload_ms = _numba(work, xs, ys, img, data["u8"], fastmath)
            t.build_what = "first calls (JIT compile of each kernel)"
            t.reload_what = "fresh process: cache=True load + first calls"
            if fastmath:
                t.calls = {"mandelbrot": t.calls["mandelbrot"]}
                t.approximate = True
        tools.append(t)

    t = Tool("numpy", np.__version__)
    t.calls = {
        "sum": lambda: xs.sum(),
        "dot": lambda: xs @ ys,
        "mandelbrot": lambda: np_mandelbrot(img, W, H, MAX_ITER),
    }
    tools.append(t)

    t = Tool("pure Python", sys.version.split()[0])
    t.calls = {
        "add": py_add,
        "fib": lambda: py_fib(30),
        "sum": lambda: sum(xs_list),
        "dot": lambda: sum(x * y for x, y in zip(xs_list, ys_list, strict=True)),
        "mandelbrot": lambda: py_mandelbrot(img, W, H, MAX_ITER),
        "word count": lambda: len(text_s.split()),
    }
    tools.append(t)
    return tools


def _cython(work: Path, xs: Any, ys: Any, img: Any, text_b: bytes) -> tuple[dict[str, Any], float, float]:
    d = work / "cython"
    d.mkdir()
    (d / "peers_cy.pyx").write_text(CYTHON)
    setup = textwrap.dedent(
        """
        from setuptools import setup, Extension
        from Cython.Build import cythonize
        setup(ext_modules=cythonize([Extension("peers_cy", ["peers_cy.pyx"], extra_compile_args=["-O2"])],
                                    quiet=True), script_args=["build_ext", "--inplace", "-q"])
        """
    )
    (d / "setup.py").write_text(setup)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "setup.py"], cwd=d, check=True, capture_output=True)
    build = time.perf_counter() - t0
    so = next(d.glob("peers_cy*.so"))
    m = _load_module("peers_cy", so)
    calls = {
        "add": m.add,
        "fib": lambda: m.fib(30),
        "sum": lambda: m.sum(xs),
        "dot": lambda: m.dot(xs, ys),
        "mandelbrot": lambda: m.mandelbrot(img, W, H, MAX_ITER),
        "word count": lambda: m.word_count(text_b),
    }
    reload_ms = _best_child(IMPORT_TIMER.format(dir=str(d), mod="peers_cy"), "ms")
    return calls, build, reload_ms


def _cffi(
    work: Path, xs: Any, ys: Any, img: Any, text_b: bytes, native: bool = False
) -> tuple[dict[str, Any], float, float]:
    name = "peers_cffi_native" if native else "peers_cffi"
    d = work / name
    d.mkdir()
    flags = ["-O3", "-march=native"] if native else ["-O2"]
    script = textwrap.dedent(
        f"""
        from cffi import FFI
        ffi = FFI()
        ffi.cdef({C_DECLS!r})
        ffi.set_source({name!r}, {C_KERNELS!r}, extra_compile_args={flags!r})
        ffi.compile(tmpdir=".")
        """
    )
    (d / "build.py").write_text(script)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "build.py"], cwd=d, check=True, capture_output=True)
    build = time.perf_counter() - t0
    so = next(d.glob(f"{name}.*so"))
    m = _load_module(name, so)
    ffi, lib = m.ffi, m.lib
    calls = {
        "add": lib.add,
        "fib": lambda: lib.fib(30),
        "sum": lambda: lib.sum(ffi.from_buffer("double[]", xs), len(xs)),
        "dot": lambda: lib.dot(ffi.from_buffer("double[]", xs), ffi.from_buffer("double[]", ys), len(xs)),
        "mandelbrot": lambda: lib.mandelbrot(ffi.from_buffer("uint32_t[]", img), W, H, MAX_ITER),
        "word count": lambda: lib.word_count(text_b, len(text_b)),
    }
    timer = IMPORT_TIMER.replace("{mod}.add(1, 2)", "{mod}.lib.add(1, 2)")
    reload_ms = _best_child(timer.format(dir=str(d), mod=name), "ms")
    return calls, build, reload_ms


def _numba(
    work: Path, xs: Any, ys: Any, img: Any, u8: Any, fastmath: bool
) -> tuple[dict[str, Any], float, float]:
    name = "peers_numba_fm" if fastmath else "peers_numba"
    d = work / name
    d.mkdir()
    (d / f"{name}.py").write_text(NUMBA.replace("{fastmath}", ", fastmath=True" if fastmath else ""))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(d / "cache"))
    os.environ["NUMBA_CACHE_DIR"] = env["NUMBA_CACHE_DIR"]
    sys.path.insert(0, str(d))
    t0 = time.perf_counter()
    m = __import__(name)
    m.add(1, 2)
    m.fib(30)
    m.sum(xs)
    m.dot(xs, ys)
    m.mandelbrot(img, W, H, MAX_ITER)
    m.word_count(u8)
    build = time.perf_counter() - t0
    child = textwrap.dedent(
        f"""
        import json, sys, time
        import numpy as np
        sys.path.insert(0, {str(d)!r})
        xs = np.ones(8); img = np.zeros({W * H}, dtype=np.uint32); u8 = np.zeros(8, dtype=np.uint8)
        t0 = time.perf_counter()
        import {name} as m
        m.add(1, 2); m.fib(3); m.sum(xs); m.dot(xs, xs); m.mandelbrot(img, {W}, {H}, 1); m.word_count(u8)
        print(json.dumps({{"ms": (time.perf_counter() - t0) * 1e3}}))
        """
    )
    reload_ms = _best_child(child, "ms", env=env)
    calls = {
        "add": m.add,
        "fib": lambda: m.fib(30),
        "sum": lambda: m.sum(xs),
        "dot": lambda: m.dot(xs, ys),
        "mandelbrot": lambda: m.mandelbrot(img, W, H, MAX_ITER),
        "word count": lambda: m.word_count(u8),
    }
    return calls, build, reload_ms


# ---------------------------------------------------------------------------

KERNELS = [
    "add",
    "fib",
    "sum",
    "dot",
    "sum (8 lanes)",
    "dot (8 lanes)",
    "mandelbrot",
    "word count",
    "word count (u8 lanes)",
]
KERNEL_TEXT = {
    "add": "add(1, 2) on int",
    "fib": "recursive fib(30)",
    "sum": "sum of 1e6 f64",
    "dot": "dot of 2 x 1e6 f64",
    "sum (8 lanes)": "sum, 8 partial sums",
    "dot (8 lanes)": "dot, 8 partial sums",
    "mandelbrot": f"mandelbrot {W}x{H}, {MAX_ITER} it",
    "word count": "word count, 1 MB",
    "word count (u8 lanes)": "word count, u8 partial sums",
}


def check(tools: list[Tool], data: dict[str, Any]) -> None:
    """Run every kernel once and compare it with the reference; raise on a mismatch."""
    ref_img = np.zeros(W * H, dtype=np.uint32)
    py_mandelbrot(ref_img, W, H, MAX_ITER)
    xs, ys, img = data["xs"], data["ys"], data["img"]
    expect = {
        "fib": 832040,
        "sum": math.fsum(data["xs_list"]),
        "dot": float(np.dot(xs, ys)),
        "word count": len(data["text"].split()),
    }
    for t in tools:
        for k, f in t.calls.items():
            if k == "add":
                got = f(1, 2)
                ok = got == 3
            elif k == "mandelbrot":
                img[:] = 0
                f()
                ok = bool(np.array_equal(img, ref_img))
                got = f"{int(np.count_nonzero(img != ref_img))} pixels differ"
            else:
                got = f()
                ref = expect[k.split(" (")[0]]
                ok = math.isclose(got, ref, rel_tol=1e-9) if isinstance(ref, float) else got == ref
            if not ok and t.approximate:
                t.notes.append(f"{k}: {got} (fastmath reorders float operations)")
            elif not ok:
                raise AssertionError(f"{t.name} {k}: got {got!r}, expected {expect.get(k, 'the reference')!r}")


def time_all(tools: list[Tool], rounds: int) -> dict[tuple[str, str], float]:
    """Best ns per call of every (tool, kernel), in interleaved rounds per kernel."""
    env = {f"f{i}_{j}": f for i, t in enumerate(tools) for j, f in enumerate(t.calls.values())}
    result: dict[tuple[str, str], float] = {}
    for kernel in KERNELS:
        timers = []
        for i, t in enumerate(tools):
            if kernel not in t.calls:
                continue
            j = list(t.calls).index(kernel)
            stmt = f"f{i}_{j}(1, 2)" if kernel == "add" else f"f{i}_{j}()"
            timer = timeit.Timer(stmt, globals=env)
            n, total = timer.autorange()
            timers.append((t.name, timer, max(1, int(n * 0.1 / max(total, 1e-9)))))
        best = {name: math.inf for name, _, _ in timers}
        for _ in range(rounds):
            for name, timer, n in timers:
                best[name] = min(best[name], timer.timeit(n) / n * 1e9)
        for name, ns in best.items():
            result[(name, kernel)] = ns
    return result


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} us"
    return f"{ns:.1f} ns"


def print_tables(tools: list[Tool], times: dict[tuple[str, str], float], rounds: int, quick: bool) -> str:
    lines = []
    lines.append(
        f"Kernels, best of {rounds} interleaved rounds per kernel; ratio = time / %%rust time (lower is faster)"
        + (" [--quick: smaller rounds]" if quick else "")
    )
    lines.append("")
    cols = [t for t in tools]
    head = "| kernel | " + " | ".join(t.name for t in cols) + " |"
    lines.append(head)
    lines.append("|" + "---|" * (len(cols) + 1))
    for k in KERNELS:
        base = times.get(("%%rust", k)) or times.get(("%%rust", k.split(" (")[0]))
        cells = []
        for t in cols:
            if t.missing:
                cells.append(t.missing)
                continue
            ns = times.get((t.name, k))
            if ns is None:
                cells.append("–")
            else:
                cells.append(f"{fmt_ns(ns)} ({ns / base:.2f}x)" if base else fmt_ns(ns))
        lines.append(f"| {KERNEL_TEXT[k]} | " + " | ".join(cells) + " |")
    lines.append("")
    for t in tools:
        lines.extend(f"Note: {t.name} {n}" for n in t.notes)
    lines.append("Versions: " + ", ".join(f"{t.name} {t.version}" for t in tools if t.version and not t.missing))
    lines.append("")
    lines.append("Latency: cold build of the kernel module, and its reload in a fresh process (best of 5)")
    lines.append("")
    lines.append("| tool | cold build / first call | what | fresh-process reload | what |")
    lines.append("|---|---|---|---|---|")
    for t in tools:
        if t.missing:
            lines.append(f"| {t.name} | {t.missing} | | | |")
            continue
        if t.build_s is None and t.reload_ms is None:
            continue
        b = f"{t.build_s * 1e3:.0f} ms" if t.build_s is not None else "–"
        r = f"{t.reload_ms:.2f} ms" if t.reload_ms is not None else "–"
        lines.append(f"| {t.name} | {b} | {t.build_what} | {r} | {t.reload_what} |")
    return "\n".join(lines)


def make_data() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    xs = rng.random(N)
    ys = rng.random(N)
    words = ["alpha", "be", "gamma", "delta", "e", "zeta-eta", "theta\n", "iota\t", "kappa  "]
    parts: list[str] = []
    size = 0
    i = 0
    while size < 1 << 20:
        w = words[int(rng.integers(len(words)))]
        parts.append(w)
        size += len(w) + 1
        i += 1
    text = " ".join(parts)[: 1 << 20]
    b = text.encode()
    return {
        "xs": xs,
        "ys": ys,
        "xs_list": xs.tolist(),
        "ys_list": ys.tolist(),
        "img": np.zeros(W * H, dtype=np.uint32),
        "text": text,
        "bytes": b,
        "u8": np.frombuffer(b, dtype=np.uint8),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument("--json", help="also write the measurements as JSON to this file")
    args = ap.parse_args()
    rounds = 2 if args.quick else 5
    work = Path(tempfile.mkdtemp(prefix="rustcall-peers-"))
    os.environ["RUSTCALL_CACHE_DIR"] = str(work / "rustcall-cache")
    try:
        data = make_data()
        tools = make_tools(data, work)
        check(tools, data)
        times = time_all(tools, rounds)
        print(print_tables(tools, times, rounds, args.quick))
        if args.json:
            out = {
                "kernels": KERNELS,
                "tools": [
                    {
                        "name": t.name,
                        "version": t.version,
                        "missing": t.missing,
                        "build_ms": None if t.build_s is None else t.build_s * 1e3,
                        "reload_ms": t.reload_ms,
                        "ns": {k: times.get((t.name, k)) for k in KERNELS},
                    }
                    for t in tools
                ],
            }
            Path(args.json).write_text(json.dumps(out, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
