"""Checking and converting input mels, and reading the mel of an input file (.npy or audio).

Mel files (.npy) from any TTS model must hold float [frames, n_mels] natural-log mels made with the
checkpoint's frontend: log(max(mel, audio.log_floor)) of a magnitude (power = audio.power) Slaney
mel filterbank over a Hann STFT with the checkpoint's sample_rate, n_fft, win_length, hop_length,
fmin and fmax (exactly `audio.log_mel_spectrogram`). A [1, frames, n_mels] array is accepted too.
Audio files go through the checkpoint's own frontend (copy synthesis).

Mels of another convention (`check_mel`'s `declared`, the launcher's --mel_convention) are
converted to the checkpoint's where the difference is invertible (`mel_conventions.adapt`), and
refused, naming the fields, where it is not (`conversion_notes` checks that once, up front).
Every refusal is a `SynthesisInputError` whose message names the input and how to fix it.
"""
import math
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.audio import options as audio_options

# The inputs vocoded: audio files by copy synthesis, .npy mels as they are.
AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.mp3')
MEL_EXTENSIONS = ('.npy',)


class SynthesisInputError(ValueError):
  """An input file that is missing or contradicts the checkpoint's frontend; says how to fix it."""


def log_mel_bounds(audio_cfg):
  """The range a mel of [-1, 1] audio can take under `audio_cfg` (`mel_conventions.value_bounds`).

  By default the lower bound is log(log_floor). The upper bound is reached by no real signal: an
  STFT bin is at most sum(window) in magnitude for |x| <= 1, and a mel band sums its filter weights
  over bins.

  Args:
    audio_cfg: the checkpoint's `audio` section.
  Returns:
    (low, high) in the convention's units (nats by default).
  """
  return mel_conventions.value_bounds(mel_conventions.Frontend.from_config(audio_cfg))


def _frontend_summary(audio_cfg):
  return (f'sample_rate={audio_cfg.sample_rate} Hz, hop_length={audio_cfg.hop_length}, '
          f'n_fft={audio_cfg.n_fft}, win_length={audio_cfg.win_length}, n_mels={audio_cfg.n_mels}, '
          f'fmin={audio_cfg.fmin}, fmax={audio_cfg.fmax}, power={audio_cfg.power}, '
          f'log_floor={audio_cfg.log_floor}')


def _values_summary(audio_cfg):
  fe = mel_conventions.Frontend.from_config(audio_cfg)
  if fe.convention == 'wavegrad' and fe.log_scale == 'ln' and fe.normalize == 'none':
    return 'natural-log'
  return f'{mel_conventions.describe(fe)} ({mel_conventions.preset_call(fe)})'


def check_frame_rate(audio_cfg, mel_hop=None, mel_sample_rate=None, source='mel'):
  """Refuses mels made at another frame rate than the checkpoint's (hop in samples, rate in Hz).

  Args:
    audio_cfg: the checkpoint's `audio` section.
    mel_hop: the hop (samples) the mels were made with, if known.
    mel_sample_rate: their sample rate (Hz), if known.
    source: name used in the message.
  Raises:
    SynthesisInputError: saying both frame rates and how to fix it.
  """
  hop, rate = int(audio_cfg.hop_length), int(audio_cfg.sample_rate)
  if (mel_hop is None or int(mel_hop) == hop) and (
      mel_sample_rate is None or int(mel_sample_rate) == rate):
    return
  given_hop = int(mel_hop) if mel_hop is not None else hop
  given_rate = int(mel_sample_rate) if mel_sample_rate is not None else rate
  raise SynthesisInputError(
      f'{source}: frame rate mismatch: the mel was made with hop {given_hop} samples at '
      f'{given_rate} Hz ({given_rate / given_hop:.2f} frames/s, '
      f'{given_hop / given_rate * 1e3:.2f} ms per frame) but the checkpoint synthesizes {hop} '
      f'samples per frame at {rate} Hz ({rate / hop:.2f} frames/s). Recompute the mel (or '
      f'retrain the TTS model) with hop_length={hop} at {rate} Hz; resampling frames in time '
      'degrades the audio. The checkpoint expects a [frames, n_mels] '
      f'{_values_summary(audio_cfg)} mel with {_frontend_summary(audio_cfg)}.')


