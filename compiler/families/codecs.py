"""Codecs of the built-in data shapes: 1-D integer sequences and 2-D grids flattened row-major.

Shorter data are padded with a PAD token when the codec has one (`pad`); without one every datum has exactly
the codec's shape. `render` draws grids as coloured blocks (ARC palette) when asked to.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from nlic.grammar.errors import DataError, Loc

__all__ = ["SequenceCodec", "GridCodec", "ansi_cell", "is_int", "show_value"]

# ARC's ten colours as xterm-256 indices: black, blue, red, green, yellow, grey, magenta, orange, azure, maroon.
_PALETTE = (16, 27, 196, 34, 226, 245, 201, 208, 51, 88)


def is_int(v: Any) -> bool:
    """True for Python/NumPy integers but not bools (JSON true/false are not data values)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def ansi_cell(v: int, text: str) -> str:
    """`text` on the ARC colour of value `v` (other values cycle through the 256-colour cube)."""
    code = _PALETTE[v] if 0 <= v < len(_PALETTE) else 17 + (v * 37) % 214
    fg = 15 if code in (16, 27, 88, 201, 196, 34) else 16
    return f"\x1b[48;5;{code}m\x1b[38;5;{fg}m{text}\x1b[0m"


def _fail(what: str, msg: str, hint: str | None, where: Loc | None) -> DataError:
    return DataError(f"{what} {msg}", loc=where, hint=hint)


def _check_values(row: list[Any], values: int, pad: int | None, what: str, where: Loc | None,
                  row_number: int | None = None) -> None:
    """Every value an int of the alphabet; positions in messages count from 1 (`row_number`: a grid's row)."""
    for i, v in enumerate(row):
        pos = f"position {i + 1}" if row_number is None else f"row {row_number}, column {i + 1}"
        if not is_int(v):
            raise _fail(what, f"has a non-integer value {show_value(v)} at {pos}", "values are integers", where)
        if v < 0 or v >= values or (pad is not None and v == pad):
            top = values - 1 if pad is None else pad - 1
            raise _fail(
                what, f"has value {v} at {pos}, outside the alphabet 0..{top}",
                "the model was built for this alphabet; set language.values or retrain with this data", where,
            )


@dataclasses.dataclass(frozen=True)
class SequenceCodec:
    """Sequences of at most `length` integers in [0, values); the PAD token (if any) fills the tail.

    Attributes:
        length: L.
        values: V, including the PAD token when there is one.
        pad: token of positions past the end of a shorter sequence (None: every sequence has length L).
    """

    length: int
    values: int
    pad: int | None = None

    def encode(self, value: Any, *, where: Loc | None = None, what: str = "value") -> np.ndarray:
        """JSON list of ints -> int32 [L]; `DataError` at `where` if it does not fit.

        The length is checked before any value, so that a huge list costs nothing to refuse."""
        if not isinstance(value, list) or (value and isinstance(value[0], list)):
            raise _fail(what, f"must be a list of integers, got {show_value(value)}", "write e.g. [1, 2, 3]", where)
        if len(value) > self.length or (self.pad is None and len(value) != self.length):
            need = f"at most {self.length}" if self.pad is not None else f"exactly {self.length}"
            raise _fail(what, f"has {len(value)} values, the model reads {need}", None, where)
        _check_values(value, self.values, self.pad, what, where)
        out = np.full(self.length, self.pad if self.pad is not None else 0, np.int32)
        out[: len(value)] = value
        return out

    def decode(self, tokens: np.ndarray) -> list[int]:
        """int [L] -> list of ints, without the PAD tail (PAD inside a prediction ends it)."""
        toks = [int(t) for t in np.asarray(tokens).reshape(-1)]
        if self.pad is not None and self.pad in toks:
            toks = toks[: toks.index(self.pad)]
        return toks

    def render(self, tokens: np.ndarray, *, color: bool = False) -> str:
        """Values separated by spaces; coloured cells when `color`."""
        vals = self.decode(tokens)
        width = len(str(max(self.values - 1, 0)))
        if color:
            return "".join(ansi_cell(v, f"{v:>{width + 1}} ") for v in vals)
        return " ".join(f"{v:>{width}}" for v in vals)


