"""The process interface, flow matching's losses and ODE solvers against analytic oracles, and the
refusals that keep one process's checkpoints away from the other's samplers."""
import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import frame_small_flow
from experiments.configs import tiny
from wavegrad_jax.training import checkpoints
from wavegrad_jax import errors
from wavegrad_jax import processes
from wavegrad_jax import sampling
from wavegrad_jax.training import trainer as train
from wavegrad_jax.processes import flow

HOP = 8
SOLVERS = flow.SOLVERS
PREDICTIONS = flow.PREDICTIONS


def _mel(batch=2, frames=16):
  return jnp.zeros((batch, frames, 4), jnp.float32)


# ------------------------------------------------------------------------- oracles: a Dirac


def _dirac_net(point, prediction):
  """The exact prediction for data that is always `point` [T]: x1 = point, v = (x1 - x) / (1 - t)."""
  def net(params, x, mel, t):
    del params, mel
    if prediction == 'x1':
      return jnp.broadcast_to(point, x.shape)
    return (point - x) / (1.0 - jnp.minimum(t, flow.T_MAX))[:, None]
  return net


@pytest.mark.parametrize('prediction', PREDICTIONS)
@pytest.mark.parametrize('solver', SOLVERS)
@pytest.mark.parametrize('grid', ['1', '2', '4', 'power:5:2', 'list:0,0.1,0.15,0.7,1'])
def test_every_solver_lands_on_the_data_point_for_any_grid(prediction, solver, grid):
  point = jnp.asarray(np.random.default_rng(0).uniform(-0.9, 0.9, 16 * HOP), jnp.float32)
  times = flow.parse_time_grid(grid)
  out = flow.ode_solve(_dirac_net(point, prediction), None, times, _mel(), jax.random.key(1),
                       hop_length=HOP, prediction=prediction, solver=solver, sigma=1.0)
  np.testing.assert_allclose(out, np.broadcast_to(point, out.shape), atol=2e-3)


def test_one_euler_step_from_zero_is_the_x1_estimate():
  point = jnp.linspace(-0.5, 0.5, 16 * HOP)
  out = flow.ode_solve(_dirac_net(point, 'x1'), None, flow.parse_time_grid('1'), _mel(),
                       jax.random.key(2), hop_length=HOP, prediction='x1', solver='euler',
                       sigma=0.1)
  np.testing.assert_allclose(out, np.broadcast_to(point, out.shape), atol=1e-6)


# ---------------------------------------------------------------------- oracles: Gaussian data

MU, S, SIGMA = 0.3, 0.5, 1.0


def _gaussian_net(prediction, wrong=False):
  """E[x1 - x0 | x_t] or E[x1 | x_t] for x1 ~ N(MU, S^2), x0 ~ N(0, SIGMA^2), independent."""
  def net(params, x, mel, t):
    del params, mel
    t = t[:, None]
    var = (1 - t) ** 2 * SIGMA ** 2 + t ** 2 * S ** 2
    if prediction == 'x1':
      return MU + t * S ** 2 / var * (x - t * MU)
    cross = t * S ** 2 - (1 - t) * SIGMA ** 2
    if wrong:  # a plausible slip: the source's share of the covariance with the wrong sign
      cross = t * S ** 2 + (1 - t) * SIGMA ** 2
    return MU + cross / var * (x - t * MU)
  return net


def _moments(prediction, solver, wrong=False, steps=64):
  mel = _mel(batch=8, frames=256)  # 8 x 2048 = 16,384 independent samples
  out = flow.ode_solve(_gaussian_net(prediction, wrong), None, flow.parse_time_grid(str(steps)),
                       mel, jax.random.key(3), hop_length=HOP, prediction=prediction,
                       solver=solver, sigma=SIGMA)
  out = np.asarray(out, np.float64).ravel()
  return out.mean(), out.var(), out.size


