"""Python side of a cell's exported types: the enum classes its module's init asks for.

A cell's structs are heap types made by the cell's own glue
(``glue/structs.rs``); a fieldless ``pub enum`` is a Python :class:`enum.Enum`
subclass instead, made here when the cell's module initializes: its members
are the values Rust functions take and return.
"""

from __future__ import annotations

import enum
from typing import Any


def make_enum(
    module: str, name: str, doc: str, members: list[tuple[str, int]], methods: dict[str, Any]
) -> type[enum.Enum]:
    """A new :class:`enum.Enum` subclass *name* of module *module* with *members*
    (name, Rust discriminant) and *methods* (descriptors made by the glue) as attributes.

    Called by the init of a cell module with exported enums.
    """
    cls = enum.Enum(name, members, module=module, qualname=name)  # type: ignore[misc]
    cls.__doc__ = doc
    for attr, value in methods.items():
        setattr(cls, attr, value)
    return cls
