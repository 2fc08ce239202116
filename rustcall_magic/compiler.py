"""Compile a cell into a cached native module: key -> cache hit, or parse, generate, build, publish -> load.

A hit needs no rustc process and no parsing: the entry's metadata holds the
exported signatures, and the toolchain identity is remembered on disk.
"""

from __future__ import annotations

import copyreg
import json
import os
import shutil
import sys
import threading
import time
import types
import uuid
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from . import prelude
from ._version import __version__
from .build import PORTABLE, BuildOptions, BuildResult, build_cell
from .cache import Cache, Entry, default_cache_dir, make_key
from .codegen import glue_fingerprint
from .deps import DepsBuild, ProgressCallback, StderrProgress, Workspace, collect_dependencies, path_fingerprint
from .deps import enforce_limit as deps_enforce_limit
from .errors import Diagnostic, RustCacheError, RustcallError, RustcallWarning, RustToolchainError, warn_skipped
from .generics import Builder, GenericFunction, GenericType
from .handles import add_instance_source
from .loader import load_extension, loaded_paths
from .signature import CellInfo, FnSig, instance_name, parse_cell, parse_instance, with_instances
from .toolchain import get_toolchain, host_cpu_identity, python_abi_tag


@dataclass(frozen=True)
class CompileInfo:
    """How a module came to be: cache hit or build, and the times spent."""

    cache_hit: bool
    compile_seconds: float
    load_seconds: float
    total_seconds: float
    key: str
    #: What cargo did for the cell's crate dependencies (None: no dependencies, or a cache hit).
    dependencies: DepsBuild | None = None


@dataclass(frozen=True)
class Recipe:
    """How another process gets a compiled cell again: load its cache entry by *key*, else build it.

    *backend* is ``"rust"``; *options* the JSON text of the keyword arguments of
    :meth:`RustCompiler.compile` that built it. Pickles of cell functions and
    modules carry a recipe (see ``api``), never code.
    """

    backend: str
    source: str
    options: str
    key: str


#: Every exported function of a loaded cell -> (its cell's recipe, its name). Weak: a
#: function no one holds leaves the table.
_origins: weakref.WeakKeyDictionary[Any, tuple[Recipe, str]] = weakref.WeakKeyDictionary()


def entry_exports(entry: Entry) -> tuple[list[FnSig], list[tuple[str, str]], list[Diagnostic]]:
    """What a cache entry's metadata records of its cell: signatures, skipped items (name, reason), rustc's warnings."""
    sigs = [FnSig.from_json(f) for f in entry.meta.get("functions", [])]
    skipped = [(str(n), str(r)) for n, r in entry.meta.get("skipped", [])]
    diags = [Diagnostic(**d) for d in entry.meta.get("warnings", [])]
    return sigs, skipped, diags


def origin_of(fn: Any) -> tuple[Recipe, str] | None:
    """The recipe of the cell that exported *fn*, and *fn*'s name there; None for any other object."""
    try:
        return _origins.get(fn)
    except TypeError:  # not weakly referenceable: not ours
        return None


