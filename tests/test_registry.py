"""Issue 29: one registration beside each builder feeds every list of models (item 12), and the
modules run as scripts take their command lines from the option specs (item 9)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lenet_tf
from lenet_tf import cli, models, options, registry
from lenet_tf.errors import LenetError
from lenet_tf.registry import register_model, unregister_model

ROOT = Path(__file__).resolve().parents[1]
TOY = "toy-net"


def toy_net(*, input_scale: str = "unit", output_l2: bool = True) -> Any:
    """A toy model: the MLP under another name (never built by these tests)."""
    return models.mlp(input_scale=input_scale)


@pytest.fixture
def toy() -> Iterator[Any]:
    builder = register_model(TOY, title="toy network")(toy_net)
    try:
        yield builder
    finally:
        if TOY in registry.names():
            unregister_model(TOY)


def _model_choices(command: str) -> Any:
    """The ``--model`` choices of a ``lenet-tf`` command, from a freshly built parser."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return next(a for a in commands[command]._actions if "--model" in a.option_strings).choices


def test_a_registered_model_reaches_every_list(toy: Any) -> None:
    assert models.get_builder(TOY) is toy and models.BUILDERS[TOY] is toy and list(models.BUILDERS)[-1] == TOY
    assert models.TITLES[TOY] == models.model_title(TOY) == "toy network"
    assert models.own_input_scale(TOY) == "unit" and models.has_output_l2(TOY)
    assert TOY in options.OUTPUT_L2_MODELS
    assert lenet_tf.toy_net is toy and "toy_net" in lenet_tf.__all__ and "toy_net" in dir(lenet_tf)
    for command in ("train", "ensemble", "evaluate", "learning-curve", "robustness"):
        assert TOY in _model_choices(command), command
    assert cli.parse_args(["train", "--model", TOY, "--no-output-l2"]).model == TOY

    unregister_model(TOY)
    with pytest.raises(LenetError, match=f"unknown model '{TOY}'; choose one of standard, classic"):
        models.get_builder(TOY)
    assert TOY not in models.BUILDERS and TOY not in options.OUTPUT_L2_MODELS and TOY not in _model_choices("train")
    assert not hasattr(lenet_tf, "toy_net") and "toy_net" not in lenet_tf.__all__
    with pytest.raises(SystemExit) as refused:
        cli.parse_args(["train", "--model", TOY])
    assert refused.value.code == 2


def test_the_views_keep_the_registered_models_and_their_order() -> None:
    expected = ["standard", "classic", "optimized", "standard-strided", "optimized-strided", "lenet5-wide",
                "lenet5-wider", "lenet5-bn", "lenet5-deep", "mlp", "mlp-dropout"]  # fmt: skip
    assert list(models.BUILDERS) == expected == list(registry.names()) == list(_model_choices("robustness"))
    assert list(_model_choices("train")) == [*expected, "ensemble"]
    assert models.BUILDERS["lenet5-wide"] is models.wide_lenet5 and lenet_tf.wide_lenet5 is models.wide_lenet5
    assert set(options.OUTPUT_L2_MODELS) == {"optimized", "optimized-strided"}
    assert models.model_title("standard") == "standard LeNet" and models.model_title("gone") == "gone LeNet"


