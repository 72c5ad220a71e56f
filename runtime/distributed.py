"""Multi-process runs through `jax.distributed`: joining one (flags, `NLIC_*` variables or jax's cluster detection),
global arrays over all processes' devices, barriers and gathers with bounded waits, and a local launcher.

`nlic train` and `nlic solve` use it when asked to (`--processes N`, `--coordinator`, `--distributed`): one global
1-D mesh over every process's devices, data-parallel, process 0 the only one that writes. Without those flags
nothing here runs and jax.distributed is never initialised.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax._src import distributed as _jax_distributed  # the coordination client: key-value store, barriers
from jax.experimental import multihost_utils
from jax.sharding import Sharding

from nlic.grammar.errors import Loc, NlicError, escape

__all__ = [
    "DistributedError",
    "ENV_COORDINATOR",
    "ENV_NUM_PROCESSES",
    "ENV_PROCESS_ID",
    "INIT_TIMEOUT_S",
    "HEARTBEAT_TIMEOUT_S",
    "WAIT_TIMEOUT_S",
    "add_arguments",
    "barrier",
    "exit_now",
    "gather_rows",
    "global_array",
    "initialize",
    "is_distributed",
    "is_main",
    "join_or_launch",
    "launch",
    "local_copy",
    "lost_peer",
    "process_count",
    "process_index",
    "share_from_main",
    "wanted",
]

ENV_COORDINATOR = "NLIC_COORDINATOR"  # HOST:PORT of process 0's coordination service
ENV_NUM_PROCESSES = "NLIC_NUM_PROCESSES"
ENV_PROCESS_ID = "NLIC_PROCESS_ID"
INIT_TIMEOUT_S = 120  # every process must join within this (processes of a cluster job start at different times)
HEARTBEAT_TIMEOUT_S = 20  # a process silent this long is dead: jax stops the others
SHUTDOWN_TIMEOUT_S = 60
WAIT_TIMEOUT_S = 600  # barriers and process 0's preparation (removing an old run, checking a checkpoint)
_LAUNCH_GRACE_S = 5.0  # after one launched process failed, the others get this long to stop by themselves


class DistributedError(NlicError, RuntimeError):
    """A multi-process run cannot start or lost one of its processes (bad coordinator address, count/id
    mismatch, a timeout, a process that died)."""


# --- joining --------------------------------------------------------------------------------------------------


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"{name}={text!r} is not an integer", loc=Loc(name),
                               hint="set it to a process count or index, or unset it") from None


def wanted(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
           *, distributed: bool = False) -> bool:
    """Whether this process is to join a multi-process run: a flag says so, or one of the `NLIC_*` variables."""
    given = (coordinator, num_processes, process_id)
    env = (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID)
    return distributed or any(v is not None for v in given) or any(os.environ.get(e) for e in env)


def _parse_address(address: str, where: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    hint = "give HOST:PORT, e.g. 10.0.0.1:12355 (the host of process 0, a free port)"
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(f"the coordinator address {address!r} is not HOST:PORT", loc=Loc(where), hint=hint)
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]:PORT
    try:
        socket.getaddrinfo(host, int(port))
    except (socket.gaierror, UnicodeError) as e:
        raise DistributedError(f"the coordinator host {host!r} is unknown ({e})", loc=Loc(where), hint=hint) from None
    return host, int(port)


def _check_port_free(port: int, where: str) -> None:
    """Process 0 hosts the coordination service: a port in use is an error now, not jax's abort later."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
    except OSError as e:
        raise DistributedError(f"process 0 cannot listen on port {port}: {e.strerror or e}", loc=Loc(where),
                               hint="choose another free port for the coordinator") from None


