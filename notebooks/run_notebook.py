"""Execute the study notebook headless (nbclient) and save the executed copy elsewhere.

The notebook's source is ``notebooks/DR_LeNet.py`` (jupytext's percent format), paired with the
committed ``notebooks/DR_LeNet.ipynb`` (no outputs). This script reads the ``.py`` with jupytext,
so what runs is the reviewed source, and writes the executed notebook (figures and tables inline)
to ``results/notebook/DR_LeNet.ipynb`` by default::

    python notebooks/run_notebook.py [--fast] [--data digit-recognizer.zip] [--output PATH]

Needs the ``dev`` extra (jupytext, nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

NOTEBOOK = Path(__file__).with_name("DR_LeNet.py")
DEFAULT_OUTPUT = Path("results/notebook/DR_LeNet.ipynb")


def execute(
    notebook: str | Path = NOTEBOOK,
    *,
    cwd: str | Path = ".",
    output: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: int | None = None,
):
    """Run every cell of ``notebook`` (a jupytext ``.py`` or an ``.ipynb``) in a fresh kernel started
    in ``cwd`` with ``env`` added to the environment.

    Returns the executed notebook and the seconds it took; a failing cell raises nbclient's
    ``CellExecutionError`` naming the cell. ``output`` receives the executed notebook.
    """
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(notebook)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    started = time.perf_counter()
    client.execute(env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - started
    if output is not None:
        nb.metadata.pop("jupytext", None)  # the executed copy is a record, not a third paired file
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(output))
    return nb, seconds


def main(argv: list[str] | None = None) -> int:
    """Execute the notebook from the current directory; return the exit status."""
    parser = argparse.ArgumentParser(description="Execute the study notebook headless and save the executed copy.")
    parser.add_argument("--fast", action="store_true", help="fast mode (LENET_FAST=1): a couple of minutes")
    parser.add_argument("--data", help="data source (LENET_DATA): directory, competition zip or 'sample'")
    parser.add_argument("--results", help="results directory (LENET_RESULTS; default results/notebook[-fast])")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"executed notebook (default {DEFAULT_OUTPUT})"
    )
    parser.add_argument("--timeout", type=int, help="seconds allowed per cell (default: no limit)")
    args = parser.parse_args(argv)
    env = {"LENET_FAST": "1" if args.fast else "0"}
    if args.data:
        env["LENET_DATA"] = args.data
    if args.results:
        env["LENET_RESULTS"] = args.results
    try:
        _, seconds = execute(output=args.output, env=env, timeout=args.timeout)
    except ImportError as exc:
        print(f"run_notebook: error: {exc.name} is not installed; pip install -e '.[dev]'", file=sys.stderr)
        return 2
    except Exception as exc:  # nbclient's CellExecutionError: the failing cell and its traceback
        print(f"run_notebook: error: the notebook failed:\n{exc}", file=sys.stderr)
        return 1
    print(f"executed {NOTEBOOK.name} in {seconds:.0f} s: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
