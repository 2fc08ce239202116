"""The LLVM path: a cell's crate as LLVM IR, optimized by llvmlite, JIT-linked into this process.

The crate is the one ``%%rust`` builds (:func:`rustcall_magic.codegen.generate`:
the cell plus its ``METH_FASTCALL`` glue and ``PyInit_<module>``). rustc lowers
it to LLVM IR without running any LLVM pass (``-C no-prepopulate-passes``), so
every optimization is the user's :class:`OptimizationConfig`, run by llvmlite's
new pass manager for the host CPU. The object code is linked in process by
ORC's LLJIT with JITLink (which registers unwind tables, so ``catch_unwind`` in
the glue turns a panic into :class:`~rustcall_magic.errors.RustPanic`), and the
JIT'd ``PyInit_<module>`` returns a real module whose functions are builtins:
a JIT callable costs the same per call as a ``%%rust`` one.

Symbols the IR leaves undefined resolve from the running process (``Py*``) and
from the toolchain's own ``libstd-*.so`` (allocator shim, panicking, fmt),
loaded once. JITLink cannot place native thread-locals, so every access to
one is rewritten (:func:`prepare_ir`): those the module defines (the glue's,
the cell's ``thread_local!``, std's instantiated in the cell) become emulated
TLS (``__emutls_get_address``), and libstd's own (``HashMap``'s random keys)
go through glibc's ``__tls_get_addr``. A cell with a thread-local neither way
reaches is built by the ``%%rust`` compiler instead, with a
:class:`RustcallWarning`; the cache remembers that decision.

Object code is cached (entry kind ``llvm-object``) under a key of everything
that shapes it (source, toolchain, config, host CPU and features, LLVM
version): a re-run in a fresh process starts neither rustc nor the optimizer.
JIT'd code is never unloaded: builtins may outlive any Python object that
refers to them, as with extension modules.

This is the only module that imports llvmlite, and only when first used.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from . import prelude
from ._version import __version__
from .build import BuildOptions, build_cell
from .cache import Entry, make_key
from .codegen import GLUE_VERSION, glue_fingerprint
from .compiler import CellFunctions, RustCompiler, RustModule, entry_exports, generic_types_of
from .errors import Diagnostic, RustCacheError, RustcallError, RustcallWarning, RustToolchainError, warn_skipped
from .generics import Builder
from .loader import note_linked
from .signature import FnSig, parse_cell
from .toolchain import Toolchain, get_toolchain, python_abi_tag

#: Entry kind recorded in the metadata of cached object code.
ENTRY_KIND = "llvm-object"
#: Cache entries recording that a cell's thread-locals send it to the %%rust build.
FALLBACK_KIND = "llvm-fallback"
#: Bumped whenever the IR preparation or pipelines change shape; part of every key.
JIT_VERSION = "1"
#: rustc's optimization level for the front end (MIR); LLVM passes are all llvmlite's.
FRONTEND_OPT_LEVEL = 2


@functools.lru_cache(maxsize=1)
def _jit_fingerprint() -> str:
    """JIT_VERSION and this module's own source: how IR is prepared and optimized shapes the object code."""
    return hashlib.sha256(JIT_VERSION.encode() + Path(__file__).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class OptimizationConfig:
    """How llvmlite optimizes a cell's IR before the JIT compiles it.

    *optimization_level* 0..3 picks LLVM's default pipeline (O0 runs no pass);
    *enable_vectorization* turns the loop and SLP vectorizers on or off;
    *enable_loop_unrolling* turns loop unrolling and interleaving on or off;
    *enable_licm* False runs the same pipeline with every loop-invariant code
    motion pass skipped, all else unchanged (in a worker process: LLVM's pass
    gate cannot be lifted once set). *size_level* 0, 1 (like
    ``-Os``) or 2 (like ``-Oz``) marks every function ``optsize``/``minsize``
    and lowers the inlining threshold. Raises ValueError on out-of-range values.
    """

    optimization_level: int = 3
    enable_vectorization: bool = True
    enable_loop_unrolling: bool = True
    enable_licm: bool = True
    size_level: int = 0

    def __post_init__(self) -> None:
        if self.optimization_level not in (0, 1, 2, 3) or isinstance(self.optimization_level, bool):
            raise ValueError(f"optimization_level must be 0, 1, 2 or 3, not {self.optimization_level!r}")
        if self.size_level not in (0, 1, 2) or isinstance(self.size_level, bool):
            raise ValueError(f"size_level must be 0, 1 or 2, not {self.size_level!r}")
        for name in ("enable_vectorization", "enable_loop_unrolling", "enable_licm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-able dict (part of cache keys and metadata)."""
        return asdict(self)

    def describe(self) -> str:
        """One line, e.g. ``O3 vectorize unroll licm``."""
        parts = [f"O{self.optimization_level}"]
        if self.size_level:
            parts.append("Os" if self.size_level == 1 else "Oz")
        parts += [
            "vectorize" if self.enable_vectorization else "no-vectorize",
            "unroll" if self.enable_loop_unrolling else "no-unroll",
            "licm" if self.enable_licm else "no-licm",
        ]
        return " ".join(parts)


#: The presets behind optimize_for_speed / optimize_for_size / optimize_balanced and ``--preset``.
PRESETS: dict[str, OptimizationConfig] = {
    "speed": OptimizationConfig(3, True, True, True),
    "balanced": OptimizationConfig(2, True, True, True),
    "size": OptimizationConfig(2, False, False, True, size_level=2),
}


def preset(name: str) -> OptimizationConfig:
    """The preset config named *name* (``speed``, ``size`` or ``balanced``); raises ValueError otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


# ---------------------------------------------------------------------------
# llvmlite, initialised once per process

_init_lock = threading.RLock()
_llvm: Any = None
_lljit: Any = None
_libstd_loaded: dict[str, str] = {}  # sysroot -> the libstd-*.so loaded from it
_machines: dict[int, Any] = {}
#: Resource trackers of every linked library: JIT'd code must outlive its builtins.
_trackers: list[Any] = []
_counter = itertools.count()


def llvm_binding() -> Any:
    """``llvmlite.binding``, with the native target and asm printer initialised.

    Raises RustToolchainError when llvmlite is not installed.
    """
    global _llvm
    if _llvm is not None:
        return _llvm
    with _init_lock:
        if _llvm is None:
            try:
                import llvmlite.binding as llvm
            except ImportError as e:
                raise RustToolchainError(f"%%rust_llvm needs llvmlite (pip install llvmlite): {e}") from e
            # llvm.initialize() raises in llvmlite >= 0.45; these two are all the JIT needs.
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _llvm = llvm
    return _llvm


def llvm_version() -> tuple[int, ...]:
    """The LLVM version llvmlite was built with, e.g. ``(22, 1, 0)``."""
    return tuple(llvm_binding().llvm_version_info)


def check_llvm_versions(tc: Toolchain) -> None:
    """Check that rustc and llvmlite use the same LLVM major version.

    Raises RustToolchainError naming both versions and what to pair when they differ.
    """
    ours = llvm_version()
    theirs = tc.llvm_version
    try:
        major = int(theirs.split(".")[0])
    except ValueError:
        raise RustToolchainError(
            f"cannot read rustc's LLVM version from `rustc -vV` ({tc.rustc}); %%rust_llvm needs it"
        ) from None
    if major != ours[0]:
        raise RustToolchainError(
            f"rustc {tc.release} is built with LLVM {theirs}, but llvmlite uses LLVM "
            f"{'.'.join(map(str, ours))}: their IR is not compatible. Install the llvmlite release "
            f"built with LLVM {major}, or select a Rust toolchain built with LLVM {ours[0]} "
            f"(`rustc -vV` shows it). %%rust does not need llvmlite and keeps working."
        )


def host_cpu() -> tuple[str, str]:
    """The host CPU's name and its feature string (what the JIT compiles for)."""
    llvm = llvm_binding()
    return str(llvm.get_host_cpu_name()), str(llvm.get_host_cpu_features().flatten())


def _target_machine(opt: int) -> Any:
    with _init_lock:
        tm = _machines.get(opt)
        if tm is None:
            llvm = llvm_binding()
            cpu, features = host_cpu()
            # rustc tags functions "target-cpu"="x86-64"; SIMD for the host comes from the feature string.
            tm = llvm.Target.from_default_triple().create_target_machine(
                cpu=cpu, features=features, opt=opt, reloc="pic", codemodel="default", jit=True
            )
            _machines[opt] = tm
        return tm


def _load_libstd(tc: Toolchain) -> None:
    """Load the toolchain's shared libstd into the process, once: JIT'd code resolves std symbols there."""
    with _init_lock:
        if tc.sysroot not in _libstd_loaded:
            libdir = tc.std_libdir
            libs = sorted(glob.glob(str(libdir / "libstd-*.so")))
            if not libs:
                raise RustToolchainError(
                    f"no libstd-*.so in {libdir}: the JIT resolves std symbols from the toolchain's shared std"
                )
            llvm_binding().load_library_permanently(libs[0])
            _libstd_loaded[tc.sysroot] = libs[0]


_glue_loaded: set[str] = set()


def _load_glue(path: Path) -> None:
    """Load the glue library (its prelude as a shared library, see ``prelude.py``) into the process, once.

    The toolchain's libstd must be loaded first: the library needs it by soname.
    """
    with _init_lock:
        if str(path) not in _glue_loaded:
            llvm_binding().load_library_permanently(str(path))
            _glue_loaded.add(str(path))


def glue_library(compiler: RustCompiler, tc: Toolchain) -> Path:
    """The glue library JIT'd cells of *compiler* link, loaded into the process (built on first use)."""
    opts = BuildOptions(FRONTEND_OPT_LEVEL, False, compiler.edition, compiler.target_cpu)
    path = prelude.library(compiler.cache, tc, opts, "dylib")
    _load_libstd(tc)
    _load_glue(path)
    return path


def _engine(tc: Toolchain) -> Any:
    """The process-wide LLJIT (JITLink), with the toolchain's libstd loaded for std symbols."""
    global _lljit
    llvm = llvm_binding()
    with _init_lock:
        _load_libstd(tc)
        if _lljit is None:
            # JITLink, not RuntimeDyld: it registers the unwind tables catch_unwind needs.
            _lljit = llvm.create_lljit_compiler(_target_machine(2), use_jit_link=True)
            # Never disposed, not even at interpreter exit: libstd's panic hook and
            # any surviving builtin point into the memory it owns.
            _lljit._owned = True
        return _lljit


# ---------------------------------------------------------------------------
# IR preparation

_GLUE_MARK = "__rustcall_glue"


def _tls_globals(llmod: Any) -> list[tuple[str, str, Any]]:
    """(IR token, name, global) of every thread-local global, defined or declared."""
    out = []
    for g in llmod.global_variables:
        head, _, rest = str(g).partition(" = ")
        if " thread_local" in f" {rest.split(' global ', 1)[0]} " or rest.startswith("thread_local"):
            out.append((head.strip(), g.name, g))
    return out


@dataclass(frozen=True)
class TlsSlot:
    """A symbol the linker imports for a thread-local the JIT'd code reaches indirectly.

    Without ``target``: the process-wide emutls control block of a glue
    thread-local (``size`` and ``align`` of its value). With ``target``: the
    ``{module id, offset}`` index that ``__tls_get_addr`` takes for the
    thread-local named *target*, defined in a library of the process (libstd).
    """

    symbol: str
    size: int = 0
    align: int = 0
    target: str = ""

    def to_json(self) -> list[Any]:
        """``[symbol, size, align, target]``."""
        return [self.symbol, self.size, self.align, self.target]


def prepare_ir(
    text: str, llmod: Any, resolvable: Callable[[str], bool] = lambda name: False
) -> tuple[str, list[str], list[TlsSlot]]:
    """Rewrite the thread-locals JITLink cannot place; return (IR text, the ones left, slots to import).

    JITLink cannot allocate native TLS. Every access goes through
    ``llvm.threadlocal.address``, which becomes a call returning this thread's copy:

    - a glue thread-local (zero-initialised, in ``__rustcall_glue``): libgcc's
      ``__emutls_get_address`` on a control block shared by every JIT'd cell
      (see :func:`_tls_control`): all cells share libstd's one panic hook, so
      the hook installed last must write where any cell reads;
    - any other thread-local the module defines (``thread_local!`` in the cell,
      or std's instantiated there): ``__emutls_get_address`` on a control block
      of this module, with a copy of the initial value as the template;
    - a thread-local it only declares, defined in a library of the process
      (*resolvable*; e.g. ``HashMap``'s random keys in libstd):
      ``__tls_get_addr`` on its ``{module id, offset}`` index, as the
      general-dynamic TLS model does (see :func:`_tls_index`).

    Any other thread-local is returned for the caller to fall back on.
    Raises RustcallError if a rewritten global is still used directly.
    """
    td = llvm_binding().create_target_data(llmod.data_layout)
    user: list[str] = []
    slots: dict[str, TlsSlot] = {}
    blocks: list[str] = []
    needs = set()
    for token, name, g in _tls_globals(llmod):
        m = re.search(r"^" + re.escape(token) + r" = (internal|private) thread_local(?:\([a-z]+\))? ", text, re.M)
        if g.is_declaration:
            if not resolvable(name):
                user.append(name)
                continue
            digest = hashlib.sha256(name.encode()).hexdigest()[:20]
            slot = TlsSlot(f"__rustcall_tlsidx_{digest}", target=name)
            slots[slot.symbol] = slot
            call = f"@__tls_get_addr(ptr @{slot.symbol})"
            needs.add("declare ptr @__tls_get_addr(ptr)")
            blocks.append(f"@{slot.symbol} = external global [2 x i64]")
        elif m is None:  # a defined thread-local of another linkage: not ours to move
            user.append(name)
            continue
        else:
            align_m = re.search(r", align (\d+)", str(g))
            size = int(td.get_abi_size(g.global_value_type))
            align = int(align_m.group(1)) if align_m else 8
            zero = _zero_initialized(g)
            if _GLUE_MARK in name.split("17h")[0] and zero:
                # The same glue item in any cell: its path without the crate prefix and the hash.
                path = name[name.index(_GLUE_MARK) :].rsplit("17h", 1)[0]
                digest = hashlib.sha256(f"{path}|{size}|{align}|{GLUE_VERSION}".encode()).hexdigest()[:20]
                slot = TlsSlot(f"__rustcall_tls_{digest}", size, align)
                slots[slot.symbol] = slot
                control = f"@{slot.symbol}"
                blocks.append(f"{control} = external global {{ i64, i64, ptr, ptr }}")
            else:
                # This module's own control block; the global itself becomes the template.
                control = f"@__rustcall_emutls.{len(blocks)}"
                template = "null" if zero else token
                blocks.append(
                    f"{control} = internal global {{ i64, i64, ptr, ptr }} {{ i64 {size}, i64 {align}, ptr null, ptr {template} }}"
                )
            call = f"@__emutls_get_address(ptr {control})"
            needs.add("declare ptr @__emutls_get_address(ptr)")
            # Left as a plain global (the template, or unused): codegen must place no TLS section.
            text = text[: m.start()] + f"{token} = {m.group(1)} " + text[m.end() :]
        text = text.replace(f"@llvm.threadlocal.address.p0(ptr {token})", call)
        pattern = re.escape(token) + (r"" if token.endswith('"') else r"(?![-\w.$])")
        # The control blocks join the text at the end: only the definition (declaration) is left.
        uses = len(re.findall(pattern, text)) - 1
        if uses != 0:  # any direct use would bypass the per-thread copy
            raise RustcallError(f"cannot rewrite thread-local {name} for the JIT ({uses} direct uses)")
    if blocks and not user:
        text = "\n".join([text, *dict.fromkeys(blocks), *sorted(needs), ""])
    return text, user, list(slots.values())


def _zero_initialized(g: Any) -> bool:
    """True when global *g*'s initializer is only zeros, undef or poison (no template needed)."""
    init = str(g).split(" global ", 1)[-1].rsplit(", align ", 1)[0]
    init = re.sub(r"\[\d+ x ", "[", init)  # array types carry counts, not values
    init = re.sub(r"\b(?:i\d+|float|double|ptr|undef|poison|zeroinitializer|null)\b", "", init)
    return re.search(r"[1-9@\"]|\btrue\b|\bc\b", init) is None


_tls_controls: dict[str, ctypes.Array[ctypes.c_uint64]] = {}


def _tls_control(slot: TlsSlot) -> int:
    """Address of what *slot* imports: the shared emutls control block (size, align, index, no
    template) or the ``__tls_get_addr`` index of its target; kept for the process's life."""
    block = _tls_controls.get(slot.symbol)
    if block is None:
        if slot.target:
            index = _tls_index(slot.target)
            if index is None:
                raise RustcallError(f"thread-local {slot.target} is not defined in any library of this process")
            block = (ctypes.c_uint64 * 2)(*index)
        else:
            block = (ctypes.c_uint64 * 4)(slot.size, slot.align, 0, 0)
        _tls_controls[slot.symbol] = block
    return ctypes.addressof(block)


@functools.cache
def _libdl() -> ctypes.CDLL:
    """The process's symbol table and dynamic loader (``dlopen``, ``dlsym``, ``dlinfo``), typed."""
    dl = ctypes.CDLL(None)
    dl.dlopen.restype = ctypes.c_void_p
    dl.dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    dl.dlsym.restype = ctypes.c_void_p
    dl.dlsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    dl.dlinfo.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    dl.dlclose.argtypes = [ctypes.c_void_p]
    return dl


_tls_indexes: dict[str, tuple[int, int]] = {}


def _tls_index(name: str) -> tuple[int, int] | None:
    """``(module id, offset)`` of the thread-local *name* in the loaded libstd or glue library (glibc's dlinfo), or None.

    ``dlsym`` of a thread-local gives this thread's copy; the offset is its distance
    from this thread's block of the library, the same in every thread.
    """
    if name in _tls_indexes:
        return _tls_indexes[name]
    if not sys.platform.startswith("linux") or not _libstd_loaded:
        return None
    dl = _libdl()
    rtld_now, rtld_noload, di_tls_modid, di_tls_data = 2, 4, 9, 10
    for path in [*sorted(_libstd_loaded.values()), *sorted(_glue_loaded)]:
        handle = dl.dlopen(path.encode(), rtld_now | rtld_noload)
        if not handle:
            continue
        try:
            address = dl.dlsym(handle, name.encode())
            modid, base = ctypes.c_size_t(), ctypes.c_void_p()
            if not address or dl.dlinfo(handle, di_tls_modid, ctypes.byref(modid)) != 0:
                continue
            if dl.dlinfo(handle, di_tls_data, ctypes.byref(base)) != 0 or not base.value or not modid.value:
                continue
            _tls_indexes[name] = (modid.value, address - base.value)
            return _tls_indexes[name]
        finally:
            dl.dlclose(handle)
    return None


def _run_pipeline(llmod: Any, config: OptimizationConfig) -> Any:
    """Run *config*'s pipeline on *llmod*; return the optimized module (*llmod* itself, or a new one)."""
    if not config.enable_licm and config.optimization_level > 0:
        return _run_pipeline_without_licm(llmod, config)
    llvm = llvm_binding()
    if config.optimization_level == 0:
        return llmod
    for fn in llmod.functions:
        if not fn.is_declaration and config.size_level:
            fn.add_function_attribute("optsize")
            if config.size_level == 2:
                fn.add_function_attribute("minsize")
    tm = _target_machine(config.optimization_level)
    pto = llvm.create_pipeline_tuning_options(speed_level=config.optimization_level)
    pto.loop_vectorization = config.enable_vectorization
    pto.slp_vectorization = config.enable_vectorization
    pto.loop_unrolling = config.enable_loop_unrolling
    pto.loop_interleaving = config.enable_loop_unrolling
    if config.size_level:
        pto.inlining_threshold = 75 if config.size_level == 1 else 25
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(llmod, pb)
    return llmod


#: Runs in a worker process: the default pipeline of a config, with LICM gated off.
_NO_LICM_WORKER = """\
import dataclasses, json, sys
from rustcall_magic import llvm_jit
llvm = llvm_jit.llvm_binding()
llvm.set_option("", "-opt-disable=licm")
config = dataclasses.replace(llvm_jit.OptimizationConfig(**json.loads(sys.argv[1])), enable_licm=True)
module = llvm_jit._run_pipeline(llvm.parse_bitcode(sys.stdin.buffer.read()), config)
sys.stdout.buffer.write(module.as_bitcode())
"""


def _run_pipeline_without_licm(llmod: Any, config: OptimizationConfig) -> Any:
    """*config*'s default pipeline minus loop-invariant code motion, run in a worker process.

    LLVM's pass gate (``-opt-disable=licm``) skips LICM wherever the default
    pipeline runs it, leaving the inliner, the vectorizers and every other pass
    as they are; but the gate is process-wide and cannot be lifted again, so it
    is set in a short-lived process of this interpreter. Raises RustcallError
    when that process fails.
    """
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _NO_LICM_WORKER, json.dumps(config.to_json())],
        input=llmod.as_bitcode(),
        capture_output=True,
        env=env,
    )
    if proc.returncode != 0 or not proc.stdout:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RustcallError(f"the optimizer without LICM failed (worker exit {proc.returncode}): {detail[0]}")
    return llvm_binding().parse_bitcode(proc.stdout)


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class JitInfo:
    """How a JIT module came to be: object-cache hit or not, and the times spent (seconds)."""

    cache_hit: bool
    rustc_seconds: float
    optimize_seconds: float
    codegen_seconds: float
    link_seconds: float
    total_seconds: float
    key: str