def test_the_command_line_reads_the_registry_without_tensorflow() -> None:
    """The names, builders and output-L2 models the command line uses are read from models.py's
    registrations without running it (no Keras), and equal the registry's entries once it runs."""
    code = (
        "import json, sys\n"
        "from lenet_tf import cli, registry\n"
        "cli.parse_args(['train', '--model', 'lenet5-bn'])\n"
        "try:\n"
        "    cli.parse_args(['evaluate', '--model', 'vgg'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 2\n"
        "heavy = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "print(json.dumps([heavy, registry.names(), registry.builder_names(), registry.names(output_l2=True)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    heavy, names, builders, output_l2 = json.loads(done.stdout.strip().splitlines()[-1])
    assert "unknown model 'vgg'; choose one of standard" in done.stderr
    entries = registry.entries()
    assert heavy == [] and names == list(entries)
    assert builders == {entry.builder.__name__: name for name, entry in entries.items()}
    assert output_l2 == [name for name, entry in entries.items() if entry.output_l2]


def test_registration_is_checked() -> None:
    def no_scale() -> None: ...

    def unit(*, input_scale: str = "unit") -> None: ...

    with pytest.raises(ValueError, match="takes input_scale="):
        register_model("no-scale", title="x")(no_scale)
    with pytest.raises(ValueError, match="'ensemble' is taken"):
        register_model("ensemble", title="x")(unit)
    with pytest.raises(ValueError, match="use lower-case letters"):
        register_model("Big Net", title="x")(unit)
    with pytest.raises(ValueError, match="'standard' is registered already"):
        register_model("standard", title="x")(unit)
    assert models.BUILDERS["standard"] is models.standard_lenet


def _table(path: Path, heading: str = "## Models") -> list[list[str]]:
    """The cells of the first Markdown table under ``heading``."""
    text = path.read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1]
    rows = [line for line in text.split("\n## ", 1)[0].splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]  # header, rule


@pytest.mark.parametrize("doc", ["README.md", "docs/api.md"])
def test_the_docs_model_tables_name_every_registered_model(doc: str) -> None:
    """A model registered without its row in the docs' tables fails here (and a row naming a model
    or builder no longer registered)."""
    rows = _table(ROOT / doc)
    named = {name for row in rows for name in re.findall(r"`([a-z0-9][a-z0-9-]*)`", row[0])}
    builders = {name for row in rows for name in re.findall(r"`(\w+)\(", row[1])}
    entries = registry.entries()
    assert named == set(entries), f"{doc}: missing {set(entries) - named}, not registered {named - set(entries)}"
    assert builders == {e.builder.__name__ for e in entries.values()}, f"{doc}: the builder column"


def test_the_command_line_docs_list_every_registered_model() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    paragraph = text.split("MODEL is any registered model", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"`([a-z0-9][a-z0-9-]*)`", paragraph.split(";", 1)[0])
    assert listed == list(registry.names())


# Item 9: the scripts' command lines come from the option specs ----------------------------------


def _explore_script() -> Any:
    spec = importlib.util.spec_from_file_location("explore_script", ROOT / "preliminary" / "explore.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _levers() -> Any:
    from lenet_tf.experiments import levers

    return levers


def _benchmark() -> Any:
    from lenet_tf.experiments import benchmark

    return benchmark


SCRIPTS = {
    "levers": (_levers, options.LeversOptions, ["--max-train", "0"], "argument --max-train: must be an integer ≥ 1"),
    "benchmark": (_benchmark, options.BenchmarkOptions, ["--quick=yes"], "argument --quick: ignored explicit"),
    "explore": (_explore_script, options.ExploreOptions, ["--members", "0"], "argument --members: must be an integer"),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_script_refuses_a_bad_value_in_one_line(name: str, capsys) -> None:
    load, _spec, argv, message = SCRIPTS[name]
    with pytest.raises(SystemExit) as refused:
        load().main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert refused.value.code == 2 and len(err) == 1, err
    assert err[0].startswith(f"{name}: error: {message}"), err


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_scripts_defaults_are_its_specs(name: str) -> None:
    load, spec, _argv, _message = SCRIPTS[name]
    parsed = vars(load().build_parser().parse_args([]))
    for f, opt in options.option_fields(spec):
        assert parsed[options.dest(f.name, opt)] == f.default, f.name
    assert parsed["data"] is None


def test_a_scripts_rules_are_the_specs() -> None:
    """explore's --members needs --model-run (ExploreOptions' rule), refused as lenet-tf explore refuses it."""
    with pytest.raises(SystemExit) as refused:
        _explore_script().build_parser().parse_checked(["--members", "2"])
    assert refused.value.code == 2
