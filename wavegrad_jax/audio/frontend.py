"""The mel frontend (STFT, mel filterbank, log) in JAX, and audio file loading.

Waveforms are [..., T] float32 in [-1, 1]; spectra are frames-major, [..., frames, bins]. With the
default framing 'center' frames are centred like librosa's `center=True`; 'hop_center' centres frame
i on the middle of hop i (HiFi-GAN). Either way only the first T // hop_length frames are kept so
that frames * hop_length == T, which the model requires. What happens after the filterbank (log
base, floor, dB, normalisation) is the `audio.convention`'s, in `mel_conventions`. Every JAX
function takes the frontend as a `mel_conventions.Frontend` (frozen and hashable: build it once
with `Frontend.from_config(config.audio)`, then close over it or pass it as a jit static argument;
don't trace it). `load_audio` takes the rate and peak level as arguments
(`options.load_audio_from_config` reads them from an `audio` section).
"""
import functools
import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal
import soundfile
import soxr

from wavegrad_jax.audio import conventions as mel_conventions

class AudioLoadError(ValueError):
  """An audio file is missing, empty, truncated, corrupt or unreadable; the message names it."""


# ------------------------------------------------------------------------------ filterbank, window


def mel_filterbank(fe):
  """librosa's mel filterbank of the frontend, cached: Slaney scale and norm unless fe.mel_scale
  / fe.mel_norm say 'htk' / 'none'.

  Args:
    fe: a `mel_conventions.Frontend` (sample_rate, n_fft, n_mels, fmin, fmax in Hz, mel_scale,
      mel_norm).
  Returns:
    [n_fft // 2 + 1, n_mels] float32, read-only; right-multiplies a [..., frames, bins] spectrum.
  """
  return mel_conventions.filterbank(mel_conventions.require_frontend(fe, 'mel_filterbank'))


@functools.lru_cache(maxsize=None)
def _fft_window(window, win_length, n_fft):
  """scipy's periodic window of win_length samples, zero-padded centred to n_fft (as librosa)."""
  if not 0 < win_length <= n_fft:
    raise ValueError(f'win_length must be in [1, n_fft={n_fft}], got {win_length}')
  win = scipy.signal.get_window(window, win_length, fftbins=True)
  left = (n_fft - win_length) // 2
  padded = np.zeros(n_fft, np.float32)
  padded[left:left + win_length] = win
  padded.setflags(write=False)
  return padded


def _check_sizes(n_fft, hop_length, win_length):
  if n_fft < 1 or hop_length < 1:
    raise ValueError(f'n_fft and hop_length must be positive, got {n_fft} and {hop_length}')
  return int(win_length if win_length is not None else n_fft)


# ------------------------------------------------------------------------------------- STFT, iSTFT


