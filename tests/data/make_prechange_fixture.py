r"""Writes tests/data/prechange_run/: a minimal run's checkpoint and what it computes.

Made once from the code at commit b1a4748, the code before the issue-10 restructuring:

  PYTHONPATH=$PWD JAX_PLATFORMS=cpu python tests/data/make_prechange_fixture.py

tests/test_prechange_fixture.py checks that later code restores this checkpoint (full training
state and inference parameters) and computes the same denoiser output and the same samples. The
script uses only entry points that survive the restructuring, so it also runs afterwards (its
outputs should then be identical).

The run: tiny.py's frontend with a two-UBlock model of a few channels (4,429 parameters), 100
Adam steps (learning rate 3e-3, warm-up off) on harmonic tones, so that its samples stay finite,
saved as a periodic checkpoint at step 100 with config.json beside it, as
`train.train_and_evaluate` lays a workdir out. prechange_expected.npz holds the inputs and
outputs: a tone's log-mel [1, 20, 80], the 6-step schedule, the samples of the ancestral,
deterministic (eta 0) and GLA-Grad (mel_pinv, 4 iterations) samplers from key(7), and the
denoiser's output on a fixed noisy input at noise level 0.5.
"""
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs import common, tiny
from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.training import checkpoints
from wavegrad_jax.diffusion import noise as diffusion
from wavegrad_jax import models as model_lib
from wavegrad_jax import sampling
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.training import trainer as train

HERE = os.path.dirname(os.path.abspath(__file__))
WORKDIR = os.path.join(HERE, 'prechange_run')
NUM_STEPS = 100
MODEL = {
    'mel_channels': 8,
    'upsample_factors': (16, 16),
    'upsample_channels': (8, 4),
    'upsample_dilations': ((1, 2, 1, 2), (1, 2, 4, 8)),
    'waveform_channels': 4,
    'downsample_factors': (16,),
    'downsample_channels': (8,),
}
# The sampling section the expected samples were made with (the defaults at commit b1a4748; the
# fields added since, clip_x0 and algorithm, at their off values), pinned so that later defaults
# cannot change what the fixture test compares.
SAMPLING = dict(noise_scale='posterior', clip=0.0, clip_x0=0.0, algorithm='diffusion',
                gla=dict(steps='first:3', iterations=32, momentum=0.0, magnitude='mel_pinv',
                         placement='clean_estimate', mean_peak=0.95, n_fft=0, hop_length=0,
                         win_length=0, window='', pad_mode=''))
# The sampling fields each sampler sets on top of SAMPLING.
SAMPLERS = {
    'ancestral': dict(eta=1.0, gla=dict(enabled=False)),
    'deterministic': dict(eta=0.0, gla=dict(enabled=False)),
    'gla': dict(eta=1.0, gla=dict(enabled=True, magnitude='mel_pinv', iterations=4)),
}


def fixture_config():
  """tiny.py with the minimal model, warm-up off and synchronous checkpoint writes."""
  config = tiny.get_config()
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
  eps_fn = sampling.model_eps_fn(model)
  levels = np.asarray(schedules.noise_levels(schedules.parse_schedule(
      config.diffusion.train_schedule)), np.float32)

  @jax.jit
  def step(state, wave, mel, rng):
    loss_fn = lambda p: diffusion.denoising_loss(eps_fn, p, rng, wave, mel, levels, 'l1')[0]
    grads = jax.grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, u: p + u, state.params, updates)
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

  # What inference computes from the files alone.
  params, saved, step_number = checkpoints.restore_params(WORKDIR)
  assert step_number == NUM_STEPS
  defaults = common.get_common_config()
  out = {}
  _, test_mel = tones(config, 1, 20, seed=1)
  # The 6-step schedule then called '6' (now '6_ivanvovk').
  betas = schedules.parse_schedule('list:1e-6,1.893e-5,1.194e-4,1.005e-3,1.109e-2,0.06')
  out['mel'], out['betas'] = test_mel, np.asarray(betas)
  for name, changes in SAMPLERS.items():
    c = saved.copy_and_resolve_references()
    c.sampling = defaults.sampling.copy_and_resolve_references()
    c.sampling.eta = changes['eta']
    for k, v in changes['gla'].items():
      c.sampling.gla[k] = v
    sampler = sampling.sampler_from_config(model_lib.build_model_from_config(c), c)
    out[f'samples_{name}'] = np.asarray(sampler(params, jnp.asarray(betas, jnp.float32),
                                                jnp.asarray(test_mel), jax.random.key(7)))
  noisy = np.asarray(jax.random.normal(jax.random.key(3), (1, 20 * config.audio.hop_length)))
  out['noisy'] = noisy
  out['eps'] = np.asarray(model_lib.build_model_from_config(saved).apply(
      {'params': params}, jnp.asarray(noisy), jnp.asarray(test_mel), jnp.full((1,), 0.5)))
  for k, v in out.items():
    assert np.all(np.isfinite(v)), k
  np.savez(os.path.join(HERE, 'prechange_expected.npz'), **out)
  print('parameters:', model_lib.count_params(params))


if __name__ == '__main__':
  main()