class JitModule(CellFunctions):
    """The functions of one cell, JIT-compiled by LLVM, as attributes (``m.add(1, 2)``).

    Besides :class:`~rustcall_magic.compiler.CellFunctions`: ``config`` is the
    OptimizationConfig used (None when the IR was optimized by hand), ``info``
    a :class:`JitInfo`, ``entry`` the object-cache entry (if any). The
    callables are builtins made by the JIT'd glue.
    """

    _kind = "JIT-compiled cell"

    def __init__(
        self,
        ext: ModuleType,
        signatures: list[FnSig],
        info: JitInfo,
        config: OptimizationConfig | None,
        source: str,
        warnings: list[Diagnostic] | None = None,
        skipped: list[tuple[str, str]] | None = None,
        entry: Entry | None = None,
        build: Builder | None = None,
    ) -> None:
        self.info = info
        self.config = config
        self.entry = entry
        # A generic item's instances are built by rustc (%%rust's path) and cached like any cell.
        super().__init__(ext, signatures, source, warnings, skipped, build, generic_types_of(entry.meta if entry else {}, source))

    @property
    def key(self) -> str:
        """The object-cache key."""
        return self.info.key

    def __repr__(self) -> str:
        names = ", ".join(self.functions) or "no functions"
        cfg = f" [{self.config.describe()}]" if self.config else ""
        return f"<JitModule {self.key[:12]}{cfg}: {names}>"


