"""The resumable loop every experiment shares.

An experiment says what it is (its recorded configuration), its plan (the items: repeat r, size
s, cell c, each with its own directory), how to run one item and how to write its outputs
(summary, tables, figures) from the finished items. :func:`run_experiment` does the rest, once
for all experiments:

* opens the run directory, or resumes it (a different configuration or schema is refused, see
  :func:`lenet_tf.rundir.open_run`);
* skips finished items: an item is finished when its ``metrics.json`` is there (written last,
  atomically, so a killed process never leaves a half-finished item);
* shows progress (tqdm) over the plan;
* before each item it runs, rewrites the outputs from the items finished so far (an interrupted
  or resumed hours-long run keeps its tables and figures, marked "k of N finished so far"), and
  writes the final outputs at the end;
* turns an error raised after Ctrl-C into the interruption (:mod:`lenet_tf.interrupts`): the
  command line then says "run the same command again to resume".

The items run one after another in this process; a distributed executor would plug in at
:func:`_run_pending`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .. import interrupts
from ..errors import LenetError
from ..rundir import open_run, read_json, write_json
from ..seeds import check_seed

ITEM_FILE = "metrics.json"


@dataclass(frozen=True)
class Item:
    """One unit of a plan: its directory below the run (``repeats/repeat_01``) and its coordinates."""

    path: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.params[name]


@dataclass(frozen=True)
class Progress:
    """How far a plan is: ``done`` of ``total`` items finished."""

    done: int
    total: int

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def note(self, what: str = "items") -> str:
        """``**k of N <what> finished so far**; rerun …`` for an unfinished plan, else ``""``."""
        if self.finished:
            return ""
        return f"**{self.done} of {self.total} {what} finished so far**; rerun the same command to continue"


Records = list[tuple[Item, dict[str, Any]]]


@dataclass
class Experiment:
    """What an experiment says; :func:`run_experiment` does the rest.

    ``run_item(item, directory)`` trains / measures one item (saving what it needs under
    ``directory``) and returns its record, which the runner writes as ``metrics.json``.
    ``write_outputs(records, progress)`` writes the summary, tables and figures of the finished
    ``(item, record)`` pairs (in plan order) and returns the report (the JSON view) and the paths
    it wrote. ``load_item`` (default: read ``metrics.json`` when there) returns None for an item
    that must run (again). ``on_item(item, record, resumed)`` reports a finished item.
    """

    name: str
    plan: Sequence[Item]
    run_item: Callable[[Item, Path], dict[str, Any]]
    write_outputs: Callable[[Records, Progress], tuple[dict[str, Any], dict[str, Path]]]
    load_item: Callable[[Item, Path], dict[str, Any] | None] | None = None
    on_item: Callable[[Item, dict[str, Any], bool], None] | None = None
    postfix: Callable[[Item, dict[str, Any]], dict[str, Any]] | None = None
    unit: str = "item"


@dataclass
class ExperimentResult:
    """What an experiment returns: its finished items, its report (what ``<name>.json`` holds)
    and the files it wrote. ``result["summary"]`` reads the report, as the JSON file does."""

    out: Path
    config: dict[str, Any]
    items: Records
    report: dict[str, Any]
    paths: dict[str, Path]
    resumed: bool

    def __getitem__(self, key: str) -> Any:
        return self.report[key]

    def __contains__(self, key: str) -> bool:
        return key in self.report

    def get(self, key: str, default: Any = None) -> Any:
        return self.report.get(key, default)

    @property
    def summary(self) -> Any:
        return self.report.get("summary")

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for _, record in self.items]


def read_item(item: Item, directory: Path) -> dict[str, Any] | None:
    """The default :attr:`Experiment.load_item`: the item's ``metrics.json``, None when absent."""
    path = directory / ITEM_FILE
    if not path.is_file():
        return None
    record = read_json(path)
    if not isinstance(record, dict):
        raise LenetError(f"{path}: not an item's record (a JSON object); delete {directory} to run that item again")
    return record


def run_experiment(
    experiment: Experiment,
    out: str | Path,
    config: Mapping[str, Any],
    *,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> ExperimentResult:
    """Open or resume ``out`` for ``config``, run the plan's unfinished items, write the outputs."""
    out = Path(out)
    if "seed" in config:
        check_seed(config["seed"])  # before anything is written: derived seeds need it in range
    resumed = open_run(out, config, force=force)
    if resumed:
        echo(f"resuming the {experiment.name} in {out}: finished items are not run again")
    records = _run_pending(experiment, out, progress)
    report, paths = _write_outputs(experiment, records, out, resumed)
    return ExperimentResult(out, dict(config), records, report, paths, resumed)


def _write_outputs(experiment: Experiment, records: Records, out: Path, resumed: bool) -> tuple[Any, Any]:
    """The experiment's outputs; a record read back from disk that they cannot use (edited or
    damaged) is named in one line, not left to a traceback or a wrong figure."""
    try:
        return experiment.write_outputs(records, Progress(len(records), len(experiment.plan)))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if not resumed:
            raise
        raise LenetError(f"{out}: a finished item's record there cannot be read back ({type(exc).__name__}: "
                         f"{str(exc)[:60]}); delete that item's folder to run it again, or use another --out") from exc


def _run_pending(experiment: Experiment, out: Path, progress: bool) -> Records:
    """Every item of the plan, finished: loaded when on disk, else run (outputs rewritten first)."""
    load = experiment.load_item or read_item
    records: Records = []
    written = 0  # how many finished items the outputs on disk cover (this process)
    bar = tqdm(total=len(experiment.plan), desc=experiment.name, unit=experiment.unit, disable=not progress)
    try:
        with interrupts.as_interruption():
            for item in experiment.plan:
                directory = out / item.path
                record = load(item, directory)
                resumed = record is not None
                if record is None:
                    if records and written != len(records):
                        experiment.write_outputs(records, Progress(len(records), len(experiment.plan)))
                        written = len(records)
                    interrupts.check()
                    record = experiment.run_item(item, directory)
                    write_json(directory / ITEM_FILE, record)  # last: present = finished
                records.append((item, record))
                bar.update(1)
                try:
                    if experiment.postfix is not None:
                        bar.set_postfix(experiment.postfix(item, record))
                    if experiment.on_item is not None:
                        experiment.on_item(item, record, resumed)
                except (KeyError, TypeError, ValueError, IndexError) as exc:
                    if not resumed:
                        raise
                    raise LenetError(f"{directory / ITEM_FILE}: this finished item's record cannot be read back"
                                     f" ({type(exc).__name__}: {str(exc)[:60]}); delete {directory} to run it again"
                                     ) from exc  # fmt: skip
    finally:
        bar.close()
    return records