def _frame(padded, n_fft, hop_length, frames):
  """Cuts [..., L] into [..., frames, n_fft] frames starting every hop_length samples.

  Built from hop-sized blocks and k = ceil(n_fft / hop) shifted slices rather than a gather, so it
  lowers to plain slices and a concatenate that are cheap on every backend.
  """
  k = -(-n_fft // hop_length)
  blocks = frames + k - 1
  needed = blocks * hop_length
  length = padded.shape[-1]
  # The tail beyond the last frame's n_fft samples only feeds the truncated part of the last block.
  if length < needed:
    padded = jnp.pad(padded, [(0, 0)] * (padded.ndim - 1) + [(0, needed - length)])
  else:
    padded = padded[..., :needed]
  b = padded.reshape(padded.shape[:-1] + (blocks, hop_length))
  out = jnp.concatenate([b[..., j:j + frames, :] for j in range(k)], axis=-1)
  return out[..., :n_fft]


def _overlap_add(frames, hop_length):
  """Inverse of `_frame`: sums [..., F, n] frames placed every hop_length samples into [..., L]."""
  f, n = frames.shape[-2:]
  k = -(-n // hop_length)
  frames = jnp.pad(frames, [(0, 0)] * (frames.ndim - 1) + [(0, k * hop_length - n)])
  frames = frames.reshape(frames.shape[:-1] + (k, hop_length))
  out = jnp.zeros(frames.shape[:-3] + (f + k - 1, hop_length), frames.dtype)
  for j in range(k):
    out = out.at[..., j:j + f, :].add(frames[..., :, j, :])
  return out.reshape(out.shape[:-2] + ((f + k - 1) * hop_length,))


def _framing_pad(n_fft, hop_length, framing):
  """Samples padded at each end: n_fft // 2 ('center') or (n_fft - hop) // 2 ('hop_center')."""
  if framing == 'center':
    return n_fft // 2
  if framing == 'hop_center':
    return max(0, (n_fft - hop_length) // 2)
  raise ValueError(f"framing must be 'center' or 'hop_center', got {framing!r}")


def framing_pad(n_fft, hop_length, framing):
  """Samples `stft` pads at each end of the waveform: n_fft // 2 ('center'), (n_fft - hop) // 2."""
  return _framing_pad(n_fft, hop_length, framing)


def stft(audio, n_fft, hop_length, win_length=None, window='hann', pad_mode='reflect',
         framing='center'):
  """Complex STFT of the first T // hop_length frames.

  With framing 'center' this is librosa `stft(center=True)` less its trailing frame; with
  'hop_center' it is HiFi-GAN's: (n_fft - hop_length) // 2 samples padded at each end, then
  `stft(center=False)`, frame i centred on the middle of hop i (for an odd n_fft - hop_length the
  last frame reads one zero past the end padding, where HiFi-GAN would drop that frame).

  Args:
    audio: [..., T] float waveform; T >= hop_length.
    n_fft: FFT size in samples.
    hop_length: frame step in samples.
    win_length: window length in samples (<= n_fft; default n_fft), zero-padded centred to n_fft.
    window: any `scipy.signal.get_window` spec, e.g. 'hann' (periodic).
    pad_mode: `jnp.pad` mode for the samples added at each end.
    framing: 'center' or 'hop_center'.
  Returns:
    [..., T // hop_length, n_fft // 2 + 1] complex64.
  """
  win_length = _check_sizes(n_fft, hop_length, win_length)
  win = _fft_window(window, win_length, n_fft)
  audio = jnp.asarray(audio, jnp.float32)
  frames = audio.shape[-1] // hop_length
  if frames < 1:
    raise ValueError(f'audio of {audio.shape[-1]} samples is shorter than one hop '
                     f'({hop_length} samples)')
  pad = _framing_pad(n_fft, hop_length, framing)
  padded = jnp.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(pad, pad)], mode=pad_mode)
  framed = _frame(padded, n_fft, hop_length, frames)
  return jnp.fft.rfft(framed * win, axis=-1)


def stft_magnitude(audio, n_fft, hop_length, win_length=None, window='hann', pad_mode='reflect',
                   framing='center'):
  """|STFT| of `audio`: [..., T] -> [..., T // hop_length, n_fft // 2 + 1] float32 (see `stft`)."""
  return jnp.abs(stft(audio, n_fft, hop_length, win_length, window, pad_mode, framing))


def istft(spec, length, n_fft, hop_length, win_length=None, window='hann', framing='center'):
  """Inverse of `stft`: windowed overlap-add divided by the window's sum of squares.

  Samples the window covers (nearly) nowhere are left undivided, as librosa does. The last few
  samples are covered only by the tail of the last frame's window, so they are poorly conditioned
  for spectra that are not a real STFT (e.g. inside Griffin-Lim), while exact for `stft` output.

  Args:
    spec: [..., frames, n_fft // 2 + 1] complex STFT in `stft`'s framing.
    length: output length in samples, usually the T given to `stft`; zero-filled past the frames.
    n_fft, hop_length, win_length, window, framing: as given to `stft`.
  Returns:
    [..., length] float32 waveform.
  """
  win_length = _check_sizes(n_fft, hop_length, win_length)
  win = _fft_window(window, win_length, n_fft)
  spec = jnp.asarray(spec)
  frames = jnp.fft.irfft(spec, n=n_fft, axis=-1).astype(jnp.float32) * win
  y = _overlap_add(frames, hop_length)
  wss = _overlap_add(jnp.broadcast_to(jnp.asarray(win * win), (spec.shape[-2], n_fft)),
                     hop_length)
  covered = wss > np.finfo(np.float32).tiny
  y = jnp.where(covered, y / jnp.where(covered, wss, 1.0), y)
  start = _framing_pad(n_fft, hop_length, framing)
  y = y[..., start:start + length]
  if y.shape[-1] < length:
    y = jnp.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, length - y.shape[-1])])
  return y


# ---------------------------------------------------------------------------------------------- mel


def mel_spectrogram(audio, fe):
  """Linear mel spectrogram (before the log) of the first T // hop frames.

  The default frontend is librosa.feature.melspectrogram; fe.framing, stft_norm, magnitude_eps,
  power_floor, mel_scale and mel_norm select the other conventions' STFT and filterbank (see
  mel_conventions).

  Args:
    audio: [..., T] float waveform at fe.sample_rate Hz.
    fe: the `mel_conventions.Frontend` (hashable Python constants).
  Returns:
    [..., T // hop_length, n_mels] float32, (gain * |STFT|) ** power through the mel filterbank.
  """
  mel_conventions.require_frontend(fe, 'mel_spectrogram')
  spec = stft(audio, fe.n_fft, fe.hop_length, fe.win_length, fe.window, fe.pad_mode, fe.framing)
  if fe.magnitude_eps or fe.power_floor:
    # ESPnet2 floors the power before the root: sqrt(max(|X|^2, 1e-10)).
    power = jnp.square(spec.real) + jnp.square(spec.imag) + fe.magnitude_eps
    mag = jnp.sqrt(jnp.maximum(power, fe.power_floor))
  else:
    mag = jnp.abs(spec)
  gain = mel_conventions.stft_gain(fe)
  if gain != 1.0:
    mag = mag * gain
  spec = mag if fe.power == 1.0 else mag ** fe.power
  # HIGHEST: the default float32 matmul on TPU (bf16 passes) and on GPU (TF32) costs ~1e-3 relative.
  return jnp.matmul(spec, jnp.asarray(mel_conventions.filterbank(fe)),
                    precision=jax.lax.Precision.HIGHEST)