class LLVMModule:
    """A cell's crate (cell + glue) as LLVM IR, to inspect, optimize and JIT.

    ``ir`` is the current IR text; :meth:`optimize` runs a pipeline on it in
    place; :meth:`stats` counts functions, blocks and instructions;
    :meth:`asm` gives the host assembly; :meth:`jit` links it into this
    process. ``thread_locals`` lists the thread-locals the JIT cannot reach (then
    :meth:`jit` falls back to the ``%%rust`` build). Obtain one with
    :func:`get_llvm_module`.
    """

    def __init__(
        self,
        llmod: Any,
        source: str,
        module_name: str,
        signatures: list[FnSig],
        skipped: list[tuple[str, str]],
        warnings: list[Diagnostic],
        thread_locals: list[str],
        tls_slots: list[TlsSlot],
        toolchain: Toolchain,
        compiler: RustCompiler,
        edition: str,
        rustc_seconds: float,
    ) -> None:
        self._llmod = llmod
        self.source = source
        self.module_name = module_name
        self.signatures = list(signatures)
        self.functions = {s.name: s.text for s in signatures}
        self.skipped = skipped
        self.warnings = warnings
        self.thread_locals = thread_locals
        self.tls_slots = tls_slots
        self.toolchain = toolchain
        self.compiler = compiler
        self.edition = edition
        self.rustc_seconds = rustc_seconds
        self.optimize_seconds = 0.0
        #: Configs applied so far, in order (empty: the IR as rustc emitted it).
        self.applied: list[OptimizationConfig] = []

    def __repr__(self) -> str:
        s = self.stats()
        how = " then ".join(c.describe() for c in self.applied) or "unoptimized"
        return (
            f"<LLVMModule {self.module_name} ({how}): {s['functions']} functions, "
            f"{s['blocks']} blocks, {s['instructions']} instructions>"
        )

    @property
    def ir(self) -> str:
        """The module's current LLVM IR as text."""
        return str(self._llmod)

    def verify(self) -> LLVMModule:
        """Check the IR; raises RuntimeError with LLVM's message when it is invalid."""
        self._llmod.verify()
        return self

    def optimize(self, config: OptimizationConfig | None = None) -> LLVMModule:
        """Run *config*'s pipeline (default ``OptimizationConfig()``) on the IR in place; return self.

        Raises TypeError when *config* is not an OptimizationConfig.
        """
        config = OptimizationConfig() if config is None else config
        if not isinstance(config, OptimizationConfig):
            raise TypeError(f"config must be an OptimizationConfig, not {type(config).__name__}")
        t0 = time.perf_counter()
        with _init_lock:
            self._llmod = _run_pipeline(self._llmod, config)
        self.optimize_seconds += time.perf_counter() - t0
        self.applied.append(config)
        return self

    def stats(self) -> dict[str, int]:
        """Counts over defined functions: ``functions``, ``blocks``, ``instructions``."""
        n_fn = n_bb = n_ins = 0
        for fn in self._llmod.functions:
            if fn.is_declaration:
                continue
            n_fn += 1
            for bb in fn.blocks:
                n_bb += 1
                n_ins += sum(1 for _ in bb.instructions)
        return {"functions": n_fn, "blocks": n_bb, "instructions": n_ins}

    def _codegen_level(self) -> int:
        return self.applied[-1].optimization_level if self.applied else 2

    def asm(self) -> str:
        """Host assembly for the module's current IR (codegen runs on a copy)."""
        with _init_lock:
            return str(_target_machine(self._codegen_level()).emit_assembly(self._llmod.clone()))

    def object_code(self) -> bytes:
        """Host object code (ELF) for the module's current IR (codegen runs on a copy)."""
        with _init_lock:
            return bytes(_target_machine(self._codegen_level()).emit_object(self._llmod.clone()))

    def _symbols_for(self, name: str) -> list[str]:
        """IR symbols showing *name*: the cell's function if it survived, else its glue wrapper."""
        index = next((i for i, s in enumerate(self.signatures) if s.name == name), None)
        if index is None:
            raise KeyError(name)
        own = [
            f.name
            for f in self._llmod.functions
            if not f.is_declaration and _is_cell_symbol(f.name, self.module_name, name)
        ]
        if own:
            return own
        wrapper = f"7__rc_w{index}17h" if index < 10 else f"8__rc_w{index}17h"
        return [f.name for f in self._llmod.functions if not f.is_declaration and wrapper in f.name]

    def function_ir(self, name: str) -> str:
        """The IR of exported function *name* (its glue wrapper's when it was inlined there).

        Raises KeyError when the cell exports no such function.
        """
        syms = set(self._symbols_for(name))
        return "\n".join(str(f) for f in self._llmod.functions if f.name in syms)

    def function_asm(self, name: str, asm: str | None = None) -> str:
        """The assembly of exported function *name* (or of its wrapper), cut from :meth:`asm`.

        Raises KeyError when the cell exports no such function.
        """
        text = self.asm() if asm is None else asm
        out = []
        for sym in self._symbols_for(name):
            m = re.search(r"^" + re.escape(_asm_symbol(sym)) + r":.*?^\.Lfunc_end\d+:", text, re.S | re.M)
            if m:
                out.append(m.group(0))
        return "\n".join(out)

    def jit(self, force: bool = False, quiet: bool | None = None) -> JitModule | RustModule:
        """Compile the current IR and link it into this process; return its functions.

        Object code is cached by IR, host CPU and LLVM version, so the same IR
        is compiled once. A cell with a thread-local the JIT cannot reach is
        built by the ``%%rust`` compiler instead (RustcallWarning). Raises RuntimeError
        from LLVM when linking fails.
        """
        if self.thread_locals:
            return _fallback(self.compiler, self.source, self.edition, force, quiet, self.thread_locals)
        cpu, features = host_cpu()
        key = make_key(
            {
                "kind": ENTRY_KIND,
                "ir_sha256": hashlib.sha256(self.ir.encode()).hexdigest(),
                "cpu": cpu,
                "features": features,
                "llvm": list(llvm_version()),
                "python": python_abi_tag(),
                "jit": JIT_VERSION,
                "codegen_level": self._codegen_level(),
            }
        )
        config = self.applied[-1] if len(self.applied) == 1 else None
        return _jit_from_ir(self, key, config, force, t0=time.perf_counter())


