"""The `deepcoder` family: ExeDec's DeepCoder compositional splits, with generated training data and the
shipped 1000-task test files as the `ood` split.

Params:
    split: ExeDec experiment NONE (default), LENGTH_GENERALIZATION, COMPOSE_DIFFERENT_CONCEPTS,
        SWITCH_CONCEPT_ORDER, COMPOSE_NEW_OP or ADD_OP_FUNCTIONALITY (case-insensitive).
    query: `loo`: a task's last example is the query and the spec holds the examples before it (ExeDec tasks
        have 3 examples, so pairs <= 2; with pairs: 2 this is leave-one-out scoring of the shipped tasks).
        `fresh`: the spec holds up to 3 examples and the query is a new input (same types and value ranges)
        run through the ground-truth program; after 100 failed draws the last example is used.
        `auto` (default): loo when pairs <= 2, fresh otherwise.
    data_dir: folder of the ExeDec test files `<SPLIT>.jsonl`. Default: env NLIC_EXEDEC_DIR, else
        `shared/benchmarks/exedec/data/test_data/deepcoder` searched upward from the working directory and
        from this package's location.
    pool: training tasks are drawn (seeded by the step seed) from a pool of this many generated tasks, built
        once per process (default 4096; 0 generates every batch afresh, about 3 ms per task).
    sampler: how generated programs (train, id, ood_gen) are drawn: `exedec` (default) like ExeDec's data, or
        `forward`, nlic's sampler before 2026-12-06, whose programs almost all chain each statement onto the previous
        one and end in an int a third of the time (ExeDec's test programs: 2-8%); see `deepcoder_dsl.SAMPLERS`.
    lengths: keep the generated training programs (splits `train` and `id`) to these lengths, e.g. `1..1` for
        single operations; default: the split's own (NONE 1-5, LENGTH_GENERALIZATION 1-4, ...). Lengths the split
        does not train on are an error. Meant for `training.curriculum` stages.

Splits: `train` (the experiment's training distribution: program rules of ExeDec's `sample_random.py`), `id`
(fresh tasks of that distribution, generated from the seed), `ood` (the shipped test tasks, the first n in file
order; at most 1000) and `ood_gen` (newly sampled tasks of the experiment's test distribution).

Encoding (L = 12, V = 104): a datum is two groups of 6 tokens, one per program input (the output uses group 0;
an absent second input is all PAD). A group is a type tag then 5 value slots: an int is [INT, v, PAD x4], a list
[LIST, v1..vk, PAD x(5-k)]. Value v in [-50, 50] is token v + 50; PAD = 101, INT = 102, LIST = 103.
JSON forms: an int, a list of ints, an object {"x0": ..., "x1": ...} of inputs, or ExeDec text "x0 = [ 1 2 ] | x1 = 3".

Primitives (`DeepCoderFamily.primitives`, the names `nlic inspect` gives learned tokens): every DSL operation as
one step on an encoded datum: decode, apply the operation to the inputs of the types it takes (in order: the first
list for `Sort`, the int and the list for `Take`, both lists for `ZipWith`), encode the result. First-order
operations are named in lower case (`sort`), higher-order ones with their lambda (`map_times2` is `Map (*2)`,
`scanl1_max` is `Scanl1 (max)`). Where the inputs lack a type or the operation fails, the result is undefined.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nlic.grammar.errors import DataError, Diagnostic, Loc, SpecError
from nlic.grammar.reading import MAX_DATA_BYTES, loads_json, read_text
from nlic.compiler.families import deepcoder_dsl as dsl
from nlic.compiler.families.base import Primitive, TaskSet
from nlic.compiler.families.common import check_split, rng_for
from nlic.compiler.families.params import Param, check, resolve
from nlic.compiler.spec import IntRange

__all__ = ["DeepCoderCodec", "DeepCoderFamily", "find_data_dir", "load_test_tasks", "PAD", "INT", "LIST"]

OFFSET = -dsl.MIN_INT
PAD, INT, LIST = 101, 102, 103
GROUP = 1 + dsl.MAX_LIST_LENGTH
LENGTH, VALUES = 2 * GROUP, 104
DATA_SUBDIR = Path("shared/benchmarks/exedec/data/test_data/deepcoder")

SCHEMA = (
    Param("split", "choice", "NONE", "ExeDec experiment.", choices=dsl.EXPERIMENTS),
    Param("query", "choice", "auto", "Query pair: the last example (loo), a fresh input (fresh), or auto "
          "(loo when pairs <= 2).", choices=("auto", "loo", "fresh")),
    Param("data_dir", "path", None, "Folder holding the ExeDec test files <SPLIT>.jsonl."),
    Param("pool", "int", 4096, "Size of the per-process pool training tasks are drawn from (0: no pool).",
          min=0, max=10_000_000),
    Param("sampler", "choice", "exedec", "How generated programs are drawn: like ExeDec's data (exedec), or nlic's "
          "sampler before 2026-12-06 (forward).", choices=dsl.SAMPLERS),
    Param("lengths", "range", None, "Program lengths of the generated training tasks (train and id), e.g. 1..2; "
          "default: the split's own.", min=1, max=5),
)
SPLITS = ("train", "id", "ood", "ood_gen")


def _norm(params: Mapping[str, Any]) -> dict[str, Any]:
    p = dict(params)
    if isinstance(p.get("split"), str):
        p["split"] = p["split"].upper()
    return p


# --- codec -----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeepCoderCodec:
    """DeepCoder values and inputs <-> int [12] (see the module docstring)."""

    length: int = LENGTH
    values: int = VALUES
    pad: int = PAD

    def encode(self, value: Any, *, where: Loc | None = None, what: str = "value") -> np.ndarray:
        """JSON value (int, list, {"x0": .., "x1": ..} or ExeDec text) -> int32 [12]."""
        if isinstance(value, str):
            try:
                _, items = dsl.parse_inputs(value) if "=" in value else ((), [dsl.parse_value(value)])
            except dsl.ParseError as e:
                raise DataError(f"{what}: {e}", loc=where, hint="write e.g. \"x0 = [ 1 2 ] | x1 = 3\"") from None
        elif isinstance(value, dict):
            keys = sorted(value)
            if not value or keys != [f"x{i}" for i in range(len(keys))]:
                raise DataError(f"{what}: input names must be x0 (and x1), got {keys}", loc=where)
            items = [value[k] for k in keys]
        else:
            items = [value]
        if len(items) > 2:
            raise DataError(f"{what} has {len(items)} inputs, DeepCoder tasks have at most 2", loc=where)
        out = np.full(LENGTH, PAD, np.int32)
        for g, v in enumerate(items):
            ok = (type(v) is int or (type(v) is list and all(type(x) is int for x in v)))
            if not ok:
                raise DataError(f"{what} must be an int or a list of ints, got {v!r}", loc=where,
                                hint="DeepCoder values are ints or lists of ints")
            if not dsl.valid_value(v):
                raise DataError(f"{what} has a value outside [{dsl.MIN_INT}, {dsl.MAX_INT}]: {v!r}", loc=where)
            if isinstance(v, list):
                if len(v) > dsl.MAX_LIST_LENGTH:
                    raise DataError(f"{what} is a list of {len(v)} values, at most {dsl.MAX_LIST_LENGTH} fit",
                                    loc=where)
                out[g * GROUP] = LIST
                out[g * GROUP + 1: g * GROUP + 1 + len(v)] = np.asarray(v, np.int32) + OFFSET
            else:
                out[g * GROUP] = INT
                out[g * GROUP + 1] = v + OFFSET
        return out

    def _group(self, toks: list[int]) -> dsl.Value | None:
        tag, body = toks[0], toks[1:]
        vals = []
        for t in body:
            if not 0 <= t < PAD:
                break  # PAD (or a stray tag in a prediction) ends the value
            vals.append(t - OFFSET)
        if tag == INT:
            return vals[0] if vals else 0
        if tag == LIST:
            return vals
        return None

    def decode(self, tokens: np.ndarray) -> Any:
        """int [12] -> a value (one group) or {"x0": .., "x1": ..} (two groups)."""
        toks = [int(t) for t in np.asarray(tokens).reshape(-1)]
        groups = [self._group(toks[g * GROUP:(g + 1) * GROUP]) for g in range(2)]
        if groups[1] is None:
            return groups[0] if groups[0] is not None else []
        return {f"x{i}": v for i, v in enumerate(groups) if v is not None}

    def render(self, tokens: np.ndarray, *, color: bool = False) -> str:
        """ExeDec text: `[ 1 2 ]`, `3` or `x0 = [ 1 2 ] | x1 = 3`."""
        v = self.decode(tokens)
        return dsl.format_inputs(list(v.values()), list(v)) if isinstance(v, dict) else dsl.format_value(v)


CODEC = DeepCoderCodec()


def _encode_inputs(values: list[dsl.Value]) -> np.ndarray:
    return CODEC.encode(values[0] if len(values) == 1 else {f"x{i}": v for i, v in enumerate(values)})


# --- data files ------------------------------------------------------------------------------------------------


def find_data_dir(data_dir: str | None = None) -> Path:
    """The ExeDec DeepCoder test folder (param, env NLIC_EXEDEC_DIR, or searched upward); `DataError` if missing."""
    looked: list[str] = []
    explicit = data_dir or os.environ.get("NLIC_EXEDEC_DIR")
    if explicit:
        path = Path(explicit).expanduser()
        if (path / "NONE.jsonl").is_file():
            return path
        raise DataError("the ExeDec DeepCoder folder has no NONE.jsonl", loc=Loc(str(path)),
                        hint="point data_dir (or NLIC_EXEDEC_DIR) at exedec/data/test_data/deepcoder")
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for base in (start, *start.parents):
            cand = base / DATA_SUBDIR
            looked.append(str(cand))
            if (cand / "NONE.jsonl").is_file():
                return cand
    raise DataError(
        "cannot find the ExeDec DeepCoder test files", loc=Loc("task.params.data_dir"),
        hint=f"set task.params.data_dir or NLIC_EXEDEC_DIR; looked in {', '.join(dict.fromkeys(looked))}",
    )


@functools.lru_cache(maxsize=16)
def load_test_tasks(folder: str, experiment: str) -> tuple[tuple[str, dsl.Program, tuple, tuple], ...]:
    """(id, program, inputs per example, outputs) of a shipped test file, outputs checked against the program."""
    path = Path(folder) / f"{experiment}.jsonl"
    if not path.is_file():
        raise DataError(f"missing ExeDec test file for {experiment}", loc=Loc(str(path)),
                        hint="the folder should hold one <SPLIT>.jsonl per experiment")
    out = []
    text = read_text(path, limit=MAX_DATA_BYTES, what="ExeDec test file", error=DataError)
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        loc = Loc(str(path), n)
        rec = loads_json(line, path=str(path), error=DataError, first_line=n)
        try:
            prog = dsl.parse_program(rec["program"])
            inputs = [dsl.parse_inputs(s)[1] for s in rec["inputs"]]
            outputs = [dsl.parse_value(s) for s in rec["outputs"]]
        except (KeyError, TypeError, dsl.ParseError) as e:
            raise DataError(f"malformed ExeDec task: {type(e).__name__}: {e}", loc=loc) from None
        if [prog.run(x) for x in inputs] != outputs:
            raise DataError("the task's outputs differ from its program's", loc=loc)
        out.append((f"{experiment}-{rec.get('index', n - 1)}", prog, tuple(map(tuple, inputs)), tuple(outputs)))
    return tuple(out)


# --- task assembly ---------------------------------------------------------------------------------------------


def _fresh_query(rng: random.Random, prog: dsl.Program, inputs: list[list[dsl.Value]]) -> tuple[list, Any] | None:
    """A new input of the task's types and value ranges that the program runs on, with its output."""
    k = len(inputs[0])
    types = [type(inputs[0][j]) for j in range(k)]
    ranges = []
    for j in range(k):
        seen = [x for ex in inputs if isinstance(ex[j], list) for x in ex[j]]
        lo, hi = (min(seen), max(seen)) if seen else (0, 4)
        r = next((r for r in dsl._LIST_INT_RANGES if r[0] <= lo and hi <= r[1]), (dsl.MIN_INT, dsl.MAX_INT))
        lens = [len(ex[j]) for ex in inputs if isinstance(ex[j], list)]
        ranges.append((r, (1, 3) if lens and min(lens) >= 1 and max(lens) <= 3 else (0, dsl.MAX_LIST_LENGTH)))
    for _ in range(100):
        x = [rng.randint(0, dsl.MAX_LIST_LENGTH) if t is int else
             [rng.randint(*vr) for _ in range(rng.randint(*lr))] for t, (vr, lr) in zip(types, ranges)]
        if x in inputs:
            continue
        y = prog.run(x)
        if y is not None:
            return x, y
    return None


