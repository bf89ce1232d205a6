"""Flow matching on a vocoder network: the straight (rectified / optimal-transport) path.

x_t = (1 - t) x0 + t x1 from a source sample x0 = sigma * std(mel) * z, z ~ N(0, I), to speech x1,
with t ~ U(0, 1) in training; the network, conditioned on t through the same scalar input that
carries WaveGrad's noise level, predicts either
  'x1': the endpoint (WaveFM, Flow2GAN), velocity v = (x1_hat - x_t) / (1 - t); or
  'velocity': v = x1 - x0 directly (Lipman et al. 2023, Liu et al. 2023).
Options, each a config.process.flow field: `loss` 'l1' or 'l2' on the prediction's error;
`weighting` 'wavefm' multiplies the x1 error by 1 / max(0.1, 1 - t) (WaveFM, arXiv 2503.16689,
luotianze666/WaveFM); `sigma` scales the source (Flow2GAN, arXiv 2512.23278, k2-fsa/Flow2GAN,
uses 0.1; 1 is plain N(0, I)); config.diffusion.prior='priorgrad' shapes the source by the mel's
frame energy exactly as for the paper's process (`priors.Prior`). Spectral losses (`spectral`) act
on the one-step estimate x1_hat.

`source` 'griffin_lim' moves the source's mean from 0 to Griffin-Lim's reconstruction from the
conditioning mel: x0 = GL(mel) + sigma * std * z, where GL(mel) runs `source_iterations` fast
Griffin-Lim projections (Perraudin et al. 2013, momentum `source_momentum`) from a random-phase
start onto the mel's pseudo-inverse magnitude (`phase.mel_pinv_magnitude`, the target the
`griffin_lim` baseline uses). The network then learns the step from a phase-consistent estimate
to speech instead of from noise: FreeV (Lv et al., Interspeech 2024, arXiv 2406.08196) feeds the
pseudo-inverse magnitude to its vocoder for the same reason, and Deep Griffin-Lim Iteration
(Masuyama et al., ICASSP 2019) trains a network to refine Griffin-Lim's spectra. Each sample
costs those FFT pairs once, not once per step; `network_evaluations` counts network calls only.

Sampling integrates dx/dt = v(x, t) from t = 0 to 1 over a time grid [N + 1] in one jitted
`lax.scan`: 'euler' (one network call a step; N = 1 from t = 0 with x1 prediction is the
one-step estimate itself), 'midpoint' (two) or 'heun' (two; its last step, which ends at t = 1,
is Euler: no velocity exists there for x1 prediction, and near the data the field is singular). Time grids are given as 'N' or 'uniform:N',
'power:N:P' (t_i = (i / N)^P), 'list:t0,...,tN', or a JSON file {"times": [...]}; a grid must rise
strictly from 0 to 1.
"""
import dataclasses
import functools
import json
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax.audio import phase
from wavegrad_jax.diffusion import priors
from wavegrad_jax import sampling
from wavegrad_jax.processes import base
from wavegrad_jax.processes import spectral

PREDICTIONS = ('x1', 'velocity')
WEIGHTINGS = ('none', 'wavefm')
LOSSES = ('l1', 'l2')
SOLVERS = ('euler', 'midpoint', 'heun')
SOURCES = ('noise', 'griffin_lim')
# The x1 parameterisation divides by 1 - t; no step evaluates the network closer to t = 1.
T_MAX = 1.0 - 1e-4
GRID_USAGE = ("a flow time grid is 'N' or 'uniform:N' (N equal steps), 'power:N:P' (t_i = "
              "(i/N)^P), 'list:t0,t1,...,tN' or a JSON file {\"times\": [...]}, rising strictly "
              'from 0 to 1')


