"""Macros in program files: `alias NAME = WORD WORD ...` names a token sequence that programs may use.

Parsing expands macros (programs hold token ids, so replay is unchanged), printing abbreviates programs by them
(greedy, longest first), both paths of the parser (the per-line fast path and lark) agree, and every misuse is
reported located, all at once.
"""

from __future__ import annotations

from pathlib import Path

import lark
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlic.grammar import program as module
from nlic.grammar.errors import NlicError, ProgramError
from nlic.grammar.program import (
    Alias,
    Header,
    Macro,
    Program,
    ProgramFile,
    format_programs,
    load_programs,
    parse_programs,
)
from nlic.runtime.cli import main as nlic
from nlic.runtime.replay import Language, program_file

# Under the test suite's beartype hook, building an nlic dataclass samples a container item with the global
# `random`, which hypothesis takes for a strategy using `random` (as in tests/test_fuzz.py).
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning")

DATA = Path(__file__).parent / "data"
HEAD = 'nlic-programs 1\nlanguage "l"\nvocab 8 skip t0 max_length 8\n'


def _with_lark(text: str, path: str = "f.nlp") -> ProgramFile:
    """`parse_programs` without its fast path."""
    try:
        tree = module._parser().parse(text)
    except lark.exceptions.LarkError as e:
        raise module._syntax_error(e, text, path) from None
    return module._Builder(path).build(tree)


def _locs(pf: ProgramFile) -> tuple:
    return ([(p.loc, p.token_locs) for p in pf.programs], [a.loc for a in pf.aliases], [m.loc for m in pf.macros])


def _errors(text: str, path: str = "m.nlp") -> list[str]:
    with pytest.raises(ProgramError) as info:
        parse_programs(text, path)
    return [str(d) for d in info.value.diagnostics]


# --- reading and printing -------------------------------------------------------------------------------------


def test_snapshot_expands_nested_macros_and_prints_them_abbreviated():
    pf = load_programs(DATA / "programs" / "macros.input.nlp")
    assert pf.aliases == (Alias(3, "shift1"), Alias(5, "shift2"))  # `alias shift1 = t3` is a token alias
    assert pf.macros == (Macro("shift3", (3, 5)), Macro("shift6", (3, 5, 3, 5)), Macro("up", (7, 7)))
    assert pf.get("task_0002").tokens == (3, 5, 3, 5, 7, 7, 7)  # shift6 (of shift3 twice), up, t7
    assert pf.get("task_0003").tokens == (3, 5, 3)
    printed = format_programs(pf)
    assert printed == (DATA / "programs" / "macros.nlp").read_text()
    assert "alias shift6 = shift1 shift2 shift1 shift2\n" in printed  # bodies by token alias, never by macro
    assert "program task_0001 = shift6 shift1 [fit=1.0]\n" in printed  # abbreviated although written out
    assert parse_programs(printed) == pf and format_programs(parse_programs(printed)) == printed


def test_name_on_the_left_of_one_token_is_a_token_alias():
    a = parse_programs(HEAD + "alias up = t3\nprogram p = up t3\n")
    b = parse_programs(HEAD + "alias t3 = up\nprogram p = up t3\n")
    assert a == b and a.aliases == (Alias(3, "up"),) and a.macros == ()
    assert "alias t3 = up\n" in format_programs(a)


def test_abbreviation_takes_the_longest_macro_then_the_first_defined():
    header = Header(1, "l", None, 8, 0, 12)
    pf = ProgramFile(header, (Alias(4, "four"),), (
        Program("a", (1, 2, 3, 1, 2, 4, 1)),
        Program("b", (2, 3, 2, 3)),
        Program("c", (5, 0, 6, 5, 6)),  # skip tokens (built in code) are left out before abbreviating
    )).with_macros([Macro("ab", (1, 2)), Macro("abc", (1, 2, 3)), Macro("bc", (2, 3)), Macro("bc2", (2, 3)),
                    Macro("ef", (5, 6))])
    text = format_programs(pf)
    assert "program a = abc ab four t1\n" in text  # abc beats ab at 0; `ab four` at 3 (no `abc` there)
    assert "program b = bc bc\n" in text  # bc and bc2 are equal: the first defined wins
    assert "program c = ef ef\n" in text
    back = parse_programs(text)
    assert [p.tokens for p in back.programs] == [(1, 2, 3, 1, 2, 4, 1), (2, 3, 2, 3), (5, 6, 5, 6)]
    assert back.macros == pf.macros and format_programs(back) == text