@pytest.mark.parametrize('prediction', PREDICTIONS)
@pytest.mark.parametrize('solver', SOLVERS)
def test_gaussian_data_samples_have_the_data_moments(prediction, solver):
  mean, var, n = _moments(prediction, solver)
  # Five standard errors of the sample moments of n draws (var: S^2 sqrt(2 / n)), plus 1% for
  # the solver's discretisation over 64 steps (Euler's is the largest).
  assert abs(mean - MU) < 5 * S / np.sqrt(n) + 0.01 * S
  assert abs(var - S ** 2) < 5 * S ** 2 * np.sqrt(2.0 / n) + 0.01 * S ** 2


def test_the_gaussian_criterion_catches_a_wrong_velocity():
  _, var, n = _moments('velocity', 'midpoint', wrong=True)
  assert abs(var - S ** 2) > 5 * S ** 2 * np.sqrt(2.0 / n) + 0.01 * S ** 2


# ------------------------------------------------------------------------------- training loss


def _flow(**kw):
  return flow.FlowProcess(**kw)


@pytest.mark.parametrize('prediction', PREDICTIONS)
def test_the_exact_prediction_has_zero_flow_loss_and_a_wrong_one_does_not(prediction):
  point = jnp.asarray(np.random.default_rng(4).uniform(-0.9, 0.9, 16 * HOP), jnp.float32)
  clean = jnp.broadcast_to(point, (4, point.shape[0]))
  process = _flow(prediction=prediction, weighting='wavefm' if prediction == 'x1' else 'none')
  loss, parts = process.training_loss(_dirac_net(point, prediction), None, jax.random.key(5),
                                      clean, _mel(4))
  assert float(loss) < 1e-4 and set(parts) == {'main'}
  wrong, _ = process.training_loss(_dirac_net(-point, prediction), None, jax.random.key(5),
                                   clean, _mel(4))
  assert float(wrong) > 0.1


def test_spectral_losses_are_added_with_their_weights():
  point = jnp.asarray(np.random.default_rng(6).uniform(-0.9, 0.9, 64 * HOP), jnp.float32)
  clean = jnp.broadcast_to(point, (2, point.shape[0]))
  spectral = processes.spectral.SpectralLosses(mrstft_weight=2.0, energy_weight=0.5,
                                               resolutions=((64, 16, 64), (128, 32, 128)))
  process = _flow(spectral_losses=spectral)
  net = lambda p, x, m, t: 0.5 * jnp.broadcast_to(point, x.shape)  # half the right amplitude
  loss, parts = process.training_loss(net, None, jax.random.key(7), clean, _mel(2, 64))
  assert set(parts) == {'main', 'mrstft', 'energy_stft'}
  np.testing.assert_allclose(loss, sum(parts.values()), rtol=1e-6)
  term = processes.spectral.mrstft_loss(0.5 * clean, clean, spectral.resolutions)
  np.testing.assert_allclose(parts['mrstft'], 2.0 * term, rtol=1e-5)
  # Half the amplitude: log-magnitude error log 2 and spectral convergence 0.5 at every bin.
  np.testing.assert_allclose(term, 0.5 + np.log(2.0), rtol=1e-3)


def test_spectral_convergence_is_over_the_batch_so_a_silent_crop_cannot_blow_it_up():
  rng = np.random.default_rng(10)
  loud = jnp.asarray(rng.uniform(-0.5, 0.5, 512), jnp.float32)
  target = jnp.stack([loud, jnp.zeros_like(loud)])  # the second crop is digital silence
  estimate = target + 1e-3 * jnp.asarray(rng.standard_normal((2, 512)), jnp.float32)
  term = processes.spectral.mrstft_loss(estimate, target, ((64, 16, 64),))
  # Per example the silent crop's SC would be ~1e-3 / 1e-5 = 100; over the batch it stays small.
  assert float(term) < 5.0


