"""Every spec in specs/ validates and round-trips through both syntaxes; canonical text is snapshot-tested."""

import os
from pathlib import Path

import pytest

from nlic.compiler import format_spec, load_spec, parse_spec, spec_hash
from nlic.compiler.spec import IntRange, Schedule
from nlic.compiler.families import FAMILIES
from nlic.compiler.spec import Spec, TaskSpec, TrainingSpec
from nlic.compiler.validate import _Checker, _parse_tree

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(p for p in (ROOT / "specs").glob("*") if p.suffix in (".yaml", ".yml", ".nls"))
SNAPSHOTS = Path(__file__).parent / "data" / "spec_snapshots"


def _load(path):
    text = path.read_text()
    family = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                   if line.strip().startswith("family:")), None)
    if family and FAMILIES.names() and family not in FAMILIES:
        pytest.skip(f"task family '{family}' is not registered yet")
    return load_spec(path)


def test_the_example_specs_exist():
    names = {p.name for p in SPECS}
    assert {"shift_l.yaml", "shift_p.yaml", "comp_i.yaml", "deepcoder.yaml", "pattern.yaml", "string_rules.yaml",
            "shift_l.nls"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_round_trips_through_both_syntaxes(path):
    spec = _load(path)
    for syntax, ext in (("yaml", ".yaml"), ("nls", ".nls")):
        text = format_spec(spec, syntax)
        # Read back as a run reads what it locked: a field left out is at the schema's default, not its data's.
        again = parse_spec(text, f"canonical{ext}", kind_fields=False)
        assert again == spec
        assert format_spec(again, syntax) == text  # print -> parse -> print is the identity
        commented = format_spec(spec, syntax, comments=True)
        assert parse_spec(commented, f"commented{ext}") == spec
    # Canonical YAML parsed as YAML and canonical nls parsed as nls give equal specs and hashes.
    assert spec_hash(parse_spec(format_spec(spec, "nls"), "x.nls", kind_fields=False)) == spec_hash(spec)


def test_native_and_yaml_example_are_the_same_spec():
    assert load_spec(ROOT / "specs" / "shift_l.nls") == load_spec(ROOT / "specs" / "shift_l.yaml")


@pytest.mark.parametrize("syntax", ["yaml", "nls"])
def test_canonical_text_snapshot(syntax):
    spec = load_spec(ROOT / "specs" / "shift_l.yaml")
    text = format_spec(spec, syntax)
    snap = SNAPSHOTS / f"shift_l.{syntax}"
    if os.environ.get("NLIC_UPDATE_SNAPSHOTS"):
        snap.write_text(text)
    assert text == snap.read_text(), "canonical text changed; rerun with NLIC_UPDATE_SNAPSHOTS=1 if intended"
    assert text.startswith("version: 1\n" if syntax == "yaml" else "version 1\n")


def test_awkward_values_round_trip():
    """Quoted strings, unicode, ranges, lists and near-float-limit numbers survive both printers (built directly,
    without a family that would check the params)."""

    params = (("l", (1, 2.5, 'q"uote', "ü")), ("n", "12"), ("odd key", "a b"), ("r", IntRange(-3, 4)),
              ("s", Schedule("exp", 1e-3, 1e-9)), ("t", "yes"))
    spec = Spec(name="x-1.2", task=TaskSpec(params=params),
                training=TrainingSpec(lr=Schedule("cosine", 0.1 + 0.2, 1e-5), weight_decay=1e-300))
    for syntax, ext in (("yaml", ".yaml"), ("nls", ".nls")):
        text = format_spec(spec, syntax)
        doc, diags = _parse_tree(text, f"x{ext}", syntax)
        checker = _Checker(f"x{ext}")
        again = checker.section(type(spec), doc.root, "")
        assert not diags and not checker.diagnostics, checker.diagnostics
        assert again == spec, (syntax, text)
        assert again.training.lr.start == 0.1 + 0.2  # floats print so they round-trip exactly
        assert format_spec(again, syntax) == text