class CellFunctions:
    """The functions of one compiled cell, as attributes (``m.add(1, 2)``).

    ``functions`` maps each exported name to its Rust signature text;
    ``signatures`` to its :class:`~rustcall_magic.signature.FnSig`; ``types``
    maps each exported struct's name to its Python class; ``generics`` each generic
    function or struct to its :class:`~rustcall_magic.generics.GenericFunction` /
    :class:`~rustcall_magic.generics.GenericType` (``callable``: what a namespace binds)
    and ``instances`` each built instance (``"f<i32>"``) to its callable or class. A function or class
    whose name collides with an attribute of the class is reachable as
    ``m["name"]``. Subclasses say how the code was made (:class:`RustModule`,
    ``llvm_jit.JitModule``).
    """

    _kind = "compiled cell"

    def __init__(
        self,
        ext: ModuleType,
        signatures: list[FnSig],
        source: str,
        warnings: list[Diagnostic] | None = None,
        skipped: list[tuple[str, str]] | None = None,
        build: Builder | None = None,
        generic_types: list[Any] | None = None,
    ) -> None:
        self._ext = ext
        plain = [s for s in signatures if not s.type_params and not s.generic]
        self.signatures = {s.name: s for s in plain}
        self.functions = {s.name: s.text for s in signatures if not s.generic}
        self.source = source
        self.warnings = list(warnings or [])
        self.skipped = list(skipped or [])
        # The module's init made one class per exported struct and named them here.
        made = {n: getattr(ext, n) for n in getattr(ext, "__rustcall_types__", ())}
        self.types: dict[str, type] = {n: c for n, c in made.items() if "<" not in n}
        self.instances: dict[str, Any] = {s.name: getattr(ext, s.name) for s in signatures if s.generic}
        self.instances.update((n, c) for n, c in made.items() if "<" in n)
        self.generics: dict[str, GenericFunction | GenericType] = {}
        build = build or _no_builder
        for s in signatures:
            if s.type_params:
                own = {tuple(i.type_args): self.instances[i.name] for i in signatures if i.generic == s.name}
                self.generics[s.name] = GenericFunction(s, build, own, getattr(ext, "_rustcall_dispatcher", None))
        for ut in generic_types or ():
            own = {parse_instance(n)[1]: c for n, c in made.items() if n.startswith(ut.name + "<")}
            self.generics[ut.name] = GenericType(ut, build, {tuple(map(str, k)): c for k, c in own.items()})
        instances = getattr(ext, "_rustcall_instances", None)
        if instances is not None:
            add_instance_source(ext.__name__, instances, getattr(ext, "_rustcall_version", None))
        for name in [*self.signatures, *self.types, *self.generics]:
            # Attributes of the module object win; such a function is m["name"].
            if name not in self.__dict__ and not hasattr(type(self), name) and not name.startswith("_"):
                self.__dict__[name] = self[name]
        recipe = self.recipe
        if recipe is not None:
            for s in signatures:
                fn = getattr(ext, s.name, None)
                if fn is not None:
                    _origins[fn] = (recipe, s.name)
            # Instances of a struct built from its fields pickle by field values (see _reduce_instance).
            for name, cls in self.types.items():
                if hasattr(cls, "_rustcall_from_fields"):
                    copyreg.pickle(cls, _InstanceReducer(recipe, name))
            for name, g in self.generics.items():
                g._recipe = (_rebuild_function, (recipe.backend, recipe.source, recipe.options, recipe.key, name))

    @property
    def recipe(self) -> Recipe | None:
        """How another process gets this cell again (None: it cannot, e.g. hand-optimized IR)."""
        return None

    def __getitem__(self, name: str) -> Callable[..., Any]:
        generic = self.__dict__.get("generics", {}).get(name)
        if generic is not None:
            return generic.callable  # type: ignore[no-any-return]
        if name in self.__dict__.get("instances", {}):
            return self.instances[name]  # type: ignore[no-any-return]
        if name not in self.signatures and name not in self.types:
            raise KeyError(name)
        return getattr(self._ext, name)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        sigs = self.__dict__.get("signatures", {})
        if name in sigs or name in self.__dict__.get("types", {}) or name in self.__dict__.get("generics", {}):
            return self[name]
        raise AttributeError(f"{self._kind} has no function {name!r}; it exports {', '.join(sigs) or 'nothing'}")

    def __iter__(self) -> Any:
        return iter(self.signatures)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.signatures, *self.types, *self.generics})

    @property
    def module_name(self) -> str:
        """The extension module's name."""
        return self._ext.__name__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self) if cycle else self.describe())

    def describe(self) -> str:
        """Multi-line text: one Rust signature per function, then one line per class."""
        classes = [f"  class {n}" for n in self.types]
        classes += [f"  generic struct {n}{g.user_type.generics}" for n, g in self.generics.items() if isinstance(g, GenericType)]
        return "\n".join([repr(self), *(f"  {t}" for t in self.functions.values()), *classes])


