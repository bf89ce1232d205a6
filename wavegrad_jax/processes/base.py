"""The interface every generative process implements (see the package docstring).

A process is a frozen, hashable dataclass built once from a config (`from_config`) and passed
down explicitly: the train step takes its `training_loss`, inference takes its `parse_grid` and
`make_sampler`. Its network function is net_fn(params, x [B, T], mel [B, F, n_mels], c [B]) ->
[B, T], where c is the scalar the process conditions on (the paper's noise level, flow time t).
"""
import abc
import dataclasses


@dataclasses.dataclass(frozen=True)
class Process(abc.ABC):
  """Base class: the methods a process defines. Subclasses are frozen dataclasses."""

  name = 'process'

  @classmethod
  @abc.abstractmethod
  def from_config(cls, config):
    """Builds the process from a full config; raises ValueError naming a bad field."""

  @classmethod
  def recorded_options(cls, config):
    """{field: value} of config.process that changes what a checkpoint means (for comparisons)."""
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
  def parse_grid(cls, spec, config):
    """The sampler's traced grid for a spec string: float64 numpy array.

    'wavegrad': the betas [N] of a schedule; 'flow': the times [N + 1] of a time grid. Raises
    ValueError with the accepted forms.
    """

  @classmethod
  @abc.abstractmethod
  def network_evaluations(cls, grid, config):
    """Network calls one sample over `grid` costs (what equal-compute comparisons count)."""

  @classmethod
  def check_sampling(cls, config):
    """Raises ValueError (one line, naming the fields) for sampling settings of another process."""

  @abc.abstractmethod
  def make_sampler(self, net_fn, config, multi=False):
    """A jitted sampler(params, grid, mel [B, F, M], rng, gla_mask=None, target_magnitude=None).

    Returns [B, F * hop] float32 waveforms; with multi=True, grid is [K, ...] and the result
    [K, B, T] (every grid sees the same mel and noise). Compiled once per grid length and shape.
    """
