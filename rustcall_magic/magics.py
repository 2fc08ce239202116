"""IPython magics: ``%%rust``, ``%rust``; the only module importing IPython.

Each magic parses its line with ``magic_arguments``, calls the plain-Python
API, and presents the result (names bound in the user namespace, text or
widgets). User mistakes raise ``UsageError``.
"""

from __future__ import annotations

import ast
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Int, TraitError, Unicode, validate

from . import api
from ._version import __version__
from .api import get_default_compiler
from .build import EDITIONS, PORTABLE
from .cache import human_size
from .compiler import RustCompiler, RustModule
from .deps import collect_dependencies, sets_table
from .errors import RustcallError, RustcallWarning
from .external import registered_function, registered_functions
from .signature import FnSig, has_type_params
from .toolchain import get_toolchain


@magics_class
class RustMagics(Magics):
    """Rust cells for IPython. Configure with ``%config RustMagics.<trait> = value``."""

    opt_level = Int(
        None, allow_none=True, help="rustc opt-level (0-3) for %%rust; None: the default compiler's (2)."
    ).tag(config=True)
    cache_dir = Unicode("", help="Compile cache directory; empty: $RUSTCALL_CACHE_DIR or the user cache dir.").tag(
        config=True
    )
    edition = Unicode("", help="Rust edition (2015, 2018, 2021, 2024); empty: the default compiler's (2021).").tag(
        config=True
    )
    quiet = Bool(False, help="Hide rustc warnings.").tag(config=True)
    release_gil = Bool(False, help="%%rust functions release the GIL while the Rust code runs.").tag(config=True)
    target_cpu = Unicode(
        "",
        help="rustc target-cpu for %%rust: 'native', 'portable' or a CPU name; empty: the default compiler's (native).",
    ).tag(config=True)
    max_cache_bytes = Int(0, help="Evict least-recently-used cache entries above this size; 0: no cap.").tag(
        config=True
    )

    @validate("opt_level")
    def _check_opt_level(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and value not in (0, 1, 2, 3):
            raise TraitError(f"RustMagics.opt_level must be 0, 1, 2 or 3, not {value!r}")
        return value

    @validate("edition")
    def _check_edition(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value and value not in EDITIONS:
            raise TraitError(f"RustMagics.edition must be one of {', '.join(EDITIONS)}, not {value!r}")
        return value

    @validate("max_cache_bytes")
    def _check_max_cache_bytes(self, proposal: Any) -> Any:
        if proposal["value"] < 0:
            raise TraitError(f"RustMagics.max_cache_bytes must be >= 0 (0: no cap), not {proposal['value']!r}")
        return proposal["value"]

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        #: name -> (callable, signature) of the latest %%rust definition of each function.
        self.definitions: dict[str, tuple[Callable[..., Any], FnSig]] = {}
        self.modules: list[RustModule] = []
        self._compilers: dict[tuple[Any, ...], RustCompiler] = {}

    def compiler(self) -> RustCompiler:
        """The compiler the magics use: the default one, or one with ``cache_dir`` / ``max_cache_bytes`` applied.

        Follows later ``set_default_compiler`` calls and ``RUSTCALL_CACHE_DIR``.
        """
        base = get_default_compiler()
        if not self.cache_dir and not self.max_cache_bytes:
            return base
        root = Path(self.cache_dir) if self.cache_dir else base.cache.root
        spec = (
            id(base),
            base.optimization_level,
            base.emit_debug_info,
            base.edition,
            base.target_cpu,
            base.quiet,
            str(root),
            self.max_cache_bytes or base.max_cache_bytes,
        )
        c = self._compilers.get(spec)
        if c is None:
            c = RustCompiler(
                base.optimization_level,
                base.emit_debug_info,
                base.edition,
                base.target_cpu,
                root,
                base.quiet,
                self.max_cache_bytes or base.max_cache_bytes,
            )
            self._compilers = {spec: c}  # one at a time: a stale one is never reused
        return c

    # -- %%rust / %rust -------------------------------------------------------------

    @magic_arguments()
    @argument("-O", "--opt-level", type=int, default=None, help="rustc opt-level 0..3 (default 2).")
    @argument("-g", "--debug", action="store_true", help="Emit debug info (and keep symbols).")
    @argument("-f", "--force", action="store_true", help="Rebuild even if cached (as a new artifact).")
    @argument("-n", "--name", default=None, help="Also bind the compiled module object as NAME.")
    @argument("--edition", default=None, help="Rust edition: 2015, 2018, 2021 (default) or 2024.")
    @argument("--target-cpu", default=None, help="rustc target-cpu, e.g. x86-64-v3 (default: native).")
    @argument(
        "--portable", action="store_true", help="Build for rustc's default CPU (runs on other machines), not this one."
    )
    @argument("-q", "--quiet", action="store_true", help="Hide compiler warnings.")
    @argument("--timing", action="store_true", help="Print compile/load time and whether the cache was hit.")
    @argument(
        "--release-gil", action="store_true", help="Release the GIL while the Rust code runs (threads run in parallel)."
    )
    @argument(
        "--dep", action="append", default=[], metavar="'NAME = \"VER\"'",
        help="A crate dependency as a Cargo manifest line (repeatable); built by cargo once per set.",
    )  # fmt: skip
    @argument(
        "--instantiate", action="append", default=[], metavar="'f<i32>'",
        help="Build this instance of a generic fn or struct with the cell (repeatable).",
    )  # fmt: skip
    @line_cell_magic
    def rust(self, line: str, cell: str | None = None) -> Any:
        """Compile a cell of Rust and bind its ``pub fn`` items as fast Python callables.

        Every top-level ``pub fn`` (and ``#[no_mangle] pub extern "C" fn``) whose
        types Python can pass is bound in the namespace under its own name.
        Identical cells are loaded from the compile cache without running rustc.
        Panics raise RustPanic; compile errors raise RustCompileError with
        rustc's messages at the cell's line numbers.

        Crates: a leading ``//! ```cargo`` block (a ``[dependencies]``
        fragment) or ``--dep 'rand = "0.8"'`` makes cargo build the
        dependencies, once per set (a progress bar shows while it works); the
        cell is then built against them. cargo's own configuration is used
        (``CARGO_HOME``, source replacement, ``[net] offline``);
        ``RUSTCALL_CARGO_OFFLINE=1`` adds ``--offline``.

        A generic ``pub fn f<T>`` (or ``pub struct W<T>``) is bound as a generic
        callable: a call infers the type arguments and builds ``f::<..>`` once
        (cached); ``f[np.int32]`` / ``f["i32"]`` is that instance;
        ``--instantiate 'f<i32>'`` builds it with the cell.

        As a line magic, ``%rust NAME(args) [-> TYPE]`` calls the latest
        ``%%rust`` definition of NAME; with ``-> TYPE`` it first checks that
        the function is declared to return TYPE.

        Example::

            In [1]: %load_ext rustcall_magic

            In [2]: %%rust
               ...: /// Add two numbers.
               ...: pub fn add(a: i64, b: i64) -> i64 { a + b }

            In [3]: add(2, 3)
            Out[3]: 5

            In [4]: %rust add(10, 20) -> i64
            Out[4]: 30

            In [5]: %%rust
               ...: //! ```cargo
               ...: //! rand = "0.8"
               ...: //! ```
               ...: use rand::{Rng, SeedableRng};
               ...: pub fn roll(seed: u64) -> u32 { rand::rngs::StdRng::seed_from_u64(seed).gen_range(1..=6) }
        """
        if cell is None:
            return self._call(line)
        args = self._parse(self.rust, line)
        if args.opt_level is not None and args.opt_level not in (0, 1, 2, 3):
            raise UsageError(f"-O must be 0, 1, 2 or 3, not {args.opt_level}")
        edition = args.edition or self.edition or None
        if edition is not None and edition not in EDITIONS:
            raise UsageError(f"--edition must be one of {', '.join(EDITIONS)}, not {edition}")
        if args.name is not None and not args.name.isidentifier():
            raise UsageError(f"-n needs a Python identifier, not {args.name!r}")
        opt = args.opt_level if args.opt_level is not None else self.opt_level
        module = self.compiler().compile(
            cell,
            opt_level=opt,
            debug=args.debug or None,
            edition=edition,
            target_cpu=self._target_cpu(args),
            force=args.force,
            quiet=args.quiet or self.quiet,
            dep_lines=self._dep_lines(args.dep),
            progress=self._progress(),
            release_gil=args.release_gil or self.release_gil or None,
            instantiate=[s.strip("'\"") for s in args.instantiate],
        )
        self._bind(module, args.name)
        if not (args.quiet or self.quiet):
            _report_bound("rust", [*dict.fromkeys([*module.functions, *module.types, *module.generics])])
        if args.timing:
            i = module.info
            if i.cache_hit:
                print(f"rust: cache hit, loaded in {i.total_seconds * 1e3:.1f} ms (no rustc run)")
            else:
                print(
                    f"rust: compiled in {i.compile_seconds * 1e3:.0f} ms, loaded in {i.load_seconds * 1e3:.1f} ms "
                    f"(total {i.total_seconds * 1e3:.0f} ms)"
                )
        return None

    # -- %rustcache -------------------------------------------------------------------

    @magic_arguments()
    @argument(
        "command",
        nargs="?",
        default="summary",
        choices=["summary", "list", "clean", "clear", "verify", "deps"],
        help="What to do (default: summary).",
    )
    @argument("args", nargs="*", help="deps: `update [ID]` re-resolves the dependency sets (all, or one).")
    @argument("--days", type=float, default=30.0, help="clean: remove entries not used for this many days.")
    @line_magic
    def rustcache(self, line: str) -> Any:
        """Show or tidy the compile cache.

        ``%rustcache`` prints the cache directory, entry count and total size;
        ``list`` one row per entry (key, functions, size, created, last used,
        hits); ``clean [--days N]`` removes entries not used for N days
        (default 30); ``clear`` removes every entry not loaded in this process;
        ``verify`` re-checks every checksum and evicts bad entries. ``deps``
        lists the crate dependency sets (crates, size on disk, last used);
        ``deps update [ID]`` re-resolves them (a new ``Cargo.lock``; cells are
        rebuilt against it on their next run). ``clean`` and ``clear`` remove
        dependency sets too. In a
        notebook, ``%rustcache`` alone shows a live view of the cache with
        Clean / Clear / Verify / Refresh buttons (``RUSTCALL_WIDGETS=0``: text).

        Example::

            In [1]: %rustcache list
            key           functions                            size  ...
            3f2a9c1e07b*  add, fib, boom                    312.4 KiB  ...

            In [2]: %rustcache clean --days 7
            removed 2 entries not used for 7 days
        """
        args = self._parse(self.rustcache, line)
        compiler = self.compiler()
        if args.args and args.command != "deps":
            raise UsageError(f"%rustcache {args.command} takes no arguments, got {' '.join(args.args)!r}")
        if args.command == "deps":
            return self._rustcache_deps(args.args, compiler)
        if args.command == "summary":
            if self._frontend():
                from .widgets import CacheView

                self._display(CacheView(compiler))
                return None
            stats = api.cache_stats(compiler)
            print(stats.summary())
            sets = api.dependency_sets(compiler)
            if sets:
                size = human_size(sum(s.size for s in sets))
                print(f"dependency sets: {len(sets)}, {size} (%rustcache deps lists them)")
            return None
        if args.command == "list":
            print(api.cache_stats(compiler))
            return None
        if args.command == "clean":
            if args.days < 0:
                raise UsageError("--days must be >= 0")
            n = api.cleanup_old_cache(args.days, compiler)
            print(f"removed {n} entr{'y' if n == 1 else 'ies'} not used for {args.days:g} days")
            return None
        if args.command == "clear":
            n = api.clear_cache(compiler)
            kept = sum(e.loaded for e in api.list_cached_libraries(compiler))
            extra = f"; kept {kept} loaded in this process" if kept > 0 else ""
            print(f"removed {n} entr{'y' if n == 1 else 'ies'}{extra}")
            return None
        good, bad = api.verify_cache(compiler)
        print(f"verified {good + len(bad)} entries: {good} good, {len(bad)} bad")
        for key, problem in bad:
            print(f"  {key[:12]}: {problem}{'' if 'could not remove' in problem else ' (removed)'}")
        return None

    def _target_cpu(self, args: Any) -> str | None:
        """The target CPU a %%rust line asks for: --target-cpu, --portable, the config, else the compiler's."""
        if args.portable and args.target_cpu:
            raise UsageError("--portable and --target-cpu exclude each other")
        if args.portable:
            return PORTABLE
        return args.target_cpu or self.target_cpu or None

    @staticmethod
    def _rustcache_deps(words: list[str], compiler: RustCompiler) -> None:
        if not words:
            print(sets_table(api.dependency_sets(compiler)))
            return
        if words[0] != "update" or len(words) > 2:
            raise UsageError("usage: %rustcache deps [update [ID]]")
        try:
            sets = api.update_dependencies(words[1] if len(words) == 2 else None, compiler)
        except KeyError as e:
            raise UsageError(str(e.args[0])) from None
        for s in sets:
            print(f"re-resolved {s.id[:12]}: {s.crates_text()}")
        if not sets:
            print("no dependency sets")

    @staticmethod
    def _dep_lines(deps: list[str]) -> list[str]:
        """The ``--dep`` values, each checked to be a manifest line (UsageError if not)."""
        out = []
        for d in deps:
            text = d.strip()
            if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" and "=" in text[1:-1]:
                text = text[1:-1]  # quotes kept by magic_arguments' own splitting
            try:
                collect_dependencies("", [text])
            except ValueError as e:
                raise UsageError(f"--dep: {e}") from None
            out.append(text)
        return out

    def _progress(self) -> Any:
        """The cargo progress callback: a progress bar in a notebook, None (one stderr line) elsewhere.

        The view is made at the first report: a cell that needs no cargo work
        (no dependencies, a cache hit, a built set) creates no widget.
        """
        if not self._frontend():
            return None
        views: list[Any] = []

        def report(p: Any) -> None:
            if not views:
                from IPython.display import display

                from .widgets import CargoProgressView

                views.append(CargoProgressView(show=display))
            views[0](p)

        return report

    def _parse(self, magic: Callable[..., Any], line: str) -> Any:
        try:
            return parse_argstring(magic, line)
        except UsageError:
            raise
        except SystemExit as e:  # argparse on --help and some errors
            raise UsageError(str(e)) from None

    def _bind(self, module: RustModule, name: str | None) -> None:
        ns = self.shell.user_ns
        for fname, sig in module.signatures.items():
            fn = module[fname]
            ns[fname] = fn
            self.definitions[fname] = (fn, sig)
        ns.update(module.types)
        for gname, g in module.generics.items():
            ns[gname] = g.callable
            if isinstance(getattr(g, "signature", None), FnSig):  # a generic function: %rust f(..) calls it too
                self.definitions[gname] = (g.callable, g.signature)
        if name:
            ns[name] = module
        self.modules.append(module)

    def _call(self, line: str) -> Any:
        return self._call_line("rust", line, self._rust_function)

    def _rust_function(self, name: str) -> tuple[Callable[..., Any], FnSig]:
        if name in self.definitions:
            return self.definitions[name]
        ext = registered_function(name)
        if ext is not None:
            return ext, ext.signature  # rc.register_function(...) of an existing C-ABI library
        known = ", ".join(sorted({*self.definitions, *registered_functions()})) or "none yet"
        raise UsageError(f"no %%rust function named {name!r} (defined: {known})")

    def _call_line(self, magic: str, line: str, lookup: Callable[[str], tuple[Callable[..., Any], FnSig]]) -> Any:
        """``%<magic> NAME(args) [-> TYPE]``: evaluate the arguments in the user namespace and call."""
        text = line.strip()
        if not text:
            raise UsageError(f"usage: %{magic} NAME(args...) [-> TYPE]; use %%{magic} for a cell of Rust code")
        text, want = _split_return_check(text)
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as e:
            raise UsageError(f"%{magic} expects a call such as add(1, 2): {e.msg}") from None
        call = tree.body
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
            raise UsageError(f"%{magic} expects a call of a Rust function, e.g. %{magic} add(1, 2)")
        name = call.func.id
        fn, sig = lookup(name)
        generic_ret = bool(sig.type_params) and has_type_params(sig.ret)  # decided per call: not checked here
        if want is not None and not generic_ret and "".join(want.split()) != "".join(str(sig.ret).split()):
            raise TypeError(f"{name} is declared to return {sig.ret}, not {want.strip()}")
        call.func = ast.Name("__rustcall_fn__", ast.Load())
        code = compile(ast.fix_missing_locations(tree), f"<%{magic}>", "eval")
        return eval(code, self.shell.user_ns, {"__rustcall_fn__": fn})

    # -- %%rust_llvm / %rust_llvm ---------------------------------------------------

    @magic_arguments()
    @argument("-O", "--opt-level", type=int, default=None, help="LLVM optimization level 0..3 (default 3).")
    @argument("--preset", choices=("speed", "size", "balanced"), default=None, help="A preset OptimizationConfig.")
    @argument("--no-vectorize", action="store_true", help="Turn the loop and SLP vectorizers off.")
    @argument("--no-unroll", action="store_true", help="Turn loop unrolling and interleaving off.")
    @argument("--no-licm", action="store_true", help="Run a pipeline without loop-invariant code motion.")
    @argument("--show-ir", action="store_true", help="Print the optimized IR of each exported function.")
    @argument("--show-asm", action="store_true", help="Print the host assembly of each exported function.")
    @argument("-f", "--force", action="store_true", help="Recompile even if cached (as a new module).")
    @argument("-n", "--name", default=None, help="Also bind the JIT-compiled module object as NAME.")
    @argument("-q", "--quiet", action="store_true", help="Hide compiler warnings.")
    @argument("--timing", action="store_true", help="Print rustc/optimize/codegen/link times and cache use.")
    @argument(
        "--dep", action="append", default=[], metavar="'NAME = \"VER\"'",
        help="A crate dependency (repeatable); such a cell is built as by %%%%rust, with a warning.",
    )  # fmt: skip
    @line_cell_magic
    def rust_llvm(self, line: str, cell: str | None = None) -> Any:
        """Compile a cell of Rust through LLVM IR, optimized by llvmlite, JIT-linked into this process.

        The same functions as ``%%rust`` are bound (the same glue makes them
        builtins), compiled for this CPU under an OptimizationConfig: ``-O``,
        ``--preset``, ``--no-vectorize``, ``--no-unroll``, ``--no-licm``.
        ``--show-ir`` / ``--show-asm`` print the optimized IR / assembly of
        each exported function (of its Python wrapper when the function was
        inlined there). Object code is cached: re-running the cell in a new
        session runs neither rustc nor the optimizer. Thread-locals work per
        thread; a cell with one the JIT cannot reach is built as by ``%%rust``
        (with a warning).

        As a line magic, ``%rust_llvm NAME(args) [-> TYPE]`` calls the JIT
        version of NAME, JIT-compiling the ``%%rust`` cell that defined it on
        first use.

        Example::

            In [1]: %load_ext rustcall_magic

            In [2]: %%rust_llvm --preset speed
               ...: pub fn add(a: i64, b: i64) -> i64 { a + b }

            In [3]: add(2, 3)
            Out[3]: 5

            In [4]: %rust_llvm add(10, 20)
            Out[4]: 30
        """
        if cell is None:
            return self._llvm_call(line)
        from .llvm_jit import OptimizationConfig, jit_source, preset

        args = self._parse(self.rust_llvm, line)
        if args.opt_level is not None and args.opt_level not in (0, 1, 2, 3):
            raise UsageError(f"-O must be 0, 1, 2 or 3, not {args.opt_level}")
        if args.name is not None and not args.name.isidentifier():
            raise UsageError(f"-n needs a Python identifier, not {args.name!r}")
        config = preset(args.preset) if args.preset else OptimizationConfig()
        changes: dict[str, Any] = {}
        if args.opt_level is not None:
            changes["optimization_level"] = args.opt_level
        if args.no_vectorize:
            changes["enable_vectorization"] = False
        if args.no_unroll:
            changes["enable_loop_unrolling"] = False
        if args.no_licm:
            changes["enable_licm"] = False
        config = OptimizationConfig(**{**config.to_json(), **changes})
        show = args.show_ir or args.show_asm
        dep_lines = self._dep_lines(args.dep)
        fallback = api.jit_fallback(
            cell, self.compiler(), None, dep_lines, edition=self.edition or None, force=args.force,
            quiet=args.quiet or self.quiet, progress=self._progress(),
        )  # fmt: skip
        if fallback is not None:
            module, ir_module = fallback, None
        else:
            module, ir_module = jit_source(
                cell,
                self.compiler(),
                config,
                edition=self.edition or None,
                force=args.force,
                quiet=args.quiet or self.quiet,
                keep_module=show,
            )
        ns = self.shell.user_ns
        defs = self._llvm_definitions()
        for fname, sig in module.signatures.items():
            fn = module[fname]
            ns[fname] = fn
            defs[fname] = (fn, sig, cell, len(self.modules))
        ns.update(module.types)
        ns.update({n: g.callable for n, g in module.generics.items()})
        if args.name:
            ns[args.name] = module
        if not (args.quiet or self.quiet):
            _report_bound("rust_llvm", [*dict.fromkeys([*module.functions, *module.types, *module.generics])])
        if show and isinstance(module, RustModule):
            print("rust_llvm: the cell was built by %%rust (see the warning above): there is no JIT code to show")
        elif show and ir_module is not None:
            asm = ir_module.asm() if args.show_asm else ""
            for fname in module.signatures:
                if args.show_ir:
                    print(f"; ---- {fname}: optimized IR ({config.describe()}) ----")
                    print(ir_module.function_ir(fname))
                if args.show_asm:
                    print(f"# ---- {fname}: assembly ----")
                    print(ir_module.function_asm(fname, asm))
        if args.timing:
            info = getattr(module, "info", None)
            if isinstance(module, RustModule):
                hit = (
                    "cache hit" if module.info.cache_hit else f"compiled in {module.info.compile_seconds * 1e3:.0f} ms"
                )
                print(f"rust_llvm: built by %%rust ({hit}), loaded in {module.info.total_seconds * 1e3:.1f} ms total")
            elif info is not None and hasattr(info, "link_seconds"):
                if info.cache_hit and not show:
                    ms = info.total_seconds * 1e3
                    print(f"rust_llvm: object cache hit, linked in {ms:.1f} ms (no rustc, no optimizer)")
                else:
                    print(
                        f"rust_llvm: rustc {info.rustc_seconds * 1e3:.0f} ms, optimize {info.optimize_seconds * 1e3:.0f} ms"
                        f" ({config.describe()}), codegen {info.codegen_seconds * 1e3:.0f} ms, link "
                        f"{info.link_seconds * 1e3:.1f} ms{' (object from cache)' if info.cache_hit else ''} "
                        f"(total {info.total_seconds * 1e3:.0f} ms)"
                    )
        return None

    def _llvm_definitions(self) -> dict[str, tuple[Callable[..., Any], FnSig, str, int]]:
        """name -> (JIT callable, signature, cell source, len(self.modules) when it was made)."""
        defs = self.__dict__.get("_llvm_defs")
        if defs is None:
            defs = self.__dict__["_llvm_defs"] = {}
        return defs  # type: ignore[no-any-return]

    def _llvm_function(self, name: str) -> tuple[Callable[..., Any], FnSig]:
        """The JIT version of *name*: from %%rust_llvm, or JIT-compiled from its latest %%rust cell."""
        defs = self._llvm_definitions()
        rust_at = next((i for i in range(len(self.modules) - 1, -1, -1) if name in self.modules[i].signatures), None)
        jit = defs.get(name)
        if jit is not None and (rust_at is None or jit[3] > rust_at or self.modules[rust_at].source == jit[2]):
            return jit[0], jit[1]
        if rust_at is None:
            known = ", ".join(sorted({*defs, *self.definitions})) or "none yet"
            raise UsageError(f"no %%rust or %%rust_llvm function named {name!r} (defined: {known})")
        from .llvm_jit import jit_source

        origin = self.modules[rust_at]
        options = origin.entry.meta.get("options", {}) if origin.entry is not None else {}
        recorded = origin.entry.meta.get("dependencies") if origin.entry is not None else None
        module: Any = api.jit_fallback(
            origin.source, self.compiler(), recorded, edition=options.get("edition"), quiet=True
        )
        if module is None:
            module, _ = jit_source(origin.source, self.compiler(), edition=options.get("edition"), quiet=True)
        for fname, sig in module.signatures.items():
            defs[fname] = (module[fname], sig, origin.source, rust_at + 1)
        return defs[name][0], defs[name][1]

    def _llvm_call(self, line: str) -> Any:
        return self._call_line("rust_llvm", line, self._llvm_function)

    @line_magic
    def rust_handles(self, line: str) -> None:
        """Print the live-handle registry: every RustBox/RustRc/RustArc/RustVec alive, and the
        recently dropped, moved or collected ones, with where each was created.

        In a notebook it shows a live view instead (it follows later drops,
        moves and collections, and can drop a selected handle).

        Example::

            In [1]: b = rustcall_magic.RustBox(42, "i32")

            In [2]: %rust_handles
            id  kind  dtype  state  strong  preview  origin
            ...
        """
        if self._frontend():
            self._display(self._handles_view())
            return
        from .handles import handles_table

        print(handles_table())

    # -- views and %rust_bench (widgets in a kernel with a frontend, text elsewhere) ---------

    def _frontend(self) -> bool:
        """True when this shell is a kernel talking to a frontend (ipykernel's shell) and
        ipywidgets is installed; ``RUSTCALL_WIDGETS=0`` forces text tables."""
        import importlib.util
        import os

        if os.environ.get("RUSTCALL_WIDGETS", "").strip().lower() in {"0", "no", "off", "false", "text"}:
            return False
        if not any(c.__name__ == "ZMQInteractiveShell" for c in type(self.shell).__mro__):
            return False
        return importlib.util.find_spec("ipywidgets") is not None

    def _display(self, view: Any) -> None:
        """Show *view*; a live view supersedes the earlier ones of its kind this shell showed.

        Superseded views that the frontend does not report as displayed (the cell was
        re-run, or nothing renders: a headless run) stop following changes, so views do
        not pile up listeners; one still displayed keeps following, and a paused one
        resumes if the frontend later reports it displayed.
        """
        import weakref

        from IPython.display import display

        if hasattr(view, "pause"):
            shown: list[Any] = self.__dict__.setdefault("_live_views", [])
            for ref in list(shown):
                old = ref()
                if old is None:
                    shown.remove(ref)
                elif type(old) is type(view) and not old.displayed():
                    old.pause()
                    shown.remove(ref)
            shown.append(weakref.ref(view))
        display(view)

    def _handles_view(self) -> Any:
        from .widgets import HandlesView

        return HandlesView(self.shell.user_ns)

    def _bench_backends(self, name: str) -> list[tuple[str, Callable[..., Any]]]:
        """The %%rust and (if current) %rust_llvm definitions of *name*, for %rust_bench."""
        found: list[tuple[str, Callable[..., Any]]] = []
        rust = self.definitions.get(name)
        if rust is not None:
            found.append(("%%rust", rust[0]))
        jit = self._llvm_definitions().get(name)
        if jit is not None:
            rust_at = next(
                (i for i in range(len(self.modules) - 1, -1, -1) if name in self.modules[i].signatures), None
            )
            # A JIT definition made before a newer %%rust cell redefined the name is stale.
            if rust_at is None or jit[3] > rust_at or self.modules[rust_at].source == jit[2]:
                found.append(("%rust_llvm", jit[0]))
        return found

    @line_magic
    def rust_bench(self, line: str) -> Any:
        """Time call expressions through every backend that defines the called name.

        Usage: ``%rust_bench [-n N] [-r R] [-o] EXPR [EXPR ...]``. Each EXPR
        is a call such as ``add(1, 2)``; it is timed once per backend defining
        its name: the ``%%rust`` definition, the ``%%rust_llvm`` one, and a
        Python callable bound to the name in the namespace. Without ``-n`` the
        number of calls per run is calibrated like ``%timeit``; ``-r`` runs are
        made (default 5) and the best and median reported, with the empty
        loop's cost subtracted. In a notebook a table widget shows progress
        and then expression, backend, ns/call, ratio to the first row and a
        bar; elsewhere a text table is printed. ``-o`` returns the BenchResult
        (``.rows``, ``.to_csv()``, ``.to_pandas()``).

        Example::

            In [1]: def py_add(a, b): return a + b

            In [2]: %rust_bench py_add(1, 2) add(1, 2)
            expression  backend  best ns  median ns  ratio
            ...
            py_add(1, 2)  python   27.9 ns    28.1 ns  1.00x  ████████████████████
            add(1, 2)     %%rust   13.0 ns    13.2 ns  0.47x  █████████
        """
        from . import bench

        number, repeat, want, exprs = _bench_line(line)
        ns = self.shell.user_ns
        try:
            bench.plan(exprs, ns)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if not self._frontend():
            result = bench.benchmark(exprs, ns, number=number, repeat=repeat)
            print(result.table())
            return result if want else None
        from .widgets import BenchView

        view = BenchView()
        self._display(view)
        try:
            result = bench.benchmark(exprs, ns, number=number, repeat=repeat, progress=view.progress)
        except BaseException as e:
            view.label.value = f'<span class="rustcall-error">failed: {type(e).__name__}</span>'
            raise
        view.show(result)
        return result if want else None


def _split_return_check(text: str) -> tuple[str, str | None]:
    """Split ``call(args) -> TYPE`` at its last ``->`` outside brackets and quotes."""
    depth = 0
    quote = ""
    arrow = -1
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith("->", i):
            arrow = i
        i += 1
    if arrow < 0 or not text[arrow + 2 :].strip():
        return text, None
    return text[:arrow].strip(), text[arrow + 2 :].strip()


def _report_bound(magic: str, functions: Iterable[str]) -> None:
    """One line saying which names a cell bound (what a reader of the notebook sees)."""
    names = list(functions)
    if names:
        print(f"{magic}: bound {', '.join(names)}")
    else:
        print(f"{magic}: no function to bind (only top-level `pub fn` items are exported)")


def load_ipython_extension(ipython: Any) -> None:
    """Register the rustcall_magic magics on *ipython*."""
    # A skipped function is news every time its cell runs, not once per session.
    warnings.filterwarnings("always", category=RustcallWarning)
    magics = RustMagics(shell=ipython)
    previous = ipython.magics_manager.registry.get("RustMagics")
    if previous is not None:
        # %reload_ext: keep what earlier cells defined, so %rust NAME(...) still finds it.
        magics.definitions.update(previous.definitions)
        magics.modules[:0] = previous.modules
        if "_llvm_defs" in previous.__dict__:
            magics.__dict__["_llvm_defs"] = previous.__dict__["_llvm_defs"]
        if previous in ipython.configurables:
            ipython.configurables.remove(previous)
    ipython.register_magics(magics)
    from . import bench

    # %rust_bench and rc.benchmark() see this shell's %%rust / %rust_llvm definitions.
    bench.providers[:] = [
        p for p in bench.providers if getattr(p, "__self__", None) is None or p.__self__.shell is not ipython
    ]
    bench.providers.append(magics._bench_backends)
    # %config RustMagics.<trait> finds configurables here.
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)
    # Live views send what they show at the end of each cell, in that cell's context.
    ipython.events.register("post_run_cell", _flush_views)
    # IPython and ipykernel install their SIGINT handlers with signal.signal around cells,
    # which unchains check_interrupt's handler: chain it again before each cell runs.
    if _arm_interrupt not in ipython.events.callbacks["pre_run_cell"]:
        ipython.events.register("pre_run_cell", _arm_interrupt)
    if _in_kernel(ipython):
        # In a notebook, say at once which toolchain cells will use (or that there is none).
        print(_toolchain_line(magics))


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext rustcall_magic``: stop flushing views after each cell (IPython keeps the magics)."""
    if _flush_views in ipython.events.callbacks["post_run_cell"]:
        ipython.events.unregister("post_run_cell", _flush_views)
    if _arm_interrupt in ipython.events.callbacks["pre_run_cell"]:
        ipython.events.unregister("pre_run_cell", _arm_interrupt)


def _arm_interrupt(info: Any = None) -> None:
    """``pre_run_cell``: chain ``rustcall::check_interrupt``'s SIGINT handler again (see runtime.arm_interrupt)."""
    runtime = sys.modules.get(f"{__package__}.runtime")
    if runtime is not None:
        runtime.arm_interrupt()


def _flush_views(result: Any = None) -> None:
    """``post_run_cell``: redraw the live views that saw changes during the cell, now.

    Their timer redraws may land after the cell went idle, attributed to a finished
    request (headless runners drop those); a view must show the cell's outcome when it ends.
    """
    widgets = sys.modules.get(f"{__package__}.widgets")  # never import ipywidgets just for this
    if widgets is not None:
        widgets.flush_views()


def _in_kernel(shell: Any) -> bool:
    return any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)


