"""A run that diverged (NaN / Inf): finding it in the state, and the one-line error that says so.

The trainer checks the reported losses at every report and every parameter before every save, so
no checkpoint ever holds a non-finite value (a step can leave the losses it reported finite and
its updated parameters not: a huge learning rate does exactly that).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flowinpaint.errors import UserError

# The parts of a GanState that hold floating-point values, with the names the error uses.
STATE_PARTS = (("g_vars", "the generator's parameters"),
               ("d_vars", "the discriminator's parameters"),
               ("g_opt", "the generator's optimiser state"),
               ("d_opt", "the discriminator's optimiser state"))


class TrainingDiverged(UserError, FloatingPointError):
  """Training produced NaN or Inf; the message says where and what to change."""


def _all_finite(tree: Any) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


@jax.jit
def _finite_parts(state) -> dict[str, jax.Array]:
  return {attr: _all_finite(getattr(state, attr)) for attr, _ in STATE_PARTS}


def nonfinite_parts(state) -> list[str]:
  """Names (STATE_PARTS) of the parts of a GanState that hold a NaN or an Inf."""
  finite = jax.device_get(_finite_parts(state))
  return [name for attr, name in STATE_PARTS if not bool(finite[attr])]


def nonfinite_count(tree: Any) -> int:
  """How many NaN / Inf values a pytree of host arrays holds."""
  arrays = [np.asarray(x) for x in jax.tree.leaves(tree)]
  return int(sum(x.size - np.count_nonzero(np.isfinite(x)) for x in arrays
                 if np.issubdtype(x.dtype, np.inexact)))


def advice(config, *, has_discriminator: bool, latest_checkpoint: Optional[int]) -> str:
  """What to change, for this run's own knobs (no float32 hint for a float32 run, ...)."""
  rates = [("optimizer.g_learning_rate", float(config.optimizer.g_learning_rate))]
  if has_discriminator:
    rates.append(("optimizer.d_learning_rate", float(config.optimizer.d_learning_rate)))
  bad = [f"{k}={v}" for k, v in rates if not math.isfinite(v)]
  if bad:
    tips = [f"{' and '.join(bad)} {'is' if len(bad) == 1 else 'are'} not a finite number: set "
            "a learning rate such as 1e-4"]
  else:
    tips = [f"lower the learning rate ({', '.join(f'{k}={v:g}' for k, v in rates)})"]
    if not config.optimizer.get("grad_clip_norm", 0.0):
      tips.append("clip the gradients (optimizer.grad_clip_norm=1.0)")
    if config.dtype != "float32":
      tips.append(f"train in float32 (dtype=float32; this run uses {config.dtype})")
  if latest_checkpoint is None:
    where = "no checkpoint was written, so a rerun starts afresh"
  else:
    where = (f"the newest checkpoint (step {latest_checkpoint}) is finite: rerunning with the "
             "change resumes from it")
  return f"{'; or '.join(tips)}. {where[0].upper()}{where[1:]}"


def losses_error(names: Sequence[str], first: int, last: int, config, *,
                 has_discriminator: bool, latest_checkpoint: Optional[int]) -> TrainingDiverged:
  return TrainingDiverged(
      f"training diverged: {', '.join(names)} became NaN or Inf within steps ({first}, {last}]. "
      + advice(config, has_discriminator=has_discriminator, latest_checkpoint=latest_checkpoint))


def state_error(parts: Sequence[str], step: int, config, *, has_discriminator: bool,
                latest_checkpoint: Optional[int]) -> TrainingDiverged:
  return TrainingDiverged(
      f"training diverged: {' and '.join(parts)} hold NaN or Inf after step {step} (the losses "
      "reported so far were finite); step "
      f"{step} was not saved. "
      + advice(config, has_discriminator=has_discriminator, latest_checkpoint=latest_checkpoint))