def _is_cell_symbol(symbol: str, module_name: str, fn: str) -> bool:
    prefix = f"_ZN{len(module_name)}{module_name}{len(fn)}{fn}17h"
    return symbol.startswith(prefix) or symbol == fn


def _asm_symbol(sym: str) -> str:
    return f'"{sym}"' if re.search(r"[^\w.$]", sym) else sym


# ---------------------------------------------------------------------------
# rustc -> IR


def lower(
    source: str,
    compiler: RustCompiler,
    *,
    edition: str | None = None,
    module_name: str | None = None,
    quiet: bool | None = None,
) -> LLVMModule:
    """Run rustc on *source* plus its glue and parse the IR (no LLVM pass has run on it).

    Raises RustCompileError (rustc's diagnostics, cell line numbers),
    RustToolchainError (no rustc, LLVM versions differ), RustCacheError.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be str, not {type(source).__name__}")
    cache = compiler.cache
    cache.ensure()
    tc = get_toolchain(cache.root)
    check_llvm_versions(tc)
    edition = compiler.edition if edition is None else str(edition)
    opts = BuildOptions(FRONTEND_OPT_LEVEL, False, edition, compiler.target_cpu)
    info = parse_cell(source)
    if module_name is None:
        module_name = f"_rustcall_llvm_{uuid.uuid4().hex[:24]}"
    glue = prelude.library(cache, tc, opts, "dylib")
    build_dir = cache.new_build_dir(hashlib.sha256(source.encode()).hexdigest())
    try:
        out = build_dir / f"{module_name}.ll"
        # LLVM passes are the user's OptimizationConfig, run by llvmlite. The glue's prelude is the
        # shared library loaded into the process: the IR holds the cell and its wrappers only.
        result, info = build_cell(
            source,
            info,
            module_name,
            build_dir,
            tc,
            opts,
            out,
            ["-C", "codegen-units=1", "-C", "no-prepopulate-passes", "-C", "prefer-dynamic", "--emit=llvm-ir"],
            prelude_library=glue,
        )
        rustc_seconds, diags = result.seconds, result.warnings
        text = out.read_text(encoding="utf-8")
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    quiet = compiler.quiet if quiet is None else quiet
    warn_skipped(info.skipped, source)
    if diags and not quiet:
        sys.stderr.write("".join(d.rendered for d in diags))
    llvm = llvm_binding()
    with _init_lock:
        raw = llvm.parse_assembly(text)
        _load_libstd(tc)  # thread-locals of libstd are reached through its TLS block
        _load_glue(glue)
        prepared, user_tls, slots = prepare_ir(text, raw, lambda name: _tls_index(name) is not None)
        llmod = raw if user_tls or prepared == text else llvm.parse_assembly(prepared)
        _rename_shadowing_definitions(llmod)
        llmod.verify()
    return LLVMModule(
        llmod,
        source,
        module_name,
        info.functions,
        info.skipped,
        diags,
        user_tls,
        [] if user_tls else slots,
        tc,
        compiler,
        edition,
        rustc_seconds,
    )


def _rename_shadowing_definitions(llmod: Any) -> None:
    """Give a private name to every function the cell defines under a name the process has.

    JITLink binds a symbol to the object's own definition first, so a cell's
    ``#[no_mangle] pub extern "C" fn memcpy`` would receive the calls LLVM makes
    to libc's; in a ``%%rust`` module the dynamic linker finds libc's first. The
    cell's own uses follow the renamed function (IR refers to it, not to its name).
    """
    external = llvm_binding().Linkage.external
    for fn in llmod.functions:
        if fn.is_declaration or fn.linkage != external or fn.name.startswith("PyInit_"):
            continue
        if _libdl().dlsym(None, fn.name.encode()):
            fn.name = f"{fn.name}.rustcall_cell"


def get_llvm_module(
    source: str, compiler: RustCompiler, *, edition: str | None = None, quiet: bool | None = None
) -> LLVMModule:
    """The IR of *source* plus its glue, unoptimized, under a module name derived from the source.

    The same source gives the same IR, so :meth:`LLVMModule.jit` of the same
    optimized IR hits the object cache. Raises as :func:`lower`.
    """
    cache = compiler.cache
    cache.ensure()
    tc = get_toolchain(cache.root)
    edition = compiler.edition if edition is None else str(edition)
    name_key = make_key(
        {
            "source": source,
            "edition": edition,
            "rustc": tc.version_verbose,
            "glue": glue_fingerprint(cache.root),
            "jit": _jit_fingerprint(),
        }
    )
    return lower(source, compiler, edition=edition, module_name=f"_rustcall_ir_{name_key[:24]}", quiet=quiet)


def _fallback(
    compiler: RustCompiler, source: str, edition: str, force: bool, quiet: bool | None, names: list[str]
) -> RustModule:
    shown = ", ".join(sorted({_tls_label(n) for n in names}))
    warnings.warn(
        f"the cell uses thread-locals ({shown}), which the in-process JIT cannot place; "
        "it was built as a %%rust module instead",
        RustcallWarning,
        stacklevel=3,
    )
    return compiler.compile(source, edition=edition, force=force, quiet=quiet)


def _tls_label(symbol: str) -> str:
    """The static's name in a mangled symbol (legacy ``_ZN`` or v0 ``_R``), e.g. ``COUNT``."""
    idents: list[str] = []
    if symbol.startswith("_ZN"):  # legacy: <len><ident> one after the other
        i = 3
        while i < len(symbol) and symbol[i].isdigit():
            j = i
            while j < len(symbol) and symbol[j].isdigit():
                j += 1
            idents.append(symbol[j : j + int(symbol[i:j])])
            i = j + int(symbol[i:j])
    else:  # v0: identifiers are <len>[_]<ident> among other productions
        for m in re.finditer(r"(?<!\d)(\d+)_?", symbol):
            ident = symbol[m.end() : m.end() + int(m.group(1))]
            if len(ident) == int(m.group(1)) and re.fullmatch(r"[A-Za-z_]\w*", ident):
                idents.append(ident)
    statics = [i for i in idents if re.fullmatch(r"[A-Z][A-Z0-9_]*", i)]
    return statics[-1] if statics else symbol


