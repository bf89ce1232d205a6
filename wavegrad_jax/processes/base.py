"""The interface every generative process implements (see the package docstring).

A process is a frozen, hashable dataclass built once from a config (its `from_config`
classmethod) and passed down explicitly: the train step takes its `training_loss`, inference
takes its `parse_grid` and `make_sampler`, which read `SamplingSettings` (config.sampling, read
once at the edge: `options.py`). Its network function is
net_fn(params, x [B, T], mel [B, F, n_mels], c [B]) -> [B, T], where c is the scalar the process conditions on (the paper's noise level, flow time t).
"""
import abc
import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
  """config.sampling as a process's own sampler code reads it (reverse diffusion's further
  settings are `sampling.SamplerOptions`, built beside it at the edge).

  Values are kept as the config gives them (the checks convert them), so error messages quote
  them unchanged.

  Attributes:
    algorithm: sampling.algorithm, 'diffusion' (the network) or 'griffin_lim' (no network).
    solver: sampling.solver, the flow ODE solver ('euler', 'midpoint', 'heun').
    eta: sampling.eta (1 the paper's ancestral step; process 'wavegrad' only).
    clip: sampling.clip, |y| bound in waveform units after each step (0 off).
    clip_x0: sampling.clip_x0, the clean estimate's bound (0 off; process 'wavegrad' only).
    gla_enabled: sampling.gla.enabled, the GLA-Grad correction (process 'wavegrad' only).
    named_schedules: sampling.named_schedules as ((name, spec), ...): the names a grid spec may
      use; None when the config has none.
    final_projection: sampling.final_projection, Griffin-Lim projections of the final sample
      (process 'flow' only; 0 off).
    final_projection_momentum: sampling.final_projection_momentum (fast Griffin-Lim's).
  """
  algorithm: str = 'diffusion'
  solver: str = 'euler'
  eta: Any = 1.0
  clip: Any = 0.0
  clip_x0: Any = 0.0
  gla_enabled: bool = False
  named_schedules: Any = None
  final_projection: Any = 0
  final_projection_momentum: Any = 0.99

  @classmethod
  def from_config(cls, config):
    """The settings of a full config's sampling section."""
    s = config.sampling
    named = s.get('named_schedules', None)
    return cls(algorithm=s.get('algorithm', 'diffusion'), solver=s.get('solver', 'euler'),
               eta=s.get('eta', 1.0), clip=s.get('clip', 0.0), clip_x0=s.get('clip_x0', 0.0),
               gla_enabled=bool(s.get('gla', {}).get('enabled', False)),
               named_schedules=None if named is None else tuple(dict(named).items()),
               final_projection=s.get('final_projection', 0),
               final_projection_momentum=s.get('final_projection_momentum', 0.99))


@dataclasses.dataclass(frozen=True)
class Process(abc.ABC):
  """Base class: the methods a process defines. Subclasses are frozen dataclasses."""

  name = 'process'

  @classmethod
  @abc.abstractmethod
  def from_config(cls, config):
    """Builds the process from a full config; raises ValueError naming a bad field."""

  @classmethod
  def recorded_options(cls, section):
    """{field: value} of the process's options that change what a checkpoint means (compared on
    resume); `section` is config.process.<name> as a plain dict ({} when absent)."""
    return {}

  @abc.abstractmethod
  def training_loss(self, net_fn, params, rng, clean, mel):
    """The training objective on one batch.

    Args:
      net_fn: net_fn(params, x [B, T], mel, c [B]) -> [B, T].
      params: passed to net_fn.
      rng: PRNG key for every draw of the step (time / noise level, source noise).
      clean: [B, T] float32 clean waveform crops (samples).
      mel: [B, T / hop, n_mels] conditioning log-mels.
    Returns:
      (scalar loss, dict of scalar parts: 'main' and any spectral terms).
    """

  @classmethod
  @abc.abstractmethod
  def parse_grid(cls, spec, settings):
    """The sampler's traced grid for a spec string (and `SamplingSettings`): float64 numpy array.

    'wavegrad': the betas [N] of a schedule; 'flow': the times [N + 1] of a time grid. Raises
    ValueError with the accepted forms.
    """

  @classmethod
  @abc.abstractmethod
  def network_evaluations(cls, grid, settings):
    """Network calls one sample over `grid` costs under `SamplingSettings` (what equal-compute
    comparisons count)."""

  @classmethod
  def check_sampling(cls, settings):
    """Raises ValueError (one line, naming the fields) for `SamplingSettings` of another process."""

  @classmethod
  def uses_sampler_options(cls, settings):
    """Whether this process's sampler under `settings` is `sampling`'s, configured by a
    `sampling.SamplerOptions` (then the edge builds and validates one)."""
    return False

  def check_sampler(self, settings):
    """The checks `make_sampler` runs before anything is built (raise ValueError); none here."""

  @abc.abstractmethod
  def make_sampler(self, net_fn, settings, hop_length, options=None, multi=False):
    """A jitted sampler(params, grid, mel [B, F, M], rng, gla_mask=None, target_magnitude=None).

    Args:
      net_fn: net_fn(params, x [B, T], mel, c [B]) -> [B, T].
      settings: `SamplingSettings`.
      hop_length: the mel hop in samples.
      options: `sampling.SamplerOptions` where `uses_sampler_options(settings)`, else None.
      multi: grid is [K, ...] and the result [K, B, T] (every grid sees the same mel and noise).
    Returns [B, F * hop] float32 waveforms. Compiled once per grid length and shape.
    """