def _assemble(ids: list[str], examples: list[tuple[list, list]], pairs: int) -> TaskSet:
    """TaskSet from per-task (inputs, outputs) lists whose last element is the query."""
    n = len(ids)
    xs = np.full((n, pairs, LENGTH), PAD, np.int32)
    ys = np.full((n, pairs, LENGTH), PAD, np.int32)
    mask = np.zeros((n, pairs), bool)
    qx = np.full((n, LENGTH), PAD, np.int32)
    qy = np.full((n, LENGTH), PAD, np.int32)
    for i, (ins, outs) in enumerate(examples):
        spec = list(zip(ins[:-1], outs[:-1]))[:pairs]
        for j, (x, y) in enumerate(spec):
            xs[i, j], ys[i, j], mask[i, j] = _encode_inputs(list(x)), CODEC.encode(y), True
        qx[i], qy[i] = _encode_inputs(list(ins[-1])), CODEC.encode(outs[-1])
    return TaskSet(tuple(ids), xs, ys, mask, qx, qy, np.ones(n, bool))


def _generate(experiment: str, train: bool, n: int, pairs: int, query: str, rng: random.Random,
              split: str, sampler: str, lengths: tuple[int, int] | None = None) -> TaskSet:
    del query  # generated tasks draw every example, the query included, from the program's own input ranges
    examples = []
    for _ in range(n):
        _, ins, outs = dsl.sample_program(rng, experiment, train=train, num_examples=pairs + 1, sampler=sampler,
                                          lengths=lengths)
        examples.append((ins, outs))
    return _assemble([f"{split}-{i:04d}" for i in range(n)], examples, pairs)


