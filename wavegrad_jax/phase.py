"""Griffin-Lim phase retrieval and the target magnitudes it needs, as pure JAX functions.

Used by the sampler's GLA-Grad option (Liu et al., "GLA-Grad: A Griffin-Lim Extended Waveform
Generation Diffusion Model", ICASSP 2024), and usable alone. Spectra are frames-major,
[..., frames, n_fft // 2 + 1], in `audio.stft`'s framing (T // hop frames, 'center' or
'hop_center'), so a magnitude from `audio.stft_magnitude` or from `mel_pinv_magnitude` plugs in
directly when the framings agree.

Every function is jittable when the STFT sizes, window and iteration count are Python constants:
close over a `GriffinLimOptions`, don't trace it.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax import audio as audio_lib
from wavegrad_jax import mel_conventions


@dataclasses.dataclass(frozen=True)
class GriffinLimOptions:
  """Static settings of a Griffin-Lim run.

  Attributes:
    n_fft: FFT size in samples.
    hop_length: frame step in samples.
    win_length: window length in samples, <= n_fft (zero-padded centred to n_fft).
    window: `scipy.signal.get_window` spec, e.g. 'hann'.
    pad_mode: `jnp.pad` mode of the frames' end padding ('reflect' as the mel frontend, 'constant').
    iterations: projections per call; 0 returns the input unchanged.
    momentum: the fast Griffin-Lim acceleration alpha of Perraudin et al. (2013); 0 is plain
      Griffin-Lim, whose spectral convergence never increases (exactly so with pad_mode
      'constant'; 'reflect' ties the edge samples to their mirror images); about 0.99 converges
      faster but without that guarantee.
    framing: 'center' or 'hop_center' (see `audio.stft`); the mel frontend's audio.framing.
  """
  n_fft: int
  hop_length: int
  win_length: int
  window: str = 'hann'
  pad_mode: str = 'reflect'
  iterations: int = 32
  momentum: float = 0.0
  framing: str = 'center'

  def __post_init__(self):
    if self.n_fft < 1 or self.hop_length < 1:
      raise ValueError(f'Griffin-Lim n_fft and hop_length must be positive, got {self.n_fft} '
                       f'and {self.hop_length}')
    if not 0 < self.win_length <= self.n_fft:
      raise ValueError(f'Griffin-Lim win_length must be in [1, n_fft={self.n_fft}], got '
                       f'{self.win_length}')
    if self.hop_length > self.win_length:
      raise ValueError(f'Griffin-Lim hop_length ({self.hop_length}) longer than the window '
                       f'({self.win_length}) leaves samples no frame covers')
    if int(self.iterations) != self.iterations or self.iterations < 0:
      raise ValueError(f'Griffin-Lim iterations must be an integer >= 0, got {self.iterations}')
    if self.framing not in mel_conventions.FRAMINGS:
      raise ValueError(f'Griffin-Lim framing must be one of {mel_conventions.FRAMINGS}, got '
                       f'{self.framing!r}')
    if not 0.0 <= self.momentum <= 1.0:
      raise ValueError(f'Griffin-Lim momentum must lie in [0, 1] (0: plain GLA), got '
                       f'{self.momentum}')

  def num_bins(self):
    """Frequency bins of the one-sided spectrum, n_fft // 2 + 1."""
    return self.n_fft // 2 + 1

  def num_frames(self, num_samples):
    """STFT frames of a [..., num_samples] waveform in `audio.stft`'s framing."""
    return num_samples // self.hop_length


def _stft(audio, opts):
  return audio_lib.stft(audio, opts.n_fft, opts.hop_length, opts.win_length, opts.window,
                        opts.pad_mode, opts.framing)


def _istft(spec, length, opts):
  return audio_lib.istft(spec, length, opts.n_fft, opts.hop_length, opts.win_length, opts.window,
                         opts.framing)


def impose_magnitude(spec, magnitude):
  """Keeps the phase of `spec` and replaces its magnitude (the projection onto |X| = magnitude).

  Args:
    spec: [..., frames, bins] complex spectrum.
    magnitude: [..., frames, bins] float >= 0, broadcastable to spec.
  Returns:
    [..., frames, bins] complex64; bins where spec is 0 get phase 0.
  """
  mod = jnp.abs(spec)
  # A zero bin has no phase to keep; any unit phasor is an equally near point of the target set.
  unit = jnp.where(mod > 0, spec / jnp.where(mod > 0, mod, 1.0), 1.0)
  return (magnitude * unit).astype(jnp.complex64)


