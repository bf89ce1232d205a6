"""The train state and its optimiser: what a run carries from step to step, and how it is made.

Follows the usual flax/optax recipe (a `flax.struct` state, Adam after global-norm clipping, an
EMA of the parameters), laid out on the mesh with `parallel.state_shardings` (replicated or FSDP).
"""
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from wavegrad_jax import models as model_lib
from wavegrad_jax.training import parallel


@flax.struct.dataclass
class TrainState:
  """Everything a training run carries from step to step (and checkpoints).

  Attributes:
    step: int32 scalar, the number of completed optimiser updates.
    params: float32 model parameters (nested dict, as `model.init` returns).
    ema_params: exponential moving average of `params`, used for evaluation and inference.
    opt_state: optax state of the optimiser.
  """
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any


# ------------------------------------------------------------------------------ optimiser, state


def learning_rate_schedule(train_config):
  """Linear warm-up from 0 to `learning_rate`, then constant or cosine decay (optax schedule)."""
  c = train_config
  peak, warmup = float(c.learning_rate), int(c.warmup_steps)
  if c.lr_schedule == 'constant':
    after = optax.constant_schedule(peak)
  elif c.lr_schedule == 'cosine':
    after = optax.cosine_decay_schedule(peak, max(int(c.num_steps) - warmup, 1),
                                        alpha=float(c.end_lr_factor))
  else:
    raise ValueError(f"train.lr_schedule must be 'constant' or 'cosine', got {c.lr_schedule!r}")
  if warmup <= 0:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def make_optimizer(train_config):
  """Global-norm clipping then Adam with `learning_rate_schedule` (an optax transformation)."""
  c = train_config
  adam = optax.adam(learning_rate_schedule(c), b1=float(c.adam_b1), b2=float(c.adam_b2),
                    eps=float(c.adam_eps))
  if float(c.grad_clip_norm) > 0:
    return optax.chain(optax.clip_by_global_norm(float(c.grad_clip_norm)), adam)
  return adam


def ema_decay(train_config, step):
  """EMA decay at update `step` (traced int): `ema_decay`, ramped in when `ema_warmup`."""
  decay = jnp.asarray(float(train_config.ema_decay), jnp.float32)
  if train_config.ema_warmup:
    step = jnp.asarray(step, jnp.float32)
    decay = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return decay


def create_train_state(model, tx, config):
  """A fresh TrainState (step 0) with parameters initialised from key(config.seed).

  Pure: call under `jax.jit(..., out_shardings=...)` to create it directly in its shardings.
  """
  init_rng, _ = jax.random.split(jax.random.key(config.seed))
  params = model_lib.init_params_from_config(model, config, init_rng)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    ema_params=jax.tree.map(jnp.copy, params), opt_state=tx.init(params))


def abstract_train_state(model, tx, config, mesh):
  """(ShapeDtypeStruct TrainState with shardings, the per-leaf shardings) of a run's state."""
  shapes = jax.eval_shape(functools.partial(create_train_state, model, tx, config))
  shardings = parallel.state_shardings(shapes, mesh, parallel.MeshSpec.from_config(config.mesh))
  abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                          shapes, shardings)
  return abstract, shardings


def init_train_state(model, tx, config, mesh):
  """A fresh TrainState laid out on `mesh` (replicated, or FSDP per `config.mesh.fsdp_axis`)."""
  _, shardings = abstract_train_state(model, tx, config, mesh)
  return jax.jit(functools.partial(create_train_state, model, tx, config),
                 out_shardings=shardings)()
