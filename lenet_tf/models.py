"""LeNet builders: compiled Keras ``Sequential`` models, pure functions of their hyperparameters.

* :func:`standard_lenet` — the reference study's LeNet (15,626 parameters).
* :func:`classic_lenet5` — LeCun et al. 1998 as commonly reproduced (61,706 parameters).
* :func:`lenet5` — the LeNet-5 topology with chosen widths, activation, pooling and dropout;
  :func:`wide_lenet5` (120,382 parameters) and :func:`wider_lenet5` (496,138) are ReLU /
  max-pooling variants; :func:`bn_lenet5` (465,578) adds batch normalisation (the flagship
  ensemble's member).
* :func:`lenet` — the general builder over the 12 searchable hyperparameters of the study.
* :func:`optimized_lenet` — :func:`lenet` with the study's best hyperparameters (or a search's).
* :func:`study_lenet` — the standard LeNet with a chosen activation, weight initializer, dropout
  and optimizer (the training studies vary one of these at a time).
* :func:`mlp` — a fully connected baseline, 784 → 512 → 256 → 128 → 10 (ReLU, optional dropout).

Every model takes images of shape (28, 28, 1) as Kaggle gives them, pixels 0–255 (float32, see
:func:`lenet_tf.data.prepare`), and scales them itself: its first layer is a ``Rescaling`` named
``input_scale``, so a saved ``.keras`` file predicts raw Kaggle pixels. ``input_scale="unit"``
divides by 255; ``"raw"`` feeds 0–255 on, as the reference study's code does (its L2 strengths and
Adam rate were searched at that scale). Each builder's default is its model's own: raw for the
reference study's LeNets (standard, optimized and their variants), unit for the LeNet-5s and the
MLP. Every model returns class probabilities, so any of them can be an ensemble member. Weight
initialisation draws from Keras' global seed: set it with :func:`lenet_tf.training.set_seed` before building.

Each model is registered where its builder is defined, ``@register_model(name, title=…)``
(:mod:`lenet_tf.registry`): :data:`BUILDERS`, :data:`TITLES`, :func:`get_builder`,
:func:`own_input_scale`, :func:`has_output_l2`, the builders ``lenet_tf`` exports, the command
line's ``--model`` choices and ``options.OUTPUT_L2_MODELS`` all come from those registrations. Adding
a model is writing its builder here with the decorator, and a row in the docs' model tables (a test
checks them).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import keras
from keras import layers, regularizers

from .data import IMAGE_SIDE, N_CLASSES, PIXEL_MAX
from .errors import LenetError
from .options import INPUT_SCALES, default_out
from .registry import EntryView, ModelEntry, ModelNames, entries, register_model

INPUT_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 1)
LEARNING_RATE = 1e-3
ACTIVATIONS = ("sigmoid", "relu", "gelu", "elu", "tanh")
# Keras initializer names the studies compare: N(0, 0.05²), Glorot/Xavier (Keras' default), He.
INITIALIZERS = ("random_normal", "glorot_uniform", "glorot_normal", "he_normal", "he_uniform")
# study_lenet's optimizers: plain SGD, SGD with momentum 0.9, SGD whose rate drops tenfold at two
# boundaries (step decay), Adam.
OPTIMIZERS = ("sgd", "momentum", "step_decay", "adam")
MOMENTUM = 0.9
MLP_UNITS = (512, 256, 128)
MLP_DROPOUT = 0.2  # the "mlp-dropout" model's rate

# The reference study's search space (its section 3), one entry per hyperparameter.
SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "kernel_size_1": {"values": (3, 5, 7)},
    "kernel_size_2": {"values": (3, 5, 7)},
    "filters_1": {"values": (3, 5, 7, 9, 11, 13)},
    "filters_2": {"values": (3, 5, 7, 9, 11, 13)},
    "conv_activation": {"values": ACTIVATIONS},
    "conv_l2": {"min": 1e-6, "max": 1e-2, "log": True},
    "pool_size_1": {"values": (2, 4)},
    "pool_size_2": {"values": (2, 4)},
    "units_1": {"values": (32, 64, 128, 256)},
    "units_2": {"values": (32, 64, 128, 256)},
    "dense_activation": {"values": ACTIVATIONS},
    "dense_l2": {"min": 1e-6, "max": 1e-2, "log": True},
}


@dataclass(frozen=True)
class LeNetHParams:
    """The 12 hyperparameters of the study's LeNet topology (conv-pool-conv-pool-GAP-dense-dense)."""

    kernel_size_1: int
    kernel_size_2: int
    filters_1: int
    filters_2: int
    conv_activation: str
    conv_l2: float
    pool_size_1: int
    pool_size_2: int
    units_1: int
    units_2: int
    dense_activation: str
    dense_l2: float

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "hyperparameters") -> LeNetHParams:
        """Build from a mapping; unknown or missing keys raise a LenetError naming them."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise LenetError(f"{source}: unknown hyperparameter {unknown[0]!r}; known: {', '.join(names)}")
        missing = [name for name in names if name not in values]
        if missing:
            raise LenetError(f"{source}: missing hyperparameter {missing[0]!r}")
        return cls(**{name: values[name] for name in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self, *, source: str = "hyperparameters") -> LeNetHParams:
        """Check every value against :data:`SEARCH_SPACE`; return self or raise LenetError."""
        for name, domain in SEARCH_SPACE.items():
            value = getattr(self, name)
            if "values" in domain:
                allowed = domain["values"]
                if isinstance(value, bool) or value not in allowed:
                    raise LenetError(
                        f"{source}: {name}={value!r} is not allowed; choose one of "
                        + ", ".join(str(v) for v in allowed)
                    )
            else:
                low, high = domain["min"], domain["max"]
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                if not ok or not math.isfinite(value) or not low <= value <= high:
                    raise LenetError(f"{source}: {name}={value!r} is not allowed; use a number in [{low:g}, {high:g}]")
        return self


# Where ``lenet-tf tune`` writes its best hyperparameters by default (relative to the working
# directory); the optimized LeNet of the CLI and make targets uses this file when it exists.
DEFAULT_BEST_HPARAMS = Path(default_out("tune")) / "best_hparams.json"  # tuning.BEST_FILE in tune's run
# ``--hparams preset``: the published values even when DEFAULT_BEST_HPARAMS exists.
PRESET = "preset"

# Published best values (reference study, section 3).
OPTIMIZED_HPARAMS = LeNetHParams(
    kernel_size_1=7,
    kernel_size_2=7,
    filters_1=13,
    filters_2=11,
    conv_activation="gelu",
    conv_l2=4.13e-4,
    pool_size_1=2,
    pool_size_2=4,
    units_1=64,
    units_2=256,
    dense_activation="gelu",
    dense_l2=1.43e-3,
)


# The factor each input scale multiplies Kaggle's 0–255 pixels by (options.INPUT_SCALES names them).
SCALE_FACTORS = {"unit": 1.0 / PIXEL_MAX, "raw": 1.0}
assert tuple(SCALE_FACTORS) == INPUT_SCALES
# The reference study's LeNets see raw pixels (its code never divides by 255); the package's
# LeNet-5s and MLP were designed, tuned and measured on [0, 1].
REFERENCE_SCALE, OWN_SCALE = "raw", "unit"


def _input(input_scale: str) -> list[keras.layers.Layer]:
    """The input and its scaling, inside the model so a saved model takes Kaggle's pixels as they are."""
    if input_scale not in SCALE_FACTORS:
        raise LenetError(f"input_scale must be one of {', '.join(SCALE_FACTORS)}, got {input_scale!r}")
    return [keras.Input(shape=INPUT_SHAPE), layers.Rescaling(SCALE_FACTORS[input_scale], name="input_scale")]


