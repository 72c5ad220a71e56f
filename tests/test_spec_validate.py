"""Spec validation: schema-derived defaults and checks, located diagnostics, expressions, path resolution."""

import dataclasses
import json

import pytest

from nlic.compiler import IntRange, Schedule, Spec, load_spec, parse_spec
from nlic.compiler import spec as spec_module
from nlic.grammar.errors import Loc, SpecError
from nlic.grammar.spec_parser import parse_expression, parse_nls, spec_grammar
from nlic.grammar.tree import Call, Range, Scalar, to_plain, type_plain_scalar
from nlic.grammar.yaml_front import parse_yaml
from nlic.compiler.families import FAMILIES
from nlic.compiler.validate import _Checker
from nlic.compiler.printer import format_spec
from nlic.compiler.kinds import MODEL_KINDS
from nlic.runtime.solve import search_spec

MINIMAL = "name: demo\ntask: {family: shift, params: {split: shift_l}}\n"


def errors(text, path="spec.yaml"):
    with pytest.raises(SpecError) as info:
        parse_spec(text, path)
    return info.value.diagnostics


def test_minimal_spec_takes_every_default():
    spec = parse_spec(MINIMAL, "spec.yaml")
    expected = Spec(name="demo", task=spec_module.TaskSpec(params=(("split", "shift_l"),)))
    assert spec == expected
    # Defaults come from the dataclasses, including nested sections and schedules.
    assert spec.relaxation.tau_inductor == Schedule("exp", 4.0, 0.5)
    # `search.method: auto` (the default) holds the kind's own method once the spec is built.
    assert spec.search.method == "cascade"
    assert spec.model.executor == spec_module.ExecutorSpec()


def test_every_schema_field_is_accepted_and_checked(tmp_path):
    """Walk the schema: every field can be written, and every numeric field's `max` is enforced."""
    def fields(cls, prefix=()):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.type if not isinstance(f.type, str) else getattr(spec_module, f.type, None)):
                yield from fields(getattr(spec_module, f.type), (*prefix, f.name))
            else:
                yield (*prefix, f.name), f

    seen = 0
    for path, f in fields(Spec):
        hi = f.metadata.get("max")
        if hi is None or path == ("version",):
            continue
        text = MINIMAL
        nested = "".join(f"{'  ' * i}{p}:\n" for i, p in enumerate(path[:-1]))
        if path[0] == "task":  # keep the task section in one block
            continue
        text += nested + f"{'  ' * (len(path) - 1)}{path[-1]}: {hi * 2 + 1}\n"
        diags = errors(text)
        assert any(".".join(path) in d.message and "out of range" in d.message for d in diags), (path, diags)
        seen += 1
    assert seen >= 15


def test_unknown_keys_suggest_the_closest_name():
    (d,) = errors(MINIMAL + "trainig:\n  steps: 3\n")
    assert d.loc == Loc("spec.yaml", 3, 1)
    assert "unknown key 'trainig'" in d.message and d.hint == "did you mean 'training'?"


def test_a_misplaced_key_names_its_section():
    diags = errors(MINIMAL + "vocab: 8\nlanguage:\n  steps: 3\n")
    assert diags[0].hint == "'vocab' is a key of section 'language'"
    assert diags[1].hint == "'steps' is a key of section 'training' or 'search'"


def test_all_errors_of_a_file_are_reported_in_file_order():
    text = MINIMAL + "seed: -1\nlanguage:\n  vocab: 8\n  skip_token: 8\ntraining:\n  optimizer: sgdd\n  steps: x\n"
    diags = errors(text)
    assert [(d.loc.line, d.loc.col) for d in diags] == [(3, 7), (6, 15), (8, 14), (9, 10)]


@pytest.mark.parametrize(
    "text, schedule",
    [
        ("exp(8 -> 0.5)", Schedule("exp", 8.0, 0.5)),
        ("linear(1 -> 0.1)", Schedule("linear", 1.0, 0.1)),
        ("cosine(0.1 -> 1e-3)", Schedule("cosine", 0.1, 1e-3)),
        ("const(3)", Schedule("const", 3.0, 3.0)),
        ("0.25", Schedule("const", 0.25, 0.25)),
        ('"exp(4 -> 1)"', Schedule("exp", 4.0, 1.0)),  # quoted YAML strings use the same grammar
    ],
)
def test_schedule_expressions(text, schedule):
    spec = parse_spec(MINIMAL + f"relaxation:\n  tau_executor: {text}\n", "s.yaml")
    assert spec.relaxation.tau_executor == schedule
    nls = parse_spec(f"name demo\nrelaxation {{ tau_executor {text} }}\n", "s.nls")
    assert nls.relaxation.tau_executor == schedule


