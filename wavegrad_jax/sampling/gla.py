"""GLA-Grad's phase correction inside reverse steps (Liu et al., ICASSP 2024).

Owns the GLA options (`GLAOptions`, read from config.sampling.gla and config.audio by
`GLAOptions.from_config`), the step selection (`gla_step_mask`: a traced [N] mask, so changing
the selection never recompiles) and the two placements of the correction, 'mean' (the authors'
code, github.com/GLA-Grad/GLA-Grad gla_extension.py `gla_update`) and 'clean_estimate' (this
project's variant, where GLA-Grad++, Baoueb et al. arXiv 2511.22293, moved it); see the package
docstring for where each enters a step.
"""
import dataclasses

import jax.numpy as jnp
import numpy as np

from wavegrad_jax.audio import phase

GLA_MAGNITUDES = ('mel_pinv', 'given')
GLA_PLACEMENTS = ('mean', 'clean_estimate')


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
  """Static settings of the GLA-Grad correction (hashable; built by `from_config`).

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

  @classmethod
  def from_config(cls, config, force=False, gla_section=None):
    """`GLAOptions` from config.sampling.gla and config.audio, or None when GLA is disabled.

    Args:
      config: a full config; gla.n_fft, hop_length, win_length (samples) of 0 and gla.window,
        pad_mode of '' inherit config.audio's.
      force: build them even when gla.enabled is false (the 'griffin_lim' algorithm's settings).
      gla_section: a dict read instead of config.sampling.gla (a preset's merged fields).
    Returns:
      `GLAOptions`, or None if gla.enabled is false and not `force`.
    Raises:
      ValueError: an option value is invalid (the message names it and the valid ones).
    """
    g = dict(config.sampling.gla) if gla_section is None else gla_section
    a = config.audio
    if not (g['enabled'] or force):
      return None
    mel_frontend = phase.MelFrontend.from_config(a)
    griffin_lim = phase.GriffinLimOptions(
        n_fft=int(g['n_fft'] or a.n_fft), hop_length=int(g['hop_length'] or a.hop_length),
        win_length=int(g['win_length'] or a.win_length),
        window=g['window'] or a.window, pad_mode=g['pad_mode'] or a.pad_mode,
        iterations=int(g['iterations']), momentum=float(g['momentum']),
        framing=mel_frontend.framing, variant=str(g.get('variant', 'fast')))
    return cls(griffin_lim=griffin_lim, steps=g['steps'], magnitude=g['magnitude'],
               placement=g['placement'], mean_peak=float(g['mean_peak']),
               mel_frontend=mel_frontend)


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
