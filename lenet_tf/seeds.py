"""Every derived seed, in one place.

A run's ``seed`` (any integer in [0, 2**32 - 1], what NumPy and Keras accept) fixes the seeds of
its repeats, members, learning-curve points and tuner. Each derived seed is NumPy's
``SeedSequence([seed, stream, *path]).generate_state(1)`` (a documented hash of the whole path,
see https://numpy.org/doc/stable/reference/random/bit_generators/generated/numpy.random.SeedSequence.html)
shifted to 31 bits. So derived seeds never overflow (the old ``seed * 1000 + index`` did for
``--seed 5000``), two paths almost never share a seed, and the training code may still add small
offsets to a seed (the augmentation layers use seed + 1, seed + 2) within every seed range.

Changing a derivation changes every result trained after it: bump ``lenet_tf.rundir.SCHEMA_VERSION``
(recorded in every config.json), so runs trained the old way are refused, never silently resumed.
Schema 1 derived ``base * 1000 + index`` (members, repeats), ``repeat seed * 100,000 + size``
(learning-curve points) and ``base + 1`` (the tuner).
"""

from __future__ import annotations

import numpy as np

from .errors import LenetError

MAX_SEED = 2**32 - 1

# Stream tags: the first entry of every path, so a member seed and a repeat seed of the same
# numbers differ.
_MEMBER, _REPEAT, _POINT, _TUNER, _SUBSET = 1, 2, 3, 4, 5


def check_seed(seed: object, what: str = "seed") -> int:
    """``seed`` as an int in [0, 2**32 - 1], or a one-line LenetError naming ``what``."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) <= MAX_SEED:
        raise LenetError(f"{what} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return int(seed)


def derive(seed: int, *path: int) -> int:
    """The seed at ``path`` below ``seed``: a 31-bit integer, a fixed function of both."""
    entropy = [check_seed(seed), *(int(p) for p in path)]
    if any(p < 0 for p in entropy):
        raise LenetError(f"seed path entries must be ≥ 0, got {path!r}")
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0] >> 1)


def member_seed(base_seed: int, index: int) -> int:
    """Seed of ensemble member ``index`` (0-based)."""
    return derive(base_seed, _MEMBER, index)


def repeat_seed(base_seed: int, repeat: int) -> int:
    """Seed of repeat ``repeat`` (0-based) of an experiment; its members derive theirs from it."""
    return derive(base_seed, _REPEAT, repeat)


def point_seed(base_seed: int, repeat: int, size: int) -> int:
    """Seed of a learning-curve point: its training subset and its members."""
    return derive(base_seed, _POINT, repeat, size)


def subset_seed(base_seed: int, size: int) -> int:
    """Seed of the one training subset of ``size`` images that every repeat of a learning curve
    shares when it draws one subset per size (the reference's way: only the initialisation varies)."""
    return derive(base_seed, _SUBSET, size)


def tuner_seed(base_seed: int) -> int:
    """Seed of keras-tuner's oracle: never 0 (keras-tuner draws a random seed for 0)."""
    return derive(base_seed, _TUNER) + 1