def conversion_notes(declared, audio_cfg, source='mel'):
  """What vocoding mels of frontend `declared` with a checkpoint of `audio_cfg` converts.

  Checks the frontends once, before any mel is read: the statistics file of a normalised
  convention is read too.

  Args:
    declared: the `audio` section (or `mel_conventions.Frontend`) the mels were made with.
    audio_cfg: the checkpoint's `audio` section.
    source: name of the mels in the messages, e.g. '--mel_convention=espnet mels'.
  Returns:
    list of message lines (`mel_conventions.adapt`'s), empty when the frontends agree.
  Raises:
    mel_conventions.MelConventionError: a difference no conversion undoes, listing the fields and
      naming the configs that would match.
  """
  declared = mel_conventions.Frontend.from_config(declared)
  empty = np.zeros((0, int(declared.n_mels)), np.float32)
  return mel_conventions.adapt(empty, declared, mel_conventions.Frontend.from_config(audio_cfg),
                               source)[1]


def _check_layout(shape, dtype, n_mels, fail):
  """Raises fail(...) unless (shape, dtype) is a float [frames, n_mels] or [1, frames, n_mels]."""
  if len(shape) == 3 and shape[0] == 1:
    shape = shape[1:]
  if len(shape) != 2:
    raise fail(f'expected a 2-D [frames, n_mels] array, got shape {tuple(shape)}')
  if not np.issubdtype(dtype, np.floating):
    raise fail(f'expected floating-point values, got dtype {dtype}')
  if shape[1] != n_mels:
    if shape[0] == n_mels:
      raise fail(f'shape {tuple(shape)} looks transposed: saved as [n_mels, frames] = '
                 f'[{shape[0]}, {shape[1]}]. Save it as [frames, n_mels]: np.save(path, mel.T)')
    raise fail(f'has {shape[1]} mel bands (last axis; shape {tuple(shape)}) but the checkpoint '
               f'has n_mels={n_mels}. Recompute the mel with n_mels={n_mels} and the frontend '
               "below, or use a checkpoint trained with your TTS model's frontend")
  if shape[0] < 1:
    raise fail('has 0 frames')
  return shape