def input_scale_of(model: keras.Model) -> str | None:
    """The input scale a model built here applies (None: a model without the ``input_scale`` layer,
    saved by a lenet_tf before issue 31, which expected pixels already divided by 255)."""
    try:
        layer = model.get_layer("input_scale")
    except ValueError:
        return None
    return next((name for name, factor in SCALE_FACTORS.items() if math.isclose(layer.scale, factor)), None)


def _compile(model: keras.Sequential, optimizer: keras.optimizers.Optimizer) -> keras.Sequential:
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _adam() -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=LEARNING_RATE, beta_1=0.9, beta_2=0.999)


def _l2(value: float) -> regularizers.Regularizer | None:
    return regularizers.L2(value) if value > 0 else None


def _study_topology(
    *,
    name: str,
    kernel_sizes: tuple[int, int],
    filters: tuple[int, int],
    conv_activation: str,
    conv_l2: float,
    pool_sizes: tuple[int, int],
    units: tuple[int, int],
    dense_activation: str,
    dense_l2: float,
    initializer: str | None = None,
    dropout: float = 0.0,
    optimizer: keras.optimizers.Optimizer | None = None,
    pool_stride: int | None = 1,
    input_scale: str = REFERENCE_SCALE,
    output_l2: bool = True,
) -> keras.Sequential:
    """The study's LeNet: same-padded convolutions and stride-1 average pooling, then global
    average pooling in place of Flatten (fewer parameters), two dense layers and softmax.

    ``pool_stride`` None strides each pooling by its own window (Keras' default, which halves or
    quarters the maps): the other reading of the reference's text, see :func:`strided_lenet`.

    ``output_l2`` puts the dense layers' L2 on the output layer's kernel too, as the reference's
    code does (the package before issue 31 left it off); ``input_scale`` see the module docstring.

    ``initializer`` (a Keras name) sets every kernel's initializer, ``dropout`` > 0 adds a
    Dropout after each hidden dense layer, ``optimizer`` replaces Adam(1e-3). The defaults leave
    the layers' own arguments untouched, so the study's models are exactly what they always were.
    """
    # Only pass kernel_initializer when asked: the Keras default must stay the untouched default.
    init: dict[str, Any] = {} if initializer is None else {"kernel_initializer": initializer}
    stack = _input(input_scale)
    for i in range(2):
        stack.append(
            layers.Conv2D(
                filters[i],
                kernel_sizes[i],
                padding="same",
                activation=conv_activation,
                kernel_regularizer=_l2(conv_l2),
                name=f"conv_{i + 1}",
                **init,
            )
        )
        stack.append(layers.AveragePooling2D(pool_sizes[i], strides=pool_stride, padding="valid", name=f"pool_{i + 1}"))
    stack.append(layers.GlobalAveragePooling2D(name="global_pool"))
    for i in range(2):
        stack.append(
            layers.Dense(
                units[i], activation=dense_activation, kernel_regularizer=_l2(dense_l2), name=f"dense_{i + 1}", **init
            )
        )
        if dropout > 0:
            stack.append(layers.Dropout(dropout, name=f"dropout_{i + 1}"))
    output = {"kernel_regularizer": _l2(dense_l2)} if output_l2 else {}
    stack.append(layers.Dense(N_CLASSES, activation="softmax", name="probabilities", **output, **init))
    return _compile(keras.Sequential(stack, name=name), optimizer if optimizer is not None else _adam())


