"""Build directories: what `nlic compile --out DIR` writes (the exported executor and execution trace, their
weights, the summary), and `Artifact`, which replays and traces programs with them alone, without nlic's model code.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nlic.compiler.lower import ARTIFACT_FORMAT, ARTIFACT_VERSION, TRACE_FORMAT, TRACE_VERSION, CompiledSpec
from nlic.compiler.printer import format_spec
from nlic.grammar.errors import ArtifactError, CheckpointError, DataError, Loc, ProgramError
from nlic.grammar.reading import MAX_SPEC_BYTES, MAX_WEIGHTS_BYTES, read_bytes, read_text
from nlic.runtime.files import atomic_write, read_sealed, seal, write_sealed
from nlic.runtime.outputs import refuse_file_in_the_way
from nlic.runtime.run_dir import SPEC_FILE, executor_weights_npz, load_executor_weights, run_markers, write_spec

__all__ = ["EXPORT_FILE", "EXPORT_META_FILE", "SUMMARY_FILE", "TRACE_FILE", "WEIGHTS_FILE", "WEIGHTS_SHA256",
           "Artifact", "check_build_dir", "load_artifact", "write_build"]

EXPORT_FILE = "executor.jaxexport"
EXPORT_META_FILE = "executor.json"
WEIGHTS_FILE = "weights.npz"
SUMMARY_FILE = "summary.json"
TRACE_FILE = "trace.jaxexport"  # sealed, header on its first line; absent in builds written before traces
WEIGHTS_SHA256 = "weights_sha256"  # executor.json's checksum of weights.npz (absent in builds written before it)
EXECUTOR_SHA256 = "executor_sha256"  # the trace header's checksum of the executor it was exported with
_BUILD_FILES = (SPEC_FILE, SUMMARY_FILE, EXPORT_FILE, EXPORT_META_FILE, WEIGHTS_FILE, TRACE_FILE)
BUILD_MARKERS = (EXPORT_FILE, EXPORT_META_FILE)
"""What only a build directory of `nlic compile` holds."""


def check_build_dir(spec: Any, out: Path | str, *, force: bool = False) -> list[Path]:
    """Check that `write_build` may write a build of `spec` into `out` (`nlic compile` asks before compiling).

    Returns:
        The old build files to remove first: those of a forced rebuild (none otherwise).

    Raises:
        ArtifactError: `out` is a file, or inside one, or a training run's directory, or holds a build of another
            spec and not `force`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ArtifactError("the build directory is a file", loc=Loc(str(out)), hint="choose another --out DIR")
    refuse_file_in_the_way(out, what="build directory", hint="choose another --out DIR", error=ArtifactError)
    trained = run_markers(out)
    if trained:  # a build's spec.yaml would replace the run's locked spec: the run no longer loads
        raise ArtifactError(f"the directory is a training run ({', '.join(trained)}); a build would replace the "
                            f"{SPEC_FILE} it was trained with", loc=Loc(str(out)),
                            hint="write the build elsewhere with --out DIR (refused even with --force)")
    old = [out / name for name in _BUILD_FILES if (out / name).is_file()]
    if not old or force:
        return old
    spec_file = out / SPEC_FILE
    try:
        same = read_text(spec_file, limit=MAX_SPEC_BYTES, what="build spec", error=ArtifactError) == format_spec(
            spec, syntax="yaml")
    except ArtifactError:  # missing, a device, too large, not UTF-8: not this spec's build
        same = False
    if not same:
        what = "a build of another spec" if spec_file.is_file() else "build files of an unknown spec"
        raise ArtifactError(
            f"the directory holds {what} ({', '.join(p.name for p in old)}); refusing to replace it",
            loc=Loc(str(out)), hint="add --force to overwrite it, or write elsewhere with --out DIR",
        )
    return []