def parse_time_grid(spec):
  """A time grid spec -> float64 [N + 1] times from 0 to 1 (see the module docstring).

  Raises:
    ValueError: an unreadable spec, or times that do not rise strictly from 0 to 1.
  """
  text = str(spec).strip()
  kind, _, value = text.partition(':')
  try:
    if text.isdigit():
      times = np.linspace(0.0, 1.0, int(text) + 1)
    elif kind == 'uniform':
      times = np.linspace(0.0, 1.0, int(value) + 1)
    elif kind == 'power':
      steps, power = value.split(':')
      times = np.linspace(0.0, 1.0, int(steps) + 1) ** float(power)
    elif kind == 'list':
      times = np.asarray([float(v) for v in value.split(',') if v.strip()], np.float64)
    elif text.endswith('.json') and os.path.exists(text):
      with open(text) as f:
        data = json.load(f)
      times = np.asarray(data['times'] if isinstance(data, dict) else data, np.float64)
    else:
      raise ValueError(text)
  except (ValueError, KeyError, TypeError):
    raise ValueError(f'cannot read time grid {spec!r}: {GRID_USAGE}') from None
  times = np.asarray(times, np.float64)
  if (times.ndim != 1 or times.shape[0] < 2 or not np.all(np.isfinite(times))
      or times[0] != 0.0 or times[-1] != 1.0 or not np.all(np.diff(times) > 0)):
    raise ValueError(f'time grid {spec!r} gives {np.round(times, 4).tolist()}: {GRID_USAGE}')
  return times


def velocity(prediction, out, x, t):
  """The velocity dx/dt [B, T] implied by the network output `out` at x [B, T], times t [B]."""
  if prediction == 'velocity':
    return out
  return (out - x) / (1.0 - jnp.minimum(t, T_MAX))[:, None]


def network_evaluations(solver, num_steps):
  """Network calls of an N-step solve ending at t = 1: Euler N, midpoint 2N, Heun 2N - 1 (its
  last step is Euler), for either prediction."""
  if solver == 'euler':
    return num_steps
  if solver == 'heun':
    return 2 * num_steps - 1
  return 2 * num_steps


@dataclasses.dataclass(frozen=True)
class GriffinLimSource:
  """The 'griffin_lim' source's mean: Griffin-Lim from the mel (see the module docstring).

  Attributes:
    frontend: `phase.MelFrontend` of the conditioning mels (its STFT is Griffin-Lim's).
    griffin_lim: `phase.GriffinLimOptions` of the projections (the frontend's STFT, 'fast').
  """
  frontend: phase.MelFrontend
  griffin_lim: phase.GriffinLimOptions

  @classmethod
  def build(cls, frontend, iterations, momentum):
    """The source on `frontend`'s STFT with `iterations` fast Griffin-Lim projections."""
    if int(iterations) != iterations or iterations < 1:
      raise ValueError(f'process.flow.source_iterations must be an integer >= 1, got {iterations}')
    if not 0.0 <= float(momentum) <= 1.0:
      raise ValueError(f'process.flow.source_momentum must lie in [0, 1], got {momentum}')
    return cls(frontend=frontend,
               griffin_lim=final_projection_options(frontend, iterations, momentum))

  def mean(self, mel, rng, num_samples):
    """[B, num_samples] Griffin-Lim waveforms of mel [B, F, M], from a random start drawn by
    `rng` (float32; the magnitude's units, i.e. waveform scale)."""
    magnitude = phase.mel_pinv_magnitude(mel, self.frontend)
    start = jax.random.normal(rng, (mel.shape[0], num_samples), jnp.float32)
    return phase.griffin_lim(start, magnitude, self.griffin_lim)


def draw_source(rng, mel, num_samples, std, source=None):
  """A source sample x0 [B, num_samples]: std * z, plus Griffin-Lim's estimate for `source`
  (the noise source draws z from `rng` itself, as the runs made before `source` existed)."""
  shape = (mel.shape[0], num_samples)
  if source is None:
    return jax.random.normal(rng, shape, jnp.float32) * std
  z_rng, gl_rng = jax.random.split(rng)
  return jax.random.normal(z_rng, shape, jnp.float32) * std + source.mean(mel, gl_rng, num_samples)