def _wait_reachable(host: str, port: int, timeout_s: float, where: str) -> None:
    """Processes other than 0 wait for the coordinator to listen: unreachable is a located error after the
    timeout, where jax itself would abort the process."""
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2.0):
                return
        except OSError as e:
            last = e
            time.sleep(0.2)
    why = f" ({last.strerror or last})" if last is not None else ""
    raise DistributedError(
        f"no coordinator answered at {host}:{port} within {timeout_s:.0f} s{why}", loc=Loc(where),
        hint="start process 0 first (it hosts the coordinator), and check the address and the firewall",
    )


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, timeout_s: float = INIT_TIMEOUT_S) -> tuple[int, int]:
    """Join a multi-process run; returns `(process_index, process_count)`. Idempotent.

    Each argument left None comes from `NLIC_COORDINATOR` / `NLIC_NUM_PROCESSES` / `NLIC_PROCESS_ID`, then from
    jax's cluster detection (SLURM, Open MPI, Kubernetes, ...; see `jax.distributed.initialize`). Must run before
    jax runs any code in this process.

    Args:
        coordinator: `HOST:PORT` of process 0 (which hosts jax's coordination service there).
        num_processes: how many processes take part.
        process_id: this process's index, 0 to num_processes - 1.
        timeout_s: how long every process may take to join.

    Raises:
        DistributedError: a malformed or unreachable address, a port in use, an index out of range, no cluster
            to detect, or jax already started in this process.
    """
    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    where = "--coordinator" if coordinator is not None else ENV_COORDINATOR
    coordinator = coordinator if coordinator is not None else (os.environ.get(ENV_COORDINATOR) or None)
    n_where = "--num-processes" if num_processes is not None else ENV_NUM_PROCESSES
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    i_where = "--process-id" if process_id is not None else ENV_PROCESS_ID
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    if num_processes is not None and num_processes < 1:
        raise DistributedError(f"the process count must be at least 1, got {num_processes}", loc=Loc(n_where))
    if process_id is not None and process_id < 0:
        raise DistributedError(f"the process id must be at least 0, got {process_id}", loc=Loc(i_where))
    if process_id is not None and num_processes is not None and process_id >= num_processes:
        raise DistributedError(
            f"process id {process_id} is out of range for {num_processes} processes", loc=Loc(i_where),
            hint=f"ids run from 0 to {num_processes - 1}",
        )
    address = _parse_address(coordinator, where) if coordinator is not None else None
    if _backend_started():
        raise DistributedError("jax already ran code in this process, so it cannot join a multi-process run",
                               loc=Loc(where), hint="call nlic.runtime.distributed.initialize before any jax work")
    if address is not None:
        host, port = address
        if process_id == 0:
            _check_port_free(port, where)
        elif process_id is not None:
            _wait_reachable(host, port, timeout_s, where)
    try:
        jax.distributed.initialize(
            coordinator, num_processes, process_id, initialization_timeout=int(timeout_s),
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S, shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S,
        )
    except (ValueError, TypeError, RuntimeError) as e:  # jax's own checks, and no cluster found
        raise DistributedError(
            f"cannot join a multi-process run: {_first_line(e)}", loc=Loc(where),
            hint=f"give --coordinator HOST:PORT --num-processes N --process-id I (or {ENV_COORDINATOR}, "
                 f"{ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}), or run under a cluster manager jax detects (SLURM...)",
        ) from None
    barrier("joined")
    try:
        # One tiny collective now, with the processes in step (the barrier): CPU collectives (gloo) set up their
        # connections on first use and give up after 30 s, which a process compiling the train step slower than
        # another exceeded (measured: 55 s apart on a loaded machine). Once set up, a collective waits as needed.
        multihost_utils.sync_global_devices("nlic: joined")
    except jax.errors.JaxRuntimeError as e:
        raise lost_peer("joining", e) from None
    return jax.process_index(), jax.process_count()


def _backend_started() -> bool:
    bridge = sys.modules.get("jax._src.xla_bridge")
    started = getattr(bridge, "backends_are_initialized", None)
    return bool(started()) if callable(started) else False


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def process_index() -> int:
    """This process's index (0 when not distributed)."""
    return jax.process_index()


def process_count() -> int:
    """How many processes take part (1 when not distributed)."""
    return jax.process_count()


def is_distributed() -> bool:
    """Whether this process is one of several (`jax.process_count() > 1`)."""
    return jax.process_count() > 1


def is_main() -> bool:
    """Whether this process writes the results: process 0, or the only one."""
    return jax.process_index() == 0


# --- global arrays --------------------------------------------------------------------------------------------


def global_array(tree: Any, sharding: Sharding) -> Any:
    """Every array of `tree` (the same host values on every process) as a global `jax.Array` with `sharding`:
    each process places only the rows its own devices hold, so no data crosses processes.

    For a multi-process mesh, where `jax.device_put` of host data does not apply.
    """
    arrays, static = eqx.partition(tree, eqx.is_array)

    def place(x: Any) -> jax.Array:
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return eqx.combine(jax.tree_util.tree_map(place, arrays), static)


def local_copy(tree: Any) -> Any:
    """`tree` with every replicated global array replaced by this process's own copy (for process-local work:
    evaluation, saving); arrays this process holds whole are kept as they are."""

    def local(x: Any) -> Any:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if not x.is_fully_replicated:
                raise ValueError("local_copy needs replicated arrays")
            return x.addressable_shards[0].data
        return x

    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.tree_util.tree_map(local, arrays), static)


# --- synchronisation ------------------------------------------------------------------------------------------

_counter = {"n": 0}


def _client() -> Any:
    # jax keeps its coordination client here; its key-value store and barriers take timeouts, unlike collectives.
    client = _jax_distributed.global_state.client
    if client is None:
        raise DistributedError("this process has not joined a multi-process run", loc=Loc("jax.distributed"),
                               hint="call nlic.runtime.distributed.initialize first")
    return client