# The standard LeNet in the searchable hyperparameters' terms (outside SEARCH_SPACE: 6 and 16
# filters, no L2), so the standard and the optimized LeNet share one builder.
STANDARD_HPARAMS = LeNetHParams(
    kernel_size_1=5,
    kernel_size_2=5,
    filters_1=6,
    filters_2=16,
    conv_activation="tanh",
    conv_l2=0.0,
    pool_size_1=2,
    pool_size_2=2,
    units_1=120,
    units_2=84,
    dense_activation="tanh",
    dense_l2=0.0,
)


def _from_hparams(hp: LeNetHParams, name: str, **options: Any) -> keras.Sequential:
    """:func:`_study_topology` with ``hp``'s values (``options``: its other arguments)."""
    return _study_topology(
        name=name,
        kernel_sizes=(hp.kernel_size_1, hp.kernel_size_2),
        filters=(hp.filters_1, hp.filters_2),
        conv_activation=hp.conv_activation,
        conv_l2=hp.conv_l2,
        pool_sizes=(hp.pool_size_1, hp.pool_size_2),
        units=(hp.units_1, hp.units_2),
        dense_activation=hp.dense_activation,
        dense_l2=hp.dense_l2,
        **options,
    )


@register_model("standard", title="standard LeNet")
def standard_lenet(*, input_scale: str = REFERENCE_SCALE) -> keras.Sequential:
    """The reference study's LeNet: Conv(6, 5×5, tanh) → AvgPool(2, stride 1) → Conv(16, 5×5, tanh)
    → AvgPool(2, stride 1) → GlobalAvgPool → Dense(120, tanh) → Dense(84, tanh) → Dense(10);
    Adam(1e-3). 15,626 parameters."""
    return _from_hparams(STANDARD_HPARAMS, "standard_lenet", input_scale=input_scale)