# ---------------------------------------------------------------------------
# IR -> object -> linked module

_linked: dict[str, ModuleType] = {}


def _link(obj: bytes, module_name: str, tc: Toolchain, slots: list[TlsSlot]) -> ModuleType:
    llvm = llvm_binding()
    with _init_lock:
        engine = _engine(tc)
        symbol = f"PyInit_{module_name}"
        builder = llvm.JITLibraryBuilder()
        for slot in slots:
            builder.import_symbol(slot.symbol, _tls_control(slot))
        tracker = (
            builder.add_object_img(obj)
            .add_current_process()
            .export_symbol(symbol)
            .link(engine, f"{module_name}#{next(_counter)}")
        )
        # Never released: the builtins and the module definition live in JIT'd memory.
        tracker._owned = True
        _trackers.append(tracker)
        address = tracker[symbol]
    if not address:
        raise RustcallError(f"the JIT'd code has no {symbol}")
    init = ctypes.PYFUNCTYPE(ctypes.py_object)(address)
    module = init()
    if not isinstance(module, ModuleType):
        raise RustcallError(f"{symbol} returned {type(module).__name__}, not a module")
    return module


def _meta(mod: LLVMModule, config: OptimizationConfig | None, cpu: str, features: str) -> dict[str, Any]:
    return {
        "kind": ENTRY_KIND,
        "edition": mod.edition,
        "generic_types": [t.name for t in parse_cell(mod.source).types if t.type_params],
        "module": mod.module_name,
        "functions": [f.to_json() for f in mod.signatures],
        "skipped": [list(s) for s in mod.skipped],
        "warnings": [
            {s: getattr(d, s) for s in ("level", "message", "code", "line", "column", "rendered")} for d in mod.warnings
        ],
        "config": config.to_json() if config else None,
        "tls": [t.to_json() for t in mod.tls_slots],
        "cpu": cpu,
        "features": features,
        "llvm": ".".join(map(str, llvm_version())),
        "rustc": mod.toolchain.release,
        "source": mod.source,
        "timings": {"rustc": round(mod.rustc_seconds, 4), "optimize": round(mod.optimize_seconds, 4)},
    }