def test_the_wavegrad_process_is_the_paper_loss():
  config = tiny.get_config()
  process = processes.from_config(config)
  assert isinstance(process, processes.wavegrad.WaveGradProcess)
  from wavegrad_jax.diffusion import noise as diffusion  # pylint: disable=g-import-not-at-top
  clean = jnp.asarray(np.random.default_rng(8).uniform(-0.5, 0.5, (2, 64)), jnp.float32)
  net = lambda p, x, m, l: 0.1 * x
  ours, _ = process.training_loss(net, None, jax.random.key(9), clean, _mel(2, 8))
  theirs, _ = diffusion.denoising_loss(net, None, jax.random.key(9), clean, _mel(2, 8),
                                       jnp.asarray(train.train_noise_levels(config)), 'l1')
  np.testing.assert_allclose(ours, theirs, rtol=1e-6)


# ---------------------------------------------------------------------------- grids, refusals


@pytest.mark.parametrize('spec', ['0', 'list:0,0.5,0.4,1', 'list:0.1,0.5,1', 'list:0,0.5',
                                  'uniform:x', 'bogus', 'list:0,1,1'])
def test_bad_time_grids_are_refused_naming_the_forms(spec):
  with pytest.raises(ValueError, match='rising strictly from 0 to 1'):
    flow.parse_time_grid(spec)


def test_network_evaluations_count_every_call():
  config = frame_small_flow.get_config()
  grid = flow.parse_time_grid('4')
  counts = {}
  for solver in SOLVERS:
    config.sampling.solver = solver
    counts[solver] = processes.network_evaluations_from_config(config, grid)
  assert counts == {'euler': 4, 'midpoint': 8, 'heun': 7}
  assert processes.network_evaluations_from_config(tiny.get_config(), np.zeros(6)) == 6


@pytest.mark.parametrize('field,value,name', [('prediction', 'eps', 'prediction'),
                                              ('loss', 'l3', 'loss'),
                                              ('weighting', 'bogus', 'weighting'),
                                              ('sigma', -1.0, 'sigma')])
def test_bad_flow_options_are_refused(field, value, name):
  config = frame_small_flow.get_config()
  config.process.flow[field] = value
  with pytest.raises(ValueError, match=f'process.flow.{name}'):
    processes.from_config(config)


def test_unknown_process_and_negative_weights_are_refused():
  config = tiny.get_config()
  config.process.name = 'bogus'
  with pytest.raises(ValueError, match='process.name must be one of'):
    processes.from_config(config)
  config = tiny.get_config()
  config.process.spectral.mrstft_weight = -1.0
  with pytest.raises(ValueError, match='mrstft_weight must be >= 0'):
    processes.from_config(config)


def test_a_sampler_of_the_other_process_is_refused():
  flow_config = frame_small_flow.get_config()
  with pytest.raises(ValueError, match="samples process 'wavegrad'.*trained with process 'flow'"):
    sampling.preset_from_config(flow_config, 'ancestral')
  sampling.preset_from_config(flow_config, 'griffin_lim')  # the model-free baseline fits both
  flow_config.sampling.eta = 0.0
  with pytest.raises(ValueError, match="sampling.eta=0.0 set a reverse-diffusion sampler"):
    processes.check_sampling_from_config(flow_config)
  wavegrad_config = tiny.get_config()
  with pytest.raises(ValueError, match="samples process 'flow'"):
    sampling.preset_from_config(wavegrad_config, 'heun')
  wavegrad_config.sampling.solver = 'midpoint'
  with pytest.raises(ValueError, match="is an ODE solver of process 'flow'"):
    processes.check_sampling_from_config(wavegrad_config)


def test_resuming_or_vocoding_with_another_process_is_refused(tmp_path):
  flow_config = frame_small_flow.get_config()
  checkpoints.save_config(str(tmp_path), flow_config)
  wavegrad_config = frame_small_flow.get_config()
  wavegrad_config.process.name = 'wavegrad'
  with pytest.raises(errors.ResumeMismatchError, match=r"process.name.*--config.process.name="):
    train.check_resume_compatible(str(tmp_path), wavegrad_config)
  train.check_resume_compatible(str(tmp_path), frame_small_flow.get_config())  # same: resumes
  other = frame_small_flow.get_config()
  other.process.flow.prediction = 'velocity'
  differences = checkpoints.frontend_differences(flow_config, other)
  assert any(d.startswith('process.prediction') for d in differences)