@register_model("classic", title="classic LeNet")
def classic_lenet5(*, input_scale: str = OWN_SCALE) -> keras.Sequential:
    """LeNet-5 (LeCun et al. 1998) as commonly reproduced: 28×28 zero-padded to 32×32,
    Conv(6, 5×5, tanh) → AvgPool 2/2 → Conv(16, 5×5, tanh) → AvgPool 2/2 → Flatten(400)
    → Dense(120, tanh) → Dense(84, tanh) → Dense(10); SGD(0.01, momentum 0.9). 61,706 parameters."""
    return lenet5(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9), name="classic_lenet5", input_scale=input_scale
    )


def make_optimizer(
    name: str, learning_rate: float, *, decay_steps: tuple[int, int] | None = None
) -> keras.optimizers.Optimizer:
    """A fresh optimizer: ``sgd``, ``momentum`` (SGD, momentum 0.9), ``step_decay`` (SGD whose rate
    is ``learning_rate``, then /10 once ``decay_steps[0]`` updates are done, /100 after
    ``decay_steps[1]``) or ``adam``."""
    if name not in OPTIMIZERS:
        raise LenetError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float) or not learning_rate > 0:
        raise LenetError(f"learning rate must be a positive number, got {learning_rate!r}")
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.999)
    if name == "step_decay":
        if decay_steps is None or len(decay_steps) != 2 or not 0 < decay_steps[0] < decay_steps[1]:
            raise LenetError(f"step_decay needs two increasing positive decay steps, got {decay_steps!r}")
        # The schedule sees the count of updates already done and keeps values[i] while it is
        # <= boundaries[i]: boundary s - 1 makes the s-th update (counting from 0) the first at the lower rate.
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[int(step) - 1 for step in decay_steps],
            values=[learning_rate, learning_rate / 10, learning_rate / 100],
        )
        return keras.optimizers.SGD(learning_rate=schedule)
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=MOMENTUM if name == "momentum" else 0.0)


def study_lenet(
    *,
    activation: str = "tanh",
    initializer: str = "glorot_uniform",
    dropout: float = 0.0,
    optimizer: str = "adam",
    learning_rate: float = LEARNING_RATE,
    decay_steps: tuple[int, int] | None = None,
    input_scale: str = REFERENCE_SCALE,
) -> keras.Sequential:
    """The standard LeNet's topology (15,626 parameters) with one activation for every hidden
    layer, a kernel initializer, dropout after the hidden dense layers and an optimizer (see
    :func:`make_optimizer`). The defaults build the standard LeNet itself."""
    if activation not in ACTIVATIONS:
        raise LenetError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if initializer not in INITIALIZERS:
        raise LenetError(f"unknown initializer {initializer!r}; choose one of {', '.join(INITIALIZERS)}")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise LenetError(f"dropout must be a rate in [0, 1), got {dropout!r}")
    return _from_hparams(
        replace(STANDARD_HPARAMS, conv_activation=activation, dense_activation=activation),
        "study_lenet",
        initializer=initializer,
        dropout=float(dropout),
        optimizer=make_optimizer(optimizer, learning_rate, decay_steps=decay_steps),
        input_scale=input_scale,
    )


def lenet(
    hparams: LeNetHParams | Mapping[str, Any], *, input_scale: str = REFERENCE_SCALE, output_l2: bool = True
) -> keras.Sequential:
    """The study's LeNet topology with searchable hyperparameters (validated against
    :data:`SEARCH_SPACE`; a value outside its domain raises LenetError naming it); ``output_l2``
    (the reference's way) regularises the output layer with the dense L2 too."""
    if not isinstance(hparams, LeNetHParams):
        hparams = LeNetHParams.from_dict(hparams)
    return _from_hparams(hparams.validate(), "lenet", input_scale=input_scale, output_l2=output_l2)


