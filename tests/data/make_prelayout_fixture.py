r"""Writes tests/data/prelayout_run/: a frame-network, flow-matching run's checkpoint and outputs.

Made once from the code at commit 041ceb2, the flat layout before the issue-16 move into
subpackages:

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu python tests/data/make_prelayout_fixture.py

tests/test_prelayout_fixture.py checks that the code after the move restores this checkpoint
(training state and inference parameters, with its recorded process 'flow' and model
'frame_convnext') and computes the same network output and the same Euler and Heun samples.
prechange_run/ (issue 10) covers the WaveGrad network under the paper's process; this one covers
the second process and the second network family.

The run: frame_tiny_flow.py with a 1-layer, 16-channel frame ConvNeXt, 60 Adam steps (learning
rate 3e-3, warm-up off) on harmonic tones, saved as a periodic checkpoint at step 60 with
config.json beside it. prelayout_expected.npz holds a tone's log-mel [1, 20, 80], the network's
output on a fixed input at t = 0.5, and the 4-step Euler and 3-step Heun samples from key(7).
"""
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.configs import common, frame_tiny_flow
from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.training import checkpoints
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes, sampling
from wavegrad_jax.training import trainer as train

HERE = os.path.dirname(os.path.abspath(__file__))
WORKDIR = os.path.join(HERE, 'prelayout_run')
NUM_STEPS = 60
MODEL = {'dim': 16, 'intermediate_dim': 32, 'num_layers': 1, 'cond_dim': 16, 'n_fft': 512}
# The samplers the expected outputs were made with: (time grid, solver).
SAMPLERS = {'euler': ('4', 'euler'), 'heun': ('3', 'heun')}


def fixture_config():
  """frame_tiny_flow.py with the minimal frame network, warm-up off, synchronous saves."""
  config = frame_tiny_flow.get_config()
  for k, v in MODEL.items():
    config.model[k] = v
  config.train.warmup_steps = 0
  config.train.learning_rate = 3e-3
  config.checkpoint.async_save = False
  return config


def tones(config, batch, frames, seed):
  """Harmonic tones [batch, frames * hop] and their log-mels [batch, frames, n_mels]."""
  rng = np.random.default_rng(seed)
  hop, sr = config.audio.hop_length, config.audio.sample_rate
  t = np.arange(frames * hop) / sr
  wave = np.stack([0.5 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 2 * f0 * t)
                   for f0 in rng.uniform(100, 400, batch)]).astype(np.float32)
  fe = mel_conventions.Frontend.from_config(config.audio)
  mel = np.asarray(audio_lib.log_mel_spectrogram(jnp.asarray(wave), fe), np.float32)
  return wave, mel[:, :frames]


def main():
  config = fixture_config()
  model = model_lib.build_model_from_config(config)
  tx = train.make_optimizer(config.train)
  state = train.create_train_state(model, tx, config)
  process = processes.from_config(config)
  net_fn = sampling.model_eps_fn(model)

  @jax.jit
  def step(state, wave, mel, rng):
    loss_fn = lambda p: process.training_loss(net_fn, p, rng, wave, mel)[0]
    grads = jax.grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    decay = train.ema_decay(config.train, state.step)
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema_params, params)
    return train.TrainState(step=state.step + 1, params=params, ema_params=ema,
                            opt_state=opt_state)

  for i in range(NUM_STEPS):
    wave, mel = tones(config, 4, 8, seed=i % 4)
    state = step(state, wave, mel, jax.random.fold_in(jax.random.key(config.seed), i))

  if os.path.exists(WORKDIR):
    shutil.rmtree(WORKDIR)
  checkpoints.save_config(WORKDIR, config)
  ckpts = checkpoints.RunCheckpoints(WORKDIR, config)
  ckpts.save(NUM_STEPS, state)
  ckpts.close()

  params, saved, step_number = checkpoints.load_for_inference(WORKDIR,
                                                              common.get_common_config())
  assert step_number == NUM_STEPS
  out = {}
  _, test_mel = tones(config, 1, 20, seed=1)
  out['mel'] = test_mel
  for name, (grid, solver) in SAMPLERS.items():
    c = saved.copy_and_resolve_references()
    c.sampling.solver = solver
    sampler = processes.sampler_from_config(model_lib.build_model_from_config(c), c)
    times = processes.parse_grid_from_config(c, grid)
    out[f'times_{name}'] = np.asarray(times)
    out[f'samples_{name}'] = np.asarray(sampler(params, jnp.asarray(times, jnp.float32),
                                                jnp.asarray(test_mel), jax.random.key(7)))
  noisy = np.asarray(jax.random.normal(jax.random.key(3), (1, 20 * config.audio.hop_length)))
  out['noisy'] = noisy
  out['net'] = np.asarray(model_lib.build_model_from_config(saved).apply(
      {'params': params}, jnp.asarray(noisy), jnp.asarray(test_mel), jnp.full((1,), 0.5)))
  for k, v in out.items():
    assert np.all(np.isfinite(v)), k
  np.savez(os.path.join(HERE, 'prelayout_expected.npz'), **out)
  print('parameters:', model_lib.count_params(params))


if __name__ == '__main__':
  main()