class RustModule(CellFunctions):
    """The functions compiled from one cell by rustc into a cached extension module.

    Besides :class:`CellFunctions`: ``entry`` (the cache entry), ``info`` (a
    :class:`CompileInfo`), ``path``, ``key``.
    """

    def __init__(
        self,
        ext: ModuleType,
        signatures: list[FnSig],
        entry: Entry,
        info: CompileInfo,
        warnings: list[Diagnostic],
        skipped: list[tuple[str, str]],
        source: str,
        build: Builder | None = None,
    ) -> None:
        self.entry = entry
        self.info = info
        super().__init__(ext, signatures, source, warnings, skipped, build, generic_types_of(entry.meta, source))
        _note_loaded(entry)
        _modules_by_key[entry.key] = self

    @property
    def recipe(self) -> Recipe:
        """How another process gets this module: its cache key, else its source and options."""
        meta = self.entry.meta
        opts = dict(meta.get("options", {}))
        if opts.get("target_cpu") is None:
            opts["target_cpu"] = PORTABLE
        if meta.get("dependencies"):
            opts["dependencies"] = meta["dependencies"]
        for k in ("instantiate", "instances_only"):
            if not opts.get(k):
                opts.pop(k, None)
        return Recipe("rust", self.source, json.dumps(opts, sort_keys=True), self.entry.key)

    def __reduce__(self) -> tuple[Any, ...]:
        r = self.recipe
        return _rebuild_module, (r.backend, r.source, r.options, r.key)

    @property
    def path(self) -> Path:
        """The loaded artifact."""
        return self.entry.artifact

    @property
    def key(self) -> str:
        """The cache key."""
        return self.entry.key

    def __repr__(self) -> str:
        names = ", ".join(self.functions) or "no functions"
        return f"<RustModule {self.key[:12]}: {names}>"