def _jit_from_ir(
    mod: LLVMModule, key: str, config: OptimizationConfig | None, force: bool, t0: float, locked: bool = False
) -> JitModule:
    """Compile *mod* (or take its cached object) and link it; *locked*: the caller holds *key*'s build lock."""
    cache = mod.compiler.cache
    cpu, features = host_cpu()
    entry = None if force else cache.valid_entry(key, kind=ENTRY_KIND)
    codegen_seconds = 0.0
    if entry is None:
        with contextlib.nullcontext() if locked else cache.locked(key):
            entry = None if force else cache.valid_entry(key, kind=ENTRY_KIND, repair=True, stacklevel=5)
            if entry is None:
                t1 = time.perf_counter()
                obj = mod.object_code()
                codegen_seconds = time.perf_counter() - t1
                build_dir = cache.new_build_dir(key)
                artifact = build_dir / f"{mod.module_name}.o"
                try:
                    artifact.write_bytes(obj)
                except OSError as e:
                    shutil.rmtree(build_dir, ignore_errors=True)
                    raise RustCacheError(f"could not write the JIT object for {key[:16]} in {cache.root}: {e}") from e
                entry = cache.publish(key, build_dir, artifact, _meta(mod, config, cpu, features))
    t2 = time.perf_counter()
    ext = _linked.get(key) if not force else None
    if ext is None or ext.__name__ != mod.module_name:
        ext = _link(entry.artifact.read_bytes(), mod.module_name, mod.toolchain, mod.tls_slots)
        note_linked(entry.artifact)
        _linked[key] = ext
    link_seconds = time.perf_counter() - t2
    info = JitInfo(
        False, mod.rustc_seconds, mod.optimize_seconds, codegen_seconds, link_seconds, time.perf_counter() - t0, key
    )
    build = mod.compiler._instance_builder(mod.source, {"edition": mod.edition})
    return JitModule(ext, mod.signatures, info, config, mod.source, mod.warnings, mod.skipped, entry, build)