def griffin_lim(audio, magnitude, opts):
  """Griffin-Lim projections of a waveform onto the signals whose |STFT| is `magnitude`.

  Starts from the phase of STFT(audio) (not random), so a few iterations refine an estimate rather
  than rebuild it. Each iteration imposes `magnitude` on the current phase and takes the
  least-squares inverse STFT; with opts.momentum > 0 the phase comes from the fast Griffin-Lim
  extrapolation t_k = c_k + momentum (c_k - c_{k-1}) of the consistent spectra c_k.

  Args:
    audio: [..., T] float waveform, the initial estimate.
    magnitude: [..., T // opts.hop_length, opts.n_fft // 2 + 1] target |STFT|, >= 0.
    opts: `GriffinLimOptions`.
  Returns:
    [..., T] float32 waveform after opts.iterations projections.
  """
  audio = jnp.asarray(audio, jnp.float32)
  length = audio.shape[-1]
  expected = audio.shape[:-1] + (opts.num_frames(length), opts.num_bins())
  if tuple(magnitude.shape) != expected:
    raise ValueError(f'target magnitude has shape {tuple(magnitude.shape)}, but a waveform of '
                     f'shape {tuple(audio.shape)} has STFT shape {expected} (n_fft={opts.n_fft}, '
                     f'hop_length={opts.hop_length})')
  if opts.iterations == 0:
    return audio
  magnitude = jnp.asarray(magnitude, jnp.float32)

  def body(_, carry):
    accelerated, previous, _ = carry
    wave = _istft(impose_magnitude(accelerated, magnitude), length, opts)
    consistent = _stft(wave, opts)
    accelerated = consistent + opts.momentum * (consistent - previous)
    return accelerated, consistent, wave

  spec = _stft(audio, opts)
  # A loop, not unrolled: 32 iterations inside a 1000-step scan would otherwise bloat the program.
  _, _, wave = jax.lax.fori_loop(0, int(opts.iterations), body, (spec, spec, audio))
  return wave


def spectral_convergence(audio, magnitude, opts):
  """|| |STFT(audio)| - magnitude ||_F / || magnitude ||_F per signal, the error GLA decreases.

  Args:
    audio: [..., T] float waveform.
    magnitude: [..., T // opts.hop_length, opts.n_fft // 2 + 1] target |STFT|.
    opts: `GriffinLimOptions` (its STFT settings only).
  Returns:
    [...] float32, dimensionless.
  """
  diff = jnp.abs(_stft(audio, opts)) - magnitude
  norm = jnp.sqrt(jnp.sum(jnp.square(magnitude), axis=(-2, -1)))
  return jnp.sqrt(jnp.sum(jnp.square(diff), axis=(-2, -1))) / jnp.maximum(norm, 1e-12)


# ------------------------------------------------------------------------------ mel pseudo-inverse


@functools.lru_cache(maxsize=None)
def _pinv_of(sample_rate, n_fft, n_mels, fmin, fmax, mel_scale, mel_norm):
  fb = mel_conventions.filterbank(mel_conventions.Frontend(
      sample_rate=sample_rate, n_fft=n_fft, hop_length=1, win_length=n_fft, window='hann',
      n_mels=n_mels, fmin=fmin, fmax=fmax, power=1.0, convention='custom', mel_scale=mel_scale,
      mel_norm=mel_norm))
  # float64 SVD: the narrow low-frequency filters make the filterbank poorly conditioned.
  pinv = np.linalg.pinv(fb.astype(np.float64)).astype(np.float32)
  pinv.setflags(write=False)  # shared by every caller through the cache
  return pinv


def mel_pseudo_inverse(audio_cfg):
  """Moore-Penrose pseudo-inverse of `audio.mel_filterbank(audio_cfg)`, cached.

  Args:
    audio_cfg: the `audio` config section or a `MelFrontend` (sample_rate and fmin, fmax in Hz;
      n_fft, n_mels, mel_scale, mel_norm).
  Returns:
    [n_mels, n_fft // 2 + 1] float32, read-only; right-multiplies a [..., frames, n_mels] mel.
  """
  fe = mel_conventions.frontend(audio_cfg)
  return _pinv_of(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax, fe.mel_scale,
                  fe.mel_norm)


def mel_pinv_magnitude(log_mel, audio_cfg):
  """An |STFT| estimate from the conditioning mel, through the filterbank's pseudo-inverse.

  Undoes `audio.log_mel_spectrogram` in reverse order: the convention's normalisation and log
  (`mel_conventions.decompress`: exp for ours), the pseudo-inverse of the filterbank (the
  minimum-norm spectrum with exactly this mel), a clamp at 0 (a magnitude is not negative), the
  1 / power root, then the convention's STFT scaling (stft_norm, magnitude_eps). Bands at the
  floor come back as the floor, not as silence.

  Args:
    log_mel: [..., frames, n_mels] conditioning mel in audio_cfg's convention.
    audio_cfg: the `audio` config section or a `MelFrontend`; its values must be Python constants.
  Returns:
    [..., frames, n_fft // 2 + 1] float32 magnitude in `audio.stft`'s units (no STFT scaling),
    in the frontend's framing.
  """
  fe = mel_conventions.frontend(audio_cfg)
  mel = mel_conventions.decompress(jnp.asarray(log_mel, jnp.float32), fe)
  # HIGHEST: TF32 / bf16 matmul passes would cost ~1e-3 relative, as in audio.mel_spectrogram.
  spec = jnp.matmul(mel, jnp.asarray(mel_pseudo_inverse(fe)),
                    precision=jax.lax.Precision.HIGHEST)
  spec = jnp.maximum(spec, 0.0)
  mag = spec if fe.power == 1.0 else spec ** (1.0 / fe.power)
  gain = mel_conventions.stft_gain(fe)
  if gain != 1.0:
    mag = mag / gain
  if fe.magnitude_eps:
    mag = jnp.sqrt(jnp.maximum(jnp.square(mag) - fe.magnitude_eps, 0.0))
  return mag


# Every frontend value `mel_pinv_magnitude` needs, hashable: the full `mel_conventions.Frontend`.
MelFrontend = mel_conventions.Frontend