def load_hparams(path: str | Path) -> LeNetHParams:
    """Read hyperparameters from JSON (a flat object, or one with a ``"hparams"`` entry)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise LenetError(f"{path}: no such file") from exc
    except OSError as exc:
        raise LenetError(f"{path}: cannot read ({exc.strerror})") from exc
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # JSON is UTF-8 (RFC 8259); editors may start it with a BOM
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, byte = raw.count(b"\n", 0, exc.start) + 1, raw[exc.start]
        raise LenetError(f"{path}: line {line}: byte 0x{byte:02x} is not UTF-8 text (JSON is UTF-8)") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LenetError(f"{path}: line {exc.lineno}: malformed JSON ({exc.msg})") from exc
    except RecursionError:
        raise LenetError(f"{path}: JSON nested too deeply to be hyperparameters") from None
    except ValueError:  # Python refuses to convert an integer of over 4,300 digits
        raise LenetError(f"{path}: an integer of thousands of digits, not a hyperparameter") from None
    if isinstance(payload, dict) and isinstance(payload.get("hparams"), dict):
        payload = payload["hparams"]
    if not isinstance(payload, dict):
        raise LenetError(f"{path}: expected a JSON object of hyperparameters")
    try:
        return LeNetHParams.from_dict(payload, source=str(path)).validate(source=str(path))
    except OverflowError:  # an integer too large for a float, where a number in a range is expected
        raise LenetError(f"{path}: a number too large for any hyperparameter") from None


@register_model("optimized", title="optimized LeNet")
def optimized_lenet(
    hparams: LeNetHParams = OPTIMIZED_HPARAMS, *, input_scale: str = REFERENCE_SCALE, output_l2: bool = True
) -> keras.Sequential:
    """:func:`lenet` with the study's published best hyperparameters (or those given)."""
    model = lenet(hparams, input_scale=input_scale, output_l2=output_l2)
    model.name = "optimized_lenet"
    return model


@register_model("standard-strided", title="standard LeNet, pooling strided by its window")
def strided_standard_lenet(*, input_scale: str = REFERENCE_SCALE) -> keras.Sequential:
    """:func:`standard_lenet` with each pooling strided by its own window (see :func:`strided_lenet`)."""
    return _from_hparams(STANDARD_HPARAMS, "strided_standard_lenet", pool_stride=None, input_scale=input_scale)


@register_model("optimized-strided", title="optimized LeNet, pooling strided by its window")
def strided_lenet(
    hparams: LeNetHParams = OPTIMIZED_HPARAMS, *, input_scale: str = REFERENCE_SCALE, output_l2: bool = True
) -> keras.Sequential:
    """:func:`optimized_lenet` with each pooling strided by its own window, not by 1.

    The reference's text says stride (1, 1) "with a valid padding to perform downsampling", which
    a stride of 1 does not do (a 2×2 window trims one row and column); Keras' default stride, the
    window itself, does, and leaves the parameter count (27,646) the same, so the text cannot
    tell the two readings apart. This one halves, then quarters the maps: 28 → 14 → 3 for the
    published hyperparameters, so each of the 11 channels the global pooling averages has seen
    26×26 pixels instead of 17×17. The registry's ``*-strided`` models measure the difference.
    """
    return _from_hparams(
        hparams.validate(), "strided_lenet", pool_stride=None, input_scale=input_scale, output_l2=output_l2
    )


# Batch-norm momentum of the normalised members: see bn_lenet5 for why not Keras' 0.99.
SMALL_DATA_BN_MOMENTUM = 0.9


def _normalised(layer: keras.layers.Layer, name: str, activation: str, momentum: float) -> list[keras.layers.Layer]:
    """``layer`` → BatchNormalization → ``activation``: the pre-activations are normalised, so the
    layer's bias is dropped (the normalisation's shift replaces it)."""
    layer.use_bias = False
    normalise = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")
    return [layer, normalise, layers.Activation(activation, name=f"{name}_act")]