def test_exp_schedules_need_positive_endpoints():
    (d,) = errors(MINIMAL + "search:\n  tau_inductor: exp(2 -> 0)\n")
    assert "positive endpoints" in d.message and d.loc.line == 4


def test_temperatures_stay_above_zero_and_the_learning_rate_starts_above_it():
    found = errors(MINIMAL + "relaxation:\n  tau_inductor: const(0)\n  tau_executor: linear(1 -> -1)\n"
                   "training:\n  lr: -0.01\nsearch:\n  tau_executor: 0\n")
    assert [(d.loc.line, d.message) for d in found] == [
        (4, "'relaxation.tau_inductor' must stay above 0, got 0 -> 0"),
        (5, "'relaxation.tau_executor' must stay above 0, got 1 -> -1"),
        (7, "'training.lr' is out of range: -0.01"),
        (9, "'search.tau_executor' must stay above 0, got 0 -> 0"),
    ]
    assert "divides by zero" in found[0].hint
    (d,) = errors(MINIMAL + "training:\n  lr: 0\n")
    assert d.message == "'training.lr' must stay above 0, got 0 -> 0" and "does not train" in d.hint
    # A rate that decays to 0 at the last step is a schedule, not a mistake.
    assert parse_spec(MINIMAL + "training:\n  lr: linear(0.01 -> 0)\n", "s.yaml").training.lr.end == 0


def test_split_until_written_without_evaluation_is_an_error_and_the_default_is_quiet():
    (d,) = errors(MINIMAL + "training:\n  split_until: 0.5\n  eval_every: 0\n")
    assert d.loc.line == 4 and "training.eval_every is 0 (no evaluation)" in d.message
    assert parse_spec(MINIMAL + "training:\n  eval_every: 0\n", "s.yaml").training.eval_every == 0


def test_a_name_too_long_for_a_folder_is_refused_at_validate():
    (d,) = errors(MINIMAL.replace("demo", "a" * 300))
    assert d.loc.line == 1 and d.message == "name is 300 characters long, more than the 128 nlic uses in folder names"


def test_ranges_lists_and_schedules_in_params_are_sorted_by_key():
    doc, _ = parse_yaml("{train: [a.json, b.json], r: 1..5, n: 3, t: linear(1 -> 0), s: x}")
    checker = _Checker("<s>")
    params = checker.params(doc.root, "task.params")
    assert not checker.diagnostics
    assert params == (("n", 3), ("r", IntRange(1, 5)), ("s", "x"), ("t", Schedule("linear", 1.0, 0.0)),
                      ("train", ("a.json", "b.json")))
    assert list(IntRange(1, 5).values()) == [1, 2, 3, 4, 5]


def test_yaml_and_nls_trees_are_equal():
    yaml_doc, _ = parse_yaml("a: 1\nb: {c: [x, 2.5, true], d: exp(8 -> 0.5), e: 1..3, f: \"q s\"}\n")
    nls_doc, _ = parse_nls('a 1\nb { c [x, 2.5, true] d exp(8 -> 0.5) e 1..3 f "q s" }\n')
    assert yaml_doc.root == nls_doc.root
    assert to_plain(nls_doc.root)["b"]["d"] == ("exp", (8, 0.5))


def test_plain_scalar_typing_is_shared_and_not_yaml11():
    assert type_plain_scalar("1e-4") == 1e-4  # PyYAML would read a string here
    assert type_plain_scalar("yes") == "yes"
    assert type_plain_scalar("-3") == -3 and type_plain_scalar("false") is False
    assert type_plain_scalar("1" * 5000) == float("inf")  # beyond Python's int-from-text limit


def test_a_yaml_str_tag_makes_a_string_of_what_looks_like_a_number():
    spec = parse_spec(MINIMAL.replace("name: demo", "name: !!str 5"), "s.yaml")  # a name of digits
    assert spec.name == "5"
    doc, _ = parse_yaml("a: !!str 1e-4\nb: 1e-4\nc: !!str true\n")
    assert [e.value.value for e in doc.root.entries] == ["1e-4", 1e-4, "true"]


