"""Nothing lost, nothing misreported (issue 28): an output never replaces an input, a damaged or
ambiguous input is one line naming the file (and line, column or zip entry), never a traceback,
and every byte string the readers may meet gives valid data or one LenetError (property tests)."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import csv_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenet_tf.cli import main
from lenet_tf.data import DataWarning, DigitData, load_data, load_test_data, parse_digits_csv, read_competition_zip
from lenet_tf.ensemble import Ensemble, member_paths
from lenet_tf.errors import LenetError
from lenet_tf.models import OPTIMIZED_HPARAMS, LeNetHParams, classic_lenet5, load_hparams
from lenet_tf.rundir import save_model
from lenet_tf.submission import refuse_inputs

HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("lenet-tf: error: ")
    return err[0]


def _row(pixel: str = "0", at: int = 0, label: str = "3") -> str:
    pixels = ["0"] * 784
    pixels[at] = pixel
    return f"{label}," + ",".join(pixels)


def _one_error(call) -> str:
    """The message of the one LenetError ``call`` raises, with no warning printed on the way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(LenetError) as excinfo:
            call()
    assert not caught, [str(w.message) for w in caught]
    message = str(excinfo.value)
    assert "\n" not in message and "\r" not in message
    return message


# ----------------------------------------------------------------------------- 1: an input is never an output


@pytest.mark.parametrize("force", [True, False])
@pytest.mark.parametrize("target", ["train.csv", "test.csv", "link.csv"])
def test_train_never_writes_its_submission_over_its_data(kaggle_dir: Path, tmp_path: Path, capsys, force, target):
    os.link(kaggle_dir / "train.csv", tmp_path / "link.csv")  # another name of the training file
    path = tmp_path / "link.csv" if target == "link.csv" else kaggle_dir / target
    before = {name: (kaggle_dir / name).read_bytes() for name in ("train.csv", "test.csv")}
    out = tmp_path / "run"
    argv = ["train", "--data", str(kaggle_dir), "--submission", str(path), "--out", str(out), "--epochs", "1",
            "--no-progress", *(["--force"] if force else [])]  # fmt: skip
    assert main(argv) == 2
    line = _error_line(capsys)
    named = kaggle_dir / ("train.csv" if target == "link.csv" else target)
    assert f"{path}: " in line and str(named) in line and "an input of this command" in line
    assert "other predictions" not in line and "pass --force" not in line
    assert {name: (kaggle_dir / name).read_bytes() for name in before} == before
    assert not out.exists()  # refused before the run directory, let alone any training


