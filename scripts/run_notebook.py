"""Run a notebook headless in a real kernel and print each cell with its results.

Usage: python scripts/run_notebook.py NOTEBOOK.ipynb [--save OUT.ipynb]

Exits non-zero when a cell raises, unless the cell carries the
``raises-exception`` tag.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _text(output: dict) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return output.get("text", "")
    if kind in ("execute_result", "display_data"):
        data = output.get("data", {})
        if "text/plain" in data:
            return data["text/plain"] + "\n"
        return f"<{', '.join(data)}>\n"
    if kind == "error":
        return _ANSI.sub("", "\n".join(output.get("traceback", []))) + "\n"
    return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--save", type=Path, help="also write the executed notebook here")
    ap.add_argument("--timeout", type=int, default=600)
    args = ap.parse_args()
    nb = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(
        nb,
        timeout=args.timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(args.notebook.parent)}},
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no start-up chatter in the output
    )
    status = 0
    try:
        client.execute()
    except CellExecutionError as e:
        print(f"\n!! a cell failed:\n{_ANSI.sub('', str(e))}", file=sys.stderr)
        status = 1
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            if first.startswith("#"):
                print(f"\n{first}\n")
            continue
        if cell.cell_type != "code":
            continue
        n = cell.get("execution_count") or " "
        print(f"In [{n}]:")
        for line in cell.source.splitlines():
            print(f"    {line}")
        out = "".join(_text(o) for o in cell.get("outputs", []))
        if out.strip():
            print(f"Out[{n}]:")
            for line in out.rstrip().splitlines():
                print(f"    {line}")
        print()
    if args.save:
        nbformat.write(nb, args.save)
    return status


if __name__ == "__main__":
    sys.exit(main())
