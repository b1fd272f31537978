from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lenet_tf.errors import LenetError
from lenet_tf.models import (
    BUILDERS,
    OPTIMIZED_HPARAMS,
    SEARCH_SPACE,
    LeNetHParams,
    classic_lenet5,
    get_builder,
    lenet,
    lenet5,
    load_hparams,
    make_optimizer,
    mlp,
    model_title,
    optimized_lenet,
    standard_lenet,
    study_lenet,
)
from lenet_tf.training import set_seed


def test_parameter_counts_match_the_references() -> None:
    assert standard_lenet().count_params() == 15_626
    assert classic_lenet5().count_params() == 61_706
    # conv 7x7x1x13+13, conv 7x7x13x11+11, dense 11*64+64, 64*256+256, 256*10+10
    assert optimized_lenet().count_params() == (650 + 7_018) + (768 + 16_640 + 2_570) == 27_646


@pytest.mark.parametrize(
    ("name", "strided", "sides"),
    [
        ("standard", "standard-strided", [(27, 27), (26, 26), (14, 14), (7, 7)]),
        ("optimized", "optimized-strided", [(27, 27), (24, 24), (14, 14), (3, 3)]),
    ],
)
def test_the_strided_reading_differs_only_in_its_pooling_strides(name: str, strided: str, sides: list) -> None:
    set_seed(3)
    text_reading = get_builder(name)()
    set_seed(3)
    keras_reading = get_builder(strided)()
    pools = [layer for layer in keras_reading.layers if type(layer).__name__ == "AveragePooling2D"]
    assert [p.strides for p in pools] == [p.pool_size for p in pools]  # stride = window
    assert [tuple(text_reading.layers[i].output.shape[1:3]) for i in (2, 4)] == sides[:2]
    assert [tuple(keras_reading.layers[i].output.shape[1:3]) for i in (2, 4)] == sides[2:]
    # The same layers, parameter count and (same seed) initial weights: only the maps' sizes differ.
    assert [type(a) for a in text_reading.layers] == [type(b) for b in keras_reading.layers]
    for mine, theirs in zip(text_reading.get_weights(), keras_reading.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_standard_topology_and_optimizer() -> None:
    model = standard_lenet()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Rescaling", "Conv2D", "AveragePooling2D", "Conv2D", "AveragePooling2D", "GlobalAveragePooling2D", "Dense",
        "Dense", "Dense",
    ]  # fmt: skip
    assert model.layers[2].strides == (1, 1) and model.layers[1].padding == "same"
    assert model.layers[1].activation.__name__ == "tanh"
    assert type(model.optimizer).__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert type(classic_lenet5().optimizer).__name__ == "SGD"


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_model_maps_28x28_images_to_probabilities(name: str) -> None:
    model = get_builder(name)()
    images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    probabilities = np.asarray(model(images))
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_batch_normalised_lenet5() -> None:
    model = get_builder("lenet5-bn")()
    # conv 5x5x1x32 and 5x5x32x64 without biases, dense 1600x256 without bias, 256x10+10, and
    # 4 figures per normalised channel (32 + 64 + 256 channels).
    assert model.count_params() == 800 + 51_200 + 409_600 + 2_570 + 4 * (32 + 64 + 256) == 465_578
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchNormalization") == 3 and kinds.count("Dropout") == 2
    assert not model.get_layer("c1").use_bias and kinds[-2] == "Dropout"
    with pytest.raises(LenetError, match="units must be one or more positive integers"):
        lenet5(units=())


def test_deep_lenet5_keeps_lenet5s_receptive_fields_with_3x3_pairs() -> None:
    model = get_builder("lenet5-deep")()
    # 3x3 convs without biases: 1->32, 32->32, 32->32 (strided), 32->64, 64->64, 64->64 (strided);
    # dense 5*5*64 -> 128 without bias, 128x10+10; 4 figures per normalised channel.
    convs = 9 * (32 + 32 * 32 * 2 + 32 * 64 + 64 * 64 * 2)
    assert model.count_params() == convs + 1600 * 128 + 1_290 + 4 * (3 * 32 + 3 * 64 + 128) == 318_634
    # Two valid 3x3 convolutions shrink the padded 32x32 as one 5x5 does (28), the strided one halves it.
    assert model.get_layer("c1b").output.shape[1:3] == (28, 28) and model.get_layer("s1").output.shape[1:3] == (14, 14)
    assert model.get_layer("c2b").output.shape[1:3] == (10, 10) and model.get_layer("s2").output.shape[1:3] == (5, 5)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert "MaxPooling2D" not in kinds and kinds.count("Dropout") == 3
    assert model_title("lenet5-deep").startswith("deep LeNet-5")


def test_classic_pads_to_32() -> None:
    assert classic_lenet5().get_layer("pad_to_32").output.shape[1:3] == (32, 32)