def test_train_refuses_the_zip_and_the_test_file_it_reads(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "digit-recognizer.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(kaggle_dir / "train.csv", "train.csv")
    test = kaggle_dir / "test.csv"
    for argv in (["--data", str(archive), "--submission", str(archive)],
                 ["--data", str(archive), "--test", str(test), "--submission", str(test)]):  # fmt: skip
        saved = archive.read_bytes(), test.read_bytes()
        assert main(["train", *argv, "--out", str(tmp_path / "run"), "--epochs", "1", "--force", "--no-progress"]) == 2
        assert "an input of this command" in _error_line(capsys)
        assert (archive.read_bytes(), test.read_bytes()) == saved


@pytest.mark.parametrize("target", ["test.csv", "sample_submission.csv", "--test", "member"])
def test_predict_never_writes_over_what_it_reads(kaggle_dir: Path, tmp_path: Path, capsys, target: str) -> None:
    run = Ensemble([classic_lenet5()]).save(tmp_path / "run")
    (kaggle_dir / "sample_submission.csv").write_text("ImageId,Label\n" + "".join(f"{i},0\n" for i in range(1, 51)))
    other_test = tmp_path / "mine.csv"
    other_test.write_bytes((kaggle_dir / "test.csv").read_bytes())
    path = {"--test": other_test, "member": run / "member_01.keras"}.get(target, kaggle_dir / target)
    test = ["--test", str(other_test)] if target == "--test" else []
    saved = path.read_bytes()
    argv = ["predict", "--run", str(run), "--data", str(kaggle_dir), *test, "--submission", str(path), "--force"]
    assert main(argv) == 2
    assert f"{path}: an input of this command" in _error_line(capsys)
    assert path.read_bytes() == saved


def test_refuse_inputs_sees_through_links(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x")
    (tmp_path / "soft.csv").symlink_to(data)
    os.link(data, tmp_path / "hard.csv")
    (tmp_path / "sub").mkdir()
    for alias in ("soft.csv", "hard.csv", "sub/../train.csv"):
        with pytest.raises(LenetError, match=f"that is {data}, an input of this command"):
            refuse_inputs(tmp_path / alias, [data])
    refuse_inputs(tmp_path / "submission.csv", [data, tmp_path])  # another file: fine


# ----------------------------------------------------------------------------- 2: one train.csv per zip


@pytest.mark.parametrize("names", [("train.csv", "old/train.csv"), ("train.csv", "train.csv")])
def test_a_zip_with_two_train_csvs_is_refused_naming_both(kaggle_dir: Path, tmp_path: Path, names) -> None:
    archive = tmp_path / "two.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(archive, "w") as handle:
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name"
        handle.write(kaggle_dir / "train.csv", names[0])
        handle.writestr(names[1], "an old copy")
    message = _one_error(lambda: load_data(archive))
    assert message.startswith(f"{archive}: holds ")
    assert (f"'{names[0]}' and '{names[1]}'" if names[0] != names[1] else "two entries named 'train.csv'") in message


def test_a_zip_with_two_test_csvs_is_refused(kaggle_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(kaggle_dir / "train.csv", "train.csv")
        handle.write(kaggle_dir / "test.csv", "test.csv")
        handle.write(kaggle_dir / "test.csv", "extra/test.csv")
    for read in (load_data, load_test_data):
        assert "'test.csv' and 'extra/test.csv'" in _one_error(lambda read=read: read(archive))


# ----------------------------------------------------------------------------- 3: every member of a run


def _run(tmp_path: Path, members: int = 3, *, refit: int = 0, models: bool = False) -> Path:
    """A run directory as run_training leaves it: members (and refit members) with their JSON
    records and metrics.json; with ``models`` real saved models, else empty stand-ins."""
    run = tmp_path / "run"
    for folder, count in (("members", members), ("refit", refit)):
        for index in range(count):
            path = run / folder / f"member_{index + 1:02d}.keras"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_model(classic_lenet5(), path) if models else path.write_bytes(b"")
            path.with_suffix(".json").write_text("{}")
    record = {"members": [{}] * members, "refit_members": [{}] * refit}
    (run / "metrics.json").write_text(json.dumps(record))
    return run


def test_predict_refuses_a_run_with_a_member_deleted(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    run = _run(tmp_path, 2, models=True)
    (run / "members" / "member_02.keras").unlink()
    out = tmp_path / "submission.csv"
    assert main(["predict", "--run", str(run), "--data", str(kaggle_dir), "--submission", str(out)]) == 2
    line = _error_line(capsys)
    assert f"{run / 'members' / 'member_02.keras'}: no such file, but the run has 2 members" in line
    assert not out.exists()


@pytest.mark.parametrize(
    ("refit", "deleted", "limit"),
    [
        (0, ["members/member_01.keras"], None),
        (0, ["members/member_02.keras"], None),
        (0, ["members/member_03.keras", "members/member_03.json"], None),  # only metrics.json remembers it
        (0, ["members/member_01.keras"], 2),  # the first two must be the run's first two
        (3, ["refit/member_03.keras"], None),  # not members/ instead of the refit that wrote the submission
        (3, ["refit/member_02.keras", "refit/member_02.json"], None),
    ],
)
def test_member_paths_name_the_missing_member(tmp_path: Path, refit: int, deleted: list[str], limit) -> None:
    run = _run(tmp_path, 3, refit=refit)
    for name in deleted:
        (run / name).unlink()
    with pytest.raises(LenetError) as excinfo:
        member_paths(run, limit)
    assert str(excinfo.value).startswith(f"{run / deleted[0]}: no such file, but the run has 3 members")


def test_member_paths_of_complete_and_unfinished_runs(tmp_path: Path) -> None:
    run = _run(tmp_path, 3)
    assert [p.name for p in member_paths(run)] == ["member_01.keras", "member_02.keras", "member_03.keras"]
    (run / "members" / "member_03.keras").unlink()
    assert len(member_paths(run, 2)) == 2  # the first two are all there
    assert member_paths(run / "members", 1) == [run / "members" / "member_01.keras"]
    run = _run(tmp_path / "b", 3, refit=0)
    (run / "refit").mkdir()
    (run / "refit" / "member_01.keras").write_bytes(b"")  # an unfinished refit: not used
    assert member_paths(run)[0].parent.name == "members"
    with pytest.raises(LenetError, match="holds 3 members; 4 were asked for"):
        member_paths(run, 4)


# ----------------------------------------------------------------------------- 5, 6, 9, 10: damaged data


def test_a_non_utf8_cell_is_named_by_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "train.csv"
    path.write_bytes((HEADER + "\n" + _row() + "\n" + _row()).encode() + b"\n3,0,\xe90" + b",0" * 782 + b"\n")
    message = _one_error(lambda: load_data(path))
    assert message == f"{path}: line 4, column 'pixel1': byte 0xe9 is not UTF-8 text (save the file as UTF-8)"
    assert main(["explore", "--data", str(path), "--out", str(tmp_path / "x")]) == 2
    assert "line 4, column 'pixel1': byte 0xe9" in _error_line(capsys)


def _deflated_zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("train.csv", text)
    return buffer.getvalue()


def test_a_damaged_deflate_stream_names_the_zip_and_entry(tmp_path: Path, capsys) -> None:
    raw = bytearray(_deflated_zip(HEADER + "\n" + "\n".join(_row(str(i % 256), i % 784) for i in range(300))))
    start = 30 + len("train.csv")  # the local header, then the deflate stream
    for offset in range(start + 2, len(raw)):  # a damage deflate itself rejects (not one only the CRC sees)
        damaged = bytearray(raw)
        damaged[offset] ^= 0xFF
        try:
            zlib.decompressobj(-15).decompress(bytes(damaged[start:]))
        except zlib.error:
            break
    else:
        pytest.fail("no single-byte damage breaks the deflate stream")
    path = tmp_path / "damaged.zip"
    path.write_bytes(bytes(damaged))
    assert _one_error(lambda: load_data(path)).startswith(f"{path}:train.csv: damaged zip entry (Error -3 ")
    assert main(["explore", "--data", str(path), "--out", str(tmp_path / "x")]) == 2
    assert f"{path}:train.csv: damaged zip entry" in _error_line(capsys)


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("1e20", "1e20, expected an integer 0-255"),
        ("99999999999999999999", "99999999999999999999, expected an integer 0-255"),  # beyond int64
        ("1" + "0" * 400, "1" + "0" * 39 + "…, expected an integer 0-255"),  # beyond float64
        ("1e400", "1e400, expected an integer 0-255"),
        ("-1e3", "-1e3, expected an integer 0-255"),
        ("inf", "'inf', not an integer"),
        ("-inf", "'-inf', not an integer"),
        ("True", "'True', not an integer"),
    ],
)
def test_a_bad_pixel_is_reported_as_written_without_warnings(cell: str, shown: str) -> None:
    for rows, line in (([_row(cell, 5)], 2), ([_row(), _row(cell, 5)] * 2, 3)):  # alone in its column, among numbers
        text = (HEADER + "\n" + "\n".join(rows) + "\n").encode()
        got = _one_error(lambda text=text: parse_digits_csv(text, "train.csv", labeled=True))
        assert got == f"train.csv: line {line}: column 'pixel5' is {shown}"


def test_a_label_of_1e20_is_reported_as_written(tmp_path: Path, capsys) -> None:
    path = tmp_path / "train.csv"
    path.write_text(HEADER + "\n" + _row() + "\n" + _row(label="1e20") + "\n")
    assert _one_error(lambda: load_data(path)) == f"{path}: line 3: column 'label' is 1e20, expected a digit 0-9"
    assert main(["explore", "--data", str(path), "--out", str(tmp_path / "x")]) == 2
    assert _error_line(capsys).endswith("column 'label' is 1e20, expected a digit 0-9")


def _tar_gz(text: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("train.csv")
        info.size = len(text)
        archive.addfile(info, io.BytesIO(text))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "encode", "kind"),
    [
        ("train.csv", lambda t: t.decode().encode("utf-16"), "UTF-16 text"),
        ("train.csv", lambda t: t.decode().encode("utf-16-le"), "UTF-16 text"),  # no BOM
        ("train.csv", lambda t: t.decode().encode("utf-32"), "UTF-32 text"),
        ("train.tar.gz", _tar_gz, "a tar archive (gzip-compressed)"),
        ("train.csv.bz2", bz2.compress, "a bzip2-compressed file"),
        ("train.csv.xz", lzma.compress, "an xz-compressed file"),
        ("train.csv.gz", lambda t: gzip.compress(t.decode().encode("utf-16")), "UTF-16 text (gzip-compressed)"),
    ],
)
def test_non_csv_files_say_what_they_look_like(tmp_path: Path, name: str, encode, kind: str) -> None:
    path = tmp_path / name
    path.write_bytes(encode((HEADER + "\n" + _row() + "\n").encode()))
    message = _one_error(lambda: load_data(path))
    assert message == (
        f"{path}: {kind}, not a CSV text file;"
        " expected a CSV (UTF-8, plain or .gz), a directory with train.csv, or a .zip"
    )


# ----------------------------------------------------------------------------- 8: --hparams


def test_a_non_utf8_hparams_file_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "hp.json"
    path.write_bytes(b'{\n  "conv_activation": "g\xe9lu"\n}\n')
    assert _one_error(lambda: load_hparams(path)) == f"{path}: line 2: byte 0xe9 is not UTF-8 text (JSON is UTF-8)"
    argv = ["train", "--model", "optimized", "--hparams", str(path), "--data", "sample", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "hp.json: line 2: byte 0xe9 is not UTF-8 text" in _error_line(capsys)
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(OPTIMIZED_HPARAMS.to_dict()).encode())  # a BOM is fine
    assert load_hparams(path) == OPTIMIZED_HPARAMS


# ----------------------------------------------------------------------------- property tests

_RNG = np.random.default_rng(28)
_IMAGES = (_RNG.integers(0, 256, (3, 28, 28)) * (_RNG.random((3, 28, 28)) < 0.3)).astype(np.uint8)
_LABELS = np.array([4, 0, 9], dtype=np.uint8)
TRAIN_TEXT = csv_text(_IMAGES, _LABELS).encode()
TEST_TEXT = csv_text(_IMAGES[:2]).encode()
SAMPLE_TEXT = b"ImageId,Label\n1,0\n2,0\n"
# Bytes damage tends to write: what a cell, an encoding or an editor could turn into.
FRAGMENTS = [b"1e20", b"inf", b"-1", b"256", b"NaN", b"True", b"\xff", b"\xe9", b"\0", b"\r", b"\n", b",", b'"',
             b"\xef\xbb\xbf", b"label", b"99999999999999999999", b"5.5", b" ", b"", b"\t", b";"]  # fmt: skip


@st.composite
def damaged(draw, original: bytes) -> bytes:
    """``original`` with 1-4 random edits: flipped or inserted bytes, cuts, fragments written over it."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "write"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        else:
            fragment = draw(st.sampled_from(FRAGMENTS))
            data[at : at + draw(st.integers(0, 4))] = fragment
    return bytes(data)


def _valid_or_lenet_error(call) -> None:
    """``call`` returns valid digits or raises one LenetError of one line; nothing else, and no warning
    but a DataWarning (a digit without images, which damage to a label may well cause)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except LenetError as exc:
            assert "\n" not in str(exc) and "\r" not in str(exc), str(exc)
            result = None
    assert not [w for w in caught if not issubclass(w.category, DataWarning)], [str(w.message) for w in caught]
    images = result.train_images if isinstance(result, DigitData) else getattr(result, "images", None)
    if isinstance(result, tuple):
        images, labels = result
        assert labels is None or (labels.dtype == np.uint8 and labels.max() <= 9 and len(labels) == len(images))
    if images is not None:
        assert images.dtype == np.uint8 and images.ndim == 3 and images.shape[1:] == (28, 28) and len(images)


@PROPERTY
@given(raw=st.one_of(st.binary(max_size=2000), st.builds(lambda tail: HEADER.encode() + b"\n" + tail, st.binary())))
def test_any_bytes_parse_to_digits_or_one_lenet_error(raw: bytes) -> None:
    for labeled in (True, False):
        _valid_or_lenet_error(lambda labeled=labeled: parse_digits_csv(raw, "train.csv", labeled=labeled))


@PROPERTY
@given(raw=st.one_of(damaged(TRAIN_TEXT), damaged(gzip.compress(TRAIN_TEXT)).map(lambda b: b"\x1f\x8b" + b[2:])))
def test_damaged_train_csv_loads_or_is_one_lenet_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "train.csv"
        path.write_bytes(raw)
        _valid_or_lenet_error(lambda: load_data(path))
    _valid_or_lenet_error(lambda: parse_digits_csv(raw, "train.csv", labeled=True))


def _zip(stored: bool) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as handle:
        for name, text in (("train.csv", TRAIN_TEXT), ("test.csv", TEST_TEXT), ("sample_submission.csv", SAMPLE_TEXT)):
            handle.writestr(name, text)
    return buffer.getvalue()


@PROPERTY
@given(raw=st.one_of(damaged(_zip(stored=True)), damaged(_zip(stored=False))))
def test_damaged_zip_loads_or_is_one_lenet_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "digit-recognizer.zip"
        path.write_bytes(raw)
        _valid_or_lenet_error(lambda: read_competition_zip(path))
        _valid_or_lenet_error(lambda: load_test_data(path))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
_HPARAM_FILES = st.one_of(
    st.binary(max_size=300),
    damaged(json.dumps(OPTIMIZED_HPARAMS.to_dict()).encode()),
    st.builds(
        lambda key, value: json.dumps(OPTIMIZED_HPARAMS.to_dict() | {key: value}).encode(),
        st.sampled_from(list(OPTIMIZED_HPARAMS.to_dict())),
        _JSON,
    ),
    st.builds(lambda value: json.dumps({"hparams": value}).encode(), _JSON),
    # nesting deeper than the stack, an integer of more digits than Python converts, one beyond float64
    st.sampled_from(
        [b"[" * 100_000, b"1" * 5000, json.dumps(OPTIMIZED_HPARAMS.to_dict() | {"conv_l2": 10**400}).encode()]
    ),
)


@PROPERTY
@given(raw=_HPARAM_FILES)
def test_any_hparams_file_is_valid_or_one_lenet_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "hp.json"
        path.write_bytes(raw)
        try:
            hparams = load_hparams(path)
        except LenetError as exc:
            assert "\n" not in str(exc)
            return
    assert isinstance(hparams, LeNetHParams) and hparams.validate() is hparams
