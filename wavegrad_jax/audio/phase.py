"""Griffin-Lim phase retrieval and the target magnitudes it needs, as pure JAX functions.

Used by the sampler's GLA-Grad option (Liu et al., "GLA-Grad: A Griffin-Lim Extended Waveform
Generation Diffusion Model", ICASSP 2024), and usable alone. Spectra are frames-major,
[..., frames, n_fft // 2 + 1], in `audio.stft`'s framing (T // hop frames, 'center' or
'hop_center'), so a magnitude from `audio.stft_magnitude` or from `mel_pinv_magnitude` plugs in
directly when the framings agree.

Two Griffin-Lim variants (`GriffinLimOptions.variant`):
  'fast': the textbook fast Griffin-Lim of Perraudin et al. (2013), t_k = c_k + a (c_k - c_{k-1}),
    each iteration projecting t_k onto the target magnitude, in `audio.stft`'s framing.
  'authors': the GLA-Grad authors' code as it runs (github.com/GLA-Grad/GLA-Grad,
    src/gla_extension/gla_extension.py `gla_update`), quirks included: torch.stft framing
    (center=True, 1 + T // hop frames, the target padded with a zero last frame); the first STFT
    unnormalised and every later one normalized=True (1 / sqrt(n_fft)); the update
    P2 = S (c_k - m c_{k-1}) / (|c_k| + 1e-12), divided by |c_k| rather than by its own modulus;
    and, in the first iteration, `tprev` is the same tensor as the input spectrum c_0, scaled in
    place by `tprev.mul_(m)`, so that iteration projects zero (c_1 = 0), the second projects
    -m^2 c_0 / 1e-12 (the sign-flipped input, scaled by about 1e12), and every other iteration
    after it is again dominated by -m c_{k-1} while that huge scale decays by m per two
    iterations. The returned waveform is istft(c_K) (the caller rescales it; GLA-Grad to a 0.95
    peak). `momentum` is their m (0.1), not Perraudin's a.

Every function is jittable when the STFT sizes, window and iteration count are Python constants:
close over a `GriffinLimOptions`, don't trace it.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.audio.conventions import values as conventions_values


GRIFFIN_LIM_VARIANTS = ('fast', 'authors')


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
      The 'authors' variant always uses torch.stft's centred framing, as their code.
    variant: 'fast' (textbook fast Griffin-Lim; momentum is Perraudin's a) or 'authors' (the
      GLA-Grad code's loop, in-place quirks included; momentum is their m: t = c_k - m c_{k-1});
      see the module docstring.
  """
  n_fft: int
  hop_length: int
  win_length: int
  window: str = 'hann'
  pad_mode: str = 'reflect'
  iterations: int = 32
  momentum: float = 0.0
  framing: str = 'center'
  variant: str = 'fast'

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
    if self.variant not in GRIFFIN_LIM_VARIANTS:
      raise ValueError(f"Griffin-Lim variant must be one of {GRIFFIN_LIM_VARIANTS} ('fast': "
                       "textbook fast Griffin-Lim; 'authors': the GLA-Grad code's loop), got "
                       f'{self.variant!r}')
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
  magnitude = jnp.asarray(magnitude, jnp.float32)
  if opts.variant == 'authors':
    return _griffin_lim_authors(audio, magnitude, opts)
  if opts.iterations == 0:
    return audio

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


# ------------------------------------------------------------- the GLA-Grad authors' Griffin-Lim


def _torch_window(opts):
  """torch.stft's window: `opts.window` of win_length (periodic), zero-padded centred to n_fft."""
  short = conventions_values._window(opts.window, opts.win_length)  # pylint: disable=protected-access
  left = (opts.n_fft - opts.win_length) // 2
  return np.pad(short, (left, opts.n_fft - opts.win_length - left)).astype(np.float32)


def _torch_stft(audio, opts, normalized):
  """torch.stft(center=True, pad_mode='reflect', onesided=True): [..., 1 + T // hop, bins]."""
  pad = opts.n_fft // 2
  y = jnp.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(pad, pad)], mode='reflect')
  count = 1 + (y.shape[-1] - opts.n_fft) // opts.hop_length
  index = np.arange(opts.n_fft)[None, :] + opts.hop_length * np.arange(count)[:, None]
  spec = jnp.fft.rfft(y[..., index] * _torch_window(opts), axis=-1)
  if normalized:
    spec = spec / np.float32(np.sqrt(opts.n_fft))
  return spec.astype(jnp.complex64)


def _torch_istft(spec, opts):
  """torch.istft(center=True, normalized=False, length=None): [..., hop * (frames - 1)]."""
  count = spec.shape[-2]
  window = _torch_window(opts)
  frames = jnp.fft.irfft(spec, n=opts.n_fft, axis=-1) * window
  total = opts.n_fft + opts.hop_length * (count - 1)
  index = (np.arange(opts.n_fft)[None, :] + opts.hop_length * np.arange(count)[:, None]).ravel()
  out = jnp.zeros(spec.shape[:-2] + (total,), jnp.float32)
  out = out.at[..., index].add(frames.reshape(spec.shape[:-2] + (-1,)))
  envelope = np.zeros(total, np.float64)
  np.add.at(envelope, index, np.tile(window.astype(np.float64) ** 2, count))
  pad = opts.n_fft // 2
  # torch refuses a window envelope below 1e-11 inside the kept range; hann at hop <= win / 2
  # never has one there.
  out = out / jnp.asarray(np.where(envelope > 1e-11, envelope, 1.0), jnp.float32)
  return out[..., pad:total - pad]