def test_expression_errors_point_inside_the_yaml_value():
    with pytest.raises(SpecError) as info:
        parse_expression("exp(8 0.5)", "f.yaml", 7, 10)
    (d,) = info.value.diagnostics
    assert (d.loc.line, d.loc.col) == (7, 16) and "'->'" in d.hint
    node = parse_expression("const(1)")
    assert node == Call("const", (Scalar(1),)) and parse_expression("2..4") == Range(2, 4)


def test_grammar_is_lalr_and_strict():
    pytest.importorskip("interegular")  # lark's strict mode needs it to check terminal collisions
    grammar = spec_grammar(strict=True)  # strict raises on any shift/reduce conflict or terminal collision
    assert grammar.options.parser == "lalr" and grammar.options.strict
    assert spec_grammar() is spec_grammar()  # built once per process


def test_cross_field_checks():
    diags = errors(MINIMAL + "model:\n  inductor: {width: 48, heads: 5}\nlanguage: {length: 9, max_length: 4}\n")
    messages = " | ".join(d.message for d in diags)
    assert "heads (5) must divide model.inductor.width (48)" in messages
    assert "max_length (4) is shorter than language.length (9)" in messages


def test_anchors_need_routing():
    (d,) = errors(MINIMAL + "model:\n  executor: {routing: false, mirrors: false, anchors: true}\n")
    assert "model.executor.anchors needs model.executor.routing" in d.message and "routing: true" in d.hint
    assert d.loc.line == 4
    spec = parse_spec(MINIMAL + "model:\n  executor: {anchors: true}\n", "s.yaml")
    assert spec.model.executor.anchors and spec.model.executor.routing


def test_search_length_must_lie_between_the_trained_and_the_longest_program():
    (d,) = errors(MINIMAL + "language: {length: 4, max_length: 8}\nsearch:\n  length: 9\n")
    assert "search.length (9) is outside language.length .. language.max_length (4 .. 8)" in d.message
    assert (d.loc.line, d.loc.col) == (5, 11) and "0 for language.max_length" in d.hint
    assert parse_spec(MINIMAL + "language: {length: 4, max_length: 8}\nsearch: {length: 4}\n", "s.yaml").search.length == 4


def test_a_bad_field_does_not_cause_follow_up_errors():
    # width is rejected, so heads is not checked against the default width.
    (d,) = errors(MINIMAL + "model:\n  inductor: {width: wide, heads: 7}\n")
    assert "must be an integer" in d.message


def test_search_method_must_fit_the_kind():
    (d,) = errors(MINIMAL + "search: {method: beam}\n")
    assert "search method 'beam'" in d.message


def test_family_params_are_checked_by_the_family():
    if "shift" not in FAMILIES:
        pytest.skip("the shift family is not registered yet")
    diags = errors("name: d\ntask:\n  family: shift\n  params: {split: shift_l, lenght: 20}\n")
    assert any(d.loc is not None and d.loc.line == 4 for d in diags), diags


def test_relative_data_paths_resolve_against_the_spec_directory(tmp_path, monkeypatch):
    if "files" not in FAMILIES:
        pytest.skip("the files family is not registered yet")
    data = tmp_path / "data"
    data.mkdir()
    task = {"id": "t0", "train": [{"input": [1, 2], "output": [2, 1]}] * 3,
            "test": [{"input": [3, 4], "output": [4, 3]}]}
    (data / "train.jsonl").write_text(json.dumps(task) + "\n")
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    path = spec_dir / "mine.yaml"
    path.write_text("name: mine\ntask:\n  family: files\n  params: {train: ../data/train.jsonl}\n"
                    "eval: {splits: [train]}\n")
    monkeypatch.chdir(tmp_path / "data")  # any working directory
    spec = load_spec(path)
    assert spec.task.param("train") == str(data / "train.jsonl")
    assert load_spec(path, resolve_paths=False).task.param("train") == "../data/train.jsonl"


def test_a_files_task_without_id_and_ood_evaluates_its_own_splits_by_default(tmp_path):
    # A user's folder of `train` and `test` tasks: the default eval.splits (id, ood) named splits it lacks, and the
    # spec failed to validate until eval.splits was written.
    task = {"train": [{"input": [1, 2], "output": [2, 1]}] * 3, "test": [{"input": [3, 4], "output": [4, 3]}]}
    for name in ("train", "test", "ood"):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(task) + "\n")
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ntask:\n  family: files\n  params: {train: train.jsonl, test: test.jsonl}\n")
    assert load_spec(path).eval.splits == ("test",)
    path.write_text("name: mine\ntask:\n  family: files\n  params: {train: train.jsonl, ood: ood.jsonl}\n")
    assert load_spec(path).eval.splits == ("ood",)  # the default's splits it has
    path.write_text("name: mine\ntask:\n  family: files\n  params: {train: train.jsonl, test: test.jsonl}\n"
                    "eval: {splits: [id]}\n")
    with pytest.raises(SpecError) as e:  # written: checked as written
        load_spec(path)
    assert "has no split 'id'" in str(e.value) and "mine.yaml:5" in str(e.value)