class RustCompiler:
    """Compiles cells with fixed defaults; see :meth:`compile`.

    *optimization_level* 0..3, *emit_debug_info*, *edition*, *target_cpu* and
    *cache_dir* (default: ``$RUSTCALL_CACHE_DIR`` or the user cache dir) are the
    defaults of every :meth:`compile` call. *target_cpu* ``"native"`` (the
    default) builds for this machine's CPU and its SIMD extensions, keyed by the
    host CPU; ``"portable"`` (or None) uses rustc's default CPU, for artifacts
    that must run on other machines; *quiet* hides compiler warnings;
    *max_cache_bytes* caps the cache (least recently used entries are evicted
    after a build; default ``$RUSTCALL_CACHE_MAX_BYTES``, else no cap).
    """

    def __init__(
        self,
        optimization_level: int = 2,
        emit_debug_info: bool = False,
        edition: str = "2021",
        target_cpu: str | None = "native",
        cache_dir: str | Path | None = None,
        quiet: bool = False,
        max_cache_bytes: int | None = None,
        release_gil: bool = False,
    ) -> None:
        BuildOptions(optimization_level, emit_debug_info, str(edition), target_cpu)  # validate early
        #: LRU cap applied after each build; None: $RUSTCALL_CACHE_MAX_BYTES, else no cap.
        self.max_cache_bytes = max_cache_bytes
        self.optimization_level = optimization_level
        self.emit_debug_info = emit_debug_info
        self.edition = str(edition)
        self.target_cpu = None if target_cpu == PORTABLE else target_cpu
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.quiet = quiet
        #: Default of compile(release_gil=): wrappers release the GIL around the Rust call.
        self.release_gil = bool(release_gil)
        self._cache: Cache | None = None

    def __repr__(self) -> str:
        return (
            f"RustCompiler(optimization_level={self.optimization_level}, emit_debug_info={self.emit_debug_info}, "
            f"edition={self.edition!r}, target_cpu={self.target_cpu!r}, cache_dir={str(self.cache.root)!r})"
        )

    @property
    def cache(self) -> Cache:
        """The compile cache this compiler uses."""
        root = self._cache_dir if self._cache_dir is not None else default_cache_dir()
        if self._cache is None or self._cache.root != root.expanduser().absolute():
            self._cache = Cache(root)
        return self._cache

    def cache_limit(self) -> int:
        """The cache size cap in bytes (0: none)."""
        if self.max_cache_bytes is not None:
            return int(self.max_cache_bytes)
        env = os.environ.get("RUSTCALL_CACHE_MAX_BYTES", "").strip()
        try:
            return int(env) if env else 0
        except ValueError:
            raise ValueError(f"RUSTCALL_CACHE_MAX_BYTES must be an integer number of bytes, not {env!r}") from None

    def options(
        self,
        opt_level: int | None = None,
        debug: bool | None = None,
        edition: str | None = None,
        target_cpu: str | None = None,
    ) -> BuildOptions:
        """Build options from this compiler's defaults and the given overrides."""
        return BuildOptions(
            self.optimization_level if opt_level is None else int(opt_level),
            self.emit_debug_info if debug is None else bool(debug),
            self.edition if edition is None else str(edition),
            self.target_cpu if target_cpu is None else target_cpu,
        )

    def compile(
        self,
        source: str,
        *,
        opt_level: int | None = None,
        debug: bool | None = None,
        edition: str | None = None,
        target_cpu: str | None = None,
        force: bool = False,
        quiet: bool | None = None,
        dependencies: Mapping[str, Any] | None = None,
        dep_lines: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        release_gil: bool | None = None,
        instantiate: Sequence[str] = (),
        instances_only: bool = False,
        warn_items: bool = True,
    ) -> RustModule:
        """Compile *source* (or load it from the cache) and return its functions.

        Crate dependencies come from the cell's leading ``//! ```cargo`` block,
        *dep_lines* (``'rand = "0.8"'``) and *dependencies* (name -> version or
        table); cargo builds them once per set into a workspace of the cache,
        reporting to *progress* (default: one updating stderr line).
        Raises RustCompileError when rustc rejects the cell (its diagnostics,
        with cell line numbers) or cargo cannot resolve or build the
        dependencies (its message), RustToolchainError when rustc (or cargo,
        for dependencies) is missing, RustCacheError when the cache is unsafe
        or unwritable, ValueError on bad options. Functions with unsupported
        types are skipped with a RustcallWarning; rustc's warnings go to stderr
        unless *quiet*.

        *instantiate* names instances of the cell's generic functions and structs to
        build with it (``["f<i32>", "pair<i32, i64>"]``; ValueError for a name the cell
        has no generic item of); *instances_only* builds a module of those instances
        alone (what a generic callable builds on a miss). The cache key holds them in order.
        """
        if not isinstance(source, str):
            raise TypeError(f"source must be str, not {type(source).__name__}")
        if isinstance(instantiate, str):
            instantiate = [instantiate]
        specs = list(dict.fromkeys(instance_name(*parse_instance(str(x))) for x in instantiate))
        t0 = time.perf_counter()
        opts = self.options(opt_level, debug, edition, target_cpu)
        release_gil = self.release_gil if release_gil is None else bool(release_gil)
        limit = self.cache_limit()  # a bad RUSTCALL_CACHE_MAX_BYTES is an error before any build
        quiet = self.quiet if quiet is None else quiet
        cache = self.cache
        cache.ensure()
        tc = get_toolchain(cache.root)
        deps = collect_dependencies(source, dep_lines, dependencies)
        ws: Workspace | None = None
        dep_parts: dict[str, Any] = {}
        if deps:
            host = host_cpu_identity() if opts.target_cpu == "native" else None
            ws = Workspace(cache, deps, tc, opts.opt_level, opts.debug, opts.target_cpu, host)
            dep_parts = {"deps": ws.id, "cargo_lock": ws.ensure_resolved(), "path_deps": path_fingerprint(deps)}
        key = make_key(
            {
                **dep_parts,
                "source": source,
                "options": [opts.opt_level, opts.debug, opts.edition, opts.target_cpu],
                **({"release_gil": True} if release_gil else {}),
                # Ordered: pair<i32, i64> and pair<i64, i32> are two artifacts.
                **({"instantiate": specs} if specs else {}),
                **({"instances_only": True} if instances_only else {}),
                **({"host_cpu": host_cpu_identity()} if opts.target_cpu == "native" else {}),
                "rustc": tc.version_verbose,
                "sysroot": tc.sysroot,
                "python": python_abi_tag(),
                "package": __version__,
                "glue": glue_fingerprint(cache.root),
            }
        )
        entry: Entry | None = None
        compile_seconds = 0.0
        diags: list[Diagnostic] = []
        hit = False
        with _process_lock(key):
            for attempt in (1, 2):
                if not force:
                    entry = cache.valid_entry(key)
                    hit = entry is not None
                if entry is None:
                    with cache.locked(key):
                        # Another process may have built it while we waited.
                        if not force:
                            entry = cache.valid_entry(key, repair=True, stacklevel=4)
                            hit = entry is not None
                        if entry is None:
                            entry, compile_seconds = self._build(
                                cache, key, source, opts, tc, force, ws, progress, release_gil, specs, instances_only
                            )
                    if not hit:
                        try:
                            # Dependency workspaces share the cap with entries, least recently used first.
                            deps_enforce_limit(cache, limit, {key} | _loaded_keys(cache), {ws.id} if ws else ())
                        except RustCacheError as e:  # the build stands; only the tidying failed
                            warnings.warn(f"the cache size cap was not applied: {e}", RustcallWarning, stacklevel=3)
                if hit:
                    cache.touch(entry)
                t1 = time.perf_counter()
                try:
                    ext = load_extension(entry.module_name, entry.artifact)
                except RustcallError:
                    # Evicted by another process between lookup and load: build again, once.
                    if attempt == 2 or os.path.exists(entry.artifact):
                        raise
                    entry, hit, force = None, False, False
                    continue
                load_seconds = time.perf_counter() - t1
                break
        sigs, skipped, diags = entry_exports(entry)
        if warn_items:
            warn_skipped(skipped, source)
        if diags and not quiet:
            sys.stderr.write("".join(d.rendered for d in diags))
        built = ws.last_build if (ws is not None and not hit) else None
        info = CompileInfo(hit, compile_seconds, load_seconds, time.perf_counter() - t0, key, built)
        build = self._instance_builder(
            source,
            {
                "opt_level": opts.opt_level,
                "debug": opts.debug,
                "edition": opts.edition,
                "target_cpu": opts.target_cpu or PORTABLE,
                "release_gil": release_gil,
                "dependencies": dependencies,
                "dep_lines": list(dep_lines),
            },
        )
        return RustModule(ext, sigs, entry, info, diags, skipped, source, build)

    def _instance_builder(self, source: str, options: Mapping[str, Any]) -> Builder:
        """What the cell's generic items call to build one instance (a module of it alone, cached)."""

        def build(spec: str) -> tuple[Any, str | None]:
            m = self.compile(source, **options, quiet=True, instantiate=[spec], instances_only=True, warn_items=False)
            inst = m.instances.get(spec)
            reason = next((r for n, r in m.skipped if n == spec), "it was not exported")
            return inst, None if inst is not None else reason

        return build

    def load_cached(self, key: str, source: str) -> RustModule | None:
        """The module of cache entry *key* (built from *source*), loaded with no toolchain; None on a miss.

        A native build made on a machine with another CPU is a miss: its code may
        use instructions this CPU lacks. Raises RustCacheError when the cache is unsafe.
        """
        t0 = time.perf_counter()
        cache = self.cache
        cache.ensure()
        entry = cache.valid_entry(key)
        if entry is None or entry.meta.get("kind", "cdylib") != "cdylib" or entry.meta.get("source") != source:
            return None
        native = entry.meta.get("options", {}).get("target_cpu") == "native"
        if native and entry.meta.get("host_cpu") != host_cpu_identity():
            return None
        cache.touch(entry)
        t1 = time.perf_counter()
        try:
            ext = load_extension(entry.module_name, entry.artifact)
        except RustcallError:
            return None  # evicted between lookup and load
        load_seconds = time.perf_counter() - t1
        sigs, skipped, diags = entry_exports(entry)
        info = CompileInfo(True, 0.0, load_seconds, time.perf_counter() - t0, key)
        opts = {k: v for k, v in entry.meta.get("options", {}).items() if k not in ("instantiate", "instances_only")}
        opts["target_cpu"] = opts.get("target_cpu") or PORTABLE
        if entry.meta.get("dependencies"):
            opts["dependencies"] = entry.meta["dependencies"]
        return RustModule(ext, sigs, entry, info, diags, skipped, source, self._instance_builder(source, opts))

    @staticmethod
    def _build(
        cache: Cache,
        key: str,
        source: str,
        opts: BuildOptions,
        tc: Any,
        force: bool,
        ws: Workspace | None = None,
        progress: ProgressCallback | None = None,
        release_gil: bool = False,
        instantiate: Sequence[str] = (),
        instances_only: bool = False,
    ) -> tuple[Entry, float]:
        info = parse_cell(source)
        if instantiate or instances_only:
            info = with_instances(info, instantiate, instances_only)
        # A forced build gets a new module name: the loaded image of the old
        # artifact stays valid, and the new one is a distinct module.
        suffix = f"_{uuid.uuid4().hex[:8]}" if force else ""
        module_name = f"_rustcall_{key[:24]}{suffix}"
        build_dir = cache.new_build_dir(key)
        try:
            glue_lib = prelude.library(cache, tc, opts)
            output = build_dir / f"{module_name}.so"

            def build(flags: Sequence[str] = ()) -> tuple[BuildResult, CellInfo]:
                return build_cell(
                    source, info, module_name, build_dir, tc, opts, output, flags,
                    prelude_library=glue_lib, release_gil=release_gil,
                )  # fmt: skip

            if ws is None:
                result, info = build()
            else:
                # The workspace lock spans the cell's rustc run too: its -L dir must not change under it.
                with ws.locked():
                    result, info = build(ws.build(progress if progress is not None else StderrProgress()))
            meta = {
                "module": module_name,
                "functions": [f.to_json() for f in info.functions],
                "generic_types": [t.name for t in info.types if t.type_params],
                "type_instances": [t.name for t in info.types if "<" in t.name],
                "skipped": [list(s) for s in info.skipped],
                "warnings": [
                    {s: getattr(d, s) for s in ("level", "message", "code", "line", "column", "rendered")}
                    for d in result.warnings
                ],
                "options": {
                    "opt_level": opts.opt_level,
                    "debug": opts.debug,
                    "edition": opts.edition,
                    "target_cpu": opts.target_cpu,
                    "release_gil": release_gil,
                    **({"instantiate": list(instantiate)} if instantiate else {}),
                    **({"instances_only": True} if instances_only else {}),
                },
                "source": source,
                **({"host_cpu": host_cpu_identity()} if opts.target_cpu == "native" else {}),
                **({"dependencies": ws.deps, "deps_set": ws.id} if ws is not None else {}),
                "rustc": tc.release,
                "build_seconds": round(result.seconds, 4),
            }
            # Keep only the artifact: sources and intermediates are not needed to load.
            shutil.rmtree(build_dir / "src")
            entry = cache.publish(key, build_dir, result.artifact, meta)
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise
        return entry, result.seconds