def final_projection_options(frontend, iterations, momentum):
  """`phase.GriffinLimOptions` of the final projection on `frontend`'s STFT (fast Griffin-Lim)."""
  return phase.GriffinLimOptions(
      n_fft=frontend.n_fft, hop_length=frontend.hop_length, win_length=frontend.win_length,
      window=frontend.window, pad_mode=frontend.pad_mode, iterations=int(iterations),
      momentum=float(momentum), framing=frontend.framing, variant='fast')


def ode_solve(net_fn, params, times, mel, rng, *, hop_length, prediction, solver, sigma,
              prior=None, clip=0.0, source=None, projection=None, frontend=None):
  """Samples waveforms by integrating the learned velocity from t = 0 to 1 over `times`.

  Args:
    net_fn: net_fn(params, x [B, T], mel [B, F, M], t [B]) -> [B, T] (the prediction).
    params: passed to net_fn.
    times: [N + 1] grid from 0 to 1 (traced: any grid of one length reuses the compilation).
    mel: [B, F, n_mels] conditioning.
    rng: PRNG key of the source draw x0.
    hop_length: samples per mel frame.
    prediction: 'x1' or 'velocity'.
    solver: 'euler', 'midpoint' or 'heun'.
    sigma: the source's scale.
    prior: `priors.Prior` shaping the source by the mel, or None.
    clip: > 0 clamps the final waveform to [-clip, clip]; 0 off.
    source: `GriffinLimSource` whose estimate is the source's mean, or None (mean 0).
    projection: `phase.GriffinLimOptions` of Griffin-Lim projections of the final sample onto
      the mel's pseudo-inverse magnitude (GLA-Grad's correction, once at the end), or None.
    frontend: `phase.MelFrontend` of the mels (needed by `projection`).
  Returns:
    [B, F * hop_length] float32 waveforms.
  """
  times = jnp.asarray(times, jnp.float32)
  batch = mel.shape[0]
  num_samples = mel.shape[1] * hop_length
  std = sigma if prior is None else sigma * prior.noise_std(mel, hop_length)
  x = draw_source(rng, mel, num_samples, std, source)

  def v(x, t):
    tb = jnp.full((batch,), t, jnp.float32)
    return velocity(prediction, net_fn(params, x, mel, tb), x, tb)

  def body(x, pair):
    t0, t1 = pair
    h = t1 - t0
    if solver == 'euler':
      return x + h * v(x, t0), None
    if solver == 'midpoint':
      return x + h * v(x + 0.5 * h * v(x, t0), t0 + 0.5 * h), None
    v0 = v(x, t0)
    euler = x + h * v0
    # A step that ends at t = 1 stays Euler (as EDM's last step to sigma = 0): the x1
    # parameterisation has no velocity there, and near data the field is singular (for a Dirac,
    # 0 / 0). lax.cond skips the second call at run time, so it costs no network evaluation.
    return jax.lax.cond(t1 >= T_MAX, lambda: euler,
                        lambda: x + 0.5 * h * (v0 + v(euler, t1))), None

  x, _ = jax.lax.scan(body, x, (times[:-1], times[1:]))
  if projection is not None and projection.iterations > 0:
    # From the network's phase, which is near the speech's, a few projections settle the
    # magnitudes on the mel's without Griffin-Lim's random-start artefacts.
    x = phase.griffin_lim(x, phase.mel_pinv_magnitude(mel, frontend), projection)
  if clip > 0:
    x = jnp.clip(x, -clip, clip)
  return x


