"""`SamplerOptions`: the static settings of the one sampler, read once from config.sampling.

Every field but the schedule and the data (see the package docstring for what each option does);
`SamplerOptions.from_config` reads config.sampling by field name, optionally under a named preset
(`presets.SAMPLER_PRESETS`), the GLA section by `gla.GLAOptions.from_config` and the prior from
config.diffusion (`priors.PriorOptions`), since it must match training.
"""
import dataclasses
from typing import Optional

import numpy as np

from wavegrad_jax.diffusion import priors
from wavegrad_jax.sampling import presets
from wavegrad_jax.sampling.gla import GLAOptions

NOISE_SCALES = ('posterior', 'beta')
ALGORITHMS = ('diffusion', 'griffin_lim')


@dataclasses.dataclass(frozen=True)
class SamplerOptions:
  """Static settings of the reverse process (hashable): everything but the schedule and the data.

  A new option is one field here whose default is the old behaviour; `from_config` reads
  config.sampling.<field name> when the config has it, so the config default goes in
  experiments/configs/common.sampling_config() under the same name.

  Attributes:
    eta: 1 the paper's ancestral step, 0 the deterministic DDIM-style step, in between DDIM with
      eta times the posterior noise (needs noise_scale 'posterior').
    noise_scale: std of the ancestral step's noise: 'posterior' (sigma~) or 'beta' (sqrt(beta_n)).
    clip: if > 0, y is clamped to [-clip, clip] after each step (lmnt-com/wavegrad: 1); 0 off.
    gla: `GLAOptions` of the GLA-Grad correction, or None (off); with algorithm 'griffin_lim', the
      Griffin-Lim settings.
    clip_x0: if > 0, the clean estimate y0_hat is clamped to [-clip_x0, clip_x0] inside each step
      and the step is taken from the clamped estimate (ivanvovk/WaveGrad: 1); 0 off.
    algorithm: 'diffusion' (reverse diffusion with the denoiser) or 'griffin_lim' (no denoiser:
      `gla.griffin_lim` run on the starting noise y_N towards the GLA target magnitude; the
      schedule is ignored).
    prior: `priors.Prior` (PriorGrad: y_N and each step's noise scaled by the mel's frame std),
      or None for N(0, I); built from config.diffusion, since it must match training.
  """
  eta: float = 1.0
  noise_scale: str = 'posterior'
  clip: float = 0.0
  gla: Optional[GLAOptions] = None
  prior: Optional[priors.Prior] = None
  clip_x0: float = 0.0
  algorithm: str = 'diffusion'

  def __post_init__(self):
    if self.noise_scale not in NOISE_SCALES:
      raise ValueError(f'noise_scale must be one of {NOISE_SCALES}, got {self.noise_scale!r}')
    if not 0.0 <= self.eta <= 1.0:
      raise ValueError(f'eta must lie in [0, 1] (0 deterministic, 1 ancestral), got {self.eta}')
    if self.noise_scale == 'beta' and self.eta != 1.0:
      raise ValueError("noise_scale='beta' defines the ancestral sampler only; use eta=1.0 or "
                       "noise_scale='posterior'")
    for name in ('clip', 'clip_x0'):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and value >= 0.0 and np.isfinite(value)):
        raise ValueError(f'sampling.{name} must be a positive bound (e.g. 1.0 for audio in '
                         f'[-1, 1]) or 0 to switch it off, got {value!r}')
    if self.gla is not None and not isinstance(self.gla, GLAOptions):
      raise ValueError(f'gla must be a sampling.GLAOptions or None, got {self.gla!r}')
    if self.prior is not None and not isinstance(self.prior, priors.Prior):
      raise ValueError(f'prior must be a priors.Prior or None, got {self.prior!r}')
    if self.algorithm not in ALGORITHMS:
      raise ValueError(f"sampling.algorithm must be one of {ALGORITHMS} ('diffusion': the model's "
                       f"reverse diffusion; 'griffin_lim': no model), got {self.algorithm!r}")
    if self.algorithm == 'griffin_lim' and self.gla is None:
      raise ValueError("algorithm='griffin_lim' runs the gla section's Griffin-Lim: give gla "
                       '(a GLAOptions; from a config, SamplerOptions.from_config builds it)')

  @classmethod
  def from_config(cls, config, preset=None):
    """The options of config.sampling (and config.audio for GLA), optionally under a preset.

    Args:
      config: a full config; every field of this class but `gla` and `prior` is read from
        config.sampling by name (converted to the field's type), `gla` by
        `GLAOptions.from_config`, `prior` from config.diffusion by `priors.PriorOptions`.
      preset: a name in `presets.SAMPLER_PRESETS` whose fields replace the config's (the config
        itself is not changed), or None.
    Returns:
      `SamplerOptions`.
    Raises:
      ValueError: an invalid value or an unknown preset, named in the message.
    """
    s = config.sampling
    if preset is not None:
      process = config.get('process', None)
      process = process.get('name', 'wavegrad') if process is not None else 'wavegrad'
      s = presets.merged_fields(s.to_dict(), preset, process)
    values = {}
    for f in dataclasses.fields(cls):
      if f.name not in ('gla', 'prior') and f.name in s:
        try:
          values[f.name] = type(f.default)(s[f.name])
        except (TypeError, ValueError):
          raise ValueError(f'sampling.{f.name} must be a {type(f.default).__name__}, got '
                           f'{s[f.name]!r}') from None
    griffin_lim = values.get('algorithm', cls.algorithm) == 'griffin_lim'
    gla = GLAOptions.from_config(config, force=griffin_lim,
                                 gla_section=None if preset is None else s['gla'])
    if (gla is not None and not griffin_lim and gla.placement == 'mean'
        and values.get('clip', cls.clip) != 1.0):
      # GLA-Grad's mean placement rescales the mean to a 0.95 peak and relies on the clamp of y
      # after each step; without it the setting names no published algorithm.
      raise ValueError(
          "sampling.gla.enabled=True with gla.placement='mean' is GLA-Grad, which also clamps y "
          'to [-1, 1] after every step: set sampling.clip=1 (with the gla defaults that is the '
          "preset gla_grad, the authors' code; gla.variant='fast' and gla.momentum=0.1111 make "
          "it gla_grad_fast), or set gla.placement='clean_estimate' (gla_clean_estimate)")
    return cls(gla=gla, prior=priors.make_prior(priors.PriorOptions.from_config(config)), **values)

  @classmethod
  def resolve(cls, options=None, **values):
    """`options` (default: the defaults) with the keyword `values` replaced; validated."""
    if options is None:
      return cls(**values)
    if not isinstance(options, cls):
      raise ValueError(f'options must be a sampling.SamplerOptions, got {options!r}')
    return dataclasses.replace(options, **values) if values else options