def source_key(source: str, compiler: RustCompiler, config: OptimizationConfig, edition: str, tc: Toolchain) -> str:
    """The object-cache key of *source* JIT-compiled under *config* on this host.

    It holds everything that shapes the IR (source, edition, toolchain, glue,
    Python ABI) and the object code (config, host CPU and features, LLVM).
    """
    cpu, features = host_cpu()
    return make_key(
        {
            "kind": ENTRY_KIND,
            "source": source,
            "edition": edition,
            "target_cpu": compiler.target_cpu,
            "rustc": tc.version_verbose,
            "sysroot": tc.sysroot,
            "python": python_abi_tag(),
            "package": __version__,
            "glue": glue_fingerprint(compiler.cache.root),
            "jit": _jit_fingerprint(),
            "config": config.to_json(),
            "cpu": cpu,
            "features": features,
            "llvm": list(llvm_version()),
        }
    )


def jit_source(
    source: str,
    compiler: RustCompiler,
    config: OptimizationConfig | None = None,
    *,
    edition: str | None = None,
    force: bool = False,
    quiet: bool | None = None,
    keep_module: bool = False,
) -> tuple[JitModule | RustModule, LLVMModule | None]:
    """JIT-compile *source* under *config*; return the module and, if built now or *keep_module*, its IR.

    A cached object for the same key is linked without running rustc or the
    optimizer. Raises RustCompileError, RustToolchainError, RustCacheError;
    see :func:`lower`.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be str, not {type(source).__name__}")
    config = OptimizationConfig() if config is None else config
    if not isinstance(config, OptimizationConfig):
        raise TypeError(f"config must be an OptimizationConfig, not {type(config).__name__}")
    t0 = time.perf_counter()
    edition = compiler.edition if edition is None else str(edition)
    quiet = compiler.quiet if quiet is None else quiet
    cache = compiler.cache
    cache.ensure()
    tc = get_toolchain(cache.root)
    key = source_key(source, compiler, config, edition, tc)

    def cached(repair: bool) -> JitModule | RustModule | None:
        if force or keep_module:
            return None
        entry = cache.valid_entry(key, kind=ENTRY_KIND, repair=repair, stacklevel=6)
        if entry is not None:
            cache.touch(entry)
            return _from_entry(entry, compiler, tc, config, source, quiet, t0)
        fallback = cache.valid_entry(key, kind=FALLBACK_KIND, repair=repair, stacklevel=6)
        if fallback is not None:  # decided before, in this process or another: no rustc run to learn it again
            cache.touch(fallback)
            names = fallback.artifact.read_text(encoding="utf-8").split()
            return _fallback(compiler, source, edition, force, quiet, names)
        return None

    hit = cached(repair=False)
    if hit is not None:
        return hit, None
    # One process lowers and optimizes a new cell; the others wait, then link its object.
    with cache.locked(key):
        hit = cached(repair=True)
        if hit is not None:
            return hit, None
        suffix = f"_{uuid.uuid4().hex[:8]}" if force else ""
        mod = lower(source, compiler, edition=edition, module_name=f"_rustcall_llvm_{key[:24]}{suffix}", quiet=quiet)
        if mod.thread_locals:
            _record_fallback(cache, key, mod.thread_locals)
            return _fallback(compiler, source, edition, force, quiet, mod.thread_locals), mod
        if not force and keep_module:
            entry = cache.valid_entry(key, kind=ENTRY_KIND)
            if entry is not None:  # show the IR, but link the object compiled before
                cache.touch(entry)
                mod.optimize(config)
                return _from_entry(entry, compiler, tc, config, source, True, t0, mod), mod
        mod.optimize(config)
        return _jit_from_ir(mod, key, config, force, t0, locked=True), mod


def _record_fallback(cache: Any, key: str, names: list[str]) -> None:
    """Remember in the cache that the cell of *key* is built by %%rust (its thread-locals, *names*)."""
    build_dir = cache.new_build_dir(key)
    artifact = build_dir / "thread-locals.txt"
    try:
        artifact.write_text("\n".join(names) + "\n", encoding="utf-8")
    except OSError:
        shutil.rmtree(build_dir, ignore_errors=True)
        return  # remembering is an optimisation: the next process decides again
    cache.publish(key, build_dir, artifact, {"kind": FALLBACK_KIND, "module": "", "functions": []})


def _from_entry(
    entry: Entry,
    compiler: RustCompiler,
    tc: Toolchain,
    config: OptimizationConfig,
    source: str,
    quiet: bool,
    t0: float,
    mod: LLVMModule | None = None,
) -> JitModule:
    sigs, skipped, diags = entry_exports(entry)
    if mod is None:
        warn_skipped(skipped, source)
        if diags and not quiet:
            sys.stderr.write("".join(d.rendered for d in diags))
    t1 = time.perf_counter()
    ext = _linked.get(entry.key)
    if ext is None:
        glue_library(compiler, tc)  # the object's calls into the prelude resolve there
        slots = [TlsSlot(str(a), int(b), int(c), str(t)) for a, b, c, t in entry.meta.get("tls", [])]
        ext = _link(entry.artifact.read_bytes(), entry.module_name, tc, slots)
        note_linked(entry.artifact)
        _linked[entry.key] = ext
    link_seconds = time.perf_counter() - t1
    rustc_seconds = mod.rustc_seconds if mod else 0.0
    optimize_seconds = mod.optimize_seconds if mod else 0.0
    info = JitInfo(True, rustc_seconds, optimize_seconds, 0.0, link_seconds, time.perf_counter() - t0, entry.key)
    build = compiler._instance_builder(source, {"edition": entry.meta.get("edition") or compiler.edition})
    return JitModule(ext, sigs, info, config, source, diags, skipped, entry, build)