def _no_builder(spec: str) -> tuple[Any, str | None]:
    return None, "this module cannot build instances (it was made from hand-optimized IR)"


def generic_types_of(meta: Mapping[str, Any], source: str) -> list[Any]:
    """The generic structs a cache entry's cell declares (read from *source* when it has any)."""
    names = meta.get("generic_types") or []
    if not names:
        return []
    return [t for t in parse_cell(source).types if t.name in names and t.type_params]


def _loaded_keys(cache: Cache) -> set[str]:
    """Keys of the entries of *cache* whose artifacts are loaded in this process."""
    return cache.keys_of(loaded_paths())


_locks_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


def _process_lock(key: str) -> threading.Lock:
    # filelock is re-entrant per process; threads of one process serialise here.
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.Lock()
        return lock


# ---------------------------------------------------------------------------
# The cache entries this process has loaded, for shipping them elsewhere (``rustcall_magic.dask``).

#: Cache key -> a loaded module of that entry (unpickling in this process reuses it: same classes).
_modules_by_key: weakref.WeakValueDictionary[str, RustModule] = weakref.WeakValueDictionary()
_loaded_lock = threading.Lock()
_loaded: dict[str, Entry] = {}
#: Called with each entry loaded for the first time in this process.
entry_listeners: list[Callable[[Entry], None]] = []
#: Cache key -> why an artifact sent to this process was refused (named when that cell is missing).
refused_artifacts: dict[str, str] = {}
#: True in processes (Dask workers) where a cell function that cannot be unpickled must not fail the
#: unpickling itself but its calls (some engines hang on a task they cannot deserialize).
defer_unpickle_errors = False