def lenet5(
    *,
    filters: tuple[int, int] = (6, 16),
    units: tuple[int, ...] = (120, 84),
    activation: str = "tanh",
    pooling: str = "average",
    dropout: float = 0.0,
    batch_norm: bool = False,
    bn_momentum: float = 0.99,
    dropout_before_output: bool = False,
    optimizer: keras.optimizers.Optimizer | None = None,
    name: str = "lenet5",
    input_scale: str = OWN_SCALE,
) -> keras.Sequential:
    """The LeNet-5 topology: 28×28 zero-padded to 32×32, Conv(``filters[0]``, 5×5) → Pool 2/2
    → Conv(``filters[1]``, 5×5) → Pool 2/2 → Flatten → Dense(``units[0]``) → Dense(``units[1]``) …
    → Dense(10, softmax); ``pooling`` ``average`` (1998) or ``max``; ``dropout`` > 0 before each
    hidden dense layer (and before the output with ``dropout_before_output``); ``batch_norm``
    normalises every hidden layer before its activation, its moving statistics updated with
    ``bn_momentum`` (Keras' 0.99 by default). Compiled with ``optimizer`` (default Adam 1e-3)."""
    if activation not in ACTIVATIONS:
        raise LenetError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if pooling not in ("average", "max"):
        raise LenetError(f"pooling must be average or max, got {pooling!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise LenetError(f"dropout must be a rate in [0, 1), got {dropout!r}")
    if not units or any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in units):
        raise LenetError(f"units must be one or more positive integers, got {units!r}")
    if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, int | float) or not 0 <= bn_momentum < 1:
        raise LenetError(f"bn_momentum must be a number in [0, 1), got {bn_momentum!r}")
    pool = layers.AveragePooling2D if pooling == "average" else layers.MaxPooling2D

    def hidden(layer: keras.layers.Layer, layer_name: str) -> list[keras.layers.Layer]:
        return _normalised(layer, layer_name, activation, bn_momentum) if batch_norm else [layer]

    act = None if batch_norm else activation
    stack = [*_input(input_scale), layers.ZeroPadding2D(2, name="pad_to_32")]
    stack += hidden(layers.Conv2D(filters[0], 5, activation=act, name="c1"), "c1")
    stack.append(pool(2, strides=2, name="s2"))
    stack += hidden(layers.Conv2D(filters[1], 5, activation=act, name="c3"), "c3")
    stack += [pool(2, strides=2, name="s4"), layers.Flatten(name="flatten")]
    dense_names = ["c5", "f6"] + [f"f{7 + i}" for i in range(len(units) - 2)]
    for i, (count, layer_name) in enumerate(zip(units, dense_names, strict=False)):
        if dropout > 0:
            stack.append(layers.Dropout(dropout, name=f"dropout_{i + 1}"))
        stack += hidden(layers.Dense(count, activation=act, name=layer_name), layer_name)
    if dropout > 0 and dropout_before_output:
        stack.append(layers.Dropout(dropout, name=f"dropout_{len(units) + 1}"))
    stack.append(layers.Dense(N_CLASSES, activation="softmax", name="probabilities"))
    return _compile(keras.Sequential(stack, name=name), optimizer if optimizer is not None else _adam())


@register_model("lenet5-wide", title="wide LeNet-5 (ReLU, max pooling)")
def wide_lenet5(*, input_scale: str = OWN_SCALE) -> keras.Sequential:
    """LeNet-5 with ReLU, max pooling and wider convolutions,
    Conv(16) → MaxPool → Conv(32) → MaxPool → Dense(120) → Dense(84); Adam(1e-3).
    120,382 parameters."""
    return lenet5(filters=(16, 32), activation="relu", pooling="max", name="wide_lenet5", input_scale=input_scale)


@register_model("lenet5-wider", title="wider LeNet-5 (ReLU, max pooling, dropout)")
def wider_lenet5(*, input_scale: str = OWN_SCALE) -> keras.Sequential:
    """LeNet-5 with ReLU and max pooling, twice the wide one's widths, Conv(32) → MaxPool
    → Conv(64) → MaxPool → Dropout(0.3) → Dense(256) → Dropout(0.3) → Dense(128); Adam(1e-3). 496,138 parameters."""
    return lenet5(
        filters=(32, 64),
        units=(256, 128),
        activation="relu",
        pooling="max",
        dropout=0.3,
        name="wider_lenet5",
        input_scale=input_scale,
    )


@register_model("lenet5-bn", title="LeNet-5 with batch normalisation (32/64 filters, dropout)")
def bn_lenet5(*, input_scale: str = OWN_SCALE) -> keras.Sequential:
    """The flagship ensemble's member: LeNet-5 with batch normalisation, ReLU, max pooling and the
    wider one's convolutions, Conv(32)-BN → MaxPool → Conv(64)-BN → MaxPool → Dropout(0.3)
    → Dense(256)-BN → Dropout(0.3) → Dense(10); Adam(1e-3). 465,578 parameters.

    The normalisation's moving statistics use momentum 0.9, not Keras' 0.99: on the embedded
    5,000-digit sample the flagship makes only ~330 steps, and at 0.99 the statistics used at
    inference still lagged the trained weights (members 0.43-0.79 on validation, 0.97 in training).
    Measured 2026-12-02, flagship recipe: sample 0.648 -> 0.986 held-out (3 members); full Kaggle
    deployment split, one member, 0.9945 (0.99) vs 0.9944 (0.9): no loss on large data."""
    return lenet5(
        filters=(32, 64), units=(256,), activation="relu", pooling="max", dropout=0.3, batch_norm=True,
        bn_momentum=SMALL_DATA_BN_MOMENTUM, dropout_before_output=True, name="bn_lenet5", input_scale=input_scale,
    )  # fmt: skip