def test_lenet_builds_any_point_of_the_search_space() -> None:
    hp = LeNetHParams(3, 5, 3, 9, "relu", 1e-6, 4, 4, 32, 128, "sigmoid", 1e-2)
    model = lenet(hp)
    assert model.get_layer("conv_1").kernel_size == (3, 3) and model.get_layer("conv_2").filters == 9
    assert model.get_layer("pool_1").pool_size == (4, 4) and model.get_layer("dense_2").units == 128
    assert lenet(hp.to_dict()).count_params() == model.count_params()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kernel_size_1", 4, "kernel_size_1=4 is not allowed; choose one of 3, 5, 7"),
        ("filters_2", 12, "filters_2=12 is not allowed; choose one of 3, 5, 7, 9, 11, 13"),
        ("conv_activation", "softmax", "conv_activation='softmax' is not allowed; choose one of sigmoid"),
        ("conv_l2", 0.1, "conv_l2=0.1 is not allowed; use a number in [1e-06, 0.01]"),
        ("dense_l2", float("nan"), "dense_l2=nan is not allowed"),
        ("pool_size_2", 3, "pool_size_2=3 is not allowed; choose one of 2, 4"),
        ("units_1", 100, "units_1=100 is not allowed; choose one of 32, 64, 128, 256"),
        ("units_2", True, "units_2=True is not allowed"),
    ],
)
def test_out_of_domain_values_name_the_field(field: str, value, message: str) -> None:
    values = OPTIMIZED_HPARAMS.to_dict() | {field: value}
    with pytest.raises(LenetError) as excinfo:
        lenet(values)
    assert message in str(excinfo.value)


def test_unknown_and_missing_hyperparameters() -> None:
    with pytest.raises(LenetError, match="unknown hyperparameter 'dropout'"):
        lenet(OPTIMIZED_HPARAMS.to_dict() | {"dropout": 0.1})
    values = OPTIMIZED_HPARAMS.to_dict()
    del values["units_2"]
    with pytest.raises(LenetError, match="missing hyperparameter 'units_2'"):
        lenet(values)


def test_search_space_has_the_twelve_reference_hyperparameters() -> None:
    assert list(SEARCH_SPACE) == list(OPTIMIZED_HPARAMS.to_dict())
    assert len(SEARCH_SPACE) == 12
    OPTIMIZED_HPARAMS.validate()


def test_load_hparams_file(tmp_path: Path) -> None:
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"hparams": OPTIMIZED_HPARAMS.to_dict()}))
    assert load_hparams(path) == OPTIMIZED_HPARAMS
    path.write_text('{"kernel_size_1": 7,')
    with pytest.raises(LenetError, match=r"best.json: line 1: malformed JSON"):
        load_hparams(path)
    path.write_text(json.dumps(OPTIMIZED_HPARAMS.to_dict() | {"filters_1": 4}))
    with pytest.raises(LenetError, match=r"best.json: filters_1=4 is not allowed"):
        load_hparams(path)
    with pytest.raises(LenetError, match="no such file"):
        load_hparams(tmp_path / "missing.json")


def test_unknown_model_name() -> None:
    with pytest.raises(LenetError, match="unknown model 'vgg'; choose one of standard, classic, optimized"):
        get_builder("vgg")


def test_mlp_parameter_count_and_dropout() -> None:
    # 784*512+512, 512*256+256, 256*128+128, 128*10+10
    assert mlp().count_params() == 401_920 + 131_328 + 32_896 + 1_290 == 567_434
    kinds = [type(layer).__name__ for layer in get_builder("mlp-dropout")().layers]
    assert kinds == ["Rescaling", "Flatten", "Dense", "Dropout", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert get_builder("mlp-dropout")().count_params() == 567_434
    assert [layer.units for layer in mlp().layers[2:]] == [512, 256, 128, 10]
    assert mlp().layers[2].activation.__name__ == "relu"
    assert model_title("mlp") == "fully connected network (MLP)" and model_title("standard") == "standard LeNet"
    with pytest.raises(LenetError, match=r"dropout must be a rate in \[0, 1\)"):
        mlp(dropout=1.5)


def test_study_lenet_defaults_are_the_standard_lenet_bit_for_bit() -> None:
    set_seed(5)
    standard = standard_lenet()
    set_seed(5)
    study = study_lenet()
    assert study.count_params() == 15_626
    assert [type(layer).__name__ for layer in study.layers] == [type(layer).__name__ for layer in standard.layers]
    for mine, theirs in zip(study.get_weights(), standard.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert type(study.optimizer).__name__ == "Adam" and float(study.optimizer.learning_rate) == pytest.approx(1e-3)


def test_study_lenet_options() -> None:
    model = study_lenet(activation="relu", initializer="he_normal", dropout=0.5, optimizer="momentum",
                        learning_rate=0.01)  # fmt: skip
    assert model.count_params() == 15_626  # dropout adds no parameters
    assert [layer.name for layer in model.layers if type(layer).__name__ == "Dropout"] == ["dropout_1", "dropout_2"]
    assert {model.get_layer(n).activation.__name__ for n in ("conv_1", "conv_2", "dense_1", "dense_2")} == {"relu"}
    assert type(model.get_layer("conv_1").kernel_initializer).__name__ == "HeNormal"
    assert model.optimizer.momentum == pytest.approx(0.9)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert make_optimizer("sgd", 0.1).momentum == 0.0
    with pytest.raises(LenetError, match="unknown activation 'softmax'"):
        study_lenet(activation="softmax")
    with pytest.raises(LenetError, match="unknown optimizer 'rmsprop'; choose one of sgd, momentum, step_decay, adam"):
        make_optimizer("rmsprop", 0.1)