def _note_loaded(entry: Entry) -> None:
    with _loaded_lock:
        if entry.key in _loaded:
            return
        _loaded[entry.key] = entry
        listeners = list(entry_listeners)
    for listener in listeners:
        listener(entry)


def loaded_entries() -> list[Entry]:
    """The cache entries of the cells loaded in this process so far, in load order."""
    with _loaded_lock:
        return list(_loaded.values())


# ---------------------------------------------------------------------------
# Pickling by reference: a cell function or module pickles as its cell's recipe.

_rebuilt_lock = threading.Lock()
_rebuilt: dict[str, RustModule] = {}


def _rebuild_module(backend: str, source: str, options: str, key: str) -> RustModule:
    """Unpickle a cell module: load entry *key* from this process's cache, else build the cell.

    Raises RustToolchainError, saying so, when the entry is not in the cache and
    no toolchain can build it; RustCompileError if the cell does not build here.
    """
    if backend != "rust":
        raise RustcallError(f"cannot rebuild a cell module made by {backend!r}")
    with _rebuilt_lock:
        module = _rebuilt.get(key) or _modules_by_key.get(key)
        if module is not None:
            return module
        compiler = RustCompiler()
        module = compiler.load_cached(key, source)
        if module is None:
            try:
                module = compiler.compile(source, quiet=True, **json.loads(options))
            except RustToolchainError as e:
                refused = refused_artifacts.get(key)
                why = f"; its artifact sent to this process was refused: {refused}" if refused else ""
                raise RustToolchainError(
                    f"the cell (cache key {key[:12]}) is not in this process's cache ({compiler.cache.root}) "
                    f"and cannot be built here: {e}{why}"
                ) from e
        _rebuilt[key] = module
        return module


