"""The reverse-diffusion sampler against float64 numpy maths and an analytic denoiser."""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import common
from tests import oracles
from wavegrad_jax import sampling
from wavegrad_jax.audio import phase
from wavegrad_jax.diffusion import schedules

NAMED = common.sampling_config().named_schedules
HOP = 4


def _numpy_reference(betas, mel_frames, batch, rng, s, noise_scale, eta):
  """The same sampler re-derived in float64 numpy, with the noise draws the sampler documents."""
  betas = np.asarray(betas, np.float64)
  n_steps = betas.size
  alphas = 1 - betas
  alpha_bar = np.cumprod(alphas)
  alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
  init_rng, step_rng = jax.random.split(rng)
  shape = (batch, mel_frames * HOP)
  y = np.asarray(jax.random.normal(init_rng, shape), np.float64)
  keys = jax.random.split(step_rng, n_steps)
  trajectory = []
  for n in range(n_steps - 1, -1, -1):
    l = np.sqrt(alpha_bar[n])
    eps = np.sqrt(1 - l**2) * y / (l**2 * s**2 + 1 - l**2)
    z = np.asarray(jax.random.normal(keys[n], shape), np.float64)
    sigma_post = np.sqrt((1 - alpha_bar_prev[n]) / (1 - alpha_bar[n]) * betas[n])
    if eta == 1.0:
      mean = (y - betas[n] / np.sqrt(1 - alpha_bar[n]) * eps) / np.sqrt(alphas[n])
      sigma = sigma_post if noise_scale == 'posterior' else np.sqrt(betas[n])
      y = mean + (sigma * z if n > 0 else 0.0)
    else:
      y0 = (y - np.sqrt(1 - alpha_bar[n]) * eps) / np.sqrt(alpha_bar[n])
      sigma = eta * sigma_post if n > 0 else 0.0
      y = (np.sqrt(alpha_bar_prev[n]) * y0
           + np.sqrt(max(1 - alpha_bar_prev[n] - sigma**2, 0)) * eps + sigma * z)
    trajectory.append(y)
  return np.stack(trajectory)


@pytest.mark.parametrize('schedule, noise_scale, eta', [
    ('6', 'posterior', 1.0), ('6_diffwave', 'beta', 1.0), ('25', 'posterior', 1.0),
    ('50', 'posterior', 0.0), ('6', 'posterior', 0.5)])