def _next_key(name: str) -> str:
    _counter["n"] += 1
    return f"nlic/{name}/{_counter['n']}"


def barrier(name: str, *, timeout_s: float = WAIT_TIMEOUT_S) -> None:
    """Wait until every process reached the barrier `name` (a no-op for one process).

    Raises:
        DistributedError: not all processes arrived within `timeout_s` (one died or is stuck).
    """
    if not is_distributed():
        return
    key = _next_key(name)
    try:
        _client().wait_at_barrier(key, int(timeout_s * 1000))
    except jax.errors.JaxRuntimeError as e:
        raise DistributedError(
            f"not every process reached '{name}' within {timeout_s:.0f} s: {_first_line(e)}",
            loc=Loc(f"process {jax.process_index()}"),
            hint="one process stopped or is stuck: see its output",
        ) from None


def share_from_main(name: str, fn: Callable[[], Any], *, timeout_s: float = WAIT_TIMEOUT_S) -> Any:
    """Run `fn()` on process 0 alone and return its (JSON-able) result on every process.

    The others wait for it; an `NlicError` of process 0 stops them too, each with an error that points at it.

    Raises:
        DistributedError: process 0 failed or gave no answer within `timeout_s` (on the other processes).
    """
    if not is_distributed():
        return fn()
    key = _next_key(name)
    client = _client()
    if is_main():
        try:
            value = fn()
        except NlicError as e:
            client.key_value_set(key, json.dumps({"error": e.render()}))
            raise
        except BaseException:
            client.key_value_set(key, json.dumps({"error": "an unexpected error (see its traceback)"}))
            raise
        client.key_value_set(key, json.dumps({"value": value}))
        return value
    try:
        answer = json.loads(client.blocking_key_value_get(key, int(timeout_s * 1000)))
    except jax.errors.JaxRuntimeError as e:
        raise DistributedError(f"process 0 gave no answer at '{name}' within {timeout_s:.0f} s: {_first_line(e)}",
                               loc=Loc(f"process {jax.process_index()}"), hint="see the output of process 0") from None
    if "error" in answer:
        first = answer["error"].splitlines()[0] if answer["error"] else "an error"
        raise DistributedError(f"process 0 failed at '{name}', with: {first}",
                               loc=Loc(f"process {jax.process_index()}"))
    return answer["value"]


def gather_rows(parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Concatenate every process's arrays along axis 0, in process order, on every process (the shapes must be
    equal across processes: pad them). One process: `parts` itself.

    Raises:
        DistributedError: a process stopped during the exchange.
    """
    if not is_distributed():
        return parts
    try:
        out = multihost_utils.process_allgather(tuple(np.asarray(p) for p in parts), tiled=True)
    except jax.errors.JaxRuntimeError as e:
        raise lost_peer("gathering results", e) from None
    return tuple(np.asarray(x) for x in out)


def lost_peer(during: str, error: BaseException) -> DistributedError:
    """The error of a collective that failed because another process stopped (killed, or its own error)."""
    return DistributedError(
        f"another process of this run stopped while {during} ({_first_line(error)})",
        loc=Loc(f"process {jax.process_index()}"),
        hint="see the other processes' output; a training run continues from its last checkpoint with --resume",
    )


def exit_now(code: int) -> None:
    """Leave a failed multi-process run at once with `code`: jax's exit handler would wait for the other
    processes at a shutdown barrier and then abort with a core-dump trace."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


# --- command line and launcher --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The multi-process flags of `nlic train` and `nlic solve`."""
    group = parser.add_argument_group("multi-process (jax.distributed)")
    group.add_argument("--processes", type=int, metavar="N",
                       help="run as N cooperating local processes (on 127.0.0.1; process 0 writes the results)")
    group.add_argument("--coordinator", metavar="HOST:PORT",
                       help=f"join a multi-process run whose process 0 listens at HOST:PORT (env {ENV_COORDINATOR})")
    group.add_argument("--num-processes", type=int, metavar="N",
                       help=f"processes in the run (env {ENV_NUM_PROCESSES})")
    group.add_argument("--process-id", type=int, metavar="I", help=f"this process's index (env {ENV_PROCESS_ID})")
    group.add_argument("--distributed", action="store_true",
                       help="join a multi-process run described by the flags above, the NLIC_* variables or the "
                            "cluster manager (SLURM, Open MPI...; detected by jax)")