@dataclasses.dataclass(frozen=True)
class GridCodec:
    """Grids of at most rows x cols integers, flattened row-major to L = rows * cols.

    Smaller grids sit in the top-left corner, the rest is PAD; decoding drops all-PAD rows and columns.

    Attributes:
        rows, cols: the largest grid.
        values: V, including the PAD token when there is one.
        pad: token outside a smaller grid (None: every grid is exactly rows x cols).
    """

    rows: int
    cols: int
    values: int
    pad: int | None = None

    @property
    def length(self) -> int:
        return self.rows * self.cols

    def encode(self, value: Any, *, where: Loc | None = None, what: str = "value") -> np.ndarray:
        """JSON grid (list of equal-length rows) -> int32 [rows*cols]; `DataError` if it does not fit.

        The shape is checked before any cell, so that a huge grid costs one look per row to refuse."""
        if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
            raise _fail(what, f"must be a grid (a list of rows), got {show_value(value)}",
                        "write e.g. [[0, 1], [2, 3]]", where)
        if len(value) > self.rows:
            need = "at most" if self.pad is not None else "exactly"
            raise _fail(what, f"has {len(value)} rows, the model reads {need} {self.rows}x{self.cols}", None, where)
        widths = {len(r) for r in value}
        if len(widths) != 1:
            raise _fail(what, f"has rows of different lengths {sorted(widths)}",
                        "every row needs the same length", where)
        h, w = len(value), widths.pop()
        fits = h <= self.rows and w <= self.cols if self.pad is not None else (h, w) == (self.rows, self.cols)
        if not fits:
            need = "at most" if self.pad is not None else "exactly"
            raise _fail(what, f"is a {h}x{w} grid, the model reads {need} {self.rows}x{self.cols}", None, where)
        for n, r in enumerate(value, 1):
            _check_values(r, self.values, self.pad, what, where, n)
        out = np.full((self.rows, self.cols), self.pad if self.pad is not None else 0, np.int32)
        out[:h, :w] = np.asarray(value, np.int32)
        return out.reshape(-1)

    def decode(self, tokens: np.ndarray) -> list[list[int]]:
        """int [rows*cols] -> grid, cropped to the rows and columns that are not all PAD."""
        g = np.asarray(tokens).reshape(self.rows, self.cols)
        if self.pad is not None:
            keep = g != self.pad
            h = int(np.max(np.nonzero(keep.any(1))[0], initial=-1)) + 1
            w = int(np.max(np.nonzero(keep.any(0))[0], initial=-1)) + 1
            g = g[:h, :w]
        return [[int(v) for v in row] for row in g]

    def render(self, tokens: np.ndarray, *, color: bool = False) -> str:
        """One line per row; two-character coloured blocks when `color`, digits otherwise."""
        grid = self.decode(tokens)
        width = len(str(max(self.values - 1, 0)))
        if color:
            return "\n".join("".join(ansi_cell(v, "  ") for v in row) for row in grid)
        return "\n".join(" ".join(f"{v:>{width}}" for v in row) for row in grid)


def show_value(value: Any, width: int = 40) -> str:
    """A value as JSON, shortened to `width` characters; only its first `width` elements are looked at, so a huge
    list costs no more than a small one."""
    try:
        text = json.dumps(_head(value, [width]))
    except (TypeError, ValueError, RecursionError):
        text = repr(type(value).__name__)
    return text if len(text) <= width else text[: width - 3] + "..."


def _head(value: Any, budget: list[int]) -> Any:
    # A copy of `value` holding at most budget[0] list elements in all (each prints as at least one character).
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for v in value:
        if budget[0] <= 0:
            out.append("...")
            break
        budget[0] -= 1
        out.append(_head(v, budget))
    return out
