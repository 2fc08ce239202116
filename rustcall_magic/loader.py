"""Import a built artifact as a CPython extension module.

Every artifact has its own module name and path: the dynamic loader keeps an
image mapped once loaded, so re-importing a rebuilt file at the same path would
hand back the old code.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

from .errors import RustcallError

_loaded: dict[tuple[str, str], ModuleType] = {}


def load_extension(module_name: str, path: Path) -> ModuleType:
    """Load *path* as extension module *module_name* (once per process and path).

    Raises RustcallError when the file cannot be loaded.
    """
    key = (module_name, str(path))
    mod = _loaded.get(key)
    if mod is not None:
        return mod
    loader = importlib.machinery.ExtensionFileLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, str(path), loader=loader)
    if spec is None:
        raise RustcallError(f"cannot load {path}")
    try:
        mod = importlib.util.module_from_spec(spec)
        loader.exec_module(mod)
    except ImportError as e:
        raise RustcallError(f"cannot load compiled module {path}: {e}") from e
    _loaded[key] = mod
    return mod


_linked: set[str] = set()


def note_linked(path: Path | str) -> None:
    """Record that the code of the artifact at *path* was linked into this process another way (JIT)."""
    _linked.add(str(path))


def is_loaded(path: Path | str) -> bool:
    """True when an artifact at *path* was loaded into this process."""
    return str(path) in loaded_paths()


def loaded_paths() -> set[str]:
    """Paths of every artifact loaded (or JIT-linked) into this process."""
    return {k[1] for k in _loaded} | _linked
