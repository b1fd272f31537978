from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lenet_tf.errors import LenetError
from lenet_tf.rundir import markdown_table, open_run, read_json, write_json, write_text


def test_open_run_resumes_same_config_and_refuses_another(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert open_run(run, {"model": "standard", "train": {"epochs": 3}}) is False
    (run / "members").mkdir()
    (run / "members" / "member_01.json").write_text("{}")
    assert open_run(run, {"model": "standard", "train": {"epochs": 3}}) is True
    with pytest.raises(
        LenetError, match=r"different configuration \(train.epochs: 3 there, 4 now\); use another --out"
    ):
        open_run(run, {"model": "standard", "train": {"epochs": 4}})
    assert (run / "members" / "member_01.json").exists()  # nothing lost
    assert open_run(run, {"model": "standard", "train": {"epochs": 4}}, force=True) is False
    assert not (run / "members").exists()
    assert read_json(run / "config.json") == {"model": "standard", "train": {"epochs": 4}}


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