def test_greedy_abbreviation_is_left_to_right():
    pf = ProgramFile(Header(1, "l", None, 8, 0, 8), (), (Program("p", (1, 2, 3)),)).with_macros(
        [Macro("ab", (1, 2)), Macro("bcx", (2, 3))])
    assert format_programs(pf).endswith("program p = ab t3\n")  # not `t1 bcx`: the leftmost match is taken


def test_macros_give_the_same_programs_and_array_as_written_out_tokens():
    written = parse_programs(HEAD + "alias t1 = one\nprogram p = one t2 t3 one t2\nprogram q = t2 t3 t0 t2 t3\n")
    macros = parse_programs(HEAD + "alias t1 = one\nalias m = t2 t3\nprogram p = one m one t2\nprogram q = m t0 m\n")
    assert macros.programs == written.programs
    np.testing.assert_array_equal(macros.array(), written.array())
    np.testing.assert_array_equal(macros.array(["q", "p"], 5), written.array(["q", "p"], 5))
    assert macros.with_macros(()) == written
    assert written.with_macros(macros.macros) == macros


def test_canonical_text_is_shorter_with_macros():
    rng = np.random.default_rng(0)
    lang = Language("l", "ab12", 8, 0, 16)
    # Programs made of a few frequent sequences, as abstraction mining finds them.
    pieces = [(1, 2, 3), (4, 4), (5,), (6, 1)]
    rows = [sum((pieces[i] for i in rng.integers(0, 4, 6)), ())[:16] for _ in range(50)]
    programs = np.array([r + (0,) * (16 - len(r)) for r in rows])
    plain = program_file(lang, [f"t-{i}" for i in range(50)], programs)
    mined = plain.with_macros([Macro("abc", (1, 2, 3)), Macro("dd", (4, 4)), Macro("fa", (6, 1))])
    short, long = format_programs(mined), format_programs(plain)
    assert len(short) < 0.8 * len(long)
    assert parse_programs(short) == mined and parse_programs(short).programs == plain.programs
    np.testing.assert_array_equal(parse_programs(short).array(), parse_programs(long).array())


def test_programs_may_use_a_macro_defined_below_them_and_keep_its_locations():
    text = HEAD + "program p = t1 m\nalias m = t2 t3\n"
    pf = parse_programs(text, "f.nlp")
    assert pf.get("p").tokens == (1, 2, 3)
    assert [(loc.line, loc.col) for loc in pf.get("p").token_locs] == [(4, 13), (4, 16), (4, 16)]  # m, twice
    assert pf.macros[0].loc.line == 5


def test_keywords_may_name_macros():
    text = HEAD + "alias program = t1 t2\nalias alias = program t3\nalias t4 = language\nprogram alias = alias program language\n"
    pf = parse_programs(text)
    assert pf.macros == (Macro("program", (1, 2)), Macro("alias", (1, 2, 3)))
    assert pf.get("alias").tokens == (1, 2, 3, 1, 2, 4)
    assert format_programs(pf).endswith("program alias = alias program language\n")
    assert module._parse_fast(text, "f.nlp") == _with_lark(text) == pf


def test_skip_tokens_in_a_macro_body_are_dropped():
    pf = parse_programs(HEAD.replace("skip t0", "skip t2") + "alias t2 = nop\nalias m = t1 nop t2 t3\nprogram p = m\n")
    assert pf.macros == (Macro("m", (1, 3)),) and pf.get("p").tokens == (1, 3)
    assert "alias m = t1 t3\n" in format_programs(pf)


# --- the fast path reads what lark reads ----------------------------------------------------------------------


def test_the_fast_path_reads_macros_as_lark_does():
    text = (DATA / "programs" / "macros.input.nlp").read_text()
    fast = module._parse_fast(text, "f.nlp")
    assert fast is not None  # program lines that use macros stay on the fast path
    slow = _with_lark(text)
    assert fast == slow and _locs(fast) == _locs(slow)