@register_model(
    "lenet5-deep",
    title="deep LeNet-5 (two 3×3 convolutions per 5×5, strided convolutions, batch normalisation)",
)
def deep_lenet5(*, input_scale: str = OWN_SCALE) -> keras.Sequential:
    """LeNet-5 with each 5×5 convolution replaced by two 3×3 ones (the same 5×5 receptive field,
    one more non-linearity) and each pooling by a strided 3×3 convolution, the shape of the
    strongest public Kaggle CNNs: 28×28 padded to 32 → [Conv(32, 3×3)-BN]×2 → Conv(32, 3×3,
    stride 2)-BN → Dropout(0.4) → [Conv(64, 3×3)-BN]×2 → Conv(64, 3×3, stride 2)-BN → Dropout(0.4)
    → Dense(128)-BN → Dropout(0.4) → Dense(10); ReLU, Adam(1e-3). 318,634 parameters; about 2.7×
    the flagship member's multiply-adds per image (16.7 M against 6.1 M).

    Batch-norm momentum 0.9 for the reason given in :func:`bn_lenet5` (few steps on small data)."""
    stack = [*_input(input_scale), layers.ZeroPadding2D(2, name="pad_to_32")]

    def conv(filters: int, name: str, strides: int = 1) -> list[keras.layers.Layer]:
        padding = "same" if strides > 1 else "valid"
        layer = layers.Conv2D(filters, 3, strides=strides, padding=padding, name=name)
        return _normalised(layer, name, "relu", SMALL_DATA_BN_MOMENTUM)

    for block, filters in ((1, 32), (2, 64)):
        stack += conv(filters, f"c{block}a") + conv(filters, f"c{block}b") + conv(filters, f"s{block}", strides=2)
        stack.append(layers.Dropout(0.4, name=f"dropout_{block}"))
    stack.append(layers.Flatten(name="flatten"))
    stack += _normalised(layers.Dense(128, name="f5"), "f5", "relu", SMALL_DATA_BN_MOMENTUM)
    stack.append(layers.Dropout(0.4, name="dropout_3"))
    stack.append(layers.Dense(N_CLASSES, activation="softmax", name="probabilities"))
    return _compile(keras.Sequential(stack, name="deep_lenet5"), _adam())


@register_model("mlp", title="fully connected network (MLP)")
def mlp(dropout: float = 0.0, *, input_scale: str = OWN_SCALE) -> keras.Sequential:
    """A fully connected baseline: Flatten(784) → Dense(512) → Dense(256) → Dense(128), ReLU, each
    hidden layer followed by Dropout(``dropout``) when > 0 → Dense(10, softmax); Adam(1e-3).
    567,434 parameters."""
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise LenetError(f"dropout must be a rate in [0, 1), got {dropout!r}")
    stack = [*_input(input_scale), layers.Flatten(name="flatten")]
    for i, units in enumerate(MLP_UNITS):
        stack.append(layers.Dense(units, activation="relu", name=f"dense_{i + 1}"))
        if dropout > 0:
            stack.append(layers.Dropout(dropout, name=f"dropout_{i + 1}"))
    stack.append(layers.Dense(N_CLASSES, activation="softmax", name="probabilities"))
    return _compile(keras.Sequential(stack, name="mlp" if dropout == 0 else "mlp_dropout"), _adam())


@register_model("mlp-dropout", title=f"fully connected network (MLP, dropout {MLP_DROPOUT})")
def mlp_dropout(*, input_scale: str = OWN_SCALE) -> keras.Sequential:
    """:func:`mlp` with Dropout(0.2) after each hidden layer."""
    return mlp(dropout=MLP_DROPOUT, input_scale=input_scale)


# Live views of the registry (lenet_tf.registry), which the @register_model lines above fill:
# name → builder taking no arguments (the CLI, the ensemble and the studies look models up here),
# name → the title reports give the model.
BUILDERS: Mapping[str, Callable[[], keras.Sequential]] = EntryView("builder")
TITLES: Mapping[str, str] = EntryView("title")


def model_title(name: str) -> str:
    """A registered model's name for report titles: ``standard LeNet``, ``fully connected network (MLP)``
    (``NAME LeNet`` for a name no longer registered, as an old run may record)."""
    return TITLES.get(name, f"{name} LeNet")