def _bounds(lengths: IntRange | None) -> tuple[int, int] | None:
    """The `lengths` param as the DSL's (lo, hi), or None (the split's own)."""
    return None if lengths is None else (lengths.lo, lengths.hi)


@functools.lru_cache(maxsize=8)
def _pool(experiment: str, pairs: int, size: int, sampler: str, lengths: tuple[int, int] | None) -> TaskSet:
    # The pool is a fixed function of its key, so every process (and run) trains on the same tasks.
    rng = random.Random(int(rng_for(0, "train", experiment, "pool").integers(2**63)))
    return _generate(experiment, True, size, pairs, "loo", rng, "train", sampler, lengths)


@dataclasses.dataclass(frozen=True)
class DeepCoderFamily:
    """ExeDec's DeepCoder splits (see the module docstring)."""

    name: str = "deepcoder"
    path_params: tuple[str, ...] = ("data_dir",)

    def check_params(self, params: Mapping[str, Any], locs: Mapping[str, Loc], where: Loc) -> list[Diagnostic]:
        diags = check(SCHEMA, _norm(params), locs, where, family=self.name)
        d = params.get("data_dir")
        if isinstance(d, str) and os.path.isabs(d) and not (Path(d) / "NONE.jsonl").is_file():
            diags.append(Diagnostic(locs.get("data_dir", where), f"no ExeDec test files (NONE.jsonl, ...) in {d}",
                                    "point data_dir at exedec/data/test_data/deepcoder"))
        if not diags and params.get("lengths") is not None:
            p = resolve(SCHEMA, _norm(params), family=self.name)
            have = dsl.program_lengths(p["split"])
            lo, hi = p["lengths"].lo, p["lengths"].hi
            if not dsl.program_lengths(p["split"], within=(lo, hi)):
                diags.append(Diagnostic(locs.get("lengths", where),
                                        f"{p['split']} trains on programs of lengths {', '.join(map(str, have))}, "
                                        f"none in {lo}..{hi}",
                                        f"choose lengths within {have[0]}..{have[-1]}"))
        return diags

    def splits(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        return SPLITS

    def codec(self, params: Mapping[str, Any]) -> DeepCoderCodec:
        resolve(SCHEMA, _norm(params), family=self.name)
        return CODEC

    def sample(self, params: Mapping[str, Any], split: str, n: int, pairs: int, *, seed: int) -> TaskSet:
        p = resolve(SCHEMA, _norm(params), family=self.name)
        check_split(self.name, split, SPLITS)
        exp, query = p["split"], p["query"]
        if query == "auto":
            query = "loo" if pairs <= 2 else "fresh"
        if query == "loo" and pairs > 2 and split == "ood":
            raise SpecError(f"query: loo leaves at most 2 spec pairs of the 3 ExeDec examples, got pairs: {pairs}",
                            loc=Loc("task.pairs"), hint="use pairs: 2, or query: fresh")
        rng = random.Random(int(rng_for(seed, split, exp).integers(2**63)))
        lengths = _bounds(p["lengths"])
        if split == "train" and p["pool"] > 0:
            pool = _pool(exp, pairs, p["pool"], p["sampler"], lengths)
            idx = rng_for(seed, split, exp, "draw").integers(0, len(pool), n)
            ts = pool.take(idx)
            return dataclasses.replace(ts, ids=tuple(f"train-{i:04d}" for i in range(n)))
        if split in ("train", "id", "ood_gen"):
            return _generate(exp, split != "ood_gen", n, pairs, query, rng, split, p["sampler"],
                             lengths if split != "ood_gen" else None)
        tasks = load_test_tasks(str(find_data_dir(p["data_dir"])), exp)[:n]
        examples = []
        for _tid, prog, ins, outs in tasks:
            ins, outs = [list(x) for x in ins], list(outs)
            if query == "fresh":
                q = _fresh_query(rng, prog, ins)
                # Without a fresh input the last example stays the query (and leaves the spec).
                examples.append((ins + [q[0]], outs + [q[1]]) if q else (ins, outs))
            else:
                examples.append((ins, outs))
        return _assemble([t[0] for t in tasks], examples, pairs)

    def curriculum(self, params: Mapping[str, Any], stage: float) -> dict[str, Any]:
        """`params` with `lengths` cut to the first of equal stages over the split's training program lengths (within
        `lengths` where set): at stage 0 the shortest only, then one length more per stage, the last `params`."""
        p = resolve(SCHEMA, _norm(params), family=self.name)
        have = dsl.program_lengths(p["split"], within=_bounds(p["lengths"]))
        k = min(int(stage * len(have)), len(have) - 1)
        # The last stage is the task's own distribution (and its own training pool).
        return dict(params) if k == len(have) - 1 else {**params, "lengths": IntRange(have[0], have[k])}

    def primitives(self, params: Mapping[str, Any]) -> tuple[Primitive, ...]:
        """The DSL's operations on encoded data (see the module docstring); the same for every split."""
        resolve(SCHEMA, _norm(params), family=self.name)
        return _primitives()


# --- primitives ------------------------------------------------------------------------------------------------

_LAMBDA_NAMES = {
    "(+1)": "plus1", "(-1)": "minus1", "(*2)": "times2", "(/2)": "div2", "(*(-1))": "negate", "(**2)": "square",
    "(*3)": "times3", "(/3)": "div3", "(*4)": "times4", "(/4)": "div4", "(>0)": "pos", "(<0)": "neg",
    "(%2==0)": "even", "(%2==1)": "odd", "(+)": "add", "(-)": "sub", "(*)": "mul", "(min)": "min", "(max)": "max",
}


def _bind(op: dsl.Op, inputs: list[dsl.Value]) -> list[dsl.Value] | None:
    """The arguments of `op` taken from `inputs` by type, in order; None where an input of a type is missing."""
    free = list(inputs)
    args = []
    for t in op.args:
        match = next((i for i, v in enumerate(free) if type(v) is t), None)
        if match is None:
            return None
        args.append(free.pop(match))
    return args


def _apply_op(x: np.ndarray, op: str, lam: str | None) -> np.ndarray:
    """One DSL operation on encoded inputs int [n, 12]; rows of -1 where it is undefined."""
    out = np.full(x.shape, -1, np.int32)
    spec = dsl.OPERATIONS[op]
    for row, tokens in enumerate(x):
        value = CODEC.decode(tokens)
        inputs = list(value.values()) if isinstance(value, dict) else [value]
        args = _bind(spec, inputs)
        if args is None:
            continue
        result = spec.fn(dsl.LAMBDAS[lam][1], *args) if lam else spec.fn(*args)
        if result is None or not dsl.valid_value(result):
            continue
        if isinstance(result, list) and len(result) > dsl.MAX_LIST_LENGTH:
            continue
        out[row] = CODEC.encode(result)
    return out


@functools.lru_cache(maxsize=1)
def _primitives() -> tuple[Primitive, ...]:
    """Every DSL operation (higher-order ones with each lambda of their type) as a `Primitive` on encoded data."""
    out = []
    for token, op in dsl.OPERATIONS.items():
        lams = [None] if op.lam is None else [lam for lam, (sig, _) in dsl.LAMBDAS.items() if sig == op.lam]
        for lam in lams:
            name = token.lower() if lam is None else f"{token.lower()}_{_LAMBDA_NAMES[lam]}"
            text = token if lam is None else f"{token} {lam}"
            out.append(Primitive(re.sub(r"[^A-Za-z0-9_]", "_", name), functools.partial(_apply_op, op=token, lam=lam),
                                 text))
    return tuple(out)


DEEPCODER = DeepCoderFamily()
"""The `deepcoder` family (registered by `nlic.compiler.families`)."""
