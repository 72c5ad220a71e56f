"""Property-based fuzzing of the three text grammars: spec YAML, native `.nls` specs and program files.

The strategies and properties live in `benchmarks/fuzz.py`, whose campaign runs them for minutes; here they run
briefly and deterministically (`derandomize=True`): valid documents round-trip through print -> parse, and
mutated valid files either parse (and round-trip) or fail with an `NlicError` located in the file.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlic.compiler import format_spec, parse_spec
from nlic.compiler.spec import IntRange, Schedule, Spec, TaskSpec
from nlic.grammar.errors import NlicError
from nlic.grammar.program import Header, Program, ProgramFile, format_programs, parse_programs
from nlic.runtime.cli import guarded, main as nlic

# Under the test suite's beartype hook, constructing an nlic dataclass (a Spec, a Program) samples a container
# item to type-check with the global `random`, which hypothesis takes for a strategy using `random`.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning")

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz.py"
_SPEC = importlib.util.spec_from_file_location("nlic_benchmarks_fuzz", _PATH)
fuzz = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = fuzz
_SPEC.loader.exec_module(fuzz)


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# --- valid documents round-trip -------------------------------------------------------------------------------


@pytest.mark.parametrize("syntax", ["yaml", "nls"])
@_settings(20)
@given(spec=fuzz.specs())
def test_valid_specs_round_trip(syntax, spec):
    fuzz.check_spec_roundtrip(spec, syntax)


@pytest.mark.parametrize("syntax", ["yaml", "nls"])
@_settings(30)
@given(spec=fuzz.params_specs())
def test_free_form_task_params_round_trip(syntax, spec):
    fuzz.check_params_roundtrip(spec, syntax)


@_settings(100)
@given(pf=fuzz.program_files())
def test_valid_program_files_round_trip(pf):
    fuzz.check_programs_roundtrip(pf)


def test_generated_program_files_have_macros_that_programs_use():
    # So that the round trips above cover parsing macros and abbreviating programs by them.
    def program_lines(pf: ProgramFile) -> str:
        return format_programs(pf).rsplit("\n\n", 1)[-1]  # after the last blank line: the programs

    def abbreviated(pf: ProgramFile) -> bool:
        return bool(pf.programs) and len(program_lines(pf)) < len(program_lines(pf.with_macros(())))

    found = []

    @_settings(100)
    @given(pf=fuzz.program_files())
    def collect(pf):
        found.append(abbreviated(pf))

    collect()
    # How many do depends on the run (a fresh clone's CI drew 2 of 50, a work tree 5 or more): at least a few.
    assert sum(found) >= 2, f"{sum(found)} of {len(found)} generated files use a macro"


# --- mutated files parse or fail located ----------------------------------------------------------------------


@pytest.mark.parametrize("syntax", ["yaml", "nls"])
@_settings(40)
@given(draw=st.data(), ops=fuzz.mutations())
def test_mutated_spec_files_parse_or_fail_located(syntax, draw, ops, folder):
    data = draw.draw(fuzz.spec_documents(syntax), label="document")
    assert fuzz.check_spec_file(fuzz.mutate(data, ops), syntax, folder) in ("valid", "located")


@_settings(100)
@given(data=fuzz.program_documents(), ops=fuzz.mutations())
def test_mutated_program_files_parse_or_fail_located(data, ops, folder):
    assert fuzz.check_program_file(fuzz.mutate(data, ops), folder) in ("valid", "located")


def test_mutated_specs_through_the_cli_exit_0_or_2_without_a_traceback(tmp_path, capsys):
    rng = random.Random(0)
    outcomes = set()
    for n in range(12):
        syntax = ("yaml", "nls")[n % 2]
        seeds = fuzz.spec_seeds(syntax)
        data = seeds[rng.randrange(len(seeds))]
        ops = [(rng.choice(fuzz.MUTATION_KINDS), rng.randrange(1 << 20), rng.randrange(1 << 20),
                rng.choice(fuzz._SNIPPETS)) for _ in range(n % 3)]  # every third file unchanged
        path = tmp_path / f"m{n}{fuzz.EXTENSIONS[syntax]}"
        path.write_bytes(fuzz.mutate(data, ops))
        code = nlic(["validate", str(path)])
        out, err = capsys.readouterr()
        assert code in (0, 2), (path.read_bytes(), err)
        assert "Traceback" not in out + err
        if code == 2:
            assert f"{path}:" in err and "error:" in err
        outcomes.add(code)
    assert outcomes == {0, 2}  # both kinds of case were tried


# --- what the fuzzing found (kept as regression cases) --------------------------------------------------------


@pytest.mark.parametrize("syntax", ["yaml", "nls"])
@pytest.mark.parametrize("params", [
    (("emoji", "x\U0001f600y"),),  # YAML read JSON's surrogate-pair escape as two broken characters
    (("k" * 1100, 1),),  # YAML readers refuse implicit keys over 1024 characters: printed as `? key`
    (("é" * 200, "é" * 200),),  # ... counted after escaping
    (("r", IntRange(-(2**63) + 1, 2**63 - 1)), ("s", Schedule("exp", 5e-324, 1.7976931348623157e308))),
], ids=["astral", "long-key", "long-escaped-key", "extremes"])
def test_found_printer_cases_round_trip(syntax, params):
    spec = Spec(task=TaskSpec(params=params))
    fuzz.check_params_roundtrip(spec, syntax)


_HUGE = "1" * 5000  # more digits than Python converts to an int


@pytest.mark.parametrize("text, path, message", [
    (f"name: x\ntask: {{family: shift, params: {{split: shift_l, r: {_HUGE}..2}}}}\n", "x.yaml", "is too large"),
    (f"name x\ntask {{family shift params {{split shift_l r 1..{_HUGE}}}}}\n", "x.nls", "is too large"),
    ('name: x\ntask: {family: shift, params: {split: "\\ud800"}}\n', "x.yaml", "unpaired surrogate \\ud800"),
    ('name: x\n"\\udc00": 1\n', "x.yaml", "unpaired surrogate \\udc00"),
    ('name x\ntask { family shift params { split "\\ud83d" } }\n', "x.nls", "unpaired surrogate \\ud83d"),
], ids=["yaml-range-digits", "nls-range-digits", "yaml-surrogate", "yaml-surrogate-key", "nls-surrogate"])
def test_found_spec_cases_fail_located(text, path, message):
    with pytest.raises(NlicError) as info:
        parse_spec(text, path)
    fuzz.check_located(info.value, path, text.encode())
    assert message in info.value.render()
    assert "\ud800" not in info.value.render() and "\udc00" not in info.value.render()  # replaced after reporting


@pytest.mark.parametrize("program, message", [
    ("program a = [x=1e999]", "number 1e999 is out of range"),  # parsed as inf, which prints back as the text "inf"
    ('program "\\ud800" = t1', "unpaired surrogate \\ud800"),  # parsed, but no UTF-8 file could hold the id
], ids=["infinite-metadata", "surrogate-id"])
def test_found_program_cases_fail_located(program, message):
    text = f'nlic-programs 1\nlanguage "x"\nvocab 4 skip t0 max_length 3\n{program}\n'
    with pytest.raises(NlicError) as info:
        parse_programs(text, "p.nlp")
    fuzz.check_located(info.value, "p.nlp", text.encode())
    assert message in info.value.render()


def test_program_ids_beyond_the_bmp_round_trip():
    pf = ProgramFile(Header(1, "x\U0001f600", None, 4, 0, 3), (), (Program("\U0001f600 \u2028", (1,), (("k", "é"),)),))
    fuzz.check_programs_roundtrip(pf)
    assert parse_programs(format_programs(pf)) == pf


def test_the_yaml_printer_keeps_json_escapes_below_u10000():
    # Spec hashes are built on the canonical text: only characters beyond U+FFFF changed their escape.
    spec = Spec(task=TaskSpec(params=(("k", "é\u2028\x00"),)))
    assert '"\\u00e9\\u2028\\u0000"' in format_spec(spec, "yaml")


# --- the campaign script --------------------------------------------------------------------------------------


def test_a_short_campaign_counts_its_cases(tmp_path):
    rows = fuzz.campaign("programs", 2.0, 0, tmp_path / "failures", examples=10)
    assert [r.prop for r in rows] == ["round trip", "mutations"]
    assert rows[0].tried > 0 and all(r.tried == r.valid + r.located + r.failures for r in rows)
    assert sum(r.failures for r in rows) == 0 and not (tmp_path / "failures").exists()


def test_the_campaign_refuses_bad_arguments_with_exit_2(capsys):
    assert guarded(lambda: fuzz.main(["--minutes", "0"])) == 2
    assert "--minutes: error: --minutes must be a positive number" in capsys.readouterr().err