def _rebuild_function(backend: str, source: str, options: str, key: str, name: str) -> Any:
    """Unpickle a cell function (see :func:`_rebuild_module`)."""
    try:
        return _rebuild_module(backend, source, options, key)[name]
    except RustcallError as e:
        if not (defer_unpickle_errors or _in_dask_worker()):
            raise
        return _Unavailable(name, e)


def _in_dask_worker() -> bool:
    """Whether a Dask worker runs in this process (a task that fails to deserialize there may hang)."""
    worker = sys.modules.get("distributed.worker")
    return bool(worker is not None and getattr(getattr(worker, "Worker", None), "_instances", None))


class _Unavailable:
    """Stands for a cell function that could not be loaded: calling it raises why."""

    def __init__(self, name: str, error: RustcallError) -> None:
        self.name = name
        self.error = error

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise type(self.error)(f"cell function {self.name!r} is not available here: {self.error}")

    def __reduce__(self) -> tuple[Any, ...]:
        return _Unavailable, (self.name, self.error)


def _field_names(source: str, type_name: str) -> tuple[str, ...]:
    """The fields of *type_name* in *source*, in declaration order (parsed once per cell and type)."""
    key = (source, type_name)
    names = _field_cache.get(key)
    if names is None:
        ut = next(t for t in parse_cell(source).types if t.name == type_name)
        names = _field_cache[key] = tuple(f.name for f in ut.fields)
    return names


_field_cache: dict[tuple[str, str], tuple[str, ...]] = {}


class _InstanceReducer:
    """copyreg reducer of one struct class: an instance pickles as its cell's recipe, its type's name and
    its field values (each pickled in turn), and unpickles through ``_rustcall_from_fields``."""

    def __init__(self, recipe: Recipe, type_name: str) -> None:
        self.recipe = recipe
        self.type_name = type_name

    def __call__(self, obj: Any) -> tuple[Any, ...]:
        r = self.recipe
        fields = _field_names(r.source, self.type_name)
        values = tuple(getattr(obj, f"_{f}" if f.isdigit() else f) for f in fields)
        return _rebuild_instance, (r.backend, r.source, r.options, r.key, self.type_name, values)


def _rebuild_instance(backend: str, source: str, options: str, key: str, type_name: str, values: tuple) -> Any:
    """Unpickle a struct instance: its class from the cell (see :func:`_rebuild_module`), built from *values*."""
    cls = _rebuild_module(backend, source, options, key).types[type_name]
    return cls._rustcall_from_fields(*values)


def _reduce_builtin(fn: Any) -> Any:
    found = origin_of(fn)
    if found is None:  # any other builtin pickles as it always has
        return fn.__reduce_ex__(2)
    recipe, name = found
    return _rebuild_function, (recipe.backend, recipe.source, recipe.options, recipe.key, name)


# Cell functions are builtins of a module no other process can import: they pickle by recipe,
# which multiprocessing, concurrent.futures, joblib and Dask use to ship them.
copyreg.pickle(types.BuiltinFunctionType, _reduce_builtin)
