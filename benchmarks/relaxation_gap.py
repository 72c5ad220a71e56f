"""Where an NLI's relaxed and discrete semantics part ways: its programs run discretely and relaxed, and how one-hot
each token leaves the interpreter's value states.

For the run's evaluation tasks of a split: the inductor's argmax program (pooled over the spec pairs) run on the
query three ways: discretely (`execute`, what replay does), relaxed (soft tokens at the final temperature, soft
value states, no noise), and with one-hot tokens but soft value states. Discrete far below the other two means the
interpreter passes information through states that are not one-hot. Then, per token in use, the state it leaves
after one step from one-hot inputs: mean max probability and the share of positions below 0.9.

Usage: python benchmarks/relaxation_gap.py RUN_DIR [--split id] [--tasks 100]
"""

from __future__ import annotations

import argparse
import collections
import sys

import jax
import jax.numpy as jnp
import numpy as np

from nlic.compiler.families import evaluation_tasks
from nlic.grammar.errors import Loc, SpecError
from nlic.runtime import load_run
from nlic.runtime.cli import guarded

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--split", default="id")
    p.add_argument("--tasks", type=int, default=100)
    args = p.parse_args(argv)
    spec, model = load_run(args.run_dir)
    if spec.model.kind != "nli" or not spec.relaxation.value_bottleneck or not spec.relaxation.recurrent:
        raise SpecError("this measures the NLI's value states", loc=Loc(args.run_dir),
                        hint="give an NLI run with the default relaxation (value_bottleneck and recurrent)")
    tasks = evaluation_tasks(spec, args.split, args.tasks)
    b = tasks.batch()
    K, skip = spec.language.vocab, spec.language.skip_token
    tau_e = jnp.asarray(spec.relaxation.tau_inductor.at(1.0), jnp.float32)
    tau_d = jnp.asarray(spec.relaxation.tau_executor.at(1.0), jnp.float32)
    key = jax.random.key(0)

    @jax.jit
    def measure(model, b):
        pooled = jax.vmap(model.pooled_slots)(b.inputs, b.outputs, b.pair_mask)
        logits = jax.vmap(model.token_logits)(pooled)
        prog = jnp.argmax(logits, axis=-1)

        def soft(z, x):
            codes, gate = model.codes(z, None)
            return jnp.argmax(model.run_soft(codes, gate, x, tau_d, key=key, noise=False), axis=-1)

        discrete = model.execute(prog, b.query_input)
        relaxed = jax.vmap(soft)(jax.nn.softmax(logits / tau_e, axis=-1), b.query_input)
        onehot = jax.vmap(soft)(jax.nn.one_hot(prog, K), b.query_input)
        ok = lambda pred: jnp.all(pred == b.query_output, axis=-1)  # noqa: E731
        return prog, ok(discrete), ok(relaxed), ok(onehot)

    prog, d, r, o = (np.asarray(x) for x in measure(model, b))
    has = np.asarray(tasks.has_target)
    print(f"{args.run_dir} ({spec.name}), {int(has.sum())} {args.split} tasks with targets")
    print(f"discrete {d[has].mean():.2f}   relaxed {r[has].mean():.2f}   one-hot tokens, soft states {o[has].mean():.2f}")
    groups = collections.defaultdict(list)
    for i in np.flatnonzero(has):
        groups[tuple(int(t) for t in prog[i] if t != skip)].append(i)
    print("\n| program | tasks | discrete | relaxed | one-hot tokens, soft states |\n|---|---:|:---:|:---:|:---:|")
    for p_, idx in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:20]:
        text = " ".join(f"t{t}" for t in p_) or "(empty)"
        print(f"| `{text}` | {len(idx)} | {d[idx].mean():.2f} | {r[idx].mean():.2f} | {o[idx].mean():.2f} |")

    x = jnp.asarray(tasks.inputs.reshape(-1, tasks.inputs.shape[-1])[:256])
    V = model.cfg.values
    used = sorted({int(t) for t in np.unique(prog) if t != skip})

    @jax.jit
    def state_after(model, token, x):
        pi = jax.nn.one_hot(x, V)
        n = jax.vmap(lambda p: model.executor.logits(model.executor.apply(p @ model.executor.value_embed,
                                                                          model.executor.code_embed[token])))(pi)
        return jnp.max(jax.nn.softmax(n / tau_d, axis=-1), axis=-1)

    print("\n| token | mean max state probability | positions below 0.9 |\n|---|:---:|:---:|")
    for t in used:
        mx = np.asarray(state_after(model, jnp.asarray(t), x))
        print(f"| t{t} | {mx.mean():.3f} | {(mx < 0.9).mean():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))  # bad input: the located message and exit code 2, not a traceback
