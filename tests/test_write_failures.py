"""Issue 28, items 11 and 12: a write that fails (a full disk) and an output path that cannot be
written are each named in one line; a failed write leaves no partial file, and a bad output path
is refused before any data is read or model trained."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lenet_tf.cli import main
from lenet_tf.errors import LenetError
from lenet_tf.options import TrainConfig
from lenet_tf.pipeline import JobSpec, predict_run, run_training

# A full disk, as `ulimit -f` makes one: writes past the limit fail with EFBIG ("File too large");
# SIGXFSZ, which would kill the process instead, is ignored as a shell's ulimit leaves it.
FULL_DISK = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
"""

SETUP = """
import sys
from pathlib import Path
import keras
import numpy as np
from lenet_tf.errors import LenetError
from lenet_tf.rundir import open_run, save_model, write_json, write_text
from lenet_tf.submission import write_submission

out = Path(sys.argv[1])
open_run(out, {"kind": "test"})  # a run directory: its files list is written too
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(300)])
"""

WRITES = """
writes = {
    "config": lambda: write_json(out / "x" / "config.json", {"values": list(range(5000))}),
    "text": lambda: write_text(out / "notes.md", "x" * 10_000),
    "model": lambda: save_model(model, out / "members" / "member_01.keras"),
    "submission": lambda: write_submission(np.zeros(28_000, dtype=np.int64), out / "submission.csv"),
}
for name, write in writes.items():
    try:
        write()
        print(name, "written")
    except LenetError as exc:
        print(name, "LenetError", exc)
    except BaseException as exc:
        print(name, type(exc).__name__, exc)
"""


def _partials(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and ".partial" in p.name]


def test_full_disk_names_each_file_and_leaves_no_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", SETUP + FULL_DISK + WRITES, str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines == {
        "config": f"LenetError {out}/x/config.json: cannot write (File too large)",
        "text": f"LenetError {out}/notes.md: cannot write (File too large)",
        "model": f"LenetError {out}/members/member_01.keras: cannot write (File too large)",
        "submission": f"LenetError {out}/submission.csv: cannot write (File too large)",
    }, done.stderr[-2000:]
    assert not _partials(out)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [".lenet_tf_files", "config.json"]


def test_full_disk_on_the_command_line_is_one_line_naming_the_file(kaggle_dir: Path, tmp_path: Path) -> None:
    script = FULL_DISK + "import sys\nfrom lenet_tf.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    out = tmp_path / "explore"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), "explore", "--data", str(kaggle_dir), "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"lenet-tf: error: {out}/"), errors
    assert errors[0].endswith(": cannot write (File too large)"), errors
    assert not _partials(out)


def _plain_file(tmp_path: Path) -> Path:
    # Tests run as root, whom chmod does not stop: a path under a regular file is unwritable for anyone.
    path = tmp_path / "some_file.txt"
    path.write_text("not a directory\n")
    return path


def _one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("lenet-tf: error: ")
    return err[0]


OUTPUT_CASES = [
    ("submission under a file", lambda t, f: ["train", "--submission", f"{f}/sub.csv"], "{f}/sub.csv"),
    ("submission is a directory", lambda t, f: ["ensemble", "--submission", str(t)], "{t}: is a directory"),
    ("out under a file", lambda t, f: ["train", "--out", f"{f}/run"], "{f}/run"),
    ("out is a file", lambda t, f: ["ensemble", "--out", str(f)], "{f}: exists and is not a directory"),
    ("default submission is a directory", lambda t, f: ["train", "--out", str(t / "r")], "{t}/r/submission.csv"),
    ("evaluate out", lambda t, f: ["evaluate", "--out", f"{f}/e"], "{f}/e"),
    ("learning-curve out", lambda t, f: ["learning-curve", "--out", f"{f}/c"], "{f}/c"),
    ("study out", lambda t, f: ["study", "--name", "dropout", "--out", f"{f}/s"], "{f}/s"),
    ("robustness out", lambda t, f: ["robustness", "--model", "standard", "--out", f"{f}/r"], "{f}/r"),
    ("baselines out", lambda t, f: ["baselines", "--out", f"{f}/b"], "{f}/b"),
    ("tune out", lambda t, f: ["tune", "--out", f"{f}/t"], "{f}/t"),
    ("explore out", lambda t, f: ["explore", "--out", f"{f}/x"], "{f}/x"),
    ("predict output", lambda t, f: ["predict", "--run", str(t), "--submission", f"{f}/p.csv"], "{f}/p.csv"),
    ("compare output", lambda t, f: ["compare", "--results", str(t / "missing"), "--output", f"{f}/r.md"], "{f}/r.md"),
]


@pytest.mark.parametrize(("case", "argv", "named"), OUTPUT_CASES, ids=[c[0] for c in OUTPUT_CASES])
def test_unwritable_outputs_are_refused_before_the_data_is_read(
    case, argv, named, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default --out (results/...) lies here
    plain = _plain_file(tmp_path)
    (tmp_path / "r" / "submission.csv").mkdir(parents=True)
    # The data does not exist: an output checked first is named, not the data.
    full = [*argv(tmp_path, plain)]
    full += [] if full[0] == "compare" else ["--data", str(tmp_path / "missing" / "train.csv")]
    assert main(full) == 2
    line = _one_error(capsys)
    assert f"lenet-tf: error: {named.format(t=tmp_path, f=plain)}" in line, line
    assert "missing" not in line
    assert plain.read_text() == "not a directory\n"


def test_run_training_and_predict_run_check_outputs_before_reading_data(tmp_path: Path) -> None:
    plain = _plain_file(tmp_path)
    spec = JobSpec(model="standard", members=1, train=TrainConfig(epochs=1))
    missing = tmp_path / "missing" / "train.csv"
    with pytest.raises(LenetError, match=rf"^{plain}/sub.csv: cannot write there \({plain} is not a directory\)$"):
        run_training(spec, tmp_path / "run", source=missing, submission=plain / "sub.csv")
    with pytest.raises(LenetError, match=rf"^{tmp_path}: is a directory; name a file to write$"):
        run_training(spec, tmp_path / "run", source=missing, submission=tmp_path)
    with pytest.raises(LenetError, match=rf"^{plain}: exists and is not a directory$"):
        run_training(spec, plain, source=missing)
    assert not (tmp_path / "run").exists()
    members = tmp_path / "done" / "members"
    members.mkdir(parents=True)
    (members / "member_01.keras").write_text("")  # enough for the member check that comes first
    with pytest.raises(LenetError, match=rf"^{plain}/p.csv: cannot write there"):
        predict_run(tmp_path / "done", plain / "p.csv", source=missing)


def test_check_output_accepts_what_can_be_written(tmp_path: Path) -> None:
    from lenet_tf.rundir import check_output

    (tmp_path / "old.csv").write_text("x")
    for path in (tmp_path / "new" / "deeper" / "s.csv", tmp_path / "old.csv", Path("relative.csv")):
        assert check_output(path) == path
    for directory in (tmp_path, tmp_path / "new" / "run"):
        assert check_output(directory, directory=True) == directory
    assert not (tmp_path / "new").exists()  # the check creates nothing
