"""Result directories: atomic files, JSON and Markdown, recorded environment, resumable runs.

A run directory holds ``config.json`` (what the run is); a rerun with the same configuration
resumes in it, and a different configuration is refused rather than mixed in.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import LenetError

CONFIG_FILE = "config.json"


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through a temp file in the same directory, then rename: readers never see half a
    file and an interrupted write leaves the old file (if any) intact."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise LenetError(f"{path.parent}: cannot write there ({exc.strerror})") from exc
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should be readable like any file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, payload: Any) -> Path:
    """Atomically write ``payload`` as indented JSON."""
    return write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: str | Path) -> Any:
    """Read JSON, or raise LenetError naming the file and line."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LenetError(f"{path}: no such file") from exc
    except json.JSONDecodeError as exc:
        raise LenetError(f"{path}: line {exc.lineno}: malformed JSON ({exc.msg})") from exc


def save_model(model: Any, path: str | Path) -> Path:
    """Save a Keras model in the native ``.keras`` format, atomically."""
    return atomic_write(Path(path), lambda tmp: model.save(tmp))


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with every result."""
    import keras
    import numpy
    import sklearn
    import tensorflow as tf

    from . import __version__

    return {
        "lenet_tf": __version__,
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def open_run(directory: str | Path, config: Mapping[str, Any], *, force: bool = False) -> bool:
    """Create or reopen a run directory for ``config``.

    Returns True when it resumes an earlier run of the same configuration. A directory holding
    a different configuration is refused (nothing is mixed or lost) unless ``force``, which
    clears it first.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    config = json.loads(json.dumps(config, default=_json_default))  # normalise tuples, numpy
    if config_path.is_file():
        previous = read_json(config_path)
        if previous == config:
            remove_partial_files(directory)
            return True
        if not force:
            key = _first_difference(previous, config)
            raise LenetError(
                f"{directory} holds a run with a different configuration ({key}); use another"
                " --out, or --force to discard that run"
            )
        shutil.rmtree(directory)
    elif directory.exists() and not directory.is_dir():
        raise LenetError(f"{directory}: exists and is not a directory")
    write_json(config_path, config)
    return False


def remove_partial_files(directory: str | Path) -> list[Path]:
    """Delete temp files that a killed process left behind mid-write (see :func:`atomic_write`)."""
    removed = [path for path in Path(directory).rglob(".*.partial*") if path.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _first_difference(old: Any, new: Any, prefix: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')}: {old!r} there, {new!r} now"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
