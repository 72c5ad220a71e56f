"""Seeds: every random choice of nlic (data, initial weights, training noise, search) derives from the spec's seed.

`derive_seed(spec.seed, "train", step)` is a pure function, so a resumed run draws what an uninterrupted one did.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["derive_seed"]


def derive_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed for `parts` (e.g. ("train", step)), a pure function of the spec's seed: exact resume."""
    text = json.dumps([int(seed), *[str(p) for p in parts]])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF
