"""The study notebook: its source notebooks/DR_LeNet.py (jupytext percent format, ruff-checked) is
paired with the committed notebooks/DR_LeNet.ipynb (no outputs), and executed end to end in fast
mode (nbclient) so that it cannot silently rot."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from lenet_tf.models import OPTIMIZED_HPARAMS
from lenet_tf.submission import read_submission

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "DR_LeNet.py"
NOTEBOOK = ROOT / "notebooks" / "DR_LeNet.ipynb"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "notebooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells(notebook) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in notebook.cells]


def test_committed_notebook_is_paired_with_its_source_and_has_no_outputs() -> None:
    jupytext = pytest.importorskip("jupytext")
    source, committed = jupytext.read(SOURCE), jupytext.read(NOTEBOOK)
    assert _cells(committed) == _cells(source), (
        "notebooks/DR_LeNet.ipynb differs from notebooks/DR_LeNet.py: run jupytext --sync notebooks/DR_LeNet.py"
    )
    assert committed.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert source.cells[2].metadata["tags"] == ["parameters"]  # papermill's convention for the parameter cell
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


def test_notebook_runs_in_fast_mode(tmp_path: Path, record_property) -> None:
    pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # A search result off the preset: the notebook must pick it up. Its smaller kernels and second
    # layer (3×3, 3 filters, where the preset has 7×7 and 11) also halve the fast mode's training time.
    cheaper = {"filters_1": 9, "filters_2": 3, "kernel_size_1": 3, "kernel_size_2": 3}
    hparams = OPTIMIZED_HPARAMS.to_dict() | cheaper
    best = tmp_path / "results" / "tune" / "best_hparams.json"
    best.parent.mkdir(parents=True)
    best.write_text(json.dumps({"hparams": hparams, "val_accuracy": 0.99}))
    (best.parent / "summary.md").write_text("# Search summary\n")
    plt.imsave(best.parent / "optimization_history.png", np.zeros((4, 4)))
    env = {"LENET_FAST": "1", "LENET_DATA": "", "LENET_RESULTS": "", "LENET_HPARAMS": ""}

    nb, seconds = _load("run_notebook").execute(SOURCE, cwd=tmp_path, env=env, timeout=600)
    record_property("notebook_seconds", round(seconds, 1))
    print(f"notebook (fast mode) executed in {seconds:.0f} s")

    outputs = [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert all(cell.execution_count for cell in nb.cells if cell.cell_type == "code")
    markdown = "\n".join(o.data["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {}))
    stdout = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 20, len(images)
    # The standard LeNet is built and fitted directly: its summary (rich text, colour codes
    # removed) and its early-stopped fit.
    plain = "".join(o.data["text/plain"] for o in outputs if o.output_type == "display_data" and "text/plain" in o.data)
    assert "Total params: 15,626" in re.sub(r"\x1b\[[0-9;]*m", "", plain)
    assert "standard LeNet: best validation accuracy" in stdout
    assert not [o for o in outputs if o.output_type == "stream" and "IProgress" in o.text]
    for heading in ("# Data exploration", "# optimized LeNet: 1 member(s)", "# optimized LeNet: 2 member(s)",
                    "# Evaluation: optimized LeNet, ensemble of 2", "# Comparison with the reference study",
                    "# Learning curve: standard LeNet", "Submission written"):  # fmt: skip
        assert heading in markdown, heading
    assert "the search's best, read from `results/tune/best_hparams.json`" in markdown
    assert "| filters_1 | 9 | 13 |" in markdown and "# Search summary" in markdown
    assert "| filters_2 | 3 | 11 |" in markdown and "| kernel_size_2 | 3 | 7 |" in markdown
    assert "notebook finished in" in stdout

    results = tmp_path / "results" / "notebook-fast"
    config = json.loads((results / "ensemble" / "config.json").read_text())
    assert {name: config["model"]["hparams"][name] for name in cheaper} == cheaper
    assert len(read_submission(results / "ensemble" / "submission.csv", expected_rows=1000)) == 1000
    for figure in ("explore/pca_scatter.png", "standard/history.png", "standard/first_layer.png",
                   "ensemble/misclassified.png", "ensemble/history.png", "test_predictions.png"):  # fmt: skip
        assert (results / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
