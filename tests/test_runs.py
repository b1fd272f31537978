from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenet_tf import __version__
from lenet_tf.cli import main
from lenet_tf.errors import LenetError
from lenet_tf.options import complete_run_record
from lenet_tf.rundir import SCHEMA_VERSION, markdown_table, open_run, read_json, record_written, write_json, write_text

VERSIONS = {"schema_version": SCHEMA_VERSION, "lenet_tf_version": __version__}


def test_open_run_resumes_same_config_and_refuses_another(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert open_run(run, {"model": "standard", "train": {"epochs": 3}}) is False
    write_json(run / "members" / "member_01.json", {})
    assert open_run(run, {"model": "standard", "train": {"epochs": 3}}) is True
    with pytest.raises(
        LenetError, match=r"different configuration \(train.epochs: 3 there, 4 now\); use another --out"
    ):
        open_run(run, {"model": "standard", "train": {"epochs": 4}})
    assert (run / "members" / "member_01.json").exists()  # nothing lost
    assert open_run(run, {"model": "standard", "train": {"epochs": 4}}, force=True) is False
    assert not (run / "members").exists()
    assert read_json(run / "config.json") == {"model": "standard", "train": {"epochs": 4}, **VERSIONS}


def test_a_run_recorded_before_a_training_field_existed_resumes_at_its_neutral_value(tmp_path: Path) -> None:
    from lenet_tf.training import TrainConfig

    run = tmp_path / "run"
    now = TrainConfig(epochs=3).to_dict()
    before = {k: v for k, v in now.items() if k != "ema_momentum"}  # as written before the weight average
    write_json(run / "config.json", {"model": "standard", "train": before, **VERSIONS})
    assert open_run(run, {"model": "standard", "train": now}, complete=complete_run_record) is True
    with pytest.raises(LenetError, match=r"different configuration \(train.ema_momentum: 0.0 there, 0.999 now\)"):
        open_run(run, {"model": "standard", "train": {**now, "ema_momentum": 0.999}}, complete=complete_run_record)


# config.json as main wrote it before schema 2 (no version; seeds derived as base * 1000 + index).
MAIN_CONFIG = {
    "model": {"name": "classic", "builder": "classic_lenet5"}, "split_seed": 0,
    "split_sizes": {"train": 510, "val": 90}, "max_train": None, "data_fingerprint": "ab12",
    "members_seed": 0, "protocol": "deployment", "train": {"epochs": 1},
}  # fmt: skip


def test_a_run_of_an_older_schema_is_refused_naming_the_versions(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_json(run / "config.json", MAIN_CONFIG)
    with pytest.raises(LenetError, match=r"holds a run with no schema version \(schema 1, older seed derivation\)"
                       rf" where this lenet_tf writes schema {SCHEMA_VERSION}; use another --out"):  # fmt: skip
        open_run(run, MAIN_CONFIG)
    newer = {**MAIN_CONFIG, "schema_version": SCHEMA_VERSION + 1, "lenet_tf_version": "9.0"}
    write_json(run / "config.json", newer)
    with pytest.raises(LenetError, match=rf"schema {SCHEMA_VERSION + 1}, lenet_tf 9.0 where this lenet_tf"):
        open_run(run, MAIN_CONFIG)
    # Same schema, another package version: the configuration decides (a patch release resumes).
    write_json(run / "config.json", {**MAIN_CONFIG, "schema_version": SCHEMA_VERSION, "lenet_tf_version": "0.0.1"})
    assert open_run(run, MAIN_CONFIG) is True


def test_force_deletes_only_what_the_run_wrote(tmp_path: Path) -> None:
    run = tmp_path / "run"
    open_run(run, {"a": 1})
    write_json(run / "members" / "member_01.json", {})
    write_text(run / "metrics.md", "x")
    (run / "search").mkdir()  # another library's files, recorded by hand
    record_written(run / "search")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(LenetError, match=r"holds notes.txt, which no lenet_tf run wrote"):
        open_run(run, {"a": 2}, force=True)
    assert (run / "members" / "member_01.json").exists() and (run / "notes.txt").exists()
    (run / "notes.txt").unlink()
    assert open_run(run, {"a": 2}, force=True) is False
    assert sorted(p.name for p in run.iterdir()) == [".lenet_tf_files", "config.json"]


def test_a_run_never_starts_in_a_folder_holding_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.csv").write_text("label\n")
    (folder / "notes.txt").write_text("mine")
    for force in (False, True):
        with pytest.raises(LenetError, match=r"data holds notes.txt \(and 1 more\), which no lenet_tf run wrote"):
            open_run(folder, {"a": 1}, force=force)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "train.csv"]


def test_force_on_a_pre_schema_run_deletes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_json(run / "config.json", MAIN_CONFIG)
    (run / "train.csv").write_text("label\n")
    for force in (False, True):  # neither offers --force as the way out: it would refuse
        with pytest.raises(LenetError, match=r"use another --out, or delete that run yourself \(it does not record"):
            open_run(run, MAIN_CONFIG, force=force)
    assert (run / "train.csv").exists() and read_json(run / "config.json") == MAIN_CONFIG


def test_train_force_keeps_the_users_data_and_notes(kaggle_dir: Path, capsys) -> None:
    # Issue 18 item 1: `train --data mydir --out mydir`, then the same with --force, deleted the
    # user's train.csv, test.csv and notes.txt (exit 0).
    (kaggle_dir / "notes.txt").write_text("mine")
    before = sorted(p.name for p in kaggle_dir.iterdir())
    argv = ["train", "--model", "classic", "--data", str(kaggle_dir), "--out", str(kaggle_dir), "--epochs", "1",
            "--no-progress"]  # fmt: skip
    for extra in ([], ["--force"]):
        assert main([*argv, *extra]) == 2
        assert "holds notes.txt (and 2 more), which no lenet_tf run wrote" in capsys.readouterr().err
        assert sorted(p.name for p in kaggle_dir.iterdir()) == before


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_read_json_errors(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.json", "{\n  'a': 1\n}")
    with pytest.raises(LenetError, match=r"x.json: line 2: malformed JSON"):
        read_json(path)


def test_markdown_table() -> None:
    assert markdown_table(["a", "b"], [[1, 0.98765]]) == "| a | b |\n| --- | --- |\n| 1 | 0.9877 |\n"


def test_written_files_have_ordinary_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = write_text(tmp_path / "r.md", "x")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recorded=st.one_of(_JSON, st.dictionaries(st.sampled_from(sorted(MAIN_CONFIG) + ["schema_version"]), _JSON)),
       raw=st.binary(max_size=40), as_bytes=st.booleans())  # fmt: skip
def test_any_recorded_configuration_resumes_or_is_one_line(recorded, raw: bytes, as_bytes: bool, tmp_path) -> None:
    """Issue 28: a run's config.json, whatever it holds (edited, damaged, another program's), is resumed
    only when it is this configuration, else refused in one LenetError line, never a traceback."""
    run = Path(tempfile.mkdtemp(dir=tmp_path))
    (run / ".lenet_tf_files").write_text("config.json\n")
    (run / "config.json").write_bytes(raw if as_bytes else json.dumps(recorded).encode())
    try:
        resumed = open_run(run, MAIN_CONFIG)
    except LenetError as exc:
        assert "\n" not in str(exc)
        return
    assert resumed and read_json(run / "config.json") == {**MAIN_CONFIG, **VERSIONS}