def check_mel(mel, audio_cfg, source='mel', mel_hop=None, mel_sample_rate=None, check_range=True,
              declared=None):
  """Validates a mel from outside (e.g. a TTS model) against the checkpoint's frontend.

  Args:
    mel: [frames, n_mels] (or [1, frames, n_mels]) mel in the checkpoint's convention (natural-log
      by default), or in `declared`'s.
    audio_cfg: the checkpoint's `audio` section.
    source: name used in error messages (e.g. the file path).
    mel_hop: hop in samples the mel was made with, if known; must equal audio_cfg.hop_length.
    mel_sample_rate: sample rate in Hz the mel was made at, if known; must equal the checkpoint's.
    check_range: reject values outside the convention's range, or that look like log10, dB or
      linear mels where natural-log ones are expected; warn (`MelConventionWarning`) when they
      look like another convention's.
    declared: the `audio` section (or `Frontend`) the mel was made with, when not the checkpoint's:
      the mel is checked against it (`mel_conventions.resemblance_warning`), converted to the
      checkpoint's values (`mel_conventions.adapt`) and then checked as the checkpoint's.
  Returns:
    [frames, n_mels] float32 in the checkpoint's convention.
  Raises:
    SynthesisInputError: saying what differs and how to fix it.
  """
  n_mels = int(audio_cfg.n_mels)
  frontend = _frontend_summary(audio_cfg)

  def fail(problem):
    return SynthesisInputError(f'{source}: {problem}. The checkpoint expects a [frames, n_mels] '
                               f'{_values_summary(audio_cfg)} mel with {frontend}.')

  check_frame_rate(audio_cfg, mel_hop, mel_sample_rate, source)
  mel = np.asarray(mel)
  _check_layout(mel.shape, mel.dtype, n_mels, fail)
  if mel.ndim == 3:
    mel = mel[0]
  if not np.all(np.isfinite(mel)):
    raise fail(f'{int(np.count_nonzero(~np.isfinite(mel)))} values are NaN or infinite '
               '(log of 0 without a floor?); use log(max(mel, log_floor))')
  mel = mel.astype(np.float32)
  converted, warned = False, declared is not None
  if declared is not None:
    declared = mel_conventions.Frontend.from_config(declared)
    if check_range:
      _warn_if_other_convention(mel, declared, source)
    try:
      mel, notes = mel_conventions.adapt(mel, declared,
                                         mel_conventions.Frontend.from_config(audio_cfg),
                                         source)
    except mel_conventions.MelConventionError as e:
      raise SynthesisInputError(str(e)) from e
    converted = bool(notes)
  if not check_range:
    return mel
  low, high = log_mel_bounds(audio_cfg)
  lo, hi = float(mel.min()), float(mel.max())
  tol = 1e-3
  fe = mel_conventions.Frontend.from_config(audio_cfg)
  if converted:
    # Checked against the declared convention above; here only what the checkpoint can take.
    if lo < low - tol or hi > high + tol:
      raise fail(f'values range from {lo:.3g} to {hi:.3g} after conversion, outside '
                 f'[{low:.3g}, {high:.3g}], the range of {mel_conventions.describe(fe)} for '
                 '[-1, 1] audio: is the declared convention the one the mel was made with?')
    return mel
  if fe.log_scale != 'ln' or fe.normalize != 'none':
    if lo < low - tol or hi > high + tol:
      forms = mel_conventions.resembles(mel)
      looks = f'; they look like a {mel_conventions.FORMS[forms[0]]}' if forms else ''
      raise fail(f'values range from {lo:.3g} to {hi:.3g}, outside [{low:.3g}, {high:.3g}], the '
                 f'range of {mel_conventions.describe(fe)} for [-1, 1] audio{looks}')
    _warn_if_other_convention(mel, fe, source)
    return mel
  if lo < low - tol:
    db_hint = ' Values like these come from a dB mel (20*log10 or 10*log10)' if lo < -20 else ''
    raise fail(f'values range from {lo:.2f} to {hi:.2f}, below log(log_floor) = {low:.2f}, the '
               f'smallest natural-log mel the checkpoint saw.{db_hint}; convert: natural log = '
               f'dB / 20 * ln(10) for amplitude dB, then floor at {low:.2f}; or the mel used a '
               f'smaller floor: np.maximum(mel, {low:.4f})')
  if hi > high + tol:
    raise fail(f'values reach {hi:.2f}, above {high:.2f}, the largest natural-log mel any [-1, 1] '
               'waveform can produce with this frontend: looks like a dB mel (divide dB by '
               '20 / ln(10) = 8.686) or a power / unnormalized spectrum')
  if lo >= 0.0:
    raise fail(f'values range from {lo:.3g} to {hi:.3g} with none negative: looks like a linear '
               f'(not log) mel; apply np.log(np.maximum(mel, {audio_cfg.log_floor}))')
  log10_floor = low / math.log(10.0)
  at_log10_floor = float(np.mean(np.abs(mel - log10_floor) < 1e-4))
  if lo >= log10_floor - tol and at_log10_floor >= 0.01:
    raise fail(f'{at_log10_floor:.0%} of the values sit at {log10_floor:.3f} = '
               f'log10(log_floor): looks like a log10 mel; convert with mel * ln(10)')
  if not warned:
    _warn_if_other_convention(mel, fe, source)
  return mel


def _warn_if_other_convention(mel, fe, source):
  warning = mel_conventions.resemblance_warning(mel, fe, source)
  if warning:
    warnings.warn(warning, mel_conventions.MelConventionWarning, stacklevel=3)


# The --mel_convention that converts mels of each value form (mel_conventions.FORMS).
_FORM_FLAGS = {'ln': '--mel_convention=wavegrad', 'log10': '--mel_convention=espnet',
               'meanvar': '--mel_convention=espnet --mel_stats=<its stats.npy or .npz>',
               'unit': '--mel_convention=lmnt'}


def other_convention_error(mel, audio_cfg, source='mel'):
  """A SynthesisInputError for a mel that looks like another convention than the checkpoint's.

  What the launcher refuses by default (`mel_conventions.other_form`, the test behind
  `check_mel`'s warning), naming the likely convention and the flag that converts it.

  Args:
    mel: [frames, n_mels] values, given as the checkpoint's convention (no --mel_convention).
    audio_cfg: the checkpoint's `audio` section.
    source: name of the mel in the message (its path).
  Returns:
    the error (to raise), or None when the values fit the checkpoint's convention.
  """
  fe = mel_conventions.Frontend.from_config(audio_cfg)
  form = mel_conventions.other_form(mel, fe)
  if form is None:
    return None
  flag = _FORM_FLAGS.get(form, '--mel_convention=<a config .py whose audio section made them>')
  s = mel_conventions.value_stats(mel)
  return SynthesisInputError(
      f"{source}: its values (from {s['lo']:.3g} to {s['hi']:.3g}, mean {s['mean']:.3g}) look "
      f"like a {mel_conventions.FORMS[form]}, not the checkpoint's "
      f'{mel_conventions.describe(fe)}: give {flag} to convert them, or pass '
      '--allow_mel_mismatch to vocode them as they are (muffled or noisy audio)')