def test_runs_from_before_processes_mean_wavegrad():
  config = tiny.get_config()
  with config.unlocked():
    del config['process']
  assert processes.process_name_from_config(config) == 'wavegrad'
  assert processes.recorded_fields_from_config(config) == {'name': 'wavegrad'}
  assert not checkpoints.frontend_differences(config, tiny.get_config())


# ---------------------------------------------------------------------------- time-grid search


def test_the_time_grid_search_finds_the_best_grid_of_an_oracle_score():
  from wavegrad_jax.evaluation import time_grid_search  # pylint: disable=g-import-not-at-top
  target = time_grid_search.power_grid(4, 2.0)
  target[2] = 0.4  # off the power family: only the coordinate sweeps can reach it

  def scorer(grids):
    return np.sum(np.abs(np.asarray(grids) - target), axis=-1)

  result = time_grid_search.search_time_grid(scorer, 4, powers=(1.0, 2.0, 3.0), sweeps=8)
  np.testing.assert_allclose(result['best_times'], target, atol=0.02)
  assert result['best_score'] < 0.03 and result['ranked'][0]['score'] == result['best_score']
  # Every grid it scored is a valid time grid.
  for row in result['ranked']:
    flow.parse_time_grid('list:' + ','.join(repr(t) for t in row['times']))
  one = time_grid_search.search_time_grid(lambda g: np.zeros(len(g)), 1, powers=(1.0, 2.0),
                                         sweeps=3)
  assert one['best_times'] == [0.0, 1.0] and one['scorings'] == 1


# -------------------------------------------------------------- the Griffin-Lim source ('griffin_lim')


def _speech_and_mel(config, seconds=0.75):
  """A real speech crop at the config's rate and its conditioning mel ([1, T], [1, F, M])."""
  import soundfile
  from scipy import signal
  from wavegrad_jax.audio import conventions
  from wavegrad_jax.audio import frontend as audio
  wav, rate = soundfile.read('/usr/share/sounds/alsa/Front_Center.wav', dtype='float32')
  wav = signal.resample_poly(wav, config.audio.sample_rate, rate).astype(np.float32)
  hop = config.audio.hop_length
  start = int(0.3 * config.audio.sample_rate)
  n = int(seconds * config.audio.sample_rate) // hop * hop
  clip = 0.9 * wav[start:start + n] / np.abs(wav).max()
  fe = conventions.Frontend.from_config(config.audio)
  mel = audio.log_mel_spectrogram(jnp.asarray(clip)[None], fe)
  return jnp.asarray(clip)[None], mel, fe


def _spectral_convergence(wave, target, fe):
  from wavegrad_jax.audio import frontend as audio
  s_hat = np.abs(np.asarray(audio.stft(wave, fe.n_fft, fe.hop_length, fe.win_length)))
  s = np.abs(np.asarray(audio.stft(target, fe.n_fft, fe.hop_length, fe.win_length)))
  return float(np.linalg.norm(s_hat - s) / np.linalg.norm(s))


