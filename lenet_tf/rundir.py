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
# Schema of config.json and of what a run directory holds. 2: every seed derived by
# lenet_tf.seeds (derivation 2), versions recorded, the files a run wrote listed in FILES_LIST.
# 3 (lenet_tf 0.2.0): every model scales its input itself (an ``input_scale`` layer, recorded with
# the model) and takes Kaggle's 0-255 pixels; schema 2's saved models took pixels divided by 255.
SCHEMA_VERSION = 3
SCHEMA_KEY = "schema_version"
PACKAGE_KEY = "lenet_tf_version"
FILES_LIST = ".lenet_tf_files"  # one top-level entry a line: what --force may delete
# Brings a recorded configuration up to date (see open_run): the caller's, who knows what it holds.
Completion = Callable[[Mapping[str, Any]], Mapping[str, Any]]
_DELETE_IT_YOURSELF = (
    "delete that run yourself (it does not record which files it wrote, so --force cannot tell them from yours)"
)


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
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # no half-written file is left behind, whatever stopped the write
        if isinstance(exc, OSError):  # a full disk or a size limit: the writer's error names no file
            raise LenetError(f"{path}: cannot write ({_reason(exc)})") from exc
        raise
    record_written(path)
    return path


def _reason(exc: OSError) -> str:
    """An OSError's one-line reason ("File too large"), without the path its message may repeat."""
    return exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]


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
    except UnicodeDecodeError as exc:
        raise LenetError(f"{path}: byte 0x{exc.object[exc.start]:02x} at offset {exc.start} is not UTF-8 text") from exc
    except (ValueError, RecursionError) as exc:  # an integer of over 4,300 digits, nesting too deep
        raise LenetError(f"{path}: unreadable JSON ({str(exc).splitlines()[0][:80]})") from exc
    except OSError as exc:  # a directory, no permission
        raise LenetError(f"{path}: cannot read ({exc.strerror})") from exc


def save_model(model: Any, path: str | Path) -> Path:
    """Save a Keras model in the native ``.keras`` format, atomically."""
    return atomic_write(Path(path), lambda tmp: model.save(tmp))


