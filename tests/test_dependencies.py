"""What the package needs of its dependencies beyond their public API, named so that an upgrade
that removes it fails here, in one place, instead of in the middle of a search (issue 29)."""

from __future__ import annotations

import configparser
import importlib
import re
import sys
from pathlib import Path

import keras_tuner

ROOT = Path(__file__).resolve().parents[1]


def test_the_private_keras_tuner_parts_the_distributed_search_uses_are_there() -> None:
    # experiments/tuning.py serves the oracle itself (a faster, failure-aware chief loop) and
    # counts Hyperband's epochs from its private schedule: keras-tuner offers neither publicly.
    protos = importlib.import_module("keras_tuner.src.protos")
    chief = importlib.import_module("keras_tuner.src.distribute.oracle_chief")
    assert callable(protos.get_service_grpc().add_OracleServicer_to_server)
    assert hasattr(chief, "OracleServicer")
    oracle = keras_tuner.oracles.HyperbandOracle(objective=keras_tuner.Objective("val_accuracy", "max"), max_epochs=9)
    assert oracle._get_num_brackets() >= 1
    assert oracle._get_size(0, 0) >= 1 and oracle._get_epochs(0, 0) >= 1
    assert hasattr(oracle, "_retry_queue")


def test_keras_tuner_is_pinned_to_the_tested_minor_release() -> None:
    requires = _requirements()
    assert requires["keras-tuner"] == ">=1.4.7,<1.5", "the private use above is tested on 1.4 only"
    assert keras_tuner.__version__.startswith("1.4.")


def test_every_imported_third_party_package_is_declared() -> None:
    # Ray is optional (the cluster executor imports it only when asked for): declared in its extra.
    assert _requirements("cluster") == {"ray": ">=2.60,<2.61"}
    assert "'.[dev,cluster]'" in (ROOT / "Makefile").read_text()  # make install (and so CI) tests it
    declared = set(_requirements()) | set(_requirements("cluster"))
    imported = set()
    for path in (ROOT / "lenet_tf").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for plain, source in re.findall(r"^\s*(?:import ([a-z_]+)|from ([a-z_]+)[a-z_.]* import )", text, re.MULTILINE):
            imported.add(plain or source)
    distributions = {"sklearn": "scikit-learn", "keras_tuner": "keras-tuner", "grpc": "grpcio", "yaml": "pyyaml"}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    missing = {distributions.get(n, n) for n in imported - stdlib - {"lenet_tf"}} - declared
    assert not missing, f"imported but not declared in setup.cfg: {sorted(missing)}"


def test_the_constraints_file_pins_what_make_install_installs() -> None:
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split("\n") if "==" in line)
    for name in ("tensorflow", "keras", "keras-tuner", "numpy", "scikit-learn", "scipy", "pandas", "matplotlib"):
        assert name in {k.lower().replace("_", "-") for k in pins}, name
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def _requirements(extra: str | None = None) -> dict[str, str]:
    """setup.cfg's install_requires (or the ``extra``'s list): name → version range."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    found = {}
    lines = parser["options.extras_require"][extra] if extra else parser["options"]["install_requires"]
    for line in lines.split("\n"):
        line = line.split("#")[0].strip()
        if line:
            name, spec = re.match(r"([A-Za-z0-9_.\-\[\]]+)\s*(.*)", line).groups()
            found[re.sub(r"\[.*\]", "", name).lower()] = spec.replace(" ", "")
    return found
