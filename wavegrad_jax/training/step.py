"""The pure train and held-out steps, and their compilation over the mesh (jax.jit, AOT).

The per-step PRNG key is fold_in(key(config.seed), step), drawn inside the step for the noise
level and the noise; with JAX's partitionable threefry the draws do not depend on how the batch is
sharded, so a step on 8 devices computes what it computes on 1 (up to float reduction order).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wavegrad_jax import processes
from wavegrad_jax import sampling
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.training import parallel
from wavegrad_jax.training.state import TrainState
from wavegrad_jax.training.state import create_train_state
from wavegrad_jax.training.state import ema_decay
from wavegrad_jax.training.state import learning_rate_schedule


def train_noise_levels(config):
  """Noise levels [S + 1] float32 of `config.diffusion.train_schedule`."""
  betas = schedules.parse_schedule(config.diffusion.train_schedule,
                                   config.sampling.get('named_schedules', None))
  return np.asarray(schedules.noise_levels(betas), np.float32)


def step_rng(seed, step):
  """The PRNG key of training step `step` (traced or not): fold_in(key(seed), step)."""
  return jax.random.fold_in(jax.random.key(seed), step)


def train_step(state, batch, *, model, tx, process, seed, train_config):
  """One optimiser update on a global batch; pure.

  Args:
    state: TrainState.
    batch: {'audio': [B, T] float32 clean crops, 'mel': [B, T / hop, n_mels] float32 log-mels}.
    model: the network module (any entry of `model.MODELS`).
    tx: the optax optimiser.
    process: the generative process (`processes.from_config`): what the step noises, what the
      network predicts and the loss (the paper's noise level and L1 for 'wavegrad').
    seed: the run's seed (config.seed); step n draws from `step_rng(seed, n)`.
    train_config: the `train` section (EMA decay and warm-up, learning-rate schedule).
  Returns:
    (new state, metrics dict of float32 scalars: loss, grad_norm (before clipping), learning_rate,
    and loss_<part> for each part of a composite loss).
  """
  rng = step_rng(seed, state.step)
  net_fn = sampling.model_eps_fn(model)
  audio = batch['audio'].astype(jnp.float32)
  mel = batch['mel'].astype(jnp.float32)

  def loss_fn(params):
    # The model casts to its compute dtype inside and returns float32, so with bf16 compute the
    # loss, its gradient accumulation into float32 params, and the optimiser all stay float32.
    return process.training_loss(net_fn, params, rng, audio, mel)

  (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  decay = ema_decay(train_config, state.step)
  ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
  metrics = {
      'loss': loss,
      'grad_norm': optax.tree.norm(grads),
      'learning_rate': jnp.asarray(learning_rate_schedule(train_config)(state.step), jnp.float32),
  }
  if len(parts) > 1:
    metrics.update({f'loss_{k}': v for k, v in parts.items()})
  new_state = TrainState(step=state.step + 1, params=params, ema_params=ema_params,
                         opt_state=opt_state)
  return new_state, metrics


def batch_shapes(config, batch_size):
  """{'audio': (B, seg * hop), 'mel': (B, seg, n_mels)} of training crops."""
  seg, hop = int(config.data.segment_frames), int(config.audio.hop_length)
  return {'audio': (batch_size, seg * hop), 'mel': (batch_size, seg, int(config.audio.n_mels))}


def compile_train_step(model, tx, config, mesh, shardings):
  """`train_step` compiled once, ahead of time, for the run's batch shape and shardings.

  The state argument is donated: its buffers are reused for the new state. Calling the result
  with other shapes or shardings raises instead of silently recompiling.

  Returns:
    compiled(state, batch) -> (state, metrics), metrics replicated.
  """
  mesh_spec = parallel.MeshSpec.from_config(config.mesh)
  parallel.check_batch_size(int(config.train.batch_size), mesh, mesh_spec)
  fn = functools.partial(train_step, model=model, tx=tx, process=processes.from_config(config),
                         seed=int(config.seed), train_config=config.train)
  data_sharding = parallel.batch_sharding(mesh, mesh_spec)
  jitted = jax.jit(fn, in_shardings=(shardings, data_sharding),
                   out_shardings=(shardings, parallel.replicated(mesh)), donate_argnums=(0,))
  abstract_state = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                                jax.eval_shape(functools.partial(create_train_state, model, tx,
                                                                 config)), shardings)
  abstract_batch = {k: jax.ShapeDtypeStruct(s, jnp.float32, sharding=data_sharding)
                    for k, s in batch_shapes(config, int(config.train.batch_size)).items()}
  return jitted.lower(abstract_state, abstract_batch).compile()


def heldout_losses(params, ema_params, batch, index, *, model, process, seed):
  """Mean training loss of the raw and EMA parameters on held-out batch `index`; pure.

  The key is fold_in(key(seed), index): the same at every evaluation, so the losses of successive
  evaluations differ only by the parameters. Both parameter sets see the same draws (noise level
  or time, and noise), so their difference is the EMA's effect alone.

  Args:
    params, ema_params: parameter trees.
    batch: {'audio': [B, T], 'mel': [B, T / hop, n_mels]} held-out crops.
    index: int32 scalar, the batch's position in the fixed held-out set.
    model: the network module.
    process: the generative process (as in `train_step`).
    seed: the held-out noise seed (config.train.eval_seed).
  Returns:
    {'heldout_loss_raw': scalar, 'heldout_loss': scalar (EMA)}.
  """
  rng = jax.random.fold_in(jax.random.key(seed), index)
  net_fn = sampling.model_eps_fn(model)
  losses = [process.training_loss(net_fn, p, rng, batch['audio'], batch['mel'])[0]
            for p in (params, ema_params)]
  return {'heldout_loss_raw': losses[0], 'heldout_loss': losses[1]}


def compile_eval_step(model, config, mesh, shardings, batch_size):
  """`heldout_losses` jitted over the mesh: (params, ema_params, batch, index) -> scalars."""
  mesh_spec = parallel.MeshSpec.from_config(config.mesh)
  parallel.check_batch_size(batch_size, mesh, mesh_spec, 'train.eval_batch_size')
  fn = functools.partial(heldout_losses, model=model, process=processes.from_config(config),
                         seed=int(config.train.eval_seed))
  return jax.jit(fn, in_shardings=(shardings.params, shardings.ema_params,
                                   parallel.batch_sharding(mesh, mesh_spec), None),
                 out_shardings=parallel.replicated(mesh))


# ------------------------------------------------------------------------------ held-out material