def check_output(path: str | Path, *, directory: bool = False) -> Path:
    """Refuse an output ``path`` (a ``directory`` to create or reuse, else a file) that cannot be
    written, in one line naming it: called before any data is read or model trained, so that a bad
    path is not found after hours of training. Creates nothing."""
    path = Path(path)
    if directory and (path.exists() or path.is_symlink()) and not path.is_dir():
        raise LenetError(f"{path}: exists and is not a directory")
    if not directory and path.is_dir():
        raise LenetError(f"{path}: is a directory; name a file to write")
    # The deepest part of the path that exists decides: a file there cannot hold the rest, and the
    # rest is created inside it. (os.access: root may write anywhere but on a read-only mount.)
    start = path if directory else path.parent
    existing = next((p for p in (start, *start.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise LenetError(f"{path}: cannot write there ({existing} is not a directory)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LenetError(f"{path}: cannot write there ({existing} is not writable)")
    return path


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


def open_run(
    directory: str | Path,
    config: Mapping[str, Any],
    *,
    force: bool = False,
    keep_partial: bool = False,
    complete: Completion | None = None,
) -> bool:
    """Create or reopen a run directory for ``config``.

    Returns True when it resumes an earlier run of the same configuration and schema. A directory
    holding a different configuration, or a run recorded by another schema (:data:`SCHEMA_VERSION`),
    is refused (nothing is mixed or lost) unless ``force``, which deletes what that run wrote, and
    only that. A directory that holds anything a run did not write is refused, ``force`` or not.
    A resumed run's half-written files (a killed writer's) are deleted unless ``keep_partial``: the
    experiment runner deletes them itself, and only when no other process is writing the run.
    ``complete`` brings a recorded configuration up to date before the comparison (the fields added
    since it was written, at the values that run as before them, e.g.
    :func:`lenet_tf.options.complete_run_record`): the caller knows what a configuration holds, this module does not.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    config = json.loads(json.dumps(config, default=_json_default))  # normalise tuples, numpy
    if directory.exists() and not directory.is_dir():
        raise LenetError(f"{directory}: exists and is not a directory")
    if config_path.is_file():
        previous = read_json(config_path)
        if not isinstance(previous, dict):
            raise LenetError(f"{config_path}: not a run's configuration (a JSON object); use another --out")
        problem = _resume_problem(previous, config, complete or dict)
        if problem is None:
            if not keep_partial:
                remove_partial_files(directory)
            return True
        if not force:
            way_out = "--force to discard that run" if _files_list(directory).is_file() else _DELETE_IT_YOURSELF
            raise LenetError(f"{directory} holds a run with {problem}; use another --out, or {way_out}")
        clear_run(directory)
    else:
        _refuse_foreign(directory, written=set())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _files_list(directory).touch()
    except OSError as exc:
        raise LenetError(f"{directory}: cannot write there ({exc.strerror})") from exc
    write_json(config_path, {**config, **versions()})
    return False


def versions() -> dict[str, Any]:
    """What config.json records besides the configuration: the schema and package versions."""
    from . import __version__

    return {SCHEMA_KEY: SCHEMA_VERSION, PACKAGE_KEY: __version__}


def _without_versions(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in (SCHEMA_KEY, PACKAGE_KEY)}


def _resume_problem(previous: Mapping[str, Any], config: Mapping[str, Any], complete: Completion) -> str | None:
    """Why the run recorded as ``previous`` cannot be resumed for ``config`` (None: it can)."""
    schema, recorded, config = _schema_problem(previous), complete(_without_versions(previous)), complete(config)
    if recorded == config:
        return schema
    difference = f"a different configuration ({_first_difference(recorded, config)})"
    return difference + (f" and {schema}" if schema else "")


def _schema_problem(previous: Mapping[str, Any]) -> str | None:
    """Why a recorded run cannot be resumed by this schema (None: it can). Schema 1 (no version
    recorded) derived seeds by another rule, so its trainings differ from this version's."""
    recorded = previous.get(SCHEMA_KEY)
    if recorded == SCHEMA_VERSION:
        return None
    which = "no schema version (schema 1, older seed derivation)" if recorded is None else f"schema {recorded!r}"
    if recorded == 2:
        which += " (models that take pixels divided by 255)"
    by = f", lenet_tf {previous[PACKAGE_KEY]}" if PACKAGE_KEY in previous else ""
    return f"{which}{by} where this lenet_tf writes schema {SCHEMA_VERSION}"


def clear_run(directory: str | Path) -> None:
    """Delete what the run in ``directory`` wrote (its recorded files), and nothing else.

    Refused when the directory holds anything the run did not write (a user's data or notes) or
    when the run did not record its files (written by a lenet_tf older than schema 2).
    """
    directory = Path(directory)
    listing = _files_list(directory)
    if not listing.is_file():
        raise LenetError(f"{directory} holds a run of an older lenet_tf; use another --out, or {_DELETE_IT_YOURSELF}")
    written = set(listing.read_text(encoding="utf-8").split("\n")) - {""}
    _refuse_foreign(directory, written)
    for name in sorted(written):
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    remove_partial_files(directory)
    listing.write_text("", encoding="utf-8")


def _refuse_foreign(directory: Path, written: set[str]) -> None:
    """Refuse a run directory holding entries no run wrote (they would be mixed in, or deleted)."""
    if not directory.is_dir():
        return
    foreign = sorted(
        p.name for p in directory.iterdir()
        if p.name not in written and p.name != FILES_LIST and not _is_partial(p)
    )  # fmt: skip
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise LenetError(
            f"{directory} holds {foreign[0]}{more}, which no lenet_tf run wrote; a run directory holds only a"
            " run's own files: use an empty or new --out"
        )


def record_written(path: str | Path) -> None:
    """Note ``path`` (its top-level entry) in the files list of the run directory holding it, so
    ``--force`` can delete it later. :func:`atomic_write` calls it for every file; call it for
    what other libraries write (keras-tuner's project)."""
    path = Path(path).absolute()
    for parent in path.parents:
        listing = parent / FILES_LIST
        if listing.is_file():
            name = path.relative_to(parent).parts[0]
            if name not in listing.read_text(encoding="utf-8").split("\n"):
                try:
                    with listing.open("a", encoding="utf-8") as handle:
                        handle.write(name + "\n")
                except OSError as exc:  # a full disk fails here too: name the list, not just the reason
                    raise LenetError(f"{listing}: cannot write ({_reason(exc)})") from exc
            return


def _files_list(directory: Path) -> Path:
    return directory / FILES_LIST


def _is_partial(path: Path) -> bool:
    return path.name.startswith(".") and ".partial" in path.name


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
