"""The model registry: one registration beside each builder feeds every list of models.

A builder in :mod:`lenet_tf.models` is registered where it is defined::

    @register_model("lenet5-wide", title="wide LeNet-5 (ReLU, max pooling)")
    def wide_lenet5(*, input_scale: str = OWN_SCALE) -> keras.Sequential: ...

The entry records the builder, the title reports give the model, its own input scale (the builder's
``input_scale`` default) and whether it takes ``output_l2`` (the dense L2 on its output layer). From
the entries come ``models.BUILDERS`` / ``TITLES`` / ``get_builder`` / ``own_input_scale`` /
``has_output_l2``, the builders ``lenet_tf`` exports at its top level, the command line's
``--model`` choices and ``options.OUTPUT_L2_MODELS``; tests check the docs' model tables against
them. :func:`unregister_model` takes a model out again (a test's toy model, for example).

This module imports neither TensorFlow nor Keras, and what the command line needs of the registry
(names, builder names, which take ``output_l2``) is known without running ``lenet_tf.models``,
whose ``import keras`` takes seconds: :func:`names` reads the ``@register_model`` lines of
``models.py`` (its source, parsed, not run) and adds the models registered at run time. So
``lenet-tf --help`` stays TensorFlow-free and a wrong ``--model`` is refused in one line before any
data is read or TensorFlow started, as every other option error is. The builders themselves
(:func:`entries`) import ``lenet_tf.models``. A test keeps the read declarations equal to the entries.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# `--model ensemble` is the command line's word for the study's ensemble (10 optimized LeNets), not a model.
ENSEMBLE = "ensemble"
# Names are command-line words: lower case, digits and hyphens (`lenet5-bn`).
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
# The module whose registrations are read without running it.
MODELS_MODULE = f"{__package__}.models"
_MODELS_SOURCE = Path(__file__).with_name("models.py")


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    name: str  # the command line's --model word
    builder: Callable[..., Any]  # takes no required argument; returns a compiled Keras model
    title: str  # how reports name it ("wide LeNet-5 (ReLU, max pooling)")
    input_scale: str  # the builder's input_scale default: the model's own scale
    output_l2: bool  # the builder takes output_l2 (its output layer can carry the dense L2)


class _Declared(NamedTuple):
    """What the command line needs of a model, readable without building it."""

    builder_name: str
    output_l2: bool


_ENTRIES: dict[str, ModelEntry] = {}
_REMOVED: set[str] = set()  # models of models.py unregistered since (its source still declares them)


def register_model(name: str, *, title: str) -> Callable[[F], F]:
    """Decorator registering a builder under ``name`` (see the module docstring); returns it unchanged.

    The builder must take ``input_scale`` with a default (the model's own scale); a name already
    registered to another builder, or not a command-line word, raises ValueError."""
    from .options import INPUT_SCALES  # options imports this module: looked up when a model registers

    def register(builder: F) -> F:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name == ENSEMBLE:
            raise ValueError(f"model name {name!r}: use lower-case letters, digits and '-' ({ENSEMBLE!r} is taken)")
        parameters = inspect.signature(builder).parameters
        scale = parameters["input_scale"].default if "input_scale" in parameters else None
        if scale not in INPUT_SCALES:
            raise ValueError(f"{builder.__qualname__}: a registered builder takes input_scale= one of "
                             f"{', '.join(INPUT_SCALES)} as its default (the model's own scale)")  # fmt: skip
        known = _ENTRIES.get(name)
        if known is not None and _qualified(known.builder) != _qualified(builder):  # a module reload re-registers
            raise ValueError(f"model {name!r} is registered already, to {_qualified(known.builder)}")
        _ENTRIES[name] = ModelEntry(name, builder, title, scale, "output_l2" in parameters)
        _REMOVED.discard(name)
        return builder

    return register


def unregister_model(name: str) -> ModelEntry:
    """Take model ``name`` out of the registry (KeyError if it is not registered); return its entry."""
    entry = entries()[name]
    del _ENTRIES[name]
    if name in (_declared() or {}):
        _REMOVED.add(name)
    return entry


def entries() -> Mapping[str, ModelEntry]:
    """The registered models by name, in registration order (imports ``lenet_tf.models``, hence Keras)."""
    importlib.import_module(MODELS_MODULE)
    return MappingProxyType(_ENTRIES)


def _qualified(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


@functools.cache
def _declared() -> dict[str, _Declared] | None:
    """The ``@register_model`` lines of models.py, read from its source (None: it cannot be read, or a
    registration is not written with a literal name, and the module must be run instead)."""
    try:
        tree = ast.parse(_MODELS_SOURCE.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    found: dict[str, _Declared] = {}
    for node in tree.body:
        calls = [d for d in getattr(node, "decorator_list", ()) if isinstance(d, ast.Call)]
        for call in calls:
            if getattr(call.func, "id", getattr(call.func, "attr", None)) != "register_model":
                continue
            first = call.args[0] if call.args else None
            literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
            if not (literal and isinstance(node, ast.FunctionDef)):
                return None
            parameters = {a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)}
            found[first.value] = _Declared(node.name, "output_l2" in parameters)
    return found


def _catalogue() -> dict[str, _Declared]:
    """Every registered model by name without running models.py: its declarations (less those
    unregistered since), then those registered at run time (which win)."""
    declared = _declared()
    if declared is None:
        entries()  # the source cannot be read: run models.py (it registers its models)
        declared = {}
    found = {name: info for name, info in declared.items() if name not in _REMOVED}
    for name, entry in _ENTRIES.items():
        found[name] = _Declared(entry.builder.__name__, entry.output_l2)
    return found


def names(*, output_l2: bool | None = None) -> tuple[str, ...]:
    """The registered models' names, in registration order (``output_l2``: only those that do, or
    do not, take it). Imports no TensorFlow."""
    return tuple(name for name, info in _catalogue().items() if output_l2 is None or info.output_l2 == output_l2)


def builder_names() -> dict[str, str]:
    """Each registered builder's function name → its model's name (``lenet_tf`` exports the
    builders under their function names). Imports no TensorFlow."""
    return {info.builder_name: name for name, info in _catalogue().items()}


class ModelNames(Collection[str]):
    """The registered models' names as a live collection, read when used, never when made: the
    command line's ``--model`` choices (building the parser reads nothing) and
    ``options.OUTPUT_L2_MODELS``. ``output_l2`` keeps the models that do (or do not) take it;
    ``extra`` are words accepted besides (``ensemble``)."""

    def __init__(self, *, output_l2: bool | None = None, extra: tuple[str, ...] = ()) -> None:
        self._output_l2 = output_l2
        self._extra = extra

    def _now(self) -> tuple[str, ...]:
        return (*names(output_l2=self._output_l2), *self._extra)

    def __iter__(self) -> Iterator[str]:
        return iter(self._now())

    def __contains__(self, value: object) -> bool:
        return value in self._now()

    def __len__(self) -> int:
        return len(self._now())

    def __repr__(self) -> str:
        return f"ModelNames{self._now()!r}"

    def __deepcopy__(self, memo: dict[int, Any]) -> ModelNames:
        return self  # a view of the registry: a copy (options.override copies option metadata) is the same view

    def refusal(self, value: str) -> str:
        """The message refusing ``value``: the one :func:`lenet_tf.models.get_builder` gives."""
        return f"unknown model {value!r}; choose one of {', '.join(self)}"


class EntryView(Mapping[str, Any]):
    """One field of every entry by model name, live (``models.BUILDERS``: the builders, ``TITLES``)."""

    def __init__(self, field: str) -> None:
        self._field = field

    def __getitem__(self, name: str) -> Any:
        return getattr(_ENTRIES[name], self._field)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_ENTRIES))

    def __len__(self) -> int:
        return len(_ENTRIES)

    def __repr__(self) -> str:
        return repr(dict(self))