@pytest.mark.parametrize("line", [
    "program a = ab ab ab ab ab",  # too long once expanded
    "program a = abx",  # unknown, did you mean 'ab'
    "alias ab2 = ab ab ab ab ab\nprogram a = ab2",  # a broken macro: diagnosed once, where it is defined
    "alias t5 = ab\nprogram a = ab",  # a name defined twice
    "alias cd = t1\nprogram a = t2",  # not an error: `alias cd = t1` is a token alias
])
def test_the_fast_path_leaves_macro_errors_to_lark(line):
    text = HEAD + "alias ab = t1 t2\nprogram ok = ab\n" + line + "\n"
    try:
        slow = _with_lark(text)
    except NlicError as e:
        with pytest.raises(type(e)) as fast:
            parse_programs(text, "f.nlp")
        assert fast.value.render() == e.render()
        return
    assert parse_programs(text, "f.nlp") == slow


@st.composite
def _files_with_macros(draw) -> ProgramFile:
    vocab, max_length = draw(st.integers(3, 12)), draw(st.integers(2, 10))
    tokens = st.integers(1, vocab - 1)
    macros = [Macro(f"m{i}", tuple(draw(st.lists(tokens, min_size=2, max_size=min(4, max_length)))))
              for i in range(draw(st.integers(0, 4)))]
    pieces = st.one_of(tokens.map(lambda t: (t,)), *([st.sampled_from(macros).map(lambda m: m.tokens)] if macros else []))
    programs = [Program(f"p{i}", sum(draw(st.lists(pieces, max_size=max_length)), ())[:max_length])
                for i in range(draw(st.integers(0, 5)))]
    return ProgramFile(Header(1, "l", None, vocab, 0, max_length), (), tuple(programs)).with_macros(macros)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(pf=_files_with_macros())
def test_generated_files_round_trip_on_both_paths(pf):
    text = format_programs(pf)
    slow = _with_lark(text)
    assert slow == pf and format_programs(slow) == text
    if pf.programs:
        fast = module._parse_fast(text, "f.nlp")
        assert fast == pf and _locs(fast) == _locs(slow)


# --- errors ---------------------------------------------------------------------------------------------------

BAD = HEAD.replace("max_length 8", "max_length 4") + """\
alias t3 = shift1
alias ab = t1 t2
alias t4 = t1 t2
alias shift1 = t1 t2
alias ab = t2 t1
alias cd = t1 abx
alias ef = gh t1
alias gh = t1 t2
alias long = ab ab t1
alias big = t1 t9
alias self = self t1
alias nothing = t0 t0
alias one = shift1
alias empty =
program p = ab ab ab
program q = ab gh nothing
"""


def test_every_macro_error_is_located_and_reported_at_once():
    assert _errors(BAD) == [
        "m.nlp:6:7: error: macro name 't4' shadows token t4 (choose a name that is not t<number>)",
        "m.nlp:7:7: error: duplicate alias 'shift1' (first defined at line 4) (each alias and macro name can be "
        "used once)",
        "m.nlp:8:7: error: duplicate alias 'ab' (first defined at line 5) (each alias and macro name can be used "
        "once)",
        "m.nlp:9:15: error: unknown word 'abx' in macro 'cd' (did you mean 'ab'?)",
        "m.nlp:10:12: error: macro 'gh' is used before its definition (line 11) (define 'gh' on a line above "
        "line 10)",
        "m.nlp:12:7: error: macro 'long' has 5 tokens, more than max_length 4 (a macro must fit in a program: "
        "give it at most 4 tokens)",
        "m.nlp:13:16: error: unknown token 't9': the vocabulary has 8 tokens (use t0..t7)",
        "m.nlp:14:14: error: macro 'self' is used in its own definition (a macro cannot refer to itself: write "
        "its tokens)",
        "m.nlp:15:7: error: macro 'nothing' has no tokens (give it at least 2 tokens (skip tokens do not count))",
        "m.nlp:16:7: error: macro 'one' has 1 token, and a macro has at least 2 (add tokens, or name the one "
        "token with `alias t3 = one`)",
        "m.nlp:17:7: error: alias 'empty' has nothing after '=' (name a token with `alias t3 = empty`, or a "
        "sequence of tokens with `alias empty = t1 t2`)",
        "m.nlp:18:1: error: program 'p' has 6 tokens, more than max_length 4 (shorten it to at most 4 tokens)",
    ]  # program q uses only macros diagnosed above: nothing more is said about it