def test_load_spec_refuses_unknown_extensions_and_missing_files(tmp_path):
    p = tmp_path / "spec.txt"
    p.write_text(MINIMAL)
    with pytest.raises(SpecError, match="extension"):
        load_spec(p)
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "missing.yaml")


def test_huge_and_deep_inputs_fail_fast():
    deep = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    (d,) = errors(deep)
    assert "nesting deeper" in d.message
    (d,) = errors("name x\nseed " + "9" * 5000 + "\n", "s.nls")
    assert "too large" in d.message


def test_a_schedule_nested_too_deep_is_located_in_its_file():
    """An expression nested too deep in a YAML scalar was located as if it started the file: line 1 for a schedule
    on line 2 (`s.yaml:1:132`)."""
    for text, where in (('training: {lr: "' + "exp(" * 40 + "1" + ")" * 40 + '"}', (2, 148)),
                        ("training: {lr: " + "exp(" * 40 + "1" + ")" * 40 + "}", (2, 147))):
        (d,) = errors("name: x\n" + text + "\n")
        assert "nesting deeper" in d.message and (d.loc.line, d.loc.col) == where, (d.loc, text[:30])


def test_new_field_types_need_no_validator_change():
    """Optional values and lists of numbers follow from the annotations and metadata alone."""
    @dataclasses.dataclass(frozen=True)
    class Extra:
        limit: int | None = dataclasses.field(default=3, metadata={"min": 1})
        sizes: tuple[int, ...] = dataclasses.field(default=(), metadata={"min": 1, "max": 8})

    doc, _ = parse_nls("limit null\nsizes [1, 2, 8]\n", "x.nls")
    checker = _Checker("x.nls")
    assert checker.section(Extra, doc.root, "extra") == Extra(None, (1, 2, 8))
    doc, _ = parse_nls("limit 0\nsizes [1, 9]\n", "x.nls")
    checker.section(Extra, doc.root, "extra")
    assert [(d.loc.line, d.loc.col) for d in checker.diagnostics] == [(1, 7), (2, 11)]


def test_byte_order_mark_and_crlf_are_accepted():
    assert parse_spec("\ufeffname demo\r\nseed 3\r\n", "s.nls").seed == 3
    assert parse_spec("\ufeffname: demo\r\nseed: 3\r\n", "s.yaml").seed == 3


def test_mutated_specs_fail_only_with_located_spec_errors():
    """Random edits of the example specs (seeded): any outcome but a valid spec is a located SpecError."""
    import random
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "specs"
    sources = [(root / "shift_l.yaml").read_text(), (root / "shift_l.nls").read_text()]
    alphabet = list("{}[]():,->.#\"'\\ \n\t-0123456789eE&*!|%@`ax_~\x00\x07é")
    rng = random.Random(0)
    for i in range(300):
        syntax = ("yaml", "nls")[i % 2]
        text = sources[i % 2]
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(text) + 1)
            if rng.random() < 0.5:
                text = text[:pos] + rng.choice(alphabet) * rng.randint(1, 3) + text[pos:]
            else:
                text = text[:pos] + text[pos + rng.randint(1, 5):]
        try:
            parse_spec(text, f"fuzz.{syntax}")
        except SpecError as e:
            assert all(d.loc is not None and d.loc.line is not None for d in e.diagnostics), (text, e.render())


@pytest.mark.parametrize("kind,method", [("nli", "cascade"), ("dlpn", "gradient"), ("lpn", "gradient"),
                                         ("ttt", "gradient"), ("in_context", "none")])
def test_auto_search_is_the_kinds_own_method(kind, method):
    """`search.method` defaults to `auto`, the kind's own search; the enumerate-only defaults (deepen, depth) do
    not make a spec of a kind without enumeration invalid."""
    spec = parse_spec(MINIMAL + f"model: {{kind: {kind}}}\n", "spec.yaml")
    assert spec.search.method == method
    written = parse_spec(MINIMAL + f"model: {{kind: {kind}}}\nsearch: {{method: auto}}\n", "spec.yaml")
    assert written == spec
    assert parse_spec(format_spec(spec), "again.yaml") == spec  # the printed spec holds the concrete method