def get_builder(name: str) -> Callable[[], keras.Sequential]:
    """The builder registered under ``name``; an unknown name raises LenetError listing the known."""
    return _entry(name).builder


def _entry(name: str) -> ModelEntry:
    try:
        return entries()[name]
    except KeyError:
        raise LenetError(ModelNames().refusal(name)) from None


def own_input_scale(name: str) -> str:
    """The input scale model ``name`` is built with unless told otherwise (its builder's default)."""
    return _entry(name).input_scale


def has_output_l2(name: str) -> bool:
    """Whether model ``name``'s output layer can carry the dense L2 (the optimized LeNets)."""
    return _entry(name).output_l2


def resolve_model(
    name: str,
    hparams_path: str | Path | None = None,
    *,
    input_scale: str | None = None,
    output_l2: bool = True,
    echo: Callable[[str], None] | None = None,
) -> tuple[Callable[[], keras.Model], dict[str, Any]]:
    """The builder for ``name`` and a description of it for the run's configuration.

    For ``optimized`` without ``hparams_path`` the search's result :data:`DEFAULT_BEST_HPARAMS`
    is used when it exists (relative to the working directory), else the published preset;
    ``hparams_path="preset"`` asks for the preset explicitly. ``echo`` is told which was used.
    ``input_scale`` None is the model's own (:func:`own_input_scale`); ``output_l2`` False leaves
    an optimized LeNet's output layer without L2 (only models that have it may turn it off).
    The description records both, so a run recorded before they existed is never resumed as one.
    """
    builder = get_builder(name)
    if hparams_path is not None and name != "optimized":
        raise LenetError(f"--hparams applies to --model optimized only, not {name!r}")
    if not output_l2 and not has_output_l2(name):
        raise LenetError(f"output_l2 applies to the optimized LeNets only (their dense L2), not {name!r}")
    scale = own_input_scale(name) if input_scale is None else input_scale
    if scale not in SCALE_FACTORS:
        raise LenetError(f"input_scale must be one of {', '.join(SCALE_FACTORS)}, got {scale!r}")
    l2 = {"output_l2": output_l2} if has_output_l2(name) else {}
    info = {
        "name": name, "hparams": None, "hparams_source": None, "input_scale": scale, "output_l2": l2.get("output_l2"),
    }  # fmt: skip
    options = {"input_scale": scale, **l2}
    if name != "optimized":
        return functools.partial(builder, **options), info
    preset = {**info, "hparams": OPTIMIZED_HPARAMS.to_dict(), "hparams_source": "preset"}
    note = ""
    if hparams_path is None:
        if not DEFAULT_BEST_HPARAMS.is_file():
            _say(echo, f"optimized LeNet: the published hyperparameters (no search result at {DEFAULT_BEST_HPARAMS})")
            return functools.partial(builder, **options), preset
        hparams_path = DEFAULT_BEST_HPARAMS
        note = ", the search's best (--hparams preset for the published ones)"
    if str(hparams_path) == PRESET:
        _say(echo, "optimized LeNet: the published hyperparameters (--hparams preset)")
        return functools.partial(builder, **options), preset
    hparams = load_hparams(hparams_path)
    _say(echo, f"optimized LeNet: hyperparameters from {hparams_path}{note}")
    found = {**info, "hparams": hparams.to_dict(), "hparams_source": str(hparams_path)}
    return functools.partial(lenet, hparams, **options), found


def _say(echo: Callable[[str], None] | None, message: str) -> None:
    if echo is not None:
        echo(message)


def load_saved_model(path: str | Path) -> keras.Model:
    """A model saved by :func:`lenet_tf.rundir.save_model`; a damaged file, or a model saved by a
    lenet_tf before 0.2.0 (no ``input_scale`` layer: it expected pixels already divided by 255 and
    would predict Kaggle's raw pixels wrong), raises LenetError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise LenetError(f"{path}: no such file")
    try:
        model = keras.models.load_model(path)
    except Exception as exc:  # keras raises several types (ValueError "File not found" for a truncated zip)
        kind = type(exc).__name__
        raise LenetError(f"{path}: cannot load the model: the file is damaged or not a Keras model ({kind})") from exc
    if input_scale_of(model) is None:
        raise LenetError(f"{path}: saved by a lenet_tf before 0.2.0, whose models take pixels divided by 255;"
                         " retrain it with this version")  # fmt: skip
    return model