def log_mel_spectrogram(audio, fe):
  """The model's conditioning mel, in the frontend's convention.

  By default (convention 'wavegrad') log(max(mel, log_floor)), natural log; other conventions
  apply log10 / dB and normalisation (`mel_conventions.compress`).

  Args:
    audio: [..., T] float waveform at fe.sample_rate Hz.
    fe: the `mel_conventions.Frontend`.
  Returns:
    [..., T // hop_length, n_mels] float32.
  """
  mel_conventions.require_frontend(fe, 'log_mel_spectrogram')
  return mel_conventions.compress(mel_spectrogram(audio, fe), fe)


# ------------------------------------------------------------------------------------------ loading


def _riff_data_shortfall(path):
  """Bytes missing from a RIFF/WAVE file's data chunk, 0 if intact or not a WAV.

  libsndfile silently clamps a WAV whose data chunk runs past the end of the file to the bytes that
  are there, so a cut-off file would otherwise load as a shorter, valid-looking clip.
  """
  with open(path, 'rb') as f:
    head = f.read(12)
    if len(head) < 12 or head[:4] != b'RIFF' or head[8:12] != b'WAVE':
      return 0
    size = os.fstat(f.fileno()).st_size
    pos = 12
    while pos + 8 <= size:
      f.seek(pos)
      chunk_id, chunk_size = struct.unpack('<4sI', f.read(8))
      if chunk_id == b'data':
        # 0 and 0xFFFFFFFF mark a streamed WAV whose writer never knew the length.
        if chunk_size in (0, 0xFFFFFFFF):
          return 0
        return max(0, chunk_size - (size - pos - 8))
      pos += 8 + chunk_size + (chunk_size & 1)
    return 0


def load_audio(path, sample_rate, peak_normalize=0.9):
  """Reads an audio file as a mono float32 waveform at `sample_rate`.

  Args:
    path: any file soundfile reads (wav, flac, ogg, ...; any rate, channels, sample type).
    sample_rate: target rate in Hz; other rates are resampled with soxr 'HQ'.
    peak_normalize: the peak |sample| the output is scaled to; 0 keeps the file's level.
  Returns:
    [T] float32, the mean of the channels.
  Raises:
    AudioLoadError: the file is missing, empty, truncated, corrupt, unreadable, or not finite.
  """
  name = os.fspath(path)

  def fail(problem):
    return AudioLoadError(f'{name}: {problem}')

  if not os.path.exists(name):
    raise fail('no such file')
  if not os.path.isfile(name):
    raise fail('not a regular file')
  try:
    if os.path.getsize(name) == 0:
      raise fail('file is empty (0 bytes); re-export or remove it')
    shortfall = _riff_data_shortfall(name)
  except OSError as e:
    raise fail(f'cannot read the file ({e.strerror or e})') from e
  if shortfall:
    raise fail(f'truncated: the WAV header declares {shortfall} more data bytes than the file '
               'holds; re-export or remove it')
  try:
    with soundfile.SoundFile(name) as f:
      rate, declared = f.samplerate, f.frames
      if declared == 0:
        raise fail('file is empty (0 samples); re-export or remove it')
      data = f.read(dtype='float32', always_2d=True)
  except soundfile.SoundFileError as e:
    raise fail(f'not a readable audio file, or corrupt ({e}); re-export or remove it') from e
  except OSError as e:
    raise fail(f'cannot read the file ({e.strerror or e})') from e
  if data.shape[0] == 0:
    raise fail('file is empty (0 samples); re-export or remove it')
  if data.shape[0] < declared:
    raise fail(f'truncated or corrupt: the header declares {declared} samples but only '
               f'{data.shape[0]} decode; re-export or remove it')
  bad = int(np.count_nonzero(~np.isfinite(data)))
  if bad:
    # One NaN is enough to turn the peak, and so the whole normalised clip, into NaN.
    raise fail(f'{bad} of {data.size} samples are NaN or infinite; re-export or remove it')

  audio = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
  if rate != sample_rate:
    audio = soxr.resample(audio, rate, sample_rate, quality='HQ')
    if audio.shape[0] == 0:
      raise fail(f'too short to resample from {rate} Hz to {sample_rate} Hz '
                 f'({data.shape[0]} samples)')
  audio = np.ascontiguousarray(audio, dtype=np.float32)
  peak = float(np.max(np.abs(audio)))
  if peak_normalize and peak > 0:
    audio *= np.float32(peak_normalize / peak)
  return audio