@dataclasses.dataclass(frozen=True)
class FlowProcess(base.Process):
  """Flow matching (see the module docstring); built from config.process.flow.

  Attributes:
    prediction: 'x1' or 'velocity'.
    loss: 'l1' or 'l2'.
    weighting: 'none' or 'wavefm' (x1 prediction only).
    sigma: > 0, the source's scale.
    prior: `priors.Prior` or None.
    spectral_losses: `spectral.SpectralLosses` on x1_hat, or None.
    source: `GriffinLimSource` (source 'griffin_lim') or None (source 'noise').
    frontend: `phase.MelFrontend` of the conditioning mels (the final projection's), or None.
  """
  prediction: str = 'x1'
  loss: str = 'l1'
  weighting: str = 'none'
  sigma: float = 1.0
  prior: Optional[priors.Prior] = None
  spectral_losses: Optional[spectral.SpectralLosses] = None
  source: Optional[GriffinLimSource] = None
  frontend: Optional[phase.MelFrontend] = None

  name = 'flow'

  def __post_init__(self):
    for field, valid in (('prediction', PREDICTIONS), ('loss', LOSSES),
                         ('weighting', WEIGHTINGS)):
      if getattr(self, field) not in valid:
        raise ValueError(f'process.flow.{field} must be one of {valid}, got '
                         f'{getattr(self, field)!r}')
    if self.weighting == 'wavefm' and self.prediction != 'x1':
      raise ValueError("process.flow.weighting='wavefm' weighs the x1 error; it needs "
                       "prediction='x1' (or weighting='none')")
    if not (self.sigma > 0 and np.isfinite(self.sigma)):
      raise ValueError(f'process.flow.sigma must be > 0 (Flow2GAN: 0.1), got {self.sigma}')

  @classmethod
  def recorded_options(cls, section):
    recorded = {'prediction': section.get('prediction', 'x1'),
                'sigma': float(section.get('sigma', 1.0))}
    # Runs from before the field had the noise source; they record nothing new.
    if section.get('source', 'noise') != 'noise':
      recorded.update(source=section['source'],
                      source_iterations=int(section.get('source_iterations', 32)),
                      source_momentum=float(section.get('source_momentum', 0.99)))
    return recorded

  @classmethod
  def from_config(cls, config):
    process = config.get('process', None)
    f = process.get('flow', {}) if process is not None else {}
    source_name = f.get('source', 'noise')
    if source_name not in SOURCES:
      raise ValueError(f'process.flow.source must be one of {SOURCES}, got {source_name!r}')
    source = None
    if source_name == 'griffin_lim':
      source = GriffinLimSource.build(phase.MelFrontend.from_config(config.audio),
                                      f.get('source_iterations', 32),
                                      f.get('source_momentum', 0.99))
    return cls(prediction=f.get('prediction', 'x1'), loss=f.get('loss', 'l1'),
               weighting=f.get('weighting', 'none'), sigma=float(f.get('sigma', 1.0)),
               prior=priors.make_prior(priors.PriorOptions.from_config(config)),
               spectral_losses=spectral.SpectralLosses.from_config(config), source=source,
               frontend=phase.MelFrontend.from_config(config.audio))

  def _source_std(self, mel, num_samples):
    if self.prior is None:
      return self.sigma
    return self.sigma * self.prior.noise_std(mel, num_samples // mel.shape[-2])

  def training_loss(self, net_fn, params, rng, clean, mel):
    t_rng, z_rng = jax.random.split(rng)
    batch = clean.shape[0]
    t = jax.random.uniform(t_rng, (batch,), jnp.float32)
    x0 = draw_source(z_rng, mel, clean.shape[-1], self._source_std(mel, clean.shape[-1]),
                     self.source)
    tt = t[:, None]
    xt = (1.0 - tt) * x0 + tt * clean
    out = net_fn(params, xt, mel, t)
    if self.prediction == 'velocity':
      error = out - (clean - x0)
      estimate = xt + (1.0 - tt) * out
    else:
      error = out - clean
      estimate = out
    error = jnp.abs(error) if self.loss == 'l1' else jnp.square(error)
    per_example = jnp.mean(error, axis=-1)
    if self.weighting == 'wavefm':
      per_example = per_example / jnp.maximum(0.1, 1.0 - t)
    main = jnp.mean(per_example)
    if self.spectral_losses is None:
      return main, {'main': main}
    parts = self.spectral_losses(estimate, clean)
    return main + sum(parts.values()), {'main': main, **parts}

  @classmethod
  def parse_grid(cls, spec, settings):
    return parse_time_grid(spec)

  @classmethod
  def network_evaluations(cls, grid, settings):
    if settings.algorithm == 'griffin_lim':
      return 0
    return network_evaluations(settings.solver, int(np.asarray(grid).shape[-1]) - 1)

  @classmethod
  def check_sampling(cls, settings):
    s = settings
    solver = s.solver
    if solver not in SOLVERS:
      raise ValueError(f'sampling.solver must be one of {SOLVERS} (flow ODE solvers), got '
                       f'{solver!r}')
    wavegrad_only = []
    if float(s.eta) != 1.0:
      wavegrad_only.append(f"sampling.eta={s.eta}")
    if float(s.clip_x0) > 0:
      wavegrad_only.append(f'sampling.clip_x0={s.clip_x0}')
    if s.gla_enabled:
      wavegrad_only.append('sampling.gla.enabled=True')
    if wavegrad_only:
      raise ValueError(f"{', '.join(wavegrad_only)} set a reverse-diffusion sampler of process "
                       "'wavegrad', but this run's process is 'flow' (an ODE over a time grid): "
                       f'choose sampling.solver from {SOLVERS} (presets euler, midpoint, heun) '
                       'and drop those fields')
    if s.algorithm not in sampling.ALGORITHMS:
      raise ValueError(f'sampling.algorithm must be one of {sampling.ALGORITHMS}, got '
                       f'{s.algorithm!r}')
    clip = float(s.clip)
    if not (clip >= 0 and np.isfinite(clip)):
      raise ValueError(f'sampling.clip must be >= 0 (0 off), got {clip}')
    k = s.final_projection
    if isinstance(k, bool) or not isinstance(k, (int, float)) or k != int(k) or k < 0:
      raise ValueError(f'sampling.final_projection must be an integer >= 0 (Griffin-Lim '
                       f'projections of the final sample; 0 off), got {k!r}')
    m = s.final_projection_momentum
    if not (isinstance(m, (int, float)) and 0.0 <= m <= 1.0):
      raise ValueError(f'sampling.final_projection_momentum must lie in [0, 1], got {m!r}')

  @classmethod
  def uses_sampler_options(cls, settings):
    # The model-free baseline runs sampling's Griffin-Lim, as for the paper's process.
    return settings.algorithm == 'griffin_lim'

  def check_sampler(self, settings):
    self.check_sampling(settings)

  def make_sampler(self, net_fn, settings, hop_length, options=None, multi=False):
    self.check_sampling(settings)
    hop = int(hop_length)
    if settings.algorithm == 'griffin_lim':
      # The model-free baseline: the same Griffin-Lim as for the paper's process (the grid unused).
      make = sampling.make_multi_schedule_sampler if multi else sampling.make_sampler
      return make(net_fn, hop_length=hop, options=options)
    solve = functools.partial(
        ode_solve, net_fn, hop_length=hop, prediction=self.prediction,
        solver=settings.solver, sigma=self.sigma, prior=self.prior, clip=float(settings.clip),
        source=self.source, frontend=self.frontend,
        projection=None if not settings.final_projection or self.frontend is None else
        final_projection_options(self.frontend, settings.final_projection,
                                 settings.final_projection_momentum))

    fn = jax.vmap(solve, in_axes=(None, 0, None, None)) if multi else solve

    def sampler(params, times, mel, rng, gla_mask=None, target_magnitude=None):
      if gla_mask is not None or target_magnitude is not None:
        raise ValueError("GLA correction is defined for process 'wavegrad' only")
      return fn(params, times, mel, rng)

    return jax.jit(sampler)