def test_the_griffin_lim_source_starts_the_sampler_at_griffin_lims_reconstruction():
  config = frame_small_flow.get_config()
  config.process.flow.source = 'griffin_lim'
  config.process.flow.sigma = 0.01
  process = processes.from_config(config)
  assert isinstance(process.source, flow.GriffinLimSource)
  clean, mel, fe = _speech_and_mel(config)
  times = flow.parse_time_grid('1')

  def identity(params, x, mel, t):  # x1_hat = x_t: one Euler step returns the source itself
    return x

  out = flow.ode_solve(identity, None, times, mel, jax.random.key(0),
                       hop_length=config.audio.hop_length, prediction='x1', solver='euler',
                       sigma=0.01, source=process.source)
  # Griffin-Lim from the mel's pseudo-inverse: its |STFT| is near the speech's, noise's is not.
  assert _spectral_convergence(out, clean, fe) < 0.6
  noise = flow.ode_solve(identity, None, times, mel, jax.random.key(0),
                         hop_length=config.audio.hop_length, prediction='x1', solver='euler',
                         sigma=0.01)
  assert _spectral_convergence(noise, clean, fe) > 0.95
  # The training path draws x0 from the same source: a network that unmixes x_t back into x0
  # (it knows the clean crop) sees Griffin-Lim's reconstruction there too.
  seen = []

  def source_of(params, x, mel, t):
    t = t[:, None]
    seen.append((x - t * clean) / (1.0 - t))
    return x

  process.training_loss(source_of, None, jax.random.key(1), clean, mel)
  dataclasses.replace(process, source=None).training_loss(source_of, None, jax.random.key(1),
                                                          clean, mel)
  assert _spectral_convergence(seen[0], clean, fe) < 0.6
  assert _spectral_convergence(seen[1], clean, fe) > 0.95


@pytest.mark.parametrize('field,value', [('source', 'bogus'), ('source_iterations', 0),
                                         ('source_momentum', 1.5)])
def test_bad_griffin_lim_source_options_are_refused(field, value):
  config = frame_small_flow.get_config()
  config.process.flow.source = 'griffin_lim'
  config.process.flow[field] = value
  with pytest.raises(ValueError, match=f'process.flow.{field}'):
    processes.from_config(config)


def test_the_source_is_recorded_only_when_it_is_not_noise():
  assert 'source' not in flow.FlowProcess.recorded_options({'prediction': 'x1'})
  recorded = flow.FlowProcess.recorded_options({'source': 'griffin_lim', 'source_iterations': 8})
  assert recorded['source'] == 'griffin_lim' and recorded['source_iterations'] == 8


def test_the_final_projection_pulls_the_sample_onto_the_mels_magnitude():
  config = frame_small_flow.get_config()
  process = processes.from_config(config)
  clean, mel, fe = _speech_and_mel(config)
  times = flow.parse_time_grid('1')

  def identity(params, x, mel, t):
    return x

  def solve(iterations):
    projection = flow.final_projection_options(fe, iterations, 0.99) if iterations else None
    return flow.ode_solve(identity, None, times, mel, jax.random.key(0),
                          hop_length=config.audio.hop_length, prediction='x1', solver='euler',
                          sigma=process.sigma, projection=projection, frontend=process.frontend)

  assert _spectral_convergence(solve(0), clean, fe) > 0.95  # the noise source itself
  assert _spectral_convergence(solve(16), clean, fe) < 0.6   # Griffin-Lim from it
  # The sampler the config names applies it (the preset 'euler_gl': 4 projections).
  settings = processes.SamplingSettings(final_projection=16)
  sampler = process.make_sampler(identity, settings, config.audio.hop_length)
  out = sampler(None, jnp.asarray(times, jnp.float32), mel, jax.random.key(0))
  np.testing.assert_allclose(out, solve(16), atol=1e-5)
  assert sampling.presets.SAMPLER_PRESETS['euler_gl']['final_projection'] == 4
  assert sampling.presets.preset_process('euler_gl') == 'flow'


@pytest.mark.parametrize('value', [-1, 1.5, 'four'])
def test_bad_final_projections_are_refused(value):
  with pytest.raises(ValueError, match='sampling.final_projection must be an integer >= 0'):
    flow.FlowProcess.check_sampling(processes.SamplingSettings(final_projection=value))


def test_the_paper_process_refuses_a_final_projection():
  with pytest.raises(ValueError, match="final_projection=4 projects the final sample of process"):
    processes.process_class('wavegrad').check_sampling(
        processes.SamplingSettings(final_projection=4))