def test_auto_search_with_an_unknown_kind_reports_the_kind():
    (d,) = errors(MINIMAL + "model: {kind: nlii}\n")
    assert "unknown model kind 'nlii'" in d.message


def test_enumeration_fields_bind_only_enumerating_methods():
    """A printed spec writes depth and deepen for every kind, so a method that never enumerates ignores them."""
    spec = parse_spec(MINIMAL + "language: {vocab: 200}\nsearch: {method: gradient, deepen: true, depth: 3}\n", "s.yaml")
    assert spec.search.stages() == (spec.search,)
    spec = parse_spec(MINIMAL + "language: {vocab: 200}\nsearch: {method: cascade, depth: 3}\n", "s.yaml")
    assert spec.search.depth == 3  # the spec keeps what it says; the search runs the depth that fits its budget:
    assert spec.search.enumeration_depth(200, 12) == 2  # 1 + 199 + 199^2 = 39,801 programs <= 100,000 < 199^3


def test_enumeration_depth_fits_the_program_budget_and_the_slots():
    """`search.depth` is a maximum: cut to language.max_length and to the deepest full tree of at most
    `search.programs` programs (a printed spec, which writes the default depth, stays valid for any language)."""
    s = parse_spec(MINIMAL, "s.yaml").search
    assert (s.depth, s.programs) == (6, 100_000)
    assert [s.enumeration_depth(v, 12) for v in (4, 8, 16, 24, 32)] == [6, 5, 4, 3, 3]
    assert s.enumeration_depth(16, 2) == 2
    assert dataclasses.replace(s, branch=3).enumeration_depth(32, 12) == 6
    assert dataclasses.replace(s, programs=1).enumeration_depth(16, 12) == 0
    assert s.fitted(16, 12) == dataclasses.replace(s, depth=4)
    short = parse_spec(MINIMAL + "language: {vocab: 8, length: 2, max_length: 3}\n", "s.yaml")
    assert parse_spec(format_spec(short), "again.yaml") == short  # depth 6 > max_length 3 printed and read back


def test_auto_on_the_command_line_is_the_kinds_own_search():
    spec = parse_spec(MINIMAL + "model: {kind: lpn}\n", "spec.yaml")
    assert search_spec(spec, MODEL_KINDS.get("lpn"), "auto", None, None).method == "gradient"
    assert search_spec(spec, MODEL_KINDS.get("nli"), "auto", None, 3).method == "cascade"



def test_a_search_flag_the_kind_does_not_read_is_refused():
    spec = parse_spec(MINIMAL + "model: {kind: lpn}\n", "spec.yaml")
    assert search_spec(spec, MODEL_KINDS.get("lpn"), None, None, 7).steps == 7
    with pytest.raises(SpecError, match="--starts would change nothing: model kind 'lpn' does not read search.starts"):
        search_spec(spec, MODEL_KINDS.get("lpn"), None, 4, None)


def test_curriculum_needs_a_family_that_has_one():
    diags = errors(MINIMAL + "training: {curriculum: 0.3}\n")
    assert any("spec.yaml:3:" in str(d) and "task family 'shift' has no curriculum" in d.message
               and "deepcoder" in (d.hint or "") for d in diags), diags
    spec = parse_spec("name: d\ntask: {family: deepcoder, params: {split: NONE}, pairs: 3}\n"
                      "training: {curriculum: 0.3}\n", "spec.yaml")
    assert spec.training.curriculum == 0.3


def test_end_of_input_names_the_bracket_left_open():
    (d,) = errors("name demo\ntask { family shift params { split shift_l }\n", "s.nls")
    assert (d.loc.line, d.loc.col) == (3, 1)
    assert d.message == "unexpected end of input: the '{' at line 2, column 6 is not closed"
    assert d.hint == "close it with '}'"
    (d,) = errors('name demo # a { in a comment\ntask { family shift params { split "}" }\n', "s.nls")
    assert d.message.endswith("the '{' at line 2, column 6 is not closed")


def test_a_name_starting_with_a_dot_is_told_how_a_name_may_start():
    """`name: .hidden` was refused with the hint "use letters, digits, '_', '-' and '.'", which it does."""
    for name in (".hidden", "-x", ".."):
        (d,) = errors(f"name: '{name}'\n")
        assert d.message == f"name '{name}' cannot be used as a directory name", d
        assert d.hint == "use letters, digits, '_', '-' and '.', starting with a letter, digit or '_'"


