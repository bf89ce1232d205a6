"""PriorGrad's mel-dependent prior: its std against a float64 re-derivation, the weighted loss, the
sampler's scaled noise, and a run that measures, records and reuses the prior's energy range."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import small_priorgrad, tiny
from tests import test_train
from wavegrad_jax import sampling
from wavegrad_jax.audio import frontend as audio
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.audio import options as audio_options
from wavegrad_jax.training import checkpoints
from wavegrad_jax.diffusion import noise as diffusion
from wavegrad_jax.diffusion import priors
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.training import trainer as train

CLIP = '/usr/share/sounds/alsa/Front_Center.wav'


def _speech_mel(cfg, seconds=1.0):
  wave = audio_options.load_audio_from_config(CLIP, cfg)[:int(seconds * cfg.sample_rate)]
  fe = mel_conventions.Frontend.from_config(cfg)
  return np.asarray(audio.log_mel_spectrogram(wave, fe), np.float32)


def _prior(cfg, lo, hi, std_min=0.1, max_energy=0.0):
  """The uncapped prior unless max_energy is given (the formula these tests check first)."""
  config = tiny.get_config()
  config.audio = cfg
  config.diffusion.prior, config.diffusion.prior_energy_range = 'priorgrad', (lo, hi)
  config.diffusion.prior_std_min = std_min
  config.diffusion.prior_max_energy = max_energy
  return priors.make_prior(priors.PriorOptions.from_config(config))


def official_target_std(log_mel, energy_min, energy_max, std_min, max_energy_override):
  """microsoft/NeuralSpeech PriorGrad-vocoder dataset.py, in float64 numpy: energy =
  sqrt(sum exp(mel)); with the override, energy_max = override and energy clamped to it; then
  clamp((energy - e_min) / (e_max - e_min), std_min, None)."""
  energy = np.sqrt(np.exp(np.asarray(log_mel, np.float64)).sum(-1))
  if max_energy_override is not None:
    energy_max = max_energy_override
    energy = np.minimum(energy, max_energy_override)
  return np.maximum((energy - energy_min) / (energy_max - energy_min), std_min)


def test_the_energy_cap_is_the_official_codes():
  """max_energy_override = 4 (their default) on real speech and on a mel louder than training."""
  cfg = tiny.get_config().audio
  mel = _speech_mel(cfg)
  lo, hi = priors.energy_range([mel], mel_conventions.Frontend.from_config(cfg))
  assert hi > 4.0  # speech frames above the cap: the cap changes something here
  loud = mel + np.log(4.0)  # 4x the linear mel: 2x the energy of any training frame
  for m in (mel, loud):
    capped = np.asarray(_prior(cfg, lo, hi, max_energy=4.0).frame_std(jnp.asarray(m)))
    np.testing.assert_allclose(capped, official_target_std(m, lo, hi, 0.1, 4.0), rtol=1e-5,
                               atol=1e-6)
    assert capped.max() <= 1.0 + 1e-6  # bounded, whatever the mel
    uncapped = np.asarray(_prior(cfg, lo, hi).frame_std(jnp.asarray(m)))
    np.testing.assert_allclose(uncapped, official_target_std(m, lo, hi, 0.1, None), rtol=1e-5,
                               atol=1e-6)
  # Without the cap a louder mel than any training frame gets a std above 1; with it, never.
  assert uncapped.max() > 1.9
  # The cap is a real difference on this speech, not a no-op.
  assert np.max(np.abs(capped - uncapped)) > 0.5


def test_the_cap_defaults_to_the_official_value_and_old_runs_keep_none():
  config = tiny.get_config()
  assert config.diffusion.prior_max_energy == 4.0
  config.diffusion.prior, config.diffusion.prior_energy_range = 'priorgrad', (0.01, 20.0)
  assert priors.make_prior(priors.PriorOptions.from_config(config)).max_energy == 4.0
  # A run saved before the field: its config.json has no prior_max_energy, so no cap, as trained.
  old = checkpoints.config_from_dict(
      {**config.to_dict(), 'diffusion': {k: v for k, v in config.diffusion.to_dict().items()
                                         if k != 'prior_max_energy'}})
  assert priors.make_prior(priors.PriorOptions.from_config(old)).max_energy == 0.0
  # The README's study config keeps the cap off, as it was measured.
  assert small_priorgrad.get_config().diffusion.prior_max_energy == 0.0
  with pytest.raises(ValueError, match='prior_max_energy'):
    _prior(config.audio, 5.0, 20.0, max_energy=4.0)


def test_frame_std_follows_the_normalised_frame_energy_of_real_speech():
  cfg = tiny.get_config().audio
  mel = _speech_mel(cfg)
  energy = np.sqrt(np.exp(mel.astype(np.float64)).sum(-1))  # ln mel back to linear, summed
  lo, hi = priors.energy_range([mel[:20], mel[20:]],
                               mel_conventions.Frontend.from_config(cfg))
  assert (lo, hi) == pytest.approx((energy.min(), energy.max()), rel=1e-6)
  prior = _prior(cfg, lo, hi)
  std = np.asarray(prior.frame_std(jnp.asarray(mel[None])))[0]
  expected = np.maximum((energy - lo) / (hi - lo), 0.1)
  np.testing.assert_allclose(std, expected, rtol=1e-4, atol=1e-6)
  assert std.min() == pytest.approx(0.1) and std.max() == pytest.approx(1.0, rel=1e-4)
  per_sample = np.asarray(prior.noise_std(jnp.asarray(mel[None]), cfg.hop_length))[0]
  np.testing.assert_array_equal(per_sample, np.repeat(std, cfg.hop_length))


def test_frame_std_undoes_another_convention():
  """A log10 (ESPnet) mel of the same audio gives the same std as the natural-log one."""
  from experiments.configs import common  # pylint: disable=g-import-not-at-top
  ours = common.audio_config_espnet(fmin=0.0, fmax=11025.0)
  ours.convention, ours.log_scale, ours.log_floor = 'wavegrad', 'ln', 1e-5
  theirs = common.audio_config_espnet(fmin=0.0, fmax=11025.0)
  mel_ln, mel_log10 = _speech_mel(ours), _speech_mel(theirs)
  std_ln = _prior(ours, 0.0, 2.0).frame_std(jnp.asarray(mel_ln))
  std_log10 = _prior(theirs, 0.0, 2.0).frame_std(jnp.asarray(mel_log10))
  loud = np.asarray(std_ln) > 0.2  # away from the two floors, which differ (1e-5 vs 1e-10)
  np.testing.assert_allclose(np.asarray(std_log10)[loud], np.asarray(std_ln)[loud], rtol=1e-3)


def test_weighted_loss_against_an_independent_computation():
  rng = jax.random.key(3)
  clean = jax.random.uniform(jax.random.key(1), (2, 64), minval=-0.5, maxval=0.5)
  std = jnp.where(jnp.arange(64) < 32, 0.1, 1.0)[None].repeat(2, 0)
  levels = schedules.noise_levels(schedules.linear_betas(1e-6, 0.01, 1000))
  eps_fn = lambda p, noisy, mel, level: p * noisy  # any deterministic function of the input
  loss, level = diffusion.denoising_loss(eps_fn, 0.7, rng, clean, None, levels, 'l1', std)
  # The same draws, by hand: the level key and the noise key of `denoising_loss`.
  _, noise_rng = jax.random.split(rng)
  noise = np.asarray(jax.random.normal(noise_rng, clean.shape)) * np.asarray(std)
  l = np.asarray(level, np.float64)[:, None]
  noisy = l * np.asarray(clean) + np.sqrt(1 - l * l) * noise
  expected = np.mean(np.abs(0.7 * noisy - noise) / np.asarray(std))
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  plain, _ = diffusion.denoising_loss(eps_fn, 0.7, rng, clean, None, levels, 'l1')
  assert float(plain) != pytest.approx(float(loss), rel=1e-2)


@pytest.mark.parametrize('eta', [1.0, 0.0])
def test_sampler_noise_is_scaled_by_the_prior(eta):
  """With a zero denoiser every step is linear in its noise, so the prior scales the output."""
  cfg = tiny.get_config().audio
  mel = jnp.asarray(_speech_mel(cfg, 0.3)[None])
  prior = _prior(cfg, *priors.energy_range([np.asarray(mel[0])],
                                                mel_conventions.Frontend.from_config(cfg)))
  zero = lambda p, noisy, m, level: jnp.zeros_like(noisy)
  betas = schedules.parse_schedule('linear:1e-4:0.5:6')
  run = lambda prior_: sampling.reverse_diffusion(
      zero, None, betas, mel, jax.random.key(0), hop_length=cfg.hop_length,
      options=sampling.SamplerOptions(eta=eta, prior=prior_))
  plain, scaled = np.asarray(run(None)), np.asarray(run(prior))
  np.testing.assert_allclose(scaled, plain * np.asarray(prior.noise_std(mel, cfg.hop_length)),
                             rtol=1e-5, atol=1e-7)


def test_bad_prior_settings_name_the_fix():
  config = tiny.get_config()
  config.diffusion.prior = 'gaussian'
  with pytest.raises(ValueError, match="diffusion.prior must be one of"):
    priors.make_prior(priors.PriorOptions.from_config(config))
  config.diffusion.prior = 'priorgrad'
  with pytest.raises(ValueError, match='training measures and records it'):
    sampling.SamplerOptions.from_config(config)
  with pytest.raises(ValueError, match='prior_std_min'):
    _prior(config.audio, 0.0, 1.0, std_min=0.0)
  with pytest.raises(ValueError, match='max > min'):
    _prior(config.audio, 1.0, 1.0)


def test_a_priorgrad_run_records_its_energy_range_and_inference_uses_it(tmp_path):
  config = small_priorgrad.get_config()
  for k, v in test_train.SMALL_MODEL.items():
    config.model[k] = v
  config.data.tfds_dir, config.data.max_files = str(tmp_path / 'tfds'), 4
  config.data.heldout_fraction, config.data.segment_frames = 0.3, 4
  t = config.train
  t.batch_size, t.num_steps, t.warmup_steps, t.log_every_steps = 4, 3, 0, 3
  t.eval_every_steps, t.checkpoint_every_steps, t.num_audio_examples = 3, 3, 1
  t.heldout_loss_batches, t.audio_example_seconds = 1, 0.3
  config.logging.progress_bar = False
  workdir = str(tmp_path / 'run')
  summary = train.train_and_evaluate(config, workdir)
  assert summary['step'] == 3 and np.isfinite(summary['heldout_loss'])
  with open(os.path.join(workdir, 'config.json')) as f:
    recorded = tuple(json.load(f)['diffusion']['prior_energy_range'])
  train_split = train.open_dataset(config)['train']
  expected = priors.energy_range([train_split[i]['mel'] for i in range(len(train_split))],
                                 mel_conventions.Frontend.from_config(config.audio))
  assert recorded == pytest.approx(expected, rel=1e-9)
  options = sampling.SamplerOptions.from_config(checkpoints.load_config(workdir))
  assert (options.prior.energy_min, options.prior.energy_max) == pytest.approx(expected)
