"""Reverse diffusion: one jitted scan over a schedule of any length (6 to 1000 steps).

The denoiser is any function eps_fn(params, noisy [B, T], mel [B, F, M], noise_level [B]) -> [B, T],
so the trained model and analytic oracles in tests plug in alike. Schedules are traced arrays, so a
sampler compiles once per (schedule length, batch shape), never per step or per schedule.
May import: jax, numpy, `wavegrad_jax.audio` (the STFT, Griffin-Lim), `wavegrad_jax.diffusion`
(noise levels, schedules, the prior) and the shared leaves; never a Flax module, processes,
training, inference or evaluation code.

Options of the one sampler travel as one frozen `SamplerOptions`, built once from
`config.sampling` (`SamplerOptions.from_config`) or by hand; named presets (`SAMPLER_PRESETS`)
set config fields on top of a config. The options:
  eta: 1 is the paper's ancestral step, 0 the deterministic DDIM-style step (Song et al., 2021) on
    the same continuous noise levels, in between DDIM with eta times the posterior noise.
  noise_scale: the ancestral step's noise ('posterior' or 'beta').
  clip: y clamped to [-clip, clip] after each step, as lmnt-com/wavegrad does with 1.
  clip_x0: the clean estimate y0_hat clamped to [-clip_x0, clip_x0] inside each step, the step
    then taken from the clamped estimate, as ivanvovk/WaveGrad does with 1.
  gla: GLA-Grad phase correction (Liu et al., ICASSP 2024) inside chosen reverse steps: Griffin-Lim
    projections that pull the waveform towards a target |STFT|, from the conditioning mel's
    pseudo-inverse or given by the caller (copy synthesis). Which steps use it is a traced [N] mask,
    so changing the selection never recompiles.
  algorithm: 'diffusion' (the above), or 'griffin_lim': no model at all, the gla section's
    Griffin-Lim run from the same starting noise y_N, the baseline that shows what the diffusion
    model adds.

Where the correction enters a step (`GLAOptions.placement`):
  'mean' (GLA-Grad, presets 'gla_grad' and 'gla_grad_fast'): as the authors' code
    (github.com/GLA-Grad/GLA-Grad, gla_extension.py `gla_update`, called in lmnt-com/wavegrad's
    loop after the mean and before the noise): the step's deterministic part (the ancestral
    posterior mean, or DDIM's sqrt(abar_{n-1}) y0 + direction term) is replaced by its
    projection, rescaled to a `mean_peak` of 0.95, before the step's noise is added; y is then
    clamped to [-1, 1] (`clip`). The authors correct the first (noisiest) 3 steps with 32
    Griffin-Lim iterations of momentum 0.1. Two presets run it:
      'gla_grad': exactly the authors' code (`phase.GriffinLimOptions.variant = 'authors'`): their
        loop with its in-place quirks (its first iteration projects zero, its second the
        sign-flipped input scaled by about 1e12; see `phase`), torch.stft framing and
        normalisation, and the unclamped target pinv(fb) exp(mel) (`phase.mel_pinv_magnitude`
        with clamp=False); momentum 0.1 as theirs.
      'gla_grad_fast': the textbook fast Griffin-Lim the paper describes (variant 'fast'), all 32
        iterations, momentum 0.1 in their parameterisation t = c_k - 0.1 c_{k-1}, 1/9 in
        Perraudin's; the target clamped at 0. (Before both existed, 'gla_grad' was this one: the
        results measured then are this preset's.)
  'clean_estimate' (a variant, preset 'gla_clean_estimate'): the clean estimate
    y0_hat = (y_n - sqrt(1 - abar_n) eps) / sqrt(abar_n) is projected, y0' = GLA(y0_hat); the
    noise is re-derived at this step's level as eps' = (y_n - sqrt(abar_n) y0') / sqrt(1 - abar_n),
    and the usual step (ancestral or DDIM) runs with eps'. Only the clean-signal part of the update
    changes and no rescaling is needed, whatever the step's noise level. GLA's target is a clean
    magnitude, so it is applied to the clean estimate, which is also where GLA-Grad++ (Baoueb et
    al., arXiv 2511.22293) moved it.
"""
import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax.audio import phase
from wavegrad_jax.diffusion import priors
from wavegrad_jax.diffusion import schedules

NOISE_SCALES = ('posterior', 'beta')
GLA_MAGNITUDES = ('mel_pinv', 'given')
GLA_PLACEMENTS = ('mean', 'clean_estimate')
ALGORITHMS = ('diffusion', 'griffin_lim')


# ----------------------------------------------------------------------------------- GLA options