def _toolchain_line(magics: RustMagics) -> str:
    """``rustcall_magic 0.1.0 · rustc 1.95.0 (LLVM 22.1.2)``, or why there is no toolchain."""
    head = f"rustcall_magic {__version__}"
    try:
        magics.compiler().cache.ensure()
        tc = get_toolchain(magics.compiler().cache.root)
    except RustcallError as e:
        return f"{head}: {type(e).__name__}: {e}"
    return f"{head} · rustc {tc.release} (LLVM {tc.llvm_version}) · cache in {magics.compiler().cache.root}"


def _bench_line(line: str) -> tuple[int | None, int, bool, list[str]]:
    """Split ``%rust_bench`` arguments into (number, repeat, -o, expressions).

    Expressions are separated by whitespace outside brackets and quotes.
    Raises UsageError for bad options or no expression.
    """
    words: list[str] = []
    buf: list[str] = []
    depth = 0
    quote = ""
    for ch in line.strip():
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif ch in "([{":
            depth += 1
            buf.append(ch)
        elif ch in ")]}":
            depth -= 1
            buf.append(ch)
        elif ch.isspace() and depth <= 0:
            if buf:
                words.append("".join(buf))
                buf = []
        else:
            buf.append(ch)
    if buf:
        words.append("".join(buf))
    number: int | None = None
    repeat = 5
    want = False
    i = 0

    def value(opt: str) -> int:
        nonlocal i
        text = words[i][len(opt) :].lstrip("=")
        if not text:
            i += 1
            if i >= len(words):
                raise UsageError(f"{opt} needs a number")
            text = words[i]
        try:
            v = int(text)
        except ValueError:
            raise UsageError(f"{opt} needs a whole number, not {text!r}") from None
        if v < 1:
            raise UsageError(f"{opt} must be >= 1, not {v}")
        return v

    while i < len(words) and words[i].startswith("-"):
        word = words[i]
        if word in ("-o", "--output"):
            want = True
        elif word.startswith("--number"):
            number = value("--number")
        elif word.startswith("--repeat"):
            repeat = value("--repeat")
        elif word.startswith("-n"):
            number = value("-n")
        elif word.startswith("-r"):
            repeat = value("-r")
        else:
            raise UsageError(f"unknown option {word}; usage: %rust_bench [-n N] [-r R] [-o] EXPR [EXPR ...]")
        i += 1
    exprs = words[i:]
    if not exprs:
        raise UsageError("usage: %rust_bench [-n N] [-r R] [-o] EXPR [EXPR ...], e.g. %rust_bench add(1, 2)")
    return number, repeat, want, exprs