def write_build(compiled: CompiledSpec, out: Path | str, *, force: bool = False) -> Path:
    """Write a build directory: spec.yaml, summary.json and, for kinds with discrete programs, the exported
    executor (executor.jaxexport sealed by executor.json) with its initial weights (weights.npz) and, for kinds
    with a trace, the exported trace (trace.jaxexport, sealed, bound to the executor by its checksum).

    A directory that already holds a build is rebuilt only when that build is of the same spec (the same
    canonical spec.yaml: the files come out the same), or with `force`, which first removes the old build files
    so that none of another spec's is left behind. Other files in the directory are never touched.

    Returns:
        The directory.

    Raises:
        ArtifactError: `out` is a file, or holds a build of another spec and not `force`.
    """
    out = Path(out)
    for p in check_build_dir(compiled.spec, out, force=force):
        p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_spec(out, compiled.spec)
    if compiled.executor is not None:
        weights = executor_weights_npz(compiled.model)
        # The weights before the sealed description holding their checksum: a write cut short leaves no
        # executor.json that vouches for weights it does not describe.
        atomic_write(out / WEIGHTS_FILE, weights)
        meta = {**compiled.executor_meta, "bytes": len(compiled.executor),
                WEIGHTS_SHA256: hashlib.sha256(weights).hexdigest()}
        write_sealed(out / EXPORT_FILE, compiled.executor, meta, header_path=out / EXPORT_META_FILE)
        if compiled.trace is not None:
            # After the executor: a trace file is only used beside the executor whose checksum it carries.
            header = seal(compiled.trace, format=TRACE_FORMAT, version=TRACE_VERSION, **(compiled.trace_meta or {}),
                          **{EXECUTOR_SHA256: meta["sha256"]})
            write_sealed(out / TRACE_FILE, compiled.trace, header)
    atomic_write(out / SUMMARY_FILE, json.dumps(compiled.summary, indent=2, sort_keys=True) + "\n")
    return out


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A loaded build directory: the exported executor and its metadata (no nlic model code needed to run it);
    the exported trace is read when `trace` is first called.

    Attributes:
        directory: the build directory.
        meta: `executor.json` (format, version, kind, spec_hash, length, values, vocab, max_length, skip_token,
            leaves, sha256, weights_sha256, header_sha256).
        exported: the deserialised `jax.export.Exported`.
    """

    directory: Path
    meta: dict[str, Any]
    exported: Any

    @property
    def spec_hash(self) -> str:
        return self.meta["spec_hash"]

    def weights(self) -> list[np.ndarray]:
        """The initial weights written by `nlic compile` (`weights.npz`), checked against their checksum in
        `executor.json` (builds written before it have none: their weights are checked by shape only).

        Raises:
            ArtifactError: the file is missing, truncated or corrupt, or does not fit the executor.
        """
        path = self.directory / WEIGHTS_FILE
        want = self.meta.get(WEIGHTS_SHA256)
        if want is None:
            return self.load_weights(path)
        if not path.exists():
            raise ArtifactError(f"missing {WEIGHTS_FILE}", loc=Loc(str(path)), hint="re-run `nlic compile`")
        data = read_bytes(path, limit=MAX_WEIGHTS_BYTES, what="executor weights", error=ArtifactError,
                          hint="re-run `nlic compile`", streams=False)
        if hashlib.sha256(data).hexdigest() != want:
            raise ArtifactError(f"{WEIGHTS_FILE} is truncated or corrupt (checksum mismatch)", loc=Loc(str(path)),
                                hint="re-run `nlic compile`")
        return self.load_weights(path, data=data)  # the bytes just checked, not a second read of the file

    def load_weights(self, path: Path | str, *, data: bytes | None = None) -> list[np.ndarray]:
        """Leaves from a weights file (`weights.npz` or a run's `executor_weights.npz`), checked against the export;
        `data`: the file's bytes, already read (the file is then not read again)."""
        try:
            leaves = load_executor_weights(Path(path), data=data)
        except CheckpointError as e:
            raise ArtifactError(diagnostics=e.diagnostics) from None
        self._check_weights(leaves, Path(path))
        return leaves

    def _check_weights(self, weights: Sequence[Any], where: Path | None = None) -> None:
        spec = self.meta["leaves"]
        loc = Loc(str(where)) if where is not None else Loc(str(self.directory / EXPORT_META_FILE))
        if len(weights) != len(spec):
            raise ArtifactError(f"{len(weights)} weight arrays given, the executor takes {len(spec)}", loc=loc,
                                hint="use the weights of a run of the same spec")
        for i, (w, s) in enumerate(zip(weights, spec)):
            if list(np.shape(w)) != s["shape"] or np.dtype(np.asarray(w).dtype).name != s["dtype"]:
                raise ArtifactError(
                    f"weight {i} is {np.asarray(w).dtype.name}{list(np.shape(w))}, the executor takes "
                    f"{s['dtype']}{s['shape']}",
                    loc=loc, hint="use the weights of a run of the same spec",
                )

    def _arguments(self, weights: Sequence[Any], programs: Any, inputs: Any) -> tuple[list[Any], Any, Any]:
        """The exported functions' arguments, checked: weights, programs padded to max_length, inputs."""
        m = self.meta
        self._check_weights(weights)
        programs = np.asarray(programs)
        inputs = np.asarray(inputs)
        if programs.ndim != 2 or inputs.ndim != 2 or len(programs) != len(inputs):
            raise DataError(f"expected programs [B, T] and inputs [B, L] with the same B, got {list(programs.shape)} "
                            f"and {list(inputs.shape)}")
        if programs.shape[1] > m["max_length"]:
            raise ProgramError(f"a program of {programs.shape[1]} tokens is longer than the language's maximum "
                               f"of {m['max_length']}", hint="drop skip tokens or raise language.max_length")
        if programs.size and (programs.min() < 0 or programs.max() >= m["vocab"]):
            raise ProgramError(f"program tokens must lie in [0, {m['vocab']})",
                               hint="check the program file's language")
        if inputs.shape[1] != m["length"]:
            raise DataError(f"inputs have length {inputs.shape[1]}, the executor reads {m['length']}")
        if inputs.size and (inputs.min() < 0 or inputs.max() >= m["values"]):
            raise DataError(f"input values must lie in [0, {m['values']})")
        _check_platform(self.exported, "executor", self.directory)
        pad = m["max_length"] - programs.shape[1]
        programs = np.pad(programs.astype(np.int32), ((0, 0), (0, pad)), constant_values=m["skip_token"])
        return [jnp.asarray(w) for w in weights], jnp.asarray(programs), jnp.asarray(inputs, jnp.int32)

    def run(self, weights: Sequence[np.ndarray], programs: Any, inputs: Any) -> np.ndarray:
        """Run discrete programs on inputs with the exported executor.

        Args:
            weights: leaves in export order (from `weights()`, `load_weights` or a run's `executor_weights.npz`).
            programs: int [B, T] token ids, T <= max_length (padded here with the skip token).
            inputs: int [B, L] data in [0, V).

        Returns:
            int32 [B, L] outputs.

        Raises:
            ArtifactError: weights of other shapes. ProgramError: tokens out of range or programs too long.
            DataError: inputs of the wrong length or out-of-range values.
        """
        return np.asarray(self.exported.call(*self._arguments(weights, programs, inputs)))

    def trace(self, weights: Sequence[np.ndarray], programs: Any, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Run discrete programs on inputs with the exported trace (`ModelKind.trace`), checked like `run`.

        Args:
            weights: leaves in export order, as for `run`.
            programs: int [B, T] token ids, T <= max_length (padded here with the skip token).
            inputs: int [B, L] data in [0, V).

        Returns:
            `(values, probs)`, int32 and float32 [B, max_length + 1, L]: row 0 the input, row k the likeliest
            value per position after token k and its probability (padding skip tokens repeat the last row).

        Raises:
            ArtifactError: the build has no trace (written before traces were exported: re-run `nlic compile`),
                or a damaged or foreign one; weights of other shapes. ProgramError, DataError: as `run`.
        """
        args = self._arguments(weights, programs, inputs)
        values, probs = self._trace_exported.call(*args)
        return np.asarray(values, np.int32), np.asarray(probs, np.float32)

    @functools.cached_property
    def _trace_exported(self) -> Any:
        """The deserialised trace (`trace.jaxexport`), loaded and checked on first use only: replays without
        `--trace` never read it, so a build written before traces still replays."""
        path = self.directory / TRACE_FILE
        hint = f"re-run `nlic compile {self.directory / SPEC_FILE} --out {self.directory}` to export it"
        if not path.exists():
            raise ArtifactError(f"the build has no exported trace ({TRACE_FILE} is missing: it was compiled before "
                                "nlic exported traces, or its model kind has none)", loc=Loc(str(self.directory)),
                                hint=hint)
        header, blob = read_sealed(path, format=TRACE_FORMAT, version=TRACE_VERSION, error=ArtifactError,
                                   what="trace", hint=hint)
        if header.get(EXECUTOR_SHA256) != self.meta.get("sha256") or header.get("spec_hash") != self.spec_hash:
            raise ArtifactError(f"{TRACE_FILE} was exported with another executor than this build's",
                                loc=Loc(str(path)), hint=hint)
        try:
            exported = jax.export.deserialize(bytearray(blob))
        except Exception as e:  # flatbuffer / version errors come in several types
            raise ArtifactError(f"cannot deserialise the exported trace: {e}", loc=Loc(str(path)), hint=hint) from None
        if len(exported.in_avals) != len(self.meta["leaves"]) + 2 or len(exported.out_avals) != 2:
            raise ArtifactError(f"{TRACE_FILE} does not take the executor's arguments", loc=Loc(str(path)), hint=hint)
        _check_platform(exported, "trace", self.directory)
        return exported


def _check_platform(exported: Any, what: str, directory: Path) -> None:
    """Refuse an export that has no lowering for this machine's backend (`jax.export` exports for cpu and cuda)."""
    here = jax.default_backend()
    if here not in exported.platforms and not (here == "gpu" and "cuda" in exported.platforms):
        raise ArtifactError(f"the {what} was exported for {', '.join(exported.platforms)}, not {here}",
                            loc=Loc(str(directory)), hint="re-run `nlic compile` on this machine")


def load_artifact(build_dir: Path | str) -> Artifact:
    """Load the exported executor of a build directory written by `nlic compile`.

    Raises:
        ArtifactError: missing, corrupt (checksum), unsupported or inconsistent files.
    """
    d = Path(build_dir)
    meta_path = d / EXPORT_META_FILE
    blob_path = d / EXPORT_FILE
    if not d.is_dir():
        raise ArtifactError("a file, not a build directory" if d.exists() else "no such build directory", loc=Loc(str(d)),
                            hint="create it with `nlic compile SPEC --out DIR`")
    if not meta_path.exists() and not blob_path.exists():
        raise ArtifactError(f"no exported executor ({EXPORT_META_FILE} is missing)", loc=Loc(str(d)),
                            hint="only kinds with discrete programs export one; run `nlic compile SPEC --out DIR`")
    meta, blob = read_sealed(blob_path, format=ARTIFACT_FORMAT, version=ARTIFACT_VERSION, error=ArtifactError,
                             what="executor", header_path=meta_path, hint="re-run `nlic compile`")
    need = ("spec_hash", "length", "values", "vocab", "max_length", "skip_token", "leaves")
    if any(k not in meta for k in need):
        raise ArtifactError("not an nlic executor description (fields missing)", loc=Loc(str(meta_path)),
                            hint="re-run `nlic compile`")
    try:
        exported = jax.export.deserialize(bytearray(blob))
    except Exception as e:  # flatbuffer / version errors come in several types
        raise ArtifactError(f"cannot deserialise the exported executor: {e}", loc=Loc(str(blob_path)),
                            hint="was it written by a newer jax? re-run `nlic compile`") from None
    if len(exported.in_avals) != len(meta["leaves"]) + 2:
        raise ArtifactError("executor.json does not describe the exported function's arguments",
                            loc=Loc(str(meta_path)), hint="re-run `nlic compile`")
    return Artifact(directory=d, meta=meta, exported=exported)