def test_every_step_matches_float64_numpy(schedule, noise_scale, eta):
  betas = schedules.parse_schedule(schedule, NAMED)
  mel = jnp.zeros((3, 8, 2))
  rng = jax.random.key(7)
  s = 0.5
  _, trajectory = sampling.reverse_diffusion(
      oracles.gaussian_eps, s, betas, mel, rng, hop_length=HOP, noise_scale=noise_scale, eta=eta,
      return_trajectory=True)
  expected = _numpy_reference(betas, 8, 3, rng, s, noise_scale, eta)
  assert trajectory.shape == expected.shape == (len(betas), 3, 32)
  scale = np.abs(expected).max(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(np.asarray(trajectory, np.float64) / scale, expected / scale,
                             atol=2e-5)


def _predicted_variance(betas, s, eta):
  """Output variance of the sampler for N(0, s^2) data and the exact denoiser, in float64.

  Every step is linear in y_n for this denoiser: y_{n-1} = a_n y_n + sigma_n z, hence
  var_{n-1} = a_n^2 var_n + sigma_n^2, starting from var_N = 1.
  """
  betas = np.asarray(betas, np.float64)
  alpha_bar = np.cumprod(1 - betas)
  alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
  var = 1.0
  for n in range(betas.size - 1, -1, -1):
    l2 = alpha_bar[n]
    c = np.sqrt(1 - l2) / (l2 * s**2 + 1 - l2)  # eps* = c * y
    sigma_post = np.sqrt((1 - alpha_bar_prev[n]) / (1 - alpha_bar[n]) * betas[n]) if n else 0.0
    if eta == 1.0:
      a = (1 - betas[n] / np.sqrt(1 - l2) * c) / np.sqrt(1 - betas[n])
      sigma = sigma_post
    else:
      sigma = eta * sigma_post
      a = (np.sqrt(alpha_bar_prev[n]) * (1 - np.sqrt(1 - l2) * c) / np.sqrt(l2)
           + np.sqrt(max(1 - alpha_bar_prev[n] - sigma**2, 0)) * c)
    var = a**2 * var + sigma**2
  return var


def _sample_variance(schedule, s, eta):
  sampler = sampling.make_sampler(oracles.gaussian_eps, hop_length=256, eta=eta)
  audio = sampler(jnp.float32(s), schedules.parse_schedule(schedule, NAMED),
                  jnp.zeros((16, 16, 1)), jax.random.key(0))
  assert audio.shape == (16, 16 * 256)
  assert abs(float(jnp.mean(audio))) < 0.02 * s + 0.005
  return float(jnp.var(audio))


@pytest.mark.parametrize('schedule, eta', [('1000', 1.0), ('1000', 0.0),
                                           ('linear:1e-4:0.1:50', 0.0)])
def test_optimal_denoiser_recovers_data_variance(schedule, eta):
  """1000 steps (ancestral or deterministic), and 50 small deterministic steps, give var = s^2."""
  s = 0.5
  np.testing.assert_allclose(_sample_variance(schedule, s, eta), s**2, rtol=0.03)


# The README's "Notes and limitations": output variance / data variance with the exact denoiser
# of N(0, 0.5^2) data, (ancestral, deterministic), for the named schedules.
DOCUMENTED_VARIANCE = {'6': (0.34, 0.51), '25': (0.73, 0.85), '50': (0.83, 0.92),
                       '1000': (0.99, 1.00), '6_ivanvovk': (2.56, 2.95),
                       '25_fibonacci': (1.27, 2.00)}


@pytest.mark.parametrize('schedule', list(DOCUMENTED_VARIANCE) + ['linear:1e-4:0.1:50'])
@pytest.mark.parametrize('eta', [1.0, 0.0])
def test_sample_variance_matches_float64_prediction(schedule, eta):
  """Few large steps shrink the variance (the posterior noise ignores the spread of y0 given y_n;
  deterministic steps discretise coarsely); starts with more energy than y_N inflate it; the
  empirical variance must equal the exact float64 prediction either way."""
  s = 0.5
  expected = _predicted_variance(schedules.parse_schedule(schedule, NAMED), s, eta)
  np.testing.assert_allclose(_sample_variance(schedule, s, eta), expected, rtol=0.03)


def test_readme_variance_figures_are_the_predictions():
  with open(os.path.join(os.path.dirname(__file__), '..', 'README.md')) as f:
    readme = ' '.join(f.read().split())
  for schedule, documented in DOCUMENTED_VARIANCE.items():
    betas = schedules.parse_schedule(schedule, NAMED)
    predicted = [_predicted_variance(betas, 0.5, eta) / 0.25 for eta in (1.0, 0.0)]
    np.testing.assert_allclose(predicted, documented, atol=0.005, err_msg=schedule)
    assert f'{documented[0]:.2f} / {documented[1]:.2f} at `{schedule}`' in readme, schedule


def test_compiles_once_per_schedule_length():
  sampler = sampling.make_sampler(oracles.gaussian_eps, hop_length=HOP)
  mel = jnp.zeros((2, 4, 1))
  for spec in ['list:1e-4,1e-3,1e-2,0.05,0.2,0.5', '6', 'linear:1e-3:0.3:6']:
    sampler(jnp.float32(0.5), schedules.parse_schedule(spec, NAMED), mel, jax.random.key(0))
  assert sampler._cache_size() == 1
  sampler(jnp.float32(0.5), schedules.parse_schedule('25', NAMED), mel, jax.random.key(0))
  assert sampler._cache_size() == 2


def test_compiled_loop_does_not_unroll_steps():
  """A 1000-step schedule lowers to a loop: the program is no bigger than for 6 steps."""
  mel = jnp.zeros((1, 4, 1))
  sizes = []
  for spec in ['6', '1000']:
    fn = jax.jit(lambda b: sampling.reverse_diffusion(
        oracles.gaussian_eps, 0.5, b, mel, jax.random.key(0), hop_length=HOP))
    sizes.append(len(fn.lower(schedules.parse_schedule(spec, NAMED)).as_text()))
  assert abs(sizes[0] - sizes[1]) < 0.03 * sizes[0]
  assert 'while' in fn.lower(schedules.parse_schedule('6', NAMED)).as_text()


def test_multi_schedule_sampler_equals_separate_runs():
  betas = np.stack([schedules.parse_schedule(s, NAMED) for s in ['6', '6_diffwave']])
  mel = jnp.zeros((2, 4, 1))
  rng = jax.random.key(3)
  batched = sampling.make_multi_schedule_sampler(oracles.gaussian_eps, hop_length=HOP)(
      jnp.float32(0.4), betas, mel, rng)
  single = sampling.make_sampler(oracles.gaussian_eps, hop_length=HOP)
  assert batched.shape == (2, 2, 16)
  for k in range(2):
    np.testing.assert_allclose(batched[k], single(jnp.float32(0.4), betas[k], mel, rng),
                               rtol=1e-5, atol=1e-6)


def test_clipping_bounds_every_step():
  _, trajectory = sampling.reverse_diffusion(
      oracles.gaussian_eps, 3.0, schedules.parse_schedule('6', NAMED), jnp.zeros((2, 8, 1)),
      jax.random.key(0), hop_length=HOP, clip=1.0, return_trajectory=True)
  assert float(jnp.abs(trajectory).max()) <= 1.0


@pytest.mark.parametrize('kwargs, message', [
    (dict(noise_scale='cosine'), 'noise_scale must be one of'),
    (dict(eta=1.5), r'eta must lie in \[0, 1\]'),
    (dict(noise_scale='beta', eta=0.0), "noise_scale='beta' defines the ancestral sampler only"),
    (dict(clip=-1.0), r'sampling.clip must be a positive bound .* or 0 to switch it off'),
    (dict(clip=float('nan')), r'sampling.clip must be a positive bound'),
    (dict(clip_x0=-0.5), r'sampling.clip_x0 must be a positive bound \(e.g. 1.0'),
    (dict(clip_x0=float('inf')), r'sampling.clip_x0 must be a positive bound'),
    (dict(algorithm='wavenet'), r"sampling.algorithm must be one of \('diffusion', 'griffin_lim'\)"),
    (dict(algorithm='griffin_lim'), "algorithm='griffin_lim' runs the gla section's Griffin-Lim"),
])
def test_bad_options(kwargs, message):
  with pytest.raises(ValueError, match=message):
    sampling.make_sampler(oracles.gaussian_eps, hop_length=HOP, **kwargs)


def test_options_object_and_keywords_sample_alike():
  betas = schedules.parse_schedule('6', NAMED)
  mel = jnp.zeros((2, 4, 1))
  by_keyword = sampling.make_sampler(oracles.gaussian_eps, hop_length=HOP, eta=0.5, clip=2.0)
  options = sampling.SamplerOptions(eta=0.5, clip=2.0)
  by_object = sampling.make_sampler(oracles.gaussian_eps, hop_length=HOP, options=options)
  # Keywords replace fields of a given object.
  replaced = sampling.make_sampler(oracles.gaussian_eps, hop_length=HOP,
                                   options=sampling.SamplerOptions(eta=1.0, clip=2.0), eta=0.5)
  outs = [f(jnp.float32(0.5), betas, mel, jax.random.key(1))
          for f in (by_keyword, by_object, replaced)]
  np.testing.assert_array_equal(outs[0], outs[1])
  np.testing.assert_array_equal(outs[0], outs[2])
  with pytest.raises(ValueError, match='options must be a sampling.SamplerOptions'):
    sampling.make_sampler(oracles.gaussian_eps, hop_length=HOP, options={'eta': 0.5})


def test_options_from_config_read_every_field_by_name():
  config = common.get_common_config()
  config.sampling.eta, config.sampling.clip, config.sampling.noise_scale = 0.25, 1.5, 'posterior'
  config.sampling.clip_x0 = 2.0
  options = sampling.SamplerOptions.from_config(config)
  assert options == sampling.SamplerOptions(eta=0.25, noise_scale='posterior', clip=1.5, gla=None,
                                            clip_x0=2.0, algorithm='diffusion')
  keywords = sampling.sampler_options_from_config(config)
  assert keywords == dict(hop_length=config.audio.hop_length, eta=0.25, noise_scale='posterior',
                          clip=1.5, gla=None, prior=None, clip_x0=2.0,
                          algorithm='diffusion')
  hash(options)  # static: usable as a jit argument or a dict key
  config.sampling.clip_x0 = -1.0
  with pytest.raises(ValueError, match='sampling.clip_x0 must be a positive bound'):
    sampling.SamplerOptions.from_config(config)


def test_presets_set_their_fields_on_a_copy():
  config = common.get_common_config()
  config.sampling.gla.iterations = 7
  config.sampling.clip = 3.0
  assert sampling.presets_for('wavegrad') == [
      'ancestral', 'deterministic', 'ancestral_clip_y', 'ancestral_clip_x0', 'gla_grad',
      'gla_grad_fast', 'gla_clean_estimate', 'griffin_lim', 'griffin_lim_perraudin']
  assert sampling.presets_for('flow') == ['griffin_lim', 'griffin_lim_perraudin', 'euler',
                                          'midpoint', 'heun', 'euler_gl']
  strong = sampling.SamplerOptions.from_config(config, preset='griffin_lim_perraudin')
  assert strong.algorithm == 'griffin_lim' and strong.gla.griffin_lim.momentum == 0.99
  deterministic = sampling.SamplerOptions.from_config(config, preset='deterministic')
  assert deterministic.eta == 0.0 and deterministic.gla is None
  # A preset sets every field that defines it: the config's clip does not leak into it.
  assert deterministic.clip == 0.0 and deterministic.clip_x0 == 0.0
  assert sampling.SamplerOptions.from_config(config, preset='ancestral_clip_y').clip == 1.0
  assert sampling.SamplerOptions.from_config(config, preset='ancestral_clip_x0').clip_x0 == 1.0
  gla = sampling.preset_from_config(config, 'gla_clean_estimate')
  assert gla.sampling.gla.enabled and not config.sampling.gla.enabled  # the input is unchanged
  options = sampling.SamplerOptions.from_config(gla)
  assert options.eta == 1.0 and options.gla.magnitude == 'mel_pinv'
  assert options.gla.placement == 'clean_estimate' and options.gla.steps == 'first:3'
  assert options.gla.griffin_lim.iterations == 32 and options.clip == 0.0
  config.sampling.eta = 0.0
  assert sampling.SamplerOptions.from_config(config, preset='ancestral').eta == 1.0
  with pytest.raises(ValueError, match=r"unknown sampler preset 'ddpm': choose one of \['ancestral'"):
    sampling.preset_from_config(config, 'ddpm')


def test_gla_grad_preset_is_the_published_algorithm():
  """Liu et al. (ICASSP 2024) / github.com/GLA-Grad: on the step's mean, before the noise, of the
  3 noisiest steps, 32 fast-GLA iterations of momentum 0.1 (theirs), a 0.95 peak, y in [-1, 1]."""
  options = sampling.SamplerOptions.from_config(common.get_common_config(), preset='gla_grad')
  gla = options.gla
  assert (gla.placement, gla.steps, gla.magnitude, gla.mean_peak) == ('mean', 'first:3',
                                                                      'mel_pinv', 0.95)
  assert gla.griffin_lim.iterations == 32 and options.clip == 1.0 and options.eta == 1.0
  # 'gla_grad' runs their loop itself, with their momentum; 'gla_grad_fast' the textbook one.
  assert (gla.griffin_lim.variant, gla.griffin_lim.momentum) == ('authors', 0.1)
  fast = sampling.SamplerOptions.from_config(common.get_common_config(), preset='gla_grad_fast')
  assert fast.gla.griffin_lim.variant == 'fast'
  assert dataclasses.replace(fast.gla, griffin_lim=gla.griffin_lim) == gla  # the same steps
  assert (fast.clip, fast.eta) == (options.clip, options.eta)
  # Their update t = c_k - 0.1 c_{k-1} is Perraudin's c_k + a (c_k - c_{k-1}) scaled by 1 + a.
  a = fast.gla.griffin_lim.momentum
  np.testing.assert_allclose(a / (1 + a), 0.1, rtol=1e-12)
  assert sampling.gla_step_mask(gla.steps, 6).tolist() == [0, 0, 0, 1, 1, 1]
  # The code's GLAOptions default placement is the config's.
  assert sampling.GLAOptions.__dataclass_fields__['placement'].default == (
      common.gla_config().placement)


def _posterior_mean_with_clipped_x0(y, eps, betas, n, bound):
  """ivanvovk/WaveGrad's p_mean_variance in float64: q(y_{n-1} | y_n, clip(y0_hat)) mean."""
  alpha_bar = np.cumprod(1 - betas)
  alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
  y0 = np.sqrt(1 / alpha_bar[n]) * y - np.sqrt(1 / alpha_bar[n] - 1) * eps
  y0 = np.clip(y0, -bound, bound)
  coef1 = betas[n] * np.sqrt(alpha_bar_prev[n]) / (1 - alpha_bar[n])
  coef2 = (1 - alpha_bar_prev[n]) * np.sqrt(1 - betas[n]) / (1 - alpha_bar[n])
  return coef1 * y0 + coef2 * y


@pytest.mark.parametrize('bound', [0.3, 100.0])
def test_clean_estimate_clipping_is_ivanvovks_posterior_mean(bound):
  betas = schedules.parse_schedule('6', NAMED)
  mel, rng, s = jnp.zeros((2, 8, 2)), jax.random.key(5), 0.5
  _, trajectory = sampling.reverse_diffusion(oracles.gaussian_eps, s, betas, mel, rng,
                                             hop_length=HOP, clip_x0=bound, return_trajectory=True)
  init_rng, step_rng = jax.random.split(rng)
  keys = jax.random.split(step_rng, len(betas))
  y = np.asarray(jax.random.normal(init_rng, (2, 8 * HOP)), np.float64)
  alpha_bar = np.cumprod(1 - betas)
  clipped_any = False
  for i, n in enumerate(range(len(betas) - 1, -1, -1)):
    l = np.sqrt(alpha_bar[n])
    eps = np.sqrt(1 - l**2) * y / (l**2 * s**2 + 1 - l**2)
    clipped_any |= bool(np.any(np.abs((y - np.sqrt(1 - l**2) * eps) / l) > bound))
    mean = _posterior_mean_with_clipped_x0(y, eps, betas, n, bound)
    sigma = np.sqrt((1 - alpha_bar[n - 1]) / (1 - alpha_bar[n]) * betas[n]) if n else 0.0
    y = mean + sigma * np.asarray(jax.random.normal(keys[n], y.shape), np.float64)
    np.testing.assert_allclose(np.asarray(trajectory[i], np.float64), y, atol=3e-5 * max(
        1.0, np.abs(y).max()))
  assert clipped_any == (bound < 1)
  if bound > 1:  # nothing clamped: exactly the unclipped sampler
    plain = sampling.reverse_diffusion(oracles.gaussian_eps, s, betas, mel, rng, hop_length=HOP)
    np.testing.assert_array_equal(np.asarray(trajectory[-1]), np.asarray(plain))


def test_griffin_lim_alone_uses_no_model_and_no_schedule():
  config = common.get_common_config()
  config.audio = common.audio_config(sample_rate=8000, n_fft=256, win_length=256, hop_length=64,
                                     n_mels=16, fmax=4000.0)
  options = sampling.SamplerOptions.from_config(config, preset='griffin_lim')
  assert options.algorithm == 'griffin_lim' and options.gla.griffin_lim.iterations == 32
  mel = jax.random.normal(jax.random.key(0), (2, 6, 16)) - 4.0

  def no_model(*_):
    raise AssertionError('Griffin-Lim alone must not call the denoiser')

  sampler = sampling.make_sampler(no_model, hop_length=64, options=options)
  rng = jax.random.key(3)
  out = sampler(None, schedules.parse_schedule('6', NAMED), mel, rng)
  other = sampler(None, schedules.parse_schedule('list:0.1,0.2,0.3,0.4,0.5,0.6'), mel, rng)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(other))
  start = jax.random.normal(jax.random.split(rng)[0], (2, 6 * 64))  # the sampler's y_N
  expected = phase.griffin_lim(start, phase.mel_pinv_magnitude(mel, options.gla.mel_frontend),
                               options.gla.griffin_lim)
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), atol=1e-6)
