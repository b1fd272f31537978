"""The hold-out ledger: which recipes scored which held-out rows.

A held-out figure is an honest estimate only the first time a recipe is scored on those digits: a
second recipe scored on them could have been kept because it scored better. Every run of the
holdout protocol records here the hold-out it scored (the data, the split seed and the rows, as one
key) and its recipe (its recorded configuration, as one key). A later run with another recipe on
the same hold-out finds the earlier ones and says in its report that the hold-out was spent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LenetError
from .options import HOLDOUT_LEDGER
from .rundir import read_json, write_json

DEFAULT_LEDGER = Path(HOLDOUT_LEDGER)  # relative to the working directory, beside the runs of `make`


def holdout_key(data_fingerprint: str, split_seed: int, rows: np.ndarray) -> str:
    """One key for the held-out digits: the data, the split seed and the rows themselves."""
    digest = hashlib.sha256(f"{data_fingerprint}|{int(split_seed)}|".encode())
    digest.update(np.asarray(rows, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def recipe_key(config: Mapping[str, Any]) -> str:
    """One key for what a run trains (its recorded configuration, versions left out)."""
    text = json.dumps({k: v for k, v in config.items() if k not in ("schema_version", "lenet_tf_version")},
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_scoring(ledger: str | Path, holdout: str, recipe: str, run: str | Path) -> list[dict[str, Any]]:
    """Record that ``recipe`` (run ``run``) scored ``holdout`` and return the entries of the other
    recipes that scored it before (empty: this is its first recipe, the figure is untouched)."""
    ledger = Path(ledger)
    entries = _read(ledger)
    scored = [e for e in entries if e.get("holdout") == holdout]
    before = [e for e in scored if e.get("recipe") != recipe]
    if not any(e.get("recipe") == recipe for e in scored):  # a rerun of the same recipe adds nothing
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        entries.append({"holdout": holdout, "recipe": recipe, "run": str(run), "scored": now})
        ledger.parent.mkdir(parents=True, exist_ok=True)
        write_json(ledger, {"entries": entries})
    return before


def _read(ledger: Path) -> list[dict[str, Any]]:
    if not ledger.exists():
        return []
    payload = read_json(ledger)
    entries = payload.get("entries") if isinstance(payload, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise LenetError(f"{ledger}: not a hold-out ledger (expected {{\"entries\": [...]}}); move it away")
    return entries


def spent_text(before: list[dict[str, Any]], ledger: str | Path) -> str:
    """What a report says of its hold-out: untouched, or spent by the recipes that scored it first."""
    if not before:
        return (f"This is the first recipe scored on these held-out digits (recorded in `{ledger}`): an untouched"
                " estimate. A later recipe scored on them will say that they were spent.")  # fmt: skip
    runs = ", ".join(f"`{e.get('run')}` ({e.get('scored', '?')[:10]})" for e in before)
    return (f"**These held-out digits were spent**: {len(before)} other recipe(s) were scored on them before"
            f" ({runs}; `{ledger}`), so this figure is not an untouched estimate.")