def _parse_steps(steps):
  """A GLA step selection as ('all' | 'none' | 'first' | 'last' | 'list', value); raises on junk."""
  usage = ("GLA steps must be 'all', 'none', 'first:K' (the K noisiest steps, run first), "
           "'last:K' (the K least noisy), 'list:i,j,...' (schedule indices, 0 = the last step "
           f"run) or a sequence of such indices; got {steps!r}")
  if isinstance(steps, str):
    spec = steps.strip().lower()
    if spec in ('all', 'none'):
      return spec, None
    kind, sep, value = spec.partition(':')
    if sep and kind in ('first', 'last'):
      try:
        count = int(value)
      except ValueError:
        raise ValueError(usage) from None
      if count < 0:
        raise ValueError(usage)
      return kind, count
    if sep and kind == 'list':
      try:
        indices = tuple(int(v) for v in value.split(',') if v.strip())
      except ValueError:
        raise ValueError(usage) from None
      return 'list', indices
    raise ValueError(usage)
  try:
    indices = tuple(_step_index(v) for v in steps)
  except TypeError:
    raise ValueError(usage) from None
  return 'list', indices


def check_gla_steps(steps):
  """Raises ValueError (with the accepted forms) unless `steps` is a GLA step selection."""
  _parse_steps(steps)


