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

An executor (:mod:`.executors`) runs the pending items: ``serial`` here, one after another, or
``ray`` as tasks on a cluster, finished in any order. Each item is claimed before it runs
(:mod:`.claims`), so two commands pointed at one run directory never train the same item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .. import interrupts
from ..errors import LenetError
from ..options import complete_run_record
from ..rundir import atomic_write, open_run, read_json, record_written, remove_partial_files, write_json
from ..seeds import check_seed
from .claims import Claim, RunLock, others_running
from .executors import resolve_executor

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
    executor: Any = None,
) -> ExperimentResult:
    """Open or resume ``out`` for ``config``, run the plan's unfinished items, write the outputs.

    ``executor`` (:func:`.executors.resolve_executor`; None: serial) runs the items; it is not part of the
    configuration, so a run started serially can be finished on a cluster and back."""
    out = Path(out)
    if "seed" in config:
        check_seed(config["seed"])  # before anything is written: derived seeds need it in range
    if force and others_running(out):
        raise LenetError(f"{out}: another lenet_tf process is running this run; --force cannot discard it now")
    executor = resolve_executor(executor)
    with executor.session():
        resumed = open_run(out, config, force=force, keep_partial=True, complete=complete_run_record)
        lock = RunLock(out)
        try:
            if lock.alone():  # no other driver is writing here: what a killed one left is debris
                remove_partial_files(out)
            lock.share()
            record_written(lock.path)
            if resumed:
                echo(f"resuming the {experiment.name} in {out}: finished items are not run again")
            records = _Pending(experiment, out, progress, echo).run(executor)
        finally:
            lock.release()
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


class _Pending:
    """The plan's items brought to finished: loaded when on disk, else claimed and run by the
    executor; items another driver holds are waited for (then loaded, or run when it died)."""

    def __init__(self, experiment: Experiment, out: Path, progress: bool, echo: Callable[[str], None]):
        self.experiment, self.out, self.echo = experiment, out, echo
        self.finished: dict[int, dict[str, Any]] = {}
        self.index = {item.path: i for i, item in enumerate(experiment.plan)}
        self.claims: dict[str, Claim] = {}
        self.told: set[str] = set()  # items whose other driver has been named
        self.written = 0  # how many finished items the outputs on disk cover (this process)
        self.bar = tqdm(total=len(experiment.plan), desc=experiment.name, unit=experiment.unit, disable=not progress)

    def run(self, executor: Any) -> Records:
        """Until every item is finished: the executor runs those this driver can claim; when
        another driver holds all that are left, wait for one of them and look again."""
        try:
            with interrupts.as_interruption():
                while pending := self._unfinished():
                    if not executor.run(pending, self._claim, self.experiment.run_item, self._done, self._refresh):
                        Claim(self.out, pending[0][0].path).wait()
        finally:
            for claim in self.claims.values():
                claim.release()
            self.bar.close()
        return self.records()

    def records(self) -> Records:
        return [(item, self.finished[i]) for i, item in enumerate(self.experiment.plan) if i in self.finished]

    def _unfinished(self) -> list[tuple[Item, Path]]:
        """The items not finished yet, after loading those finished on disk (by anyone)."""
        pending = []
        for i, item in enumerate(self.experiment.plan):
            if i not in self.finished and not self._load(item):
                pending.append((item, self.out / item.path))
        return pending

    def _load(self, item: Item) -> bool:
        record = (self.experiment.load_item or read_item)(item, self.out / item.path)
        if record is not None:
            self._finish(item, record, resumed=True)
        return record is not None

    def _claim(self, item: Item) -> bool:
        """Whether this driver may run ``item`` now: not finished meanwhile by another driver,
        and claimed (else its holder is named once)."""
        if self._load(item):
            return False
        claim = Claim(self.out, item.path)
        if claim.try_acquire():
            self.claims[item.path] = claim
            return True
        if item.path not in self.told:
            self.told.add(item.path)
            self.echo(f"{item.path}: {claim.holder} is running it; running the others, then waiting for it")
        return False

    def _done(self, item: Item, record: dict[str, Any], files: Mapping[str, bytes] | None) -> None:
        """An item the executor finished: its files (when they came back from another node), then
        its record (written last: present = finished), then its claim let go."""
        directory = self.out / item.path
        for name, content in (files or {}).items():
            atomic_write(directory / name, lambda tmp, content=content: tmp.write_bytes(content))
        write_json(directory / ITEM_FILE, record)
        self.claims.pop(item.path).release()
        self._finish(item, record, resumed=False)

    def _refresh(self) -> None:
        """Rewrite the outputs when items finished since they were last written."""
        if self.finished and self.written != len(self.finished):
            self.experiment.write_outputs(self.records(), Progress(len(self.finished), len(self.experiment.plan)))
            self.written = len(self.finished)

    def _finish(self, item: Item, record: dict[str, Any], resumed: bool) -> None:
        self.finished[self.index[item.path]] = record
        self.bar.update(1)
        try:
            if self.experiment.postfix is not None:
                self.bar.set_postfix(self.experiment.postfix(item, record))
            if self.experiment.on_item is not None:
                self.experiment.on_item(item, record, resumed)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            if not resumed:
                raise
            directory = self.out / item.path
            raise LenetError(f"{directory / ITEM_FILE}: this finished item's record cannot be read back"
                             f" ({type(exc).__name__}: {str(exc)[:60]}); delete {directory} to run it again"
                             ) from exc  # fmt: skip