def test_a_token_on_the_left_of_several_words_shadows_the_token():
    assert _errors(HEAD + "alias t3 =\nalias t5 = a b\n") == [
        "m.nlp:4:7: error: alias 't3' has nothing after '=' (write `alias t3 = NAME`)",
        "m.nlp:5:7: error: macro name 't5' shadows token t5 (choose a name that is not t<number>)",
    ]


def test_unknown_words_in_programs_suggest_macros_too():
    assert _errors(HEAD + "alias shift3 = t1 t2\nprogram p = shift2\n") == [
        "m.nlp:5:13: error: unknown alias 'shift2' (did you mean 'shift3'?)"]


def test_macros_of_macros_cannot_blow_up(monkeypatch):
    # Each line doubles the one above: without a bound, `m40` would be 2**41 tokens. The bound (2**24 tokens
    # added by macros in one file) is lowered here to keep the test quick; it trips on line 15 (m11) instead.
    monkeypatch.setattr(module, "_MAX_EXPANDED", 1 << 12)
    lines = ["alias m0 = t1 t1"] + [f"alias m{i} = m{i - 1} m{i - 1}" for i in range(1, 41)]
    text = HEAD.replace("max_length 8", "max_length 99999999999999999999") + "\n".join(lines) + "\nprogram p = m40\n"
    assert _errors(text) == [f"m.nlp:15:13: error: macros expand to more than {1 << 12} tokens in this file (use "
                             "fewer or shorter macros, or split the programs into several files)"]
    # Programs count too: 100 uses of a 64-token macro.
    text = HEAD.replace("max_length 8", "max_length 99999") + "\n".join(lines[:6]) + "\nprogram p =" + " m5" * 100 + "\n"
    assert _errors(text)[0].startswith("m.nlp:10:")


def test_with_macros_checks_every_macro_at_once():
    pf = parse_programs(HEAD + "alias t3 = shift1\nprogram p = t1 t2\n")
    with pytest.raises(ProgramError) as info:
        pf.with_macros([Macro("t3", (1, 2)), Macro("shift1", (1, 2)), Macro("ab", (1, 2)), Macro("ab", (2, 1)),
                        Macro("a b", (1, 2)), Macro("x", (1,)), Macro("y", (1, 0)), Macro("z", (1, 99)),
                        Macro("w", (1,) * 9), Macro("v", ())])
    assert [d.message for d in info.value.diagnostics] == [
        "macro name 't3' shadows token t3",
        "macro name 'shift1' is the alias of t3",
        "duplicate macro 'ab'",
        "macro name 'a b' is not a name",
        "macro 'x' has 1 token, and a macro has at least 2",
        "macro 'y' holds the skip token t0",
        "macro 'z' uses token t99, outside the vocabulary of 8 tokens",
        "macro 'w' has 9 tokens, more than max_length 8",
        "macro 'v' has no tokens",
    ]
    assert all(d.hint for d in info.value.diagnostics)
    good = pf.with_macros([Macro("ab", (1, 2))])
    assert good.programs == pf.programs and good.macros == (Macro("ab", (1, 2)),) and pf.macros == ()
    assert format_programs(good).endswith("alias t3 = shift1\nalias ab = t1 t2\n\nprogram p = ab\n")


def test_nlic_run_reports_a_bad_macro_located_with_exit_2(tmp_path, capsys):
    path = tmp_path / "p.nlp"
    path.write_text(HEAD + "alias ab = t1 x\nprogram p = ab\n")
    code = nlic(["run", str(tmp_path / "no_run"), str(path), "--inputs", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"{path}:4:15: error: unknown word 'x' in macro 'ab'")
