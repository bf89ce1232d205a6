"""Objective vocoder metrics: LS-MSE, multi-resolution STFT distance, mel L1, PESQ, STOI, RTF.

The spectral metrics are pure JAX functions over [..., T] waveforms, batched over any leading axes
and jittable when the config values they take are Python constants (close over them; don't trace
them). PESQ and STOI wrap their reference C / numpy packages and run on the host, one utterance at
a time. Every metric compares `generated` against `reference`; lower is better except PESQ and
STOI.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import soxr

from wavegrad_jax.audio import frontend as audio
from wavegrad_jax.audio import conventions as mel_conventions

PESQ_SAMPLE_RATE = 16000          # wideband PESQ (ITU-T P.862.2) is defined at 16 kHz only.
DEFAULT_MRSTFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))


def _check_pair(generated, reference):
  generated = jnp.asarray(generated, jnp.float32)
  reference = jnp.asarray(reference, jnp.float32)
  if generated.shape[-1] != reference.shape[-1]:
    raise ValueError(f'generated ({generated.shape}) and reference ({reference.shape}) must have '
                     'the same number of samples; crop both to frames * hop_length')
  return generated, reference


# -------------------------------------------------------------------------------------- LS-MSE


def ls_mse_audio_config(audio_cfg, window_hops=4, hop_divisor=2):
  """The frontend LS-MSE is measured with: the model's mel bands on a finer, longer-window STFT.

  Args:
    audio_cfg: the checkpoint's `audio` config section (sample_rate in Hz, hop_length in samples,
      n_mels, fmin / fmax in Hz, power, window, pad_mode are kept).
    window_hops: n_fft = win_length = window_hops * hop_length samples (4 in the practised search).
    hop_divisor: the LS-MSE hop is hop_length // hop_divisor samples (2 in the practised search).
  Returns:
    A new ConfigDict; `audio_cfg` is not modified.
  """
  hop = int(audio_cfg.hop_length)
  c = ml_collections.ConfigDict(audio_cfg.to_dict())
  c.n_fft = int(window_hops) * hop
  c.win_length = int(window_hops) * hop
  c.hop_length = max(1, hop // int(hop_divisor))
  return c


def ls_mse(generated, reference, ls_cfg, eps=1e-5):
  """Log-mel spectral MSE: mean (log(mel_gen + eps) - log(mel_ref + eps))^2.

  Args:
    generated: [..., T] waveform.
    reference: [..., T] waveform at the same sample rate.
    ls_cfg: the LS-MSE frontend, from `ls_mse_audio_config` (Python constants).
    eps: added to the mel before the natural log.
  Returns:
    [...] float32, averaged over the T // ls_cfg.hop_length frames and the mel bands.
  """
  generated, reference = _check_pair(generated, reference)
  fe = mel_conventions.Frontend.from_config(ls_cfg)
  log_gen = jnp.log(audio.mel_spectrogram(generated, fe) + eps)
  log_ref = jnp.log(audio.mel_spectrogram(reference, fe) + eps)
  return jnp.mean(jnp.square(log_gen - log_ref), axis=(-2, -1))


# ------------------------------------------------------------------------- multi-resolution STFT


def _stft_magnitude_floored(x, n_fft, hop_length, win_length, floor):
  spec = audio.stft(x, n_fft, hop_length, win_length)
  # The floor keeps log() finite in digital silence, as in Parallel WaveGAN's STFT loss.
  return jnp.sqrt(jnp.maximum(jnp.square(spec.real) + jnp.square(spec.imag), floor))


def stft_distance(generated, reference, n_fft, hop_length, win_length, floor=1e-7):
  """Spectral convergence and log-magnitude L1 at one STFT resolution (Hann window).

  Args:
    generated: [..., T] waveform.
    reference: [..., T] waveform.
    n_fft, hop_length, win_length: STFT sizes in samples.
    floor: lower bound on the power |X|^2 before the square root and log.
  Returns:
    (spectral_convergence [...], log_magnitude_l1 [...]): ||R - G||_F / ||R||_F over frames x bins,
    and mean |log R - log G|.
  """
  generated, reference = _check_pair(generated, reference)
  g = _stft_magnitude_floored(generated, n_fft, hop_length, win_length, floor)
  r = _stft_magnitude_floored(reference, n_fft, hop_length, win_length, floor)
  sc = (jnp.sqrt(jnp.sum(jnp.square(r - g), axis=(-2, -1)))
        / jnp.sqrt(jnp.sum(jnp.square(r), axis=(-2, -1))))
  log_l1 = jnp.mean(jnp.abs(jnp.log(r) - jnp.log(g)), axis=(-2, -1))
  return sc, log_l1


def multi_resolution_stft_distance(generated, reference,
                                   resolutions=DEFAULT_MRSTFT_RESOLUTIONS, floor=1e-7):
  """Multi-resolution STFT distance: spectral convergence + log-magnitude L1, averaged.

  Args:
    generated: [..., T] waveform.
    reference: [..., T] waveform.
    resolutions: (n_fft, hop_length, win_length) triples in samples.
    floor: lower bound on the power |X|^2.
  Returns:
    A dict of [...] float32: 'mrstft' (mean over resolutions of sc + log_mag),
    'spectral_convergence'
    and 'log_magnitude_l1' (each the mean over resolutions).
  """
  if not resolutions:
    raise ValueError('multi_resolution_stft_distance needs at least one (n_fft, hop, win) triple')
  sc_all, log_all = [], []
  for n_fft, hop, win in resolutions:
    sc, log_l1 = stft_distance(generated, reference, int(n_fft), int(hop), int(win), floor)
    sc_all.append(sc)
    log_all.append(log_l1)
  sc = jnp.mean(jnp.stack(sc_all), axis=0)
  log_l1 = jnp.mean(jnp.stack(log_all), axis=0)
  return {'mrstft': sc + log_l1, 'spectral_convergence': sc, 'log_magnitude_l1': log_l1}


# ------------------------------------------------------------------------------------------- mel


def mel_l1(generated, reference, audio_cfg):
  """Mean absolute difference of the model's log-mels (`audio.log_mel_spectrogram`).

  Args:
    generated: [..., T] waveform at audio_cfg.sample_rate.
    reference: [..., T] waveform.
    audio_cfg: the checkpoint's `audio` section (Python constants).
  Returns:
    [...] float32 mean over T // hop_length frames and n_mels bands, in nats.
  """
  generated, reference = _check_pair(generated, reference)
  fe = mel_conventions.Frontend.from_config(audio_cfg)
  return jnp.mean(jnp.abs(audio.log_mel_spectrogram(generated, fe)
                          - audio.log_mel_spectrogram(reference, fe)), axis=(-2, -1))


def spectral_metrics(generated, reference, audio_cfg, ls_cfg,
                     resolutions=DEFAULT_MRSTFT_RESOLUTIONS, ls_eps=1e-5):
  """Every JAX metric at once: a dict of [...] arrays (ls_mse, mrstft and its parts, mel_l1).

  Args:
    generated: [..., T] waveform.
    reference: [..., T] waveform.
    audio_cfg: the model's `audio` section.
    ls_cfg: the LS-MSE frontend (`ls_mse_audio_config`).
    resolutions: MR-STFT (n_fft, hop, win) triples in samples.
    ls_eps: LS-MSE's additive mel floor.
  Returns:
    {'ls_mse', 'mrstft', 'spectral_convergence', 'log_magnitude_l1', 'mel_l1'}: [...] float32.
  """
  out = {'ls_mse': ls_mse(generated, reference, ls_cfg, ls_eps)}
  out.update(multi_resolution_stft_distance(generated, reference, resolutions))
  out['mel_l1'] = mel_l1(generated, reference, audio_cfg)
  return out


def make_spectral_metrics_fn(audio_cfg, eval_cfg):
  """A jitted `spectral_metrics` closed over the frontends; compiles once per waveform shape.

  Args:
    audio_cfg: the model's `audio` section.
    eval_cfg: the `eval` config section (ls_mse_window_hops, ls_mse_hop_divisor, ls_mse_eps,
      mrstft_resolutions).
  Returns:
    fn(generated [..., T], reference [..., T]) -> dict of [...] float32 arrays.
  """
  ls_cfg = ls_mse_audio_config(audio_cfg, eval_cfg.ls_mse_window_hops, eval_cfg.ls_mse_hop_divisor)
  resolutions = tuple(tuple(int(v) for v in r) for r in eval_cfg.mrstft_resolutions)
  eps = float(eval_cfg.ls_mse_eps)
  return jax.jit(lambda g, r: spectral_metrics(g, r, audio_cfg, ls_cfg, resolutions, eps))


# ------------------------------------------------------------------ length buckets (one compile)

# End paddings `extend_past_end` reproduces; any other audio.pad_mode is scored at exact length.
_BUCKETABLE_PAD_MODES = ('reflect', 'symmetric', 'edge', 'wrap', 'constant')
MIN_BUCKET_FRAMES = 16


def extend_past_end(x, num_samples, pad, pad_mode):
  """Zero-padded [..., L] waveforms to [..., L + pad], continued past their true end like jnp.pad.

  Samples [num_samples, num_samples + pad) become what `jnp.pad(x[:num_samples], pad_mode)`
  appends after the end, later ones 0. So every STFT frame that `audio.stft` computes for the
  unpadded x[:num_samples] (frames < num_samples // hop, padded by `pad` at each end) sees exactly
  the same samples in the extended array, while one compiled program serves every length <= L.

  Args:
    x: [..., L] float, zero (or anything) past num_samples.
    num_samples: int32 scalar or [...] true lengths, pad < num_samples <= L (traced is fine).
    pad: samples the STFT pads at each end (`audio.framing_pad`).
    pad_mode: one of 'reflect', 'symmetric', 'edge', 'wrap', 'constant'.
  Returns:
    [..., L + pad] float32.
  """
  x = jnp.asarray(x, jnp.float32)
  n = jnp.asarray(num_samples, jnp.int32)[..., None]
  x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
  j = jnp.arange(x.shape[-1], dtype=jnp.int32)
  source = {'reflect': 2 * n - 2 - j, 'symmetric': 2 * n - 1 - j, 'edge': n - 1 + 0 * j,
            'wrap': j - n, 'constant': None}[pad_mode]
  if source is None:
    tail = jnp.zeros_like(x)
  else:
    source = jnp.broadcast_to(jnp.clip(source, 0, x.shape[-1] - 1), x.shape)
    tail = jnp.take_along_axis(x, source, axis=-1)
  return jnp.where(j < n, x, jnp.where(j < n + pad, tail, 0.0))


def _frame_mask(num_frames_total, num_samples, hop_length):
  # [..., F]: frames 0 .. num_samples // hop - 1 are those of the unpadded signal.
  frames = jnp.asarray(num_samples, jnp.int32) // hop_length
  return jnp.arange(num_frames_total) < frames[..., None]


def _masked_mean(values, mask):
  # values [..., F, K], mask [..., F]: the mean over the unmasked frames and all K.
  mask = mask[..., None]
  total = jnp.sum(jnp.where(mask, values, 0.0), axis=(-2, -1))
  return total / (jnp.sum(mask, axis=(-2, -1)) * values.shape[-1])


def spectral_metrics_of_prefix(generated, reference, num_samples, audio_cfg, ls_cfg,
                               resolutions=DEFAULT_MRSTFT_RESOLUTIONS, ls_eps=1e-5):
  """`spectral_metrics` of generated[..., :n] against reference[..., :n], on [..., L] arrays.

  Each STFT sees the samples it would see on the unpadded pair (`extend_past_end`) and the means
  run over the unpadded pair's frames only, so the values equal `spectral_metrics` up to float
  rounding, and a program compiled for length L serves every n in (max STFT padding, L].

  Args:
    generated, reference: [..., L] waveforms, real up to num_samples.
    num_samples: int32 scalar (or [...]) n, traced.
    audio_cfg, ls_cfg, resolutions, ls_eps: as `spectral_metrics`.
  Returns:
    {'ls_mse', 'mrstft', 'spectral_convergence', 'log_magnitude_l1', 'mel_l1'}: [...] float32.
  """
  generated, reference = _check_pair(generated, reference)

  def mel_of(cfg, compress):
    fe = mel_conventions.Frontend.from_config(cfg)
    pad = audio.framing_pad(fe.n_fft, fe.hop_length, fe.framing)
    g, r = (audio.mel_spectrogram(extend_past_end(x, num_samples, pad, fe.pad_mode), fe)
            for x in (generated, reference))
    if compress:
      g, r = mel_conventions.compress(g, fe), mel_conventions.compress(r, fe)
    return g, r, _frame_mask(g.shape[-2], num_samples, fe.hop_length)

  g, r, mask = mel_of(ls_cfg, compress=False)
  out = {'ls_mse': _masked_mean(jnp.square(jnp.log(g + ls_eps) - jnp.log(r + ls_eps)), mask)}
  sc_all, log_all = [], []
  for n_fft, hop, win in resolutions:
    n_fft, hop, win = int(n_fft), int(hop), int(win)
    # stft_distance's STFT: centre framing, reflect padding.
    g, r = (_stft_magnitude_floored(extend_past_end(x, num_samples, n_fft // 2, 'reflect'),
                                    n_fft, hop, win, 1e-7) for x in (generated, reference))
    mask = _frame_mask(g.shape[-2], num_samples, hop)[..., None]
    sc_all.append(jnp.sqrt(jnp.sum(jnp.where(mask, jnp.square(r - g), 0.0), axis=(-2, -1)))
                  / jnp.sqrt(jnp.sum(jnp.where(mask, jnp.square(r), 0.0), axis=(-2, -1))))
    log_all.append(_masked_mean(jnp.abs(jnp.log(r) - jnp.log(g)), mask[..., 0]))
  sc, log_l1 = jnp.mean(jnp.stack(sc_all), axis=0), jnp.mean(jnp.stack(log_all), axis=0)
  out.update({'mrstft': sc + log_l1, 'spectral_convergence': sc, 'log_magnitude_l1': log_l1})
  g, r, mask = mel_of(audio_cfg, compress=True)
  out['mel_l1'] = _masked_mean(jnp.abs(g - r), mask)
  return out


def bucket_samples(num_samples, hop_length, min_frames=MIN_BUCKET_FRAMES):
  """The padded length an utterance is scored at: hop * (the power of two >= its frames)."""
  frames = max(int(min_frames), -(-int(num_samples) // int(hop_length)))
  return int(hop_length) * (1 << (frames - 1).bit_length())


class BucketedSpectralMetrics:
  """`spectral_metrics` of (generated [T], reference [T]) pairs, compiled once per length bucket.

  Pairs are zero-padded to `bucket_samples(T)` (powers of two in frames) and scored with
  `spectral_metrics_of_prefix`, so an evaluation of any number of utterance lengths compiles at
  most one program per octave of lengths. Pairs too short for every STFT's end padding, or a
  frontend whose pad_mode the extension cannot reproduce, are scored at their own length.
  """

  def __init__(self, audio_cfg, eval_cfg):
    """Closes over the frontends.

    Args:
      audio_cfg: the model's `audio` section.
      eval_cfg: the `eval` section (ls_mse_window_hops, ls_mse_hop_divisor, ls_mse_eps,
        mrstft_resolutions).
    """
    ls_cfg = ls_mse_audio_config(audio_cfg, eval_cfg.ls_mse_window_hops,
                                 eval_cfg.ls_mse_hop_divisor)
    resolutions = tuple(tuple(int(v) for v in r) for r in eval_cfg.mrstft_resolutions)
    eps = float(eval_cfg.ls_mse_eps)
    self._hop = int(audio_cfg.hop_length)
    frontends = [mel_conventions.Frontend.from_config(c) for c in (audio_cfg, ls_cfg)]
    self._bucketable = all(fe.pad_mode in _BUCKETABLE_PAD_MODES for fe in frontends)
    # reflect / symmetric padding needs more real samples than it pads.
    self._min_samples = 1 + max([audio.framing_pad(fe.n_fft, fe.hop_length, fe.framing)
                                 for fe in frontends] + [r[0] // 2 for r in resolutions])
    self._exact = jax.jit(lambda g, r: spectral_metrics(g, r, audio_cfg, ls_cfg, resolutions, eps))
    self._bucketed = jax.jit(lambda g, r, n: spectral_metrics_of_prefix(
        g, r, n, audio_cfg, ls_cfg, resolutions, eps))

  def __call__(self, generated, reference):
    """{metric: float32 scalar} of one [T] pair (`spectral_metrics`' keys)."""
    generated = np.asarray(generated, np.float32)
    reference = np.asarray(reference, np.float32)
    if generated.shape != reference.shape or generated.ndim != 1:
      raise ValueError(f'generated {generated.shape} and reference {reference.shape} must be '
                       'one [T] pair of equal length')
    t = generated.shape[0]
    if not self._bucketable or t < self._min_samples:
      return self._exact(generated, reference)
    length = bucket_samples(t, self._hop)
    pad = lambda x: np.pad(x, (0, length - t))
    return self._bucketed(pad(generated), pad(reference), np.int32(t))

  def num_compilations(self):
    """Programs compiled so far (bucketed and exact-length)."""
    return self._exact._cache_size() + self._bucketed._cache_size()


# ------------------------------------------------------------------------------------ PESQ, STOI


def _as_host_pair(generated, reference):
  generated = np.asarray(generated, np.float32)
  reference = np.asarray(reference, np.float32)
  if generated.shape != reference.shape:
    raise ValueError(f'generated {generated.shape} and reference {reference.shape} differ in shape')
  return generated, reference


def _per_utterance(fn, generated, reference):
  """Applies fn(gen [T], ref [T]) -> float over the leading axes of [..., T] arrays."""
  generated, reference = _as_host_pair(generated, reference)
  lead = generated.shape[:-1]
  flat_g = generated.reshape((-1, generated.shape[-1]))
  flat_r = reference.reshape((-1, reference.shape[-1]))
  out = np.array([fn(g, r) for g, r in zip(flat_g, flat_r)], np.float64)
  return out.reshape(lead) if lead else float(out[0])


def pesq_wb(generated, reference, sample_rate):
  """Wideband PESQ (MOS-LQO, about 1.04 to 4.64) after resampling both signals to 16 kHz.

  Args:
    generated: [..., T] waveform at `sample_rate` Hz.
    reference: [..., T] waveform.
    sample_rate: their rate in Hz; resampled with soxr 'HQ' unless already 16 kHz.
  Returns:
    float for [T] inputs, else [...] float64. NaN where PESQ finds no speech (e.g. silence) or
    the generated audio is not finite.
  """
  import pesq as pesq_lib  # the C extension is only needed by the evaluation, not training.

  def one(g, r):
    if not np.any(r) or not np.all(np.isfinite(g)):
      # A silent reference holds no speech; a diverged sample would crash the C code.
      return float('nan')
    if sample_rate != PESQ_SAMPLE_RATE:
      g = soxr.resample(g, sample_rate, PESQ_SAMPLE_RATE, quality='HQ')
      r = soxr.resample(r, sample_rate, PESQ_SAMPLE_RATE, quality='HQ')
    try:
      return pesq_lib.pesq(PESQ_SAMPLE_RATE, r, g, 'wb')
    except (pesq_lib.NoUtterancesError, pesq_lib.BufferTooShortError):
      return float('nan')

  return _per_utterance(one, generated, reference)


def stoi(generated, reference, sample_rate, extended=False):
  """Short-time objective intelligibility, about 0 to 1 (pystoi resamples to 10 kHz itself).

  Args:
    generated: [..., T] waveform at `sample_rate` Hz.
    reference: [..., T] waveform.
    sample_rate: their rate in Hz.
    extended: ESTOI instead of STOI.
  Returns:
    float for [T] inputs, else [...] float64. pystoi returns 1e-5 and warns when the clean signal
    has fewer than 30 speech frames (about 0.4 s). NaN where the generated audio is not finite.
  """
  import pystoi  # only needed by the evaluation.

  def one(g, r):
    if not np.all(np.isfinite(g)):
      return float('nan')
    return float(pystoi.stoi(r, g, sample_rate, extended=extended))

  return _per_utterance(one, generated, reference)


# ---------------------------------------------------------------------------------------- speed


def real_time_factor(synthesis_seconds, num_samples, sample_rate):
  """Synthesis wall time divided by the duration of the audio it produced (below 1: faster).

  Args:
    synthesis_seconds: wall-clock seconds spent synthesizing.
    num_samples: total samples produced.
    sample_rate: in Hz.
  Returns:
    float; inf when no audio was produced.
  """
  audio_seconds = float(num_samples) / float(sample_rate)
  return float(synthesis_seconds) / audio_seconds if audio_seconds > 0 else float('inf')
