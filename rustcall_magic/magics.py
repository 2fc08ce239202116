"""IPython magics: ``%%rust``, ``%rust``; the only module importing IPython.

Each magic parses its line with ``magic_arguments``, calls the plain-Python
API, and presents the result (names bound in the user namespace, text or
widgets). User mistakes raise ``UsageError``.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Int, Unicode

from .api import get_default_compiler
from .build import EDITIONS
from .compiler import RustCompiler, RustModule
from .errors import RustcallWarning
from .signature import FnSig

_RETURN_CHECK = re.compile(r"^(?P<call>.*\))\s*->\s*(?P<type>[^)]*\S)\s*$", re.S)


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
    max_cache_bytes = Int(0, help="Evict least-recently-used cache entries above this size; 0: no cap.").tag(
        config=True
    )

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        #: name -> (callable, signature) of the latest %%rust definition of each function.
        self.definitions: dict[str, tuple[Callable[..., Any], FnSig]] = {}
        self.modules: list[RustModule] = []
        self._compilers: dict[str, RustCompiler] = {}

    def compiler(self) -> RustCompiler:
        """The compiler the magics use: the default one, or one on ``cache_dir`` if configured."""
        base = get_default_compiler()
        if not self.cache_dir:
            return base
        c = self._compilers.get(self.cache_dir)
        if c is None:
            c = RustCompiler(
                base.optimization_level, base.emit_debug_info, base.edition, base.target_cpu, Path(self.cache_dir)
            )
            self._compilers[self.cache_dir] = c
        return c

    # -- %%rust / %rust -------------------------------------------------------------

    @magic_arguments()
    @argument("-O", "--opt-level", type=int, default=None, help="rustc opt-level 0..3 (default 2).")
    @argument("-g", "--debug", action="store_true", help="Emit debug info (and keep symbols).")
    @argument("-f", "--force", action="store_true", help="Rebuild even if cached (as a new artifact).")
    @argument("-n", "--name", default=None, help="Also bind the compiled module object as NAME.")
    @argument("--edition", default=None, help="Rust edition: 2015, 2018, 2021 (default) or 2024.")
    @argument("--target-cpu", default=None, help="rustc target-cpu, e.g. native.")
    @argument("-q", "--quiet", action="store_true", help="Hide compiler warnings.")
    @argument("--timing", action="store_true", help="Print compile/load time and whether the cache was hit.")
    @line_cell_magic
    def rust(self, line: str, cell: str | None = None) -> Any:
        """Compile a cell of Rust and bind its ``pub fn`` items as fast Python callables.

        Every top-level ``pub fn`` (and ``#[no_mangle] pub extern "C" fn``) whose
        types Python can pass is bound in the namespace under its own name.
        Identical cells are loaded from the compile cache without running rustc.
        Panics raise RustPanic; compile errors raise RustCompileError with
        rustc's messages at the cell's line numbers.

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
            target_cpu=args.target_cpu,
            force=args.force,
            quiet=args.quiet or self.quiet,
        )
        self._bind(module, args.name)
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
        if name:
            ns[name] = module
        self.modules.append(module)

    def _call(self, line: str) -> Any:
        text = line.strip()
        if not text:
            raise UsageError("usage: %rust NAME(args...) [-> TYPE]; use %%rust for a cell of Rust code")
        want: str | None = None
        m = _RETURN_CHECK.match(text)
        if m:
            text, want = m.group("call"), m.group("type")
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as e:
            raise UsageError(f"%rust expects a call such as add(1, 2): {e.msg}") from None
        call = tree.body
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
            raise UsageError("%rust expects a call of a %%rust function, e.g. %rust add(1, 2)")
        name = call.func.id
        if name not in self.definitions:
            known = ", ".join(sorted(self.definitions)) or "none yet"
            raise UsageError(f"no %%rust function named {name!r} (defined: {known})")
        fn, sig = self.definitions[name]
        if want is not None:
            declared = "".join(str(sig.ret).split())
            if "".join(want.split()) != declared:
                raise TypeError(f"{name} is declared to return {sig.ret}, not {want.strip()}")
        call.func = ast.Name("__rustcall_fn__", ast.Load())
        code = compile(ast.fix_missing_locations(tree), "<%rust>", "eval")
        return eval(code, self.shell.user_ns, {"__rustcall_fn__": fn})


def load_ipython_extension(ipython: Any) -> None:
    """Register the rustcall_magic magics on *ipython*."""
    # A skipped function is news every time its cell runs, not once per session.
    warnings.filterwarnings("always", category=RustcallWarning)
    magics = RustMagics(shell=ipython)
    ipython.register_magics(magics)
    # %config RustMagics.<trait> finds configurables here.
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)