def _step_index(value):
  """int(value) for Python and numpy integers; TypeError for floats, bools, strings and the like."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
    raise TypeError(f'{value!r} is not a step index')
  return int(value)


def gla_step_mask(steps, num_steps):
  """Which reverse steps of an N-step schedule apply the GLA correction.

  Args:
    steps: 'all', 'none', 'first:K' (the K noisiest steps, which the sampler runs first: schedule
      indices N-K .. N-1, as GLA-Grad), 'last:K' (indices 0 .. K-1), 'list:i,j,...' or a sequence
      of schedule indices (0 <= i < N; 0 is the last step run, N - 1 the first). K >= N selects all.
    num_steps: N, the schedule length.
  Returns:
    [N] float32 numpy array of 0 / 1, indexed like the schedule's betas; pass it to a sampler as
    `gla_mask` (a traced argument: another selection of the same length does not recompile).
  """
  kind, value = _parse_steps(steps)
  mask = np.zeros((int(num_steps),), np.float32)
  if kind == 'all':
    mask[:] = 1.0
  elif kind == 'first':
    mask[max(num_steps - value, 0):] = 1.0
  elif kind == 'last':
    mask[:min(value, num_steps)] = 1.0
  elif kind == 'list':
    bad = [i for i in value if not 0 <= i < num_steps]
    if bad:
      raise ValueError(f'GLA step indices {bad} are outside the schedule of {num_steps} steps '
                       f'(valid: 0 .. {num_steps - 1}, 0 is the last step run)')
    mask[list(value)] = 1.0
  return mask


@dataclasses.dataclass(frozen=True)
class GLAOptions:
  """Static settings of the GLA-Grad correction (hashable; built by `gla_options_from_config`).

  Attributes:
    griffin_lim: `phase.GriffinLimOptions`: STFT sizes, iterations per corrected step, momentum.
    steps: default step selection when a call passes no gla_mask (see `gla_step_mask`).
    magnitude: 'mel_pinv' (target |STFT| from the conditioning log-mel through the filterbank's
      pseudo-inverse) or 'given' (the caller passes target_magnitude, e.g. the true |STFT| in copy
      synthesis).
    placement: 'mean' (GLA-Grad's) or 'clean_estimate' (see the module docstring).
    mean_peak: 'mean' placement only: peak |sample| the projected mean is rescaled to, as the
      GLA-Grad code does (0.95 there); 0 keeps its scale.
    mel_frontend: `phase.MelFrontend` of the conditioning mels; required by 'mel_pinv', whose STFT
      must then equal the frontend's (n_fft, hop_length, win_length, window).
  """
  # Defaults mirror experiments/configs/common.gla_config() (tests/test_sampling.py checks it).
  griffin_lim: phase.GriffinLimOptions
  steps: object = 'first:3'
  magnitude: str = 'mel_pinv'
  placement: str = 'mean'
  mean_peak: float = 0.95
  mel_frontend: phase.MelFrontend = None

  def __post_init__(self):
    if not isinstance(self.griffin_lim, phase.GriffinLimOptions):
      raise ValueError(f'griffin_lim must be a phase.GriffinLimOptions, got {self.griffin_lim!r}')
    if self.magnitude not in GLA_MAGNITUDES:
      raise ValueError(f'GLA magnitude must be one of {GLA_MAGNITUDES}, got {self.magnitude!r}')
    if self.placement not in GLA_PLACEMENTS:
      raise ValueError(f'GLA placement must be one of {GLA_PLACEMENTS}, got {self.placement!r}')
    if not self.mean_peak >= 0.0:
      raise ValueError(f'GLA mean_peak must be >= 0 (0 keeps the scale), got {self.mean_peak}')
    _parse_steps(self.steps)
    if not isinstance(self.steps, str):
      # Keeps the dataclass hashable when a list of indices is given.
      object.__setattr__(self, 'steps', tuple(_parse_steps(self.steps)[1]))
    if self.magnitude == 'mel_pinv':
      mel, gl = self.mel_frontend, self.griffin_lim
      if mel is None:
        raise ValueError("GLA magnitude='mel_pinv' needs the mel frontend (mel_frontend=...)")
      ours = (gl.n_fft, gl.hop_length, gl.win_length, gl.window, gl.framing)
      theirs = (mel.n_fft, mel.hop_length, mel.win_length, mel.window, mel.framing)
      if ours != theirs:
        raise ValueError(
            "GLA magnitude='mel_pinv' estimates the |STFT| the mel was made from, so the GLA STFT "
            f'(n_fft, hop_length, win_length, window, framing) = {ours} must equal the mel '
            f"frontend's {theirs}; set them to 0 / '' to inherit it, or use magnitude='given'")


def gla_options_from_config(config, force=False):
  """`GLAOptions` from config.sampling.gla and config.audio, or None when GLA is disabled.

  Args:
    config: a full config; gla.n_fft, hop_length, win_length (samples) of 0 and gla.window,
      pad_mode of '' inherit config.audio's.
    force: build them even when gla.enabled is false (the 'griffin_lim' algorithm's settings).
  Returns:
    `GLAOptions`, or None if config.sampling.gla.enabled is false and not `force`.
  Raises:
    ValueError: an option value is invalid (the message names it and the valid ones).
  """
  g, a = config.sampling.gla, config.audio
  if not (g.enabled or force):
    return None
  mel_frontend = phase.MelFrontend.from_config(a)
  griffin_lim = phase.GriffinLimOptions(
      n_fft=int(g.n_fft or a.n_fft), hop_length=int(g.hop_length or a.hop_length),
      win_length=int(g.win_length or a.win_length),
      window=g.window or a.window, pad_mode=g.pad_mode or a.pad_mode,
      iterations=int(g.iterations), momentum=float(g.momentum), framing=mel_frontend.framing,
      variant=str(g.get('variant', 'fast')))
  return GLAOptions(griffin_lim=griffin_lim, steps=g.steps, magnitude=g.magnitude,
                    placement=g.placement, mean_peak=float(g.mean_peak),
                    mel_frontend=mel_frontend)


# ------------------------------------------------------------------------- options and presets


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
        `gla_options_from_config`, `prior` from config.diffusion by `priors.from_config`.
      preset: a name in `SAMPLER_PRESETS` applied first (`preset_config`), or None.
    Returns:
      `SamplerOptions`.
    Raises:
      ValueError: an invalid value or an unknown preset, named in the message.
    """
    if preset is not None:
      config = preset_config(config, preset)
    s = config.sampling
    values = {}
    for f in dataclasses.fields(cls):
      if f.name not in ('gla', 'prior') and f.name in s:
        try:
          values[f.name] = type(f.default)(s[f.name])
        except (TypeError, ValueError):
          raise ValueError(f'sampling.{f.name} must be a {type(f.default).__name__}, got '
                           f'{s[f.name]!r}') from None
    griffin_lim = values.get('algorithm', cls.algorithm) == 'griffin_lim'
    gla = gla_options_from_config(config, force=griffin_lim)
    if (gla is not None and not griffin_lim and gla.placement == 'mean'
        and values.get('clip', cls.clip) != 1.0):
      # GLA-Grad's mean placement rescales the mean to a 0.95 peak and relies on the clamp of y
      # after each step; without it the setting names no published algorithm.
      raise ValueError(
          "sampling.gla.enabled=True with gla.placement='mean' is GLA-Grad, which also clamps y "
          'to [-1, 1] after every step: set sampling.clip=1 (with the gla defaults that is the '
          "preset gla_grad, the authors' code; gla.variant='fast' and gla.momentum=0.1111 make "
          "it gla_grad_fast), or set gla.placement='clean_estimate' (gla_clean_estimate)")
    return cls(gla=gla, prior=priors.from_config(config), **values)

  @classmethod
  def resolve(cls, options=None, **values):
    """`options` (default: the defaults) with the keyword `values` replaced; validated."""
    if options is None:
      return cls(**values)
    if not isinstance(options, cls):
      raise ValueError(f'options must be a sampling.SamplerOptions, got {options!r}')
    return dataclasses.replace(options, **values) if values else options


# Named samplers: each sets config.sampling fields (a dict for a sub-section such as gla) on top of
# a config; what a preset leaves out keeps the config's value (noise_scale, GLA's STFT sizes).
# Every preset sets the fields that define it, so that a config's clipping or GLA never leaks into
# another preset's row of a comparison. A new preset is one entry.
_PLAIN = {'algorithm': 'diffusion', 'clip': 0.0, 'clip_x0': 0.0, 'gla': {'enabled': False},
          'solver': 'euler'}
# The published algorithm's Griffin-Lim as textbook fast GLA (see the module docstring): 32
# iterations of momentum 0.1 in the authors' parameterisation, t = c_k - 0.1 c_{k-1}, which is
# Perraudin's c_k + a (c_k - c_{k-1}) up to scale with a = 0.1 / (1 - 0.1) = 1/9.
GLA_GRAD_GRIFFIN_LIM = {'magnitude': 'mel_pinv', 'iterations': 32, 'momentum': 0.1 / 0.9,
                        'variant': 'fast'}
# The same as the authors' code runs it: their loop, whose momentum is their m = 0.1 itself.
GLA_GRAD_AUTHORS_GRIFFIN_LIM = {'magnitude': 'mel_pinv', 'iterations': 32, 'momentum': 0.1,
                                'variant': 'authors'}
_GLA_GRAD_STEP = {'enabled': True, 'placement': 'mean', 'mean_peak': 0.95, 'steps': 'first:3'}
SAMPLER_PRESETS = {
    # The paper's sampler.
    'ancestral': {**_PLAIN, 'eta': 1.0},
    # DDIM-style deterministic steps on the same continuous noise levels.
    'deterministic': {**_PLAIN, 'eta': 0.0},
    # lmnt-com/wavegrad: y clamped to [-1, 1] after every step.
    'ancestral_clip_y': {**_PLAIN, 'eta': 1.0, 'clip': 1.0},
    # ivanvovk/WaveGrad: the clean estimate clamped to [-1, 1] inside every step.
    'ancestral_clip_x0': {**_PLAIN, 'eta': 1.0, 'clip_x0': 1.0},
    # GLA-Grad (Liu et al., ICASSP 2024) exactly as the authors' code runs it: their Griffin-Lim
    # loop (quirks included) on the step's mean on the 3 noisiest steps, rescaled to a 0.95 peak,
    # y clamped to [-1, 1] after every step.
    'gla_grad': {**_PLAIN, 'eta': 1.0, 'clip': 1.0,
                 'gla': {**_GLA_GRAD_STEP, **GLA_GRAD_AUTHORS_GRIFFIN_LIM}},
    # The same steps with the textbook fast Griffin-Lim the paper describes (what 'gla_grad' was
    # before the authors' loop was added).
    'gla_grad_fast': {**_PLAIN, 'eta': 1.0, 'clip': 1.0,
                      'gla': {**_GLA_GRAD_STEP, **GLA_GRAD_GRIFFIN_LIM}},
    # This project's variant: the same Griffin-Lim on the clean estimate, eps re-derived, no
    # rescaling or clamping.
    'gla_clean_estimate': {**_PLAIN, 'eta': 1.0,
                           'gla': {'enabled': True, 'placement': 'clean_estimate',
                                   'steps': 'first:3', **GLA_GRAD_GRIFFIN_LIM}},
    # No model: the same Griffin-Lim from the starting noise towards pinv(mel filterbank) exp(mel).
    'griffin_lim': {**_PLAIN, 'algorithm': 'griffin_lim', 'eta': 1.0,
                    'gla': {'enabled': False, **GLA_GRAD_GRIFFIN_LIM}},
    # Process 'flow' (wavegrad_jax/processes/flow.py): ODE solvers over a time grid.
    'euler': {**_PLAIN, 'eta': 1.0, 'solver': 'euler'},
    'midpoint': {**_PLAIN, 'eta': 1.0, 'solver': 'midpoint'},
    'heun': {**_PLAIN, 'eta': 1.0, 'solver': 'heun'},
}

# The process each preset samples ('any' for the model-free baseline); every other preset is the
# paper's process's. A preset of the other process is refused (`preset_config`).
PRESET_PROCESS = {'griffin_lim': 'any', 'euler': 'flow', 'midpoint': 'flow', 'heun': 'flow'}


def preset_process(name):
  """The process a sampler preset is for: 'wavegrad', 'flow' or 'any'."""
  return PRESET_PROCESS.get(name, 'wavegrad')


def presets_for(process_name):
  """The preset names that sample a process, in `SAMPLER_PRESETS` order."""
  return [n for n in SAMPLER_PRESETS if preset_process(n) in (process_name, 'any')]


def _config_process(config):
  section = config.get('process', None)
  return section.get('name', 'wavegrad') if section is not None else 'wavegrad'


def _set_fields(section, changes, path):
  for key, value in changes.items():
    if key not in section:
      raise ValueError(f'the sampler preset sets {path}.{key}, which the config does not have')
    if isinstance(value, dict):
      _set_fields(section[key], value, f'{path}.{key}')
    else:
      section[key] = value


def with_sampling_fields(config, changes):
  """A copy of `config` with config.sampling fields set from `changes` (config is not changed).

  Args:
    config: a full config.
    changes: {field: value}, a nested dict for a sub-section (e.g. {'gla': {'enabled': True}}).
  Returns:
    a new ConfigDict.
  Raises:
    ValueError: a field the config's sampling section does not have.
  """
  out = config.copy_and_resolve_references()
  with out.unlocked():
    _set_fields(out.sampling, changes, 'sampling')
  return out


def preset_config(config, name):
  """A copy of `config` whose sampling section runs the preset `name` (config is not changed).

  Args:
    config: a full config.
    name: a key of `SAMPLER_PRESETS`.
  Returns:
    a new ConfigDict.
  Raises:
    ValueError: unknown preset name (the message lists the presets).
  """
  if name not in SAMPLER_PRESETS:
    raise ValueError(f'unknown sampler preset {name!r}: choose one of {list(SAMPLER_PRESETS)} '
                     '(sampling.SAMPLER_PRESETS), or add an entry there')
  process = _config_process(config)
  if preset_process(name) not in (process, 'any'):
    raise ValueError(f'sampler preset {name!r} samples process {preset_process(name)!r}, but this '
                     f'run was trained with process {process!r}: choose one of '
                     f'{presets_for(process)}')
  return with_sampling_fields(config, SAMPLER_PRESETS[name])


# ------------------------------------------------------------------------------------ the sampler


def schedule_terms(betas):
  """Per-step terms of a schedule of betas [N]: a dict of [N] float32 arrays.

  alpha = 1 - beta, alpha_bar = cumprod(alpha), alpha_bar_prev (1 before the first step),
  noise_level = sqrt(alpha_bar), sigma_posterior = sqrt((1 - ab_prev) / (1 - ab) * beta), and
  one_minus_alpha_bar(_prev) = 1 - alpha_bar(_prev).
  """
  betas = jnp.asarray(betas, jnp.float32)
  alphas = 1.0 - betas
  # 1 - alpha_bar through log1p / expm1: in float32, 1 - (1 - 1e-6) is off by ~6%, and the GLA
  # correction divides by its square root.
  log_alpha_bar = jnp.cumsum(jnp.log1p(-betas))
  alpha_bar = jnp.exp(log_alpha_bar)
  one_minus = -jnp.expm1(log_alpha_bar)
  alpha_bar_prev = jnp.concatenate([jnp.ones((1,), jnp.float32), alpha_bar[:-1]])
  one_minus_prev = jnp.concatenate([jnp.zeros((1,), jnp.float32), one_minus[:-1]])
  return dict(
      beta=betas, alpha=alphas, alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev,
      one_minus_alpha_bar=one_minus, one_minus_alpha_bar_prev=one_minus_prev,
      noise_level=jnp.sqrt(alpha_bar),
      sigma_posterior=jnp.sqrt(one_minus_prev / one_minus * betas))


def _step_mean_and_std(y, eps, t, options):
  """The deterministic part [B, T] of a reverse step and the std (scalar) of its added noise."""
  keep_noise = 1.0 - t['is_last']
  eta, noise_scale = options.eta, options.noise_scale
  if eta == 1.0:
    mean = (y - t['beta'] / jnp.sqrt(t['one_minus_alpha_bar']) * eps) / jnp.sqrt(t['alpha'])
    sigma = t['sigma_posterior'] if noise_scale == 'posterior' else jnp.sqrt(t['beta'])
    return mean, keep_noise * sigma
  y0 = (y - jnp.sqrt(t['one_minus_alpha_bar']) * eps) / jnp.sqrt(t['alpha_bar'])
  sigma = eta * t['sigma_posterior'] * keep_noise
  direction = jnp.sqrt(jnp.maximum(t['one_minus_alpha_bar_prev'] - jnp.square(sigma), 0.0))
  return jnp.sqrt(t['alpha_bar_prev']) * y0 + direction * eps, sigma


def reverse_step(y, eps, z, t, options=None, **option_values):
  """One reverse step y_n -> y_{n-1} (without clipping or GLA).

  Args:
    y: [B, T] current sample y_n.
    eps: [B, T] predicted noise eps_theta(y_n, x, l_n).
    z: [B, T] standard normal noise for this step.
    t: dict of scalar schedule terms at step n (see `schedule_terms`), plus 'is_last'.
    options: `SamplerOptions` (its eta and noise_scale are used); None for the defaults.
    **option_values: fields of `SamplerOptions` replacing those of `options` (eta=0.0, ...).
  Returns:
    [B, T] y_{n-1}.
  """
  options = SamplerOptions.resolve(options, **option_values)
  mean, std = _step_mean_and_std(y, eps, t, options)
  return mean + std * z


def gla_corrected_eps(y, eps, t, target_magnitude, griffin_lim):
  """The 'clean_estimate' GLA-Grad correction: eps re-derived from a Griffin-Lim-projected y0_hat.

  Args:
    y: [B, T] current sample y_n.
    eps: [B, T] predicted noise.
    t: dict of scalar schedule terms at step n (see `schedule_terms`).
    target_magnitude: [B, T // hop, n_fft // 2 + 1] target |STFT| of the clean waveform.
    griffin_lim: `phase.GriffinLimOptions`.
  Returns:
    [B, T] eps' = (y - sqrt(alpha_bar) y0') / sqrt(1 - alpha_bar), with y0' = GLA(y0_hat): the
    noise that, at this step's level, explains y_n with the projected clean signal.
  """
  signal, noise = jnp.sqrt(t['alpha_bar']), jnp.sqrt(t['one_minus_alpha_bar'])
  y0 = (y - noise * eps) / signal
  y0 = phase.griffin_lim(y0, target_magnitude, griffin_lim)
  return (y - signal * y0) / noise


def clipped_clean_estimate_eps(y, eps, t, bound):
  """eps re-derived after clamping the clean estimate to [-bound, bound] (ivanvovk/WaveGrad).

  Args:
    y: [B, T] current sample y_n.
    eps: [B, T] predicted noise.
    t: dict of scalar schedule terms at step n (see `schedule_terms`).
    bound: > 0, the clamp of y0_hat = (y - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar).
  Returns:
    [B, T] eps' = (y - sqrt(alpha_bar) clip(y0_hat)) / sqrt(1 - alpha_bar), computed as
    eps + sqrt(alpha_bar) (y0_hat - clip(y0_hat)) / sqrt(1 - alpha_bar) so that it is eps exactly
    where nothing is clamped. The ancestral step taken with eps' is the posterior mean
    q(y_{n-1} | y_n, y0 = clip(y0_hat)), as in that code.
  """
  signal, noise = jnp.sqrt(t['alpha_bar']), jnp.sqrt(t['one_minus_alpha_bar'])
  y0 = (y - noise * eps) / signal
  return eps + signal * (y0 - jnp.clip(y0, -bound, bound)) / noise


def _project_mean(mean, target_magnitude, gla):
  """The 'mean' GLA-Grad correction: the step's deterministic part projected (and rescaled)."""
  mean = phase.griffin_lim(mean, target_magnitude, gla.griffin_lim)
  if gla.mean_peak > 0:
    peak = jnp.max(jnp.abs(mean), axis=-1, keepdims=True)
    mean = mean * (gla.mean_peak / jnp.maximum(peak, 1e-12))
  return mean


def _gla_inputs(gla, gla_mask, target_magnitude, mel, num_steps, num_samples):
  """The [N] float32 step mask and the [B, frames, bins] target of a GLA run, checked."""
  if gla is None:
    if gla_mask is not None or target_magnitude is not None:
      raise ValueError('gla_mask / target_magnitude were given but the sampler has no GLA '
                       'options (gla=None, or config.sampling.gla.enabled=False)')
    return None, None
  if gla_mask is None:
    gla_mask = gla_step_mask(gla.steps, num_steps)
  gla_mask = jnp.asarray(gla_mask)
  if gla_mask.shape != (num_steps,):
    raise ValueError(f'gla_mask must have shape ({num_steps},), one entry per schedule step, got '
                     f'{gla_mask.shape}')
  gla_mask = gla_mask.astype(jnp.float32)
  gl = gla.griffin_lim
  expected = (mel.shape[0], gl.num_frames(num_samples), gl.num_bins())
  # The authors' code keeps pinv(fb) exp(mel) unclamped; the textbook variant clamps it at 0.
  if gla.magnitude == 'given':
    if target_magnitude is None:
      raise ValueError("GLA magnitude='given' needs target_magnitude [B, T // hop, n_fft // 2 + 1] "
                       f'= {expected} (e.g. audio.stft_magnitude of the reference audio)')
    target = jnp.asarray(target_magnitude, jnp.float32)
  else:
    if target_magnitude is not None:
      raise ValueError("target_magnitude was given but GLA magnitude='mel_pinv' derives it from "
                       "the mel; set magnitude='given' to use it")
    target = phase.mel_pinv_magnitude(mel, gla.mel_frontend, clamp=gl.variant != 'authors')
  if target.shape != expected:
    raise ValueError(f'target_magnitude has shape {target.shape}; {num_samples} samples at '
                     f'hop_length={gl.hop_length}, n_fft={gl.n_fft} need {expected}')
  return gla_mask, target


def reverse_diffusion(eps_fn, params, betas, mel, rng, *, hop_length, options=None,
                      return_trajectory=False, gla_mask=None, target_magnitude=None,
                      **option_values):
  """Samples waveforms for a batch of mels by reverse diffusion over `betas`.

  Args:
    eps_fn: eps_fn(params, noisy [B, T], mel, noise_level [B]) -> [B, T].
    params: passed to eps_fn (model parameters; anything for an oracle).
    betas: [N] inference schedule, N >= 1.
    mel: [B, F, n_mels] conditioning log-mels.
    rng: PRNG key; y_N uses split(rng)[0], step n (0-based, run from N-1 down to 0) uses
      split(split(rng)[1], N)[n].
    hop_length: samples per mel frame; the output has T = F * hop_length samples.
    options: `SamplerOptions` (eta, noise_scale, clip, clip_x0, gla, algorithm); None for the
      defaults (ancestral). With algorithm 'griffin_lim' the denoiser and the betas' values are
      not used: Griffin-Lim runs from y_N (drawn as below).
    return_trajectory: also return every intermediate sample.
    gla_mask: [N] bool / float, nonzero where step n (schedule index) is corrected; None uses
      options.gla.steps. Traced, so selections never recompile.
    target_magnitude: [B, T // gla hop, gla n_fft // 2 + 1] target |STFT|, for gla.magnitude
      'given' only.
    **option_values: fields of `SamplerOptions` replacing those of `options` (eta=0.0, gla=...).
  Returns:
    [B, T] float32 waveform y_0, or (y_0, [N, B, T] samples y_{N-1} .. y_0) with return_trajectory
    ([1, B, T] for 'griffin_lim').
  """
  options = SamplerOptions.resolve(options, **option_values)
  gla, clip, clip_x0 = options.gla, options.clip, options.clip_x0
  terms = schedule_terms(betas)
  num_steps = terms['beta'].shape[0]
  batch, frames = mel.shape[0], mel.shape[1]
  num_samples = frames * hop_length
  # Outside the loop: the mel pseudo-inverse is one matmul per call, not per step.
  gla_mask, target = _gla_inputs(gla, gla_mask, target_magnitude, mel, num_steps, num_samples)
  init_rng, step_rng = jax.random.split(rng)
  y = jax.random.normal(init_rng, (batch, num_samples), jnp.float32)
  if options.algorithm == 'griffin_lim':
    y = phase.griffin_lim(y, target, gla.griffin_lim)
    if clip > 0:
      y = jnp.clip(y, -clip, clip)
    return (y, y[None]) if return_trajectory else y
  # PriorGrad: start from, and re-noise with, N(0, diag(std^2)) instead of N(0, I).
  noise_std = 1.0 if options.prior is None else options.prior.noise_std(mel, hop_length)
  y = y * noise_std
  step_keys = jax.random.split(step_rng, num_steps)

  def body(y, n):
    t = {k: v[n] for k, v in terms.items()}
    t['is_last'] = (n == 0).astype(jnp.float32)
    eps = eps_fn(params, y, mel, jnp.full((batch,), t['noise_level']))
    z = jax.random.normal(step_keys[n], y.shape, jnp.float32)
    # lax.cond, not a blend: unselected steps skip the STFTs at run time.
    if gla is not None and gla.placement == 'clean_estimate':
      eps = jax.lax.cond(
          gla_mask[n] != 0,
          lambda e: gla_corrected_eps(y, e, t, target, gla.griffin_lim),
          lambda e: e, eps)
    if clip_x0 > 0:
      eps = clipped_clean_estimate_eps(y, eps, t, clip_x0)
    mean, std = _step_mean_and_std(y, eps, t, options)
    if gla is not None and gla.placement == 'mean':
      mean = jax.lax.cond(gla_mask[n] != 0, lambda m: _project_mean(m, target, gla),
                          lambda m: m, mean)
    y = mean + std * noise_std * z
    if clip > 0:
      y = jnp.clip(y, -clip, clip)
    return y, (y if return_trajectory else None)

  y, trajectory = jax.lax.scan(body, y, jnp.arange(num_steps - 1, -1, -1))
  return (y, trajectory) if return_trajectory else y


def make_sampler(eps_fn, *, hop_length, options=None, **option_values):
  """A jitted sampler(params, betas [N], mel [B, F, M], rng) -> [B, F * hop] waveform.

  Args:
    eps_fn: eps_fn(params, noisy [B, T], mel, noise_level [B]) -> [B, T].
    hop_length: samples per mel frame.
    options: `SamplerOptions`; None for the defaults.
    **option_values: fields of `SamplerOptions` replacing those of `options` (eta=0.0, gla=...).
  Returns:
    The sampler. It also takes keyword arguments gla_mask [N] and target_magnitude (see
    `reverse_diffusion`) when options.gla is set. Compiled once per schedule length and mel shape
    (and whether gla_mask / target_magnitude are passed): schedules and GLA step masks are traced.
  """
  options = SamplerOptions.resolve(options, **option_values)
  fn = functools.partial(reverse_diffusion, eps_fn, hop_length=hop_length, options=options)

  def sampler(params, betas, mel, rng, gla_mask=None, target_magnitude=None):
    return fn(params, betas, mel, rng, gla_mask=gla_mask, target_magnitude=target_magnitude)

  return jax.jit(sampler)


def make_multi_schedule_sampler(eps_fn, *, hop_length, options=None, **option_values):
  """A jitted sampler(params, betas [K, N], mel, rng) -> [K, B, T]: K schedules of one length.

  Every schedule sees the same mel and the same noise draws, so their outputs differ only by the
  schedule (what a schedule search compares). With options.gla, the keyword arguments gla_mask [N]
  and target_magnitude are shared by the K schedules. Options as `make_sampler`.
  """
  options = SamplerOptions.resolve(options, **option_values)
  fn = functools.partial(reverse_diffusion, eps_fn, hop_length=hop_length, options=options)

  def one(params, betas, mel, rng, gla_mask, target_magnitude):
    return fn(params, betas, mel, rng, gla_mask=gla_mask, target_magnitude=target_magnitude)

  batched = jax.vmap(one, in_axes=(None, 0, None, None, None, None))

  def sampler(params, betas, mel, rng, gla_mask=None, target_magnitude=None):
    return batched(params, betas, mel, rng, gla_mask, target_magnitude)

  return jax.jit(sampler)


def model_eps_fn(model):
  """Adapts a WaveGrad Flax module to eps_fn(params, noisy, mel, noise_level)."""
  def eps_fn(params, noisy, mel, noise_level):
    return model.apply({'params': params}, noisy, mel, noise_level)
  return eps_fn


def sampler_options_from_config(config):
  """`SamplerOptions.from_config` as keyword arguments of `make_sampler`, hop_length included.

  Args:
    config: a full config (config.audio.hop_length and config.sampling).
  Returns:
    dict(hop_length, eta, noise_scale, clip, gla, ...): one entry per `SamplerOptions` field.
  """
  options = SamplerOptions.from_config(config)
  return dict(hop_length=int(config.audio.hop_length),
              **{f.name: getattr(options, f.name) for f in dataclasses.fields(options)})


def speech_rms_estimate(config):
  """The RMS (full scale 1) of the speech a config's frontend reads, for `check_schedule_start`.

  Loaded audio is scaled to audio.peak_normalize (taken as 1 when 0, audio kept at its level);
  speech's peak-to-RMS ratio sampling.speech_crest_db then gives its RMS,
  peak / 10^(crest_db / 20): 0.9 / 10^(18 / 20) = 0.11 for the defaults (the embedded corpus
  measures 0.10 to 0.14).
  """
  peak = float(config.audio.get('peak_normalize', 0.0) or 1.0)
  return peak / 10.0 ** (float(config.sampling.speech_crest_db) / 20.0)


def check_schedule_start(betas, config, name, speech_rms=None, where=''):
  """Warns once (with the numbers) when a schedule does not start from noise for this data.

  See `schedules.start_snr_db` for the criterion; the threshold is config.sampling
  .start_max_snr_db. Samplers without a schedule ('griffin_lim') and configs from before these
  fields existed are not checked.

  Args:
    betas: [N] concrete schedule.
    config: full config (audio.peak_normalize, sampling.start_max_snr_db / speech_crest_db).
    name: the schedule's name or spec, for the message.
    speech_rms: the data's measured RMS when at hand (evaluation, search), else estimated by
      `speech_rms_estimate`.
    where: the caller, for the message.
  Returns:
    `schedules.start_check`'s dict, or None when not checked.
  """
  s = config.sampling
  if 'start_max_snr_db' not in s or 'speech_crest_db' not in s:
    return None
  if _config_process(config) != 'wavegrad':  # a flow time grid always starts from the source
    return None
  if s.get('algorithm', 'diffusion') != 'diffusion':
    return None
  rms = float(speech_rms) if speech_rms else speech_rms_estimate(config)
  return schedules.warn_unless_starts_from_noise(betas, name, rms, float(s.start_max_snr_db),
                                                 where)


class ScheduleCheckedSampler:
  """A jitted sampler that checks each concrete schedule it is called with, once, before running.

  Calls with traced betas (inside another jit) are not checked; every other attribute (`lower`,
  ...) is the jitted function's.
  """

  def __init__(self, jitted, config):
    self._jitted = jitted
    self._config = config

  def __call__(self, params, betas, *args, **kwargs):
    if not isinstance(betas, jax.core.Tracer):
      values = np.asarray(betas, np.float64)
      check_schedule_start(values, self._config, _schedule_label(values), where='sampler')
    return self._jitted(params, betas, *args, **kwargs)

  def __getattr__(self, name):
    return getattr(self._jitted, name)


def _schedule_label(betas):
  shown = ', '.join(f'{b:.3g}' for b in betas[:8]) + (', ...' if len(betas) > 8 else '')
  return f'of {len(betas)} steps [{shown}]'


def sampler_from_config(model, config):
  """The jitted model sampler with the options of `config.sampling` (GLA included).

  It warns once per schedule that does not start from noise (`check_schedule_start`).
  """
  return ScheduleCheckedSampler(
      make_sampler(model_eps_fn(model), hop_length=int(config.audio.hop_length),
                   options=SamplerOptions.from_config(config)), config)


def multi_schedule_sampler_from_config(model, config):
  """`make_multi_schedule_sampler` for a Flax model with the options of `config.sampling`."""
  return make_multi_schedule_sampler(model_eps_fn(model), hop_length=int(config.audio.hop_length),
                                     options=SamplerOptions.from_config(config))
