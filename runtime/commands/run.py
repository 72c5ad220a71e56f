"""`nlic run`: replay a program file on new inputs, with the trained model or with the exported executor.

The file is checked against the run's language first (fingerprint, vocabulary, skip token, maximum length).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from nlic.grammar.errors import ArtifactError, CheckpointError, Loc

__all__ = ["add_arguments", "run", "replay"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a trained run directory (the --out of nlic train)")
    parser.add_argument("programs", metavar="PROGRAMS", help="a program file (.nlp), e.g. written by nlic solve")
    parser.add_argument(
        "--inputs", action="append", required=True, metavar="FILE",
        help="JSONL of {\"id\": program id, \"input\": value} ('-' reads stdin), an ARC-style task file (.json, "
        "run with the program named like the file) or a directory of them; repeat for several",
    )
    parser.add_argument("--program", metavar="ID", help="run every input with this program (ids in inputs optional)")
    parser.add_argument("--out", metavar="FILE", help="write the JSONL outputs here (default: standard output)")
    parser.add_argument(
        "--artifact", metavar="BUILD_DIR",
        help="replay with the executor exported by `nlic compile` and RUN_DIR/executor_weights.npz, "
        "without building the model from Python code",
    )


def replay(run_dir: str | Path, programs: str | Path, inputs: list[str], *, program: str | None = None,
           artifact: str | Path | None = None) -> list[dict]:
    """Outputs of a program file on inputs, as rows `{"id", "input", "output"}` (the command without I/O).

    Raises:
        ProgramSyntaxError, ProgramError: the file does not parse or belongs to another language.
        DataError: malformed inputs. CheckpointError, ArtifactError: unusable run or build directory.
    """
    from nlic.grammar.program import load_programs
    from nlic.runtime.programs import Language, check_programs, read_inputs
    from nlic.runtime.tasks import codec_of

    # The program file first: it is cheap to check, and its errors are the likeliest.
    pf = load_programs(programs)
    run = Path(run_dir)
    if artifact is None:
        from nlic.runtime.programs import execute_programs
        from nlic.runtime.run_dir import fingerprint, load_run

        spec, model = load_run(run)
        language = Language.of(spec, fingerprint(spec, model))
    else:
        spec, art, weights, fp = _artifact(run, Path(artifact))
        language = Language.of(spec, fp)
    check_programs(pf, language)
    items = read_inputs(inputs, codec_of(spec), pf, program=program)
    tokens = pf.array([it.id for it in items], language.max_length)
    x = np.stack([it.encoded for it in items])
    if artifact is None:
        outputs = execute_programs(spec, model, tokens, x)
    else:
        outputs = art.run(weights, tokens, x)
    codec = codec_of(spec)
    return [{"id": it.id, "input": it.value, "output": codec.decode(out)} for it, out in zip(items, outputs)]


def _artifact(run: Path, build: Path):
    """Spec, artifact, weights and language fingerprint of a run replayed through an exported executor."""
    from nlic.compiler import load_spec
    from nlic.compiler.lower import load_artifact
    from nlic.runtime.run_dir import EXECUTOR_WEIGHTS_FILE, SPEC_FILE, fingerprint, spec_hash

    if not (run / SPEC_FILE).exists():
        raise CheckpointError(f"not a run directory (no {SPEC_FILE})", loc=Loc(str(run)),
                              hint="pass the --out of `nlic train`")
    spec = load_spec(run / SPEC_FILE)
    art = load_artifact(build)
    if art.spec_hash != spec_hash(spec):
        raise ArtifactError(
            f"the build was compiled from spec {art.spec_hash}, the run was trained with spec {spec_hash(spec)}",
            loc=Loc(str(build)), hint=f"compile the run's spec: nlic compile {run / SPEC_FILE} --out {build}",
        )
    weights_path = run / EXECUTOR_WEIGHTS_FILE
    if not weights_path.exists():
        raise CheckpointError(f"no {EXECUTOR_WEIGHTS_FILE} in the run", loc=Loc(str(run)),
                              hint="did training finish? `nlic train` writes it at the end")
    weights = art.load_weights(weights_path)
    # The fingerprint hashes the spec and the weight leaves in export order, so the exported weights give the
    # same fingerprint as the trained model.
    return spec, art, weights, fingerprint(spec, weights)


def run(args: argparse.Namespace) -> int:
    from nlic.runtime.programs import jsonl
    from nlic.runtime.run_dir import atomic_write

    rows = replay(args.run_dir, args.programs, args.inputs, program=args.program, artifact=args.artifact)
    text = jsonl(rows)
    if args.out:
        atomic_write(Path(args.out), text)
        print(f"wrote {len(rows)} outputs to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0
