"""The runtime: files, loops and the CLI around the compiler: train, solve, replay, evaluate.

The public Python API; the `nlic` commands (`nlic.runtime.cli`) and the `benchmarks/` scripts are thin callers
of it.

    >>> from nlic.compiler import parse_spec
    >>> from nlic.runtime import train, solve_to_files, replay
"""

from nlic.runtime.numerics import cap_cpu_isa

cap_cpu_isa()  # before jax creates its CPU client: reproducible weights across x86-64 machines (see numerics.py)

from nlic.runtime.build import Artifact as Artifact, load_artifact as load_artifact, write_build as write_build
from nlic.runtime.compile_cache import enable_compile_cache as enable_compile_cache
from nlic.runtime.distributed import (
    DistributedError as DistributedError,
    initialize as init_distributed,
    launch as launch_processes,
)
from nlic.runtime.evaluate import evaluate as evaluate, trained_model as trained_model
from nlic.runtime.export import export_tasks as export_tasks
from nlic.runtime.report import InspectReport as InspectReport, inspect_run as inspect_run
from nlic.runtime.replay import replay as replay
from nlic.runtime.run_dir import load_run as load_run
from nlic.runtime.solve import (
    SolvedFiles as SolvedFiles,
    SolveResult as SolveResult,
    solve as solve,
    solve_to_files as solve_to_files,
)
from nlic.runtime.train import TrainResult as TrainResult, train as train

__all__ = [
    "Artifact",
    "DistributedError",
    "InspectReport",
    "SolveResult",
    "SolvedFiles",
    "TrainResult",
    "enable_compile_cache",
    "evaluate",
    "export_tasks",
    "init_distributed",
    "inspect_run",
    "launch_processes",
    "load_artifact",
    "load_run",
    "replay",
    "solve",
    "solve_to_files",
    "train",
    "trained_model",
    "write_build",
]