def join_or_launch(args: argparse.Namespace, argv: Sequence[str]) -> int | None:
    """What the multi-process flags of a command ask for: launch `--processes N` local copies of the command
    and return their exit code, or join a run (`initialize`) and return None, or nothing (None).

    Args:
        args: the parsed flags (`add_arguments`).
        argv: the command's own arguments (what follows `nlic`), which the launched processes get.

    Raises:
        DistributedError: see `initialize`; also a process count below 1.
    """
    processes = getattr(args, "processes", None)
    worker = os.environ.get(ENV_PROCESS_ID) is not None
    if processes is not None and not worker:
        if processes < 1:
            raise DistributedError(f"--processes must be at least 1, got {processes}", loc=Loc("--processes"))
        if any(getattr(args, a, None) is not None for a in ("coordinator", "num_processes", "process_id")):
            raise DistributedError("--processes launches local processes itself", loc=Loc("--processes"),
                                   hint="drop --coordinator/--num-processes/--process-id, or drop --processes")
        return launch(_command(argv), processes)
    if wanted(args.coordinator, args.num_processes, args.process_id, distributed=args.distributed):
        initialize(args.coordinator, args.num_processes, args.process_id)
    return None


def _command(argv: Sequence[str]) -> list[str]:
    """This interpreter, its options and the way nlic was started (`nlic`, `python -m nlic.runtime`, a
    script), then `argv`."""
    orig = list(getattr(sys, "orig_argv", []) or [sys.executable, *sys.argv])
    start = orig[: max(1, len(orig) - (len(sys.argv) - 1))]
    return [sys.executable, *start[1:], *argv]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _relay(stream: Any, prefix: str) -> None:
    for line in iter(stream.readline, ""):
        sys.stderr.write(prefix + escape(line.rstrip("\n")) + "\n")
        sys.stderr.flush()
    stream.close()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def launch(command: Sequence[str], processes: int, *, grace_s: float = _LAUNCH_GRACE_S, poll_s: float = 0.1) -> int:
    """Run `processes` copies of `command` as one multi-process run on this machine and return its exit code.

    Each copy gets `NLIC_COORDINATOR=127.0.0.1:<free port>`, `NLIC_NUM_PROCESSES` and its `NLIC_PROCESS_ID`.
    Process 0 keeps this terminal (its progress and results are the run's); the others' output goes to stderr,
    each line prefixed `[process I]`. When one fails, the others get `grace_s` seconds to stop by themselves and
    are then terminated; the first failure is named on stderr and its exit code returned (1 for a signal).

    Args:
        command: the command line of every process (`nlic train SPEC ...`, as this process was started).
        processes: how many.
        grace_s: see above.
        poll_s: how often the processes are checked.

    Returns:
        0 when every process succeeded, else the exit code of the first that failed (1 if killed by a signal).
    """
    coordinator = f"127.0.0.1:{_free_port()}"
    procs: list[subprocess.Popen[str]] = []
    relays: list[threading.Thread] = []
    on_main_thread = threading.current_thread() is threading.main_thread()
    # A scheduler's SIGTERM (job cancelled) stops the processes like Ctrl-C does, instead of orphaning them.
    old_term = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
    try:
        for i in range(processes):
            env = {**os.environ, ENV_COORDINATOR: coordinator, ENV_NUM_PROCESSES: str(processes),
                   ENV_PROCESS_ID: str(i)}
            if i == 0:
                procs.append(subprocess.Popen(list(command), env=env))
            else:
                p = subprocess.Popen(list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace")
                procs.append(p)
                t = threading.Thread(target=_relay, args=(p.stdout, f"[process {i}] "), daemon=True)
                t.start()
                relays.append(t)
        pids = ", ".join(str(p.pid) for p in procs)
        print(f"nlic: {processes} processes on {coordinator} (pids {pids})", file=sys.stderr, flush=True)
        failed: tuple[int, int] | None = None
        while failed is None:
            codes = [p.poll() for p in procs]
            if all(c == 0 for c in codes):
                break
            bad = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                failed = min(bad, key=lambda ic: (ic[1] >= 0, ic[0]))  # a killed process first: the likely cause
            else:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        _stop(procs, grace_s=grace_s)
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if any(p.poll() is None for p in procs):
            _stop(procs, grace_s=grace_s)
        for t in relays:
            t.join(timeout=2.0)
        if on_main_thread:
            signal.signal(signal.SIGTERM, old_term)
    if failed is None:
        return 0
    i, code = failed
    others = [c for j, c in enumerate(p.returncode for p in procs) if j != i]
    if code < 0 or any(c != code for c in others):
        # One process alone failed (or was killed): name it. A user error every process met was printed already.
        print(escape(f"nlic: error: process {i} (pid {procs[i].pid}) {_describe(code)}; the other processes were "
                     "stopped (a training run continues from its last checkpoint with --resume)"),
              file=sys.stderr, flush=True)
    return code if code > 0 else 1


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop(procs: Sequence[subprocess.Popen[str]], *, grace_s: float) -> None:
    """Let running processes finish for `grace_s` seconds, then terminate them, then kill them."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.05)
    for sig_method in ("terminate", "kill"):
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        for p in alive:
            getattr(p, sig_method)()
        for p in alive:
            try:
                p.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