def authors_iteration(current, previous_scaled, target, opts):
  """One iteration of the GLA-Grad code's loop: STFT_P1 after it, from STFT_P1 and m * tprev.

  STFT_P2 = S (STFT_P1 - m tprev) / (|STFT_P1| + 1e-12), then stft(istft(STFT_P2)) with
  normalized=True, cropped to the target's frames.

  Args:
    current: [..., 1 + T // hop, bins] complex STFT_P1 (torch.stft framing).
    previous_scaled: the same shape: tprev after its in-place `mul_(momentum)`.
    target: [..., 1 + T // hop, bins] S, the pseudo-inverse target with its zero last frame.
    opts: `GriffinLimOptions` (n_fft, hop_length, win_length, window).
  Returns:
    [..., 1 + T // hop, bins] complex64, the next STFT_P1.
  """
  p2 = target * (current - previous_scaled) / (jnp.abs(current) + np.float32(1e-12))
  return _torch_stft(_torch_istft(p2, opts), opts, normalized=True)[..., :target.shape[-2], :]


def _griffin_lim_authors(audio, magnitude, opts):
  """The GLA-Grad code's gla_update loop (see the module docstring), in float32 JAX."""
  m = np.float32(opts.momentum)
  # pseudo_inverse / gla_update: the target gets a zero frame to match torch.stft's 1 + T // hop.
  target = jnp.concatenate([magnitude, jnp.zeros_like(magnitude[..., :1, :])], axis=-2)
  spec_in = _torch_stft(audio, opts, normalized=False)  # get_spec(..., if_mel=False)
  if opts.iterations == 0:
    return _torch_istft(spec_in, opts)
  project = lambda current, previous_scaled: authors_iteration(current, previous_scaled, target,
                                                               opts)

  # Iteration 0: tprev *is* STFT_P1, so mul_ scales both: (m c0 - m c0) / (|m c0| + 1e-12) = 0.
  scaled_input = m * spec_in
  current = project(scaled_input, scaled_input)
  # Iteration 1: tprev is still that tensor, now m c0, and is scaled once more: m^2 c0.
  previous = scaled_input

  def body(_, carry):
    current, previous = carry
    return project(current, m * previous), current

  current, _ = jax.lax.fori_loop(1, int(opts.iterations), body, (current, previous))
  return _torch_istft(current, opts)


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


def mel_pseudo_inverse(fe):
  """Moore-Penrose pseudo-inverse of `audio.mel_filterbank(fe)`, cached.

  Args:
    fe: a `MelFrontend` (sample_rate and fmin, fmax in Hz; n_fft, n_mels, mel_scale, mel_norm).
  Returns:
    [n_mels, n_fft // 2 + 1] float32, read-only; right-multiplies a [..., frames, n_mels] mel.
  """
  mel_conventions.require_frontend(fe, 'mel_pseudo_inverse')
  return _pinv_of(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax, fe.mel_scale,
                  fe.mel_norm)


def mel_pinv_magnitude(log_mel, fe, clamp=True):
  """An |STFT| estimate from the conditioning mel, through the filterbank's pseudo-inverse.

  Undoes `audio.log_mel_spectrogram` in reverse order: the convention's normalisation and log
  (`mel_conventions.decompress`: exp for ours), the pseudo-inverse of the filterbank (the
  minimum-norm spectrum with exactly this mel), a clamp at 0, the 1 / power root, then the
  convention's STFT scaling (stft_norm, magnitude_eps). Bands at the floor come back as the floor,
  not as silence; a power_floor (ESPnet2) is not undone.

  The clamp: pinv(fb) exp(mel) is negative in some bins (the pseudo-inverse of overlapping
  triangles rings between band centres), and a magnitude cannot be; with clamp=True those bins
  get 0, so the target is max(pinv(fb) exp(mel), 0). The GLA-Grad authors' code does not clamp
  (gla_extension.py pseudo_inverse: `torch.linalg.pinv(mel_basis) @ torch.exp(spectrogram)`):
  a negative entry S multiplies their phase factor as it is, so that bin gets |S| with its phase
  turned by pi. clamp=False gives that unclamped spectrum (the 'authors' Griffin-Lim variant).

  Args:
    log_mel: [..., frames, n_mels] conditioning mel in fe's convention.
    fe: a `MelFrontend` (hashable Python constants: close over it, don't trace it).
    clamp: clamp pinv(fb) exp(mel) at 0 (True), or keep its negative entries (the authors').
  Returns:
    [..., frames, n_fft // 2 + 1] float32 magnitude in `audio.stft`'s units (no STFT scaling),
    in the frontend's framing.
  """
  mel_conventions.require_frontend(fe, 'mel_pinv_magnitude')
  mel = mel_conventions.decompress(jnp.asarray(log_mel, jnp.float32), fe)
  # HIGHEST: TF32 / bf16 matmul passes would cost ~1e-3 relative, as in audio.mel_spectrogram.
  spec = jnp.matmul(mel, jnp.asarray(mel_pseudo_inverse(fe)),
                    precision=jax.lax.Precision.HIGHEST)
  if clamp or fe.power != 1.0:  # a root of a negative entry has no meaning: clamp there anyway
    spec = jnp.maximum(spec, 0.0)
  mag = spec if fe.power == 1.0 else spec ** (1.0 / fe.power)
  gain = mel_conventions.stft_gain(fe)
  if gain != 1.0:
    mag = mag / gain
  # The authors' pseudo-inverse undoes no magnitude_eps (theirs is HiFi-GAN's 1e-9) either.
  if fe.magnitude_eps and clamp:
    mag = jnp.sqrt(jnp.maximum(jnp.square(mag) - fe.magnitude_eps, 0.0))
  return mag


# Every frontend value `mel_pinv_magnitude` needs, hashable: the full `mel_conventions.Frontend`.
MelFrontend = mel_conventions.Frontend