def _check_npy_header(path):
  """Raises SynthesisInputError unless `path` starts like a .npy file (np.save's magic bytes)."""
  try:
    with open(path, 'rb') as f:
      magic = f.read(6)
  except OSError as e:
    raise SynthesisInputError(f'{path}: cannot read the file ({e.strerror or e})') from e
  if magic != b'\x93NUMPY':
    raise SynthesisInputError(f'{path}: not a .npy array (no NumPy header: empty, truncated or '
                              'another format); save mels with np.save(path, mel)')


def load_mel(path, audio_cfg, mel_hop=None, mel_sample_rate=None, check_range=True,
             declared=None):
  """Reads and validates a .npy mel ([frames, n_mels], natural log; see module docstring).

  Args:
    path: a .npy file.
    audio_cfg: the checkpoint's `audio` section.
    mel_hop, mel_sample_rate, check_range, declared: as `check_mel`.
  Returns:
    [frames, n_mels] float32.
  Raises:
    SynthesisInputError: missing or unreadable file, or a mel that contradicts the frontend.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise SynthesisInputError(f'{path}: no such file')
  _check_npy_header(path)
  try:
    mel = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise SynthesisInputError(f'{path}: not a readable .npy array ({e})') from e
  return check_mel(mel, audio_cfg, path, mel_hop, mel_sample_rate, check_range, declared)


def make_log_mel_fn(audio_cfg):
  """The checkpoint's jitted frontend: [T] audio -> [T // hop, n_mels] natural-log mel."""
  fe = mel_conventions.Frontend.from_config(audio_cfg)
  return jax.jit(lambda x: audio_lib.log_mel_spectrogram(x, fe))


def mel_from_audio_file(path, audio_cfg, log_mel_fn=None):
  """Copy synthesis input: loads audio at the checkpoint's rate and computes its log-mel.

  Args:
    path: any audio file `audio.load_audio` reads.
    audio_cfg: the checkpoint's `audio` section.
    log_mel_fn: optional jitted frontend from `make_log_mel_fn` (reused across files).
  Returns:
    (mel [F, n_mels] float32, audio [F * hop] float32) with F = T // hop.
  Raises:
    SynthesisInputError: missing, unreadable, or shorter than one hop.
  """
  try:
    wave = audio_options.load_audio_from_config(path, audio_cfg)
  except audio_lib.AudioLoadError as e:
    raise SynthesisInputError(str(e)) from e
  hop = int(audio_cfg.hop_length)
  frames = wave.shape[0] // hop
  if frames < 1:
    raise SynthesisInputError(f'{path}: {wave.shape[0]} samples is shorter than one hop ({hop})')
  log_mel_fn = log_mel_fn or make_log_mel_fn(audio_cfg)
  mel = np.asarray(log_mel_fn(jnp.asarray(wave)), np.float32)
  return mel, wave[:frames * hop]


def load_input(path, audio_cfg, mel_hop=None, mel_sample_rate=None, check_range=True,
               log_mel_fn=None, declared=None):
  """The mel to vocode from a .npy mel, or from an audio file through the frontend (copy synthesis).

  Args:
    path: a .npy mel file or an audio file.
    audio_cfg: the checkpoint's `audio` section.
    mel_hop, mel_sample_rate, check_range, declared: checks of .npy mels (see `check_mel`).
    log_mel_fn: optional jitted frontend (`make_log_mel_fn`), shared across files.
  Returns:
    [F, n_mels] float32 mel in the checkpoint's convention.
  Raises:
    SynthesisInputError: as `load_mel` / `mel_from_audio_file`.
  """
  return _load_input(path, audio_cfg, mel_hop, mel_sample_rate, check_range, log_mel_fn,
                     declared)[0]


def is_mel_file(path):
  """Whether `path` names a .npy mel (vocoded as it is) rather than an audio file."""
  return os.fspath(path).lower().endswith(MEL_EXTENSIONS)


def _load_input(path, audio_cfg, mel_hop, mel_sample_rate, check_range, log_mel_fn,
                declared=None):
  """(mel [F, n_mels], audio [F * hop] or None for a .npy mel); see `load_input`."""
  if is_mel_file(path):
    return load_mel(path, audio_cfg, mel_hop, mel_sample_rate, check_range, declared), None
  # An audio file goes through the checkpoint's own frontend, so mel_hop cannot disagree there.
  return mel_from_audio_file(path, audio_cfg, log_mel_fn)
