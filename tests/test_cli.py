from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lenet_tf.cli import main
from lenet_tf.models import OPTIMIZED_HPARAMS
from lenet_tf.submission import read_submission


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("lenet-tf: error: ")
    return err[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "missing/train.csv"], "missing/train.csv: no such file or directory"),
        (["train", "--model", "vgg", "--data", "kaggle"], "unknown model 'vgg'"),
        (["ensemble", "--members", "0"], "argument --members: must be an integer ≥ 1, got '0'"),
        (["train", "--epochs", "-2"], "argument --epochs: must be an integer ≥ 1, got '-2'"),
        (["train", "--batch-size", "abc"], "argument --batch-size: must be an integer ≥ 1, got 'abc'"),
        (["train", "--split", "kfold"], "argument --split: invalid choice"),
        (["train", "--augment-rotation", "200"], "--augment-rotation: must be a number in [0, 180], got '200'"),
        (["ensemble", "--augment-shift", "x"], "argument --augment-shift: must be a number in [0, 0.5], got 'x'"),
        (
            ["train", "--model", "standard", "--hparams", "x.json", "--data", "kaggle"],
            "--hparams applies to --model optimized only",
        ),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["predict", "--run", "nowhere", "--submission", "s.csv", "--data", "kaggle"], "nowhere: no saved members"),
        (["explore", "--data", "kaggle", "--run", "nowhere"], "nowhere: no saved members"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(argv, message, capsys, kaggle_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # --data kaggle: the tiny digits of kaggle_dir (tmp_path / "kaggle")
    with pytest.raises(SystemExit) as excinfo:
        sys.exit(main(argv))
    assert excinfo.value.code == 2
    assert message in _error_line(capsys)


def test_bad_csv_and_bad_hparams_file(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    train = kaggle_dir / "train.csv"
    lines = train.read_text().splitlines()
    lines[3] = lines[3].replace(",0,", ",256,", 1)
    train.write_text("\n".join(lines) + "\n")
    assert main(["train", "--data", str(kaggle_dir), "--out", str(tmp_path / "r")]) == 2
    assert "train.csv: line 4: column 'pixel" in _error_line(capsys)
    assert not (tmp_path / "r").exists()

    hp = tmp_path / "hp.json"
    hp.write_text(json.dumps(OPTIMIZED_HPARAMS.to_dict() | {"units_1": 100}))
    assert main(["ensemble", "--recipe", "reference", "--data", "sample", "--hparams", str(hp), "--out",
                 str(tmp_path / "e")]) == 2
    assert "hp.json: units_1=100 is not allowed" in _error_line(capsys)


def test_train_resume_predict_end_to_end(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    argv = [
        "train",
        "--model",
        "classic",
        "--data",
        str(kaggle_dir),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--no-progress",
    ]
    assert main(argv) == 0
    first = json.loads((out / "metrics.json").read_text())
    assert first["resumed"] is False and len(first["members"]) == 1
    assert first["config"]["split_sizes"] == {"train": 420, "val": 180}
    assert 0 <= first["ensemble"]["val_accuracy"] <= 1
    assert first["members"][0]["val_accuracy"] == pytest.approx(first["ensemble"]["val_accuracy"], abs=1e-6)
    assert {"tensorflow", "keras", "cpu"} <= set(first["environment"])
    for name in ("config.json", "metrics.md", "convergence.png", "submission.csv", "members/member_01.keras"):
        assert (out / name).is_file(), name
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(read_submission(out / "submission.csv", expected_rows=50)) == 50

    capsys.readouterr()
    assert main(argv) == 0  # same command again: nothing retrained, same submission
    assert "member 1/1: loaded" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["resumed"] is True

    changed = [*argv[:-2], "2", "--no-progress"]
    assert main(changed) == 2
    assert "different configuration (train.epochs: 1 there, 2 now)" in _error_line(capsys)

    target = tmp_path / "sub.csv"
    assert main(["predict", "--run", str(out), "--data", str(kaggle_dir), "--submission", str(target)]) == 0
    assert target.read_text() == (out / "submission.csv").read_text()
    target.write_text("ImageId,Label\n1,1\n")
    assert main(["predict", "--run", str(out), "--data", str(kaggle_dir), "--submission", str(target)]) == 2
    assert "already exists with other predictions; pass --force" in _error_line(capsys)
    assert target.read_text() == "ImageId,Label\n1,1\n"


def test_console_script_help_and_error_have_no_traceback(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("lenet-tf")
    help_text = subprocess.run([exe, "ensemble", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--members" in help_text and "digit-recognizer.zip" in help_text
    bad = tmp_path / "train.csv"
    bad.write_text("label,pixel0\n1,2\n")
    done = subprocess.run([exe, "train", "--data", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"lenet-tf: error: {bad}: line 1: the header has 2 columns, expected 785 (label,…,pixel783)"
    ]


def test_explore_subcommand(kaggle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "explore"
    assert main(["explore", "--data", str(kaggle_dir), "--out", str(out)]) == 0
    assert (out / "summary.md").is_file() and (out / "pca_scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


ROOT = Path(__file__).resolve().parent.parent
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def _make(*argv: str, dry: bool = True) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    dry_run = ["-n"] if dry else []
    command = ["make", "-s", *dry_run, "-C", str(ROOT), *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    if not dry:
        return done.stdout
    return next(line for line in done.stdout.splitlines() if "lenet-tf " in line or "lenet_tf." in line)


@needs_make
def test_make_passes_only_what_the_user_set() -> None:
    assert _make("standard").split()[1:] == ["train", "--model", "standard"]
    for target in ("ensemble", "ensemble-reference", "evaluate", "learning-curve", "baselines", "tune"):
        line = _make(target).replace("--out results/ensemble-reference", "")  # its own, not the command's
        assert not {"--epochs", "--seed", "--members", "--model", "--out", "--tuner"} & set(line.split()), line
    assert "--members 2 --epochs 20 --seed 1" in _make("ensemble", "MEMBERS=2", "EPOCHS=20", "SEED=1")
    assert "--recipe" not in _make("ensemble")  # its default is the flagship, as plain lenet-tf ensemble's
    assert "--model standard" in _make("robustness") and "--model" not in _make("robustness", "RUN=r")


@needs_make
def test_make_help_prints_the_commands_defaults() -> None:
    from lenet_tf.cli import parse_args
    from lenet_tf.ensemble import FLAGSHIP

    shown = " ".join(_make("help", dry=False).split())
    ref, curve = parse_args(["ensemble", "--recipe", "reference"]), parse_args(["learning-curve"])
    evaluation, train = parse_args(["evaluate"]), parse_args(["train"])
    study = parse_args(["study", "--name", "dropout"])
    for expected in (
        f"ensemble: the flagship recipe, MEMBERS={FLAGSHIP['members']} EPOCHS={FLAGSHIP['epochs']}",
        f"ensemble-reference: MEMBERS={ref.members} EPOCHS={ref.epochs}",
        f"standard | classic | optimized: EPOCHS={train.epochs}",
        f"evaluate: MODEL={evaluation.model} REPEATS={evaluation.repeats} EPOCHS={evaluation.epochs}",
        f"learning-curve: MODEL={curve.model} REPEATS={curve.repeats} EPOCHS={curve.epochs}",
        f"robustness: MODEL=standard (unless RUN=<run dir>) REPEATS={parse_args(['robustness']).repeats}",
        f"study: NAME=<study> REPEATS={study.repeats}",
        f"baselines: REPEATS={parse_args(['baselines']).repeats}",
    ):
        assert expected in shown, expected


def test_one_name_each_and_the_old_names_say_so(capsys) -> None:
    """Issue 29, item 13: a submission path was --submission in train/ensemble but --output in predict,
    a finished run --run in predict/robustness but --model-run in explore."""
    from lenet_tf.cli import parse_args

    assert parse_args(["predict", "--run", "r", "--submission", "s.csv"]).submission == "s.csv"
    assert capsys.readouterr().err == ""
    assert parse_args(["predict", "--run", "r", "--output", "s.csv"]).submission == "s.csv"
    assert "note: --output is now --submission" in capsys.readouterr().err
    assert parse_args(["explore", "--run", "r"]).run == "r"
    assert parse_args(["explore", "--model-run", "r"]).run == "r"
    assert "note: --model-run is now --run" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["evaluate"], ["learning-curve"], ["study", "--name", "dropout"], ["robustness"],
                                  ["baselines"], ["tune"]])  # fmt: skip
def test_commands_that_predict_no_test_file_refuse_test(argv: list[str], capsys) -> None:
    """``--test`` was offered (and ignored) by commands that never predict a test file."""
    from lenet_tf.cli import parse_args

    with pytest.raises(SystemExit) as exit_:
        parse_args([*argv, "--test", "test.csv"])
    assert exit_.value.code == 2 and "unrecognized arguments: --test" in capsys.readouterr().err
    for predicting in (["train"], ["ensemble"], ["predict", "--run", "r", "--submission", "s"], ["explore"]):
        assert parse_args([*predicting, "--test", "t.csv"]).test == "t.csv"


def _shown(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join("none" if v is None else _shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_the_command_line_docs_show_each_commands_defaults() -> None:
    """Issue 29, item 9: docs/cli.md copied the defaults by hand. Each ``[--flag value]`` it shows is
    the default the command line gives (placeholders in capitals, choices and example files aside)."""
    import re

    from lenet_tf.cli import parse_args

    block = (ROOT / "docs" / "cli.md").read_text().split("## Command line\n\n```text\n", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    for line in block.splitlines():  # a command's continuation lines join it
        if line.startswith("lenet-tf "):
            commands.append(line)
        else:
            commands[-1] += line
    required = {"predict": ["--run", "r", "--submission", "s.csv"], "study": ["--name", "dropout"]}
    checked = []
    for line in commands:
        words = line.split()
        recipe = ["--recipe", words[3]] if words[2:3] == ["--recipe"] else []
        args = vars(parse_args([words[1], *required.get(words[1], []), *recipe]))
        for flag, value in re.findall(r"\[(--[a-z-]+) ([^\]\s]+)\]", line):
            default = args[flag[2:].replace("-", "_")]
            if value.isupper() or "|" in value or "..." in value or "…" in value or default is None:
                continue
            if value.endswith((".json", ".csv")):
                continue
            assert value == _shown(default), f"{words[1]} {flag}: the docs show {value}, the command {default}"
            checked.append(flag)
    assert len(checked) >= 15
