"""Identity of specs and trained languages: the canonical spec hash, spec diffs, and the language fingerprint.

Every file nlic writes records these, so that a run, checkpoint or artifact can tell which spec it belongs to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from nlic.compiler.printer import format_spec
from nlic.compiler.spec import Spec

__all__ = [
    "UNTRAINED_SECTIONS",
    "fingerprint",
    "format_diff",
    "spec_data",
    "spec_diff",
    "spec_hash",
    "trained_spec_diff",
    "weight_leaves",
]



def _plain(x: Any) -> Any:
    """A JSON-able, order-stable view of spec values (schedules and ranges as their canonical text)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        # Schedules and ranges are values users write as text; keep that text so diffs read like the spec.
        if type(x).__name__ in ("Schedule", "IntRange"):
            return str(x)
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (tuple, list)):
        # task.params is a tuple of (key, value) pairs: show it as the mapping users wrote.
        if x and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in x):
            return {k: _plain(v) for k, v in x}
        return [_plain(v) for v in x]
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and x == int(x) and abs(x) < 1e15:
        return int(x)  # 1.0 and 1 are the same setting; do not let the hash tell them apart
    return x


def spec_data(spec: Any) -> dict[str, Any]:
    """The spec as a plain nested dict (the basis of `spec_hash` and of mismatch messages)."""
    return _plain(spec)


def spec_hash(spec: Spec) -> str:
    """sha256 hex digest of the canonical YAML text: equal specs, whatever their source syntax, hash equal."""
    return hashlib.sha256(format_spec(spec, "yaml").encode("utf-8")).hexdigest()


def spec_diff(
    a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "", *, only_in_b_is_new: bool = False
) -> list[str]:
    """Dotted paths whose values differ between two `spec_data` dicts, as `path: a != b` lines.

    `only_in_b_is_new`: a key `a` lacks is a field added since `a` was written (it takes its default, which keeps
    the old behaviour) and is not a difference.
    """
    out: list[str] = []
    keys = set(b) if not only_in_b_is_new else set()
    for k in sorted(set(a) | keys):
        path = f"{prefix}{k}"
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out.extend(spec_diff(va, vb, path + ".", only_in_b_is_new=only_in_b_is_new))
        elif va != vb:
            out.append(f"{path}: {json.dumps(va, default=str)} != {json.dumps(vb, default=str)}")
    return out


def weight_leaves(model: Any) -> list[np.ndarray]:
    """The model's array leaves as NumPy, in `jax.tree_util` order: the order the exported executor takes them."""
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def fingerprint(spec: Any, model: Any) -> str:
    """Short hex hash of the canonical spec and the weights' bytes; identifies a trained language."""
    h = hashlib.sha256(spec_hash(spec).encode())
    for leaf in weight_leaves(model):
        h.update(f"{leaf.dtype.str}{leaf.shape}".encode())
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()[:16]


UNTRAINED_SECTIONS = ("search", "eval")
"""Spec sections training never reads: a run trained under other values of them has the same weights."""


def trained_spec_diff(trained: Any, spec: Any, *, ignore: tuple[str, ...] = ()) -> list[str]:
    """Differences between a run's recorded spec data (`model.json`'s `spec`) and `spec`, as `spec_diff` lines.

    Fields added to nlic since the run was trained are not differences (they default to the old behaviour), nor
    is anything under the top-level sections in `ignore` (e.g. `UNTRAINED_SECTIONS`).
    """
    if not isinstance(trained, Mapping):
        return ["spec hash differs"]
    now = spec_data(spec)
    trained = {k: v for k, v in trained.items() if k not in ignore}
    now = {k: v for k, v in now.items() if k not in ignore}
    return spec_diff(trained, now, only_in_b_is_new=True)


def format_diff(diff: list[str], most: int = 5) -> str:
    """`spec_diff` lines as one message clause: the first `most`, then how many more."""
    return "; ".join(diff[:most]) + (f"; and {len(diff) - most} more" if len(diff) > most else "")