def _row_grids(folder, rows=1):
    """A folder of two ARC-JSON tasks whose grids have `rows` rows."""
    folder.mkdir()
    grid = lambda *cells: [list(cells)] * rows  # noqa: E731
    for i in range(2):
        task = {"train": [{"input": grid(0, 3, 0, 0), "output": grid(0, 0, 3, 0)}] * 2,
                "test": [{"input": grid(3, 0, 0, 0), "output": grid(0, 3, 0, 0)}]}
        (folder / f"t{i}.json").write_text(json.dumps(task))
    return folder


def test_one_row_grids_take_the_grid_defaults_where_the_spec_is_silent(tmp_path):
    """A user's own one-row ARC folder with a minimal spec gets `ROW_GRID_DEFAULTS` (measured: ID 0.00 with the
    schema's defaults); the grid1d family too; what the spec writes is kept; other data keep the schema's defaults."""
    from nlic.compiler.spec import ROW_GRID_DEFAULTS
    from nlic.compiler.validate import value_at

    rows = _row_grids(tmp_path / "rows")
    spec = parse_spec(f"name: u\ntask: {{family: files, params: {{train: {rows}, test: {rows}}}}}\n", "u.yaml")
    for name, value, _ in ROW_GRID_DEFAULTS:
        assert value_at(spec, name) == value, name
    grid1d = parse_spec("name: g\ntask: {family: grid1d, params: {suite: id}}\n", "g.yaml")
    assert value_at(grid1d, "task.colours") == "canonical" and grid1d.search.method == "enumerate"

    written = parse_spec(f"name: u\ntask: {{family: files, params: {{train: {rows}, test: {rows}}}, colours: as_is}}\n"
                         "training: {steps: 40, keep: last}\nsearch: {method: cascade}\n", "u.yaml")
    assert (written.task.colours, written.training.steps, written.search.method) == ("as_is", 40, "cascade")
    assert written.training.rollback == 0  # a rollback needs keep: best, which the spec turned off
    assert written.search.programs == Spec().search.programs  # the budget of enumeration, which it does not run
    assert written.model.executor.layers == 2 and written.relaxation.skip_from == 0.15  # the rest still applies

    baseline = parse_spec(f"name: b\ntask: {{family: files, params: {{train: {rows}, test: {rows}}}}}\n"
                          "model: {kind: in_context}\n", "b.yaml")
    assert (baseline.task.colours, baseline.training.steps, baseline.model.executor.layers) == ("canonical", 6000, 2)
    assert baseline.training.restarts == Spec().training.restarts and baseline.search.method == "none"

    two = _row_grids(tmp_path / "two", rows=2)
    plain = parse_spec(f"name: p\ntask: {{family: files, params: {{train: {two}, test: {two}}}}}\n", "p.yaml")
    assert plain == dataclasses.replace(Spec(), name="p", task=plain.task, eval=plain.eval)
    assert plain.task.colours == "as_is"
    assert parse_spec(MINIMAL).training.steps == Spec().training.steps


def test_a_locked_one_row_grid_spec_reads_back_unchanged(tmp_path):
    """The canonical text (what a run locks) of a spec given the grid defaults validates to the same spec."""
    rows = _row_grids(tmp_path / "rows")
    spec = parse_spec(f"name: u\ntask: {{family: files, params: {{train: {rows}, test: {rows}}}}}\n", "u.yaml")
    assert parse_spec(format_spec(spec), "locked.yaml") == spec
    from nlic.runtime.commands.validate import summary
    assert "one-row grids: fields left out take the grid defaults" in summary("u.yaml", spec)
    assert "grid" not in summary("m.yaml", parse_spec(MINIMAL))


def test_fmt_keeps_a_schema_default_that_the_grid_defaults_would_replace(tmp_path, capsys):
    """`colours: as_is` on one-row grids is the schema's default, which canonical text leaves out; `nlic fmt` writes
    it out, so that its text is read back as the file was (and not with canonical colours)."""
    from nlic.runtime.cli import main

    path = tmp_path / "g.yaml"
    path.write_text("name: g\ntask: {family: grid1d, params: {suite: moves}, colours: as_is}\n"
                    "training: {rollback: 0}\n")
    assert main(["fmt", str(path)]) == 0
    text = capsys.readouterr().out
    assert "colours: as_is" in text and "rollback: 0" in text and "lr_drop_at: 0.5" in text
    assert parse_spec(text, str(path)) == load_spec(path)
    assert load_spec(path).training.lr_drop_at == 0.5  # left out: the grid default
