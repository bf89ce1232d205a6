"""A frontend's values: filterbank and STFT scale, linear mel <-> convention values, descriptions.

One job: the maths of a `Frontend`. `compress` (linear mel -> the convention's values: floor,
ln / log10 / dB, normalisation) and `decompress` (its inverse) work on numpy and JAX arrays;
`silence_value`, `value_bounds` and `effective_floor` follow from them; `describe`,
`effective_fields`, `stored_values` and `preset_call` say what a frontend is in words, in JSON (a
prepared dataset's key: written to disk, so its values must not change) and as the config call of
experiments/configs/common.py that gives it. Filterbanks are librosa.filters.mel's.
"""
import functools
import math

import jax.numpy as jnp
import librosa
import numpy as np
import scipy.signal

from wavegrad_jax.audio.conventions.recipes import CONVENTIONS
from wavegrad_jax.audio.conventions.recipes import Frontend
from wavegrad_jax.audio.conventions.recipes import RECIPE_VALUES
from wavegrad_jax.audio.conventions.recipes import canonical
from wavegrad_jax.audio.conventions.recipes import require_frontend
from wavegrad_jax.audio.conventions.stats import load_meanvar_stats
from wavegrad_jax.audio.conventions.stats import stats_digest



@functools.lru_cache(maxsize=None)
def _window(window, win_length):
  return scipy.signal.get_window(window, win_length, fftbins=True).astype(np.float64)


def stft_gain(fe):
  """The factor |X| is multiplied by before the filterbank: 1, or 1 / sqrt(sum(window^2))."""
  if fe.stft_norm == 'none':
    return 1.0
  return float(1.0 / np.sqrt(np.sum(np.square(_window(fe.window, fe.win_length)))))


@functools.lru_cache(maxsize=None)
def _filterbank_cached(sample_rate, n_fft, n_mels, fmin, fmax, mel_scale, mel_norm):
  fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                           htk=mel_scale == 'htk', norm='slaney' if mel_norm == 'slaney' else None)
  fb = np.ascontiguousarray(fb.T, dtype=np.float32)
  fb.setflags(write=False)  # shared by every caller through the cache
  return fb


def filterbank(fe):
  """librosa's mel filterbank for the frontend's scale and norm, cached.

  Args:
    fe: a `Frontend` (sample_rate, n_fft, n_mels, fmin, fmax in Hz, mel_scale, mel_norm).
  Returns:
    [n_fft // 2 + 1, n_mels] float32, read-only; right-multiplies a [..., frames, bins] spectrum.
  """
  return _filterbank_cached(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax, fe.mel_scale,
                            fe.mel_norm)


def max_linear_mel(fe):
  """[n_mels] upper bound of each band's linear mel for a waveform within [-1, 1].

  An STFT bin is at most sum(window) in magnitude for |x| <= 1; a band sums its filter weights.
  """
  window_sum = float(np.sum(_window(fe.window, fe.win_length)))
  peak = math.sqrt(max(window_sum ** 2 + fe.magnitude_eps, fe.power_floor)) * stft_gain(fe)
  return peak ** fe.power * np.sum(filterbank(fe).astype(np.float64), axis=0)


# ---------------------------------------------------------------------------- values <-> linear


def _stats_for(fe, xp):
  """The frontend's mean and scale: float32 constants for JAX, float64 for numpy."""
  mean, scale = load_meanvar_stats(fe.stats_file, fe.n_mels)
  if xp is np:
    return mean, scale
  return mean.astype(np.float32), scale.astype(np.float32)


def compress(mel, fe, xp=jnp):
  """A linear mel to the convention's values: floor, log / dB, normalisation.

  Args:
    mel: [..., frames, n_mels] linear mel (|X| ** power through the filterbank), >= 0.
    fe: `Frontend`.
    xp: jax.numpy (jittable) or numpy.
  Returns:
    [..., frames, n_mels] in the convention's units, the dtype of `mel`.
  """
  x = xp.maximum(mel, fe.log_floor)
  if fe.log_scale == 'ln':
    y = xp.log(x)
  elif fe.log_scale == 'log10':
    y = xp.log10(x)
  else:
    y = (20.0 / fe.power) * xp.log10(x) - fe.db_ref
  if fe.normalize == 'meanvar':
    mean, scale = _stats_for(fe, xp)
    y = (y - mean) / scale
  elif fe.normalize == 'range':
    (a, b), (lo, hi) = fe.range_in, fe.range_out
    y = lo + (hi - lo) * xp.clip((y - a) / (b - a), 0.0, 1.0)
  return y


def decompress(values, fe, xp=jnp):
  """Inverse of `compress`: the convention's values back to a linear mel.

  Floored and clipped values come back as the floor / clip bound, not as what was there.

  Args:
    values: [..., frames, n_mels] in the convention's units.
    fe: `Frontend`.
    xp: jax.numpy or numpy.
  Returns:
    [..., frames, n_mels] linear mel.
  """
  y = values
  if fe.normalize == 'meanvar':
    mean, scale = _stats_for(fe, xp)
    y = y * scale + mean
  elif fe.normalize == 'range':
    (a, b), (lo, hi) = fe.range_in, fe.range_out
    y = a + (b - a) * ((y - lo) / (hi - lo))
  if fe.log_scale == 'ln':
    return xp.exp(y)
  if fe.log_scale == 'log10':
    return xp.power(10.0, y)
  return xp.power(10.0, (y + fe.db_ref) * (fe.power / 20.0))


def silence_value(fe):
  """The convention's value of a silent band (what padding frames hold).

  Args:
    fe: `Frontend`.
  Returns:
    a float, or [n_mels] float32 under 'meanvar' normalisation (silence differs per band).
  """
  require_frontend(fe, 'silence_value')
  value = compress(np.zeros(fe.n_mels), fe, xp=np)
  if fe.normalize == 'meanvar':
    return value.astype(np.float32)
  return float(value[0])


def value_bounds(fe):
  """The range the convention's values of [-1, 1] audio can take (the loudest is reached by no
  real signal).

  Args:
    fe: `Frontend`.
  Returns:
    (low, high) floats: the smallest and largest value over all bands.
  """
  require_frontend(fe, 'value_bounds')
  ends = compress(np.stack([np.zeros(fe.n_mels), max_linear_mel(fe)]), fe, xp=np)
  return float(np.min(ends)), float(np.max(ends))


def effective_floor(fe):
  """The smallest linear mel the convention tells apart from silence: [n_mels] float64."""
  return decompress(compress(np.zeros(fe.n_mels), fe, xp=np), fe, xp=np)


# ------------------------------------------------------------------------- descriptions, presets


def describe(fe):
  """A one-line formula of what the frontend's values are, e.g. 'ln(max(mel, 1e-05))'."""
  floor = f'max(mel, {fe.log_floor:g})'
  if fe.log_scale == 'ln':
    text = f'ln({floor})'
  elif fe.log_scale == 'log10':
    text = f'log10({floor})'
  else:
    text = f'{20.0 / fe.power:g}*log10({floor})' + (f' - {fe.db_ref:g}' if fe.db_ref else '')
  if fe.normalize == 'meanvar':
    text = f'({text} - mean) / scale'
  elif fe.normalize == 'range':
    (a, b), (lo, hi) = fe.range_in, fe.range_out
    text = f'{text} from [{a:g}, {b:g}] clipped into [{lo:g}, {hi:g}]'
  return f'{fe.convention}: {text}'


def effective_fields(fe):
  """The convention fields that affect the values, as plain JSON-able values.

  Fields that a setting makes irrelevant (db_ref without dB, the ranges without 'range') are left
  out; 'meanvar' adds the statistics file's sha256 as 'stats_sha256'.
  """
  out = {k: getattr(fe, k) for k in ('framing', 'pad_mode', 'stft_norm', 'magnitude_eps',
                                     'mel_scale', 'mel_norm', 'log_scale', 'log_floor',
                                     'normalize')}
  if fe.power_floor:  # only where set, so that every earlier frontend keeps its fields
    out['power_floor'] = fe.power_floor
  if fe.log_scale == 'db':
    out['db_ref'] = fe.db_ref
  if fe.normalize == 'meanvar':
    out['stats_sha256'] = stats_digest(fe.stats_file)
  if fe.normalize == 'range':
    out['range_in'] = list(fe.range_in)
    out['range_out'] = list(fe.range_out)
  return out


@functools.lru_cache(maxsize=None)
def _default_fields():
  return effective_fields(Frontend(22050, 1024, 256, 1024, 'hann', 80, 0.0, 11025.0, 1.0))


def stored_values(fe):
  """The convention fields that differ from the 'wavegrad' defaults, for a prepared dataset's key.

  Only values beyond the fields the key always held (pad_mode, log_floor) and only non-default
  ones, so the default frontend keeps its dataset key.

  Args:
    fe: `Frontend`.
  Returns:
    dict, empty for the default frontend.
  """
  defaults = _default_fields()
  return {k: v for k, v in effective_fields(require_frontend(fe, 'stored_values')).items()
          if k not in ('pad_mode', 'log_floor') and defaults.get(k) != v}


def matching_convention(fe):
  """The named convention whose defining choices the frontend's fields follow, or None."""
  if canonical(fe.convention) in CONVENTIONS:
    return canonical(fe.convention)
  for name, choices in CONVENTIONS.items():
    if all(getattr(fe, k) in (v if isinstance(v, tuple) else (v,)) for k, v in choices.items()):
      return name
  return None


def preset_call(fe):
  """The config that gives this frontend, e.g. "audio_config_hifigan(sample_rate=22050, ...)".

  Names the preset function of experiments/configs/common.py with the frontend's sizes, plus any
  field it sets differently from the preset's recipe; for a mix no convention has, lists the fields.
  """
  name = matching_convention(fe)
  sizes = (f'sample_rate={fe.sample_rate}, n_fft={fe.n_fft}, win_length={fe.win_length}, '
           f'hop_length={fe.hop_length}, n_mels={fe.n_mels}, fmin={fe.fmin:g}, fmax={fe.fmax:g}')
  extra = [f'power={fe.power:g}'] if fe.power != 1.0 else []
  extra += [] if fe.window == 'hann' else [f'window={fe.window!r}']
  extra += [] if fe.pad_mode == 'reflect' else [f'pad_mode={fe.pad_mode!r}']
  if name is None:
    fields = effective_fields(fe)
    fields.pop('stats_sha256', None)
    if fe.normalize == 'meanvar':
      fields['stats_file'] = fe.stats_file
    extra += [f'{k}={v!r}' for k, v in fields.items() if k != 'pad_mode']
    return (f"audio_config({sizes}) with convention='custom', " + ', '.join(extra))
  for k, v in RECIPE_VALUES[name].items():
    if getattr(fe, k) != (tuple(v) if isinstance(v, tuple) else v):
      extra.append(f'{k}={getattr(fe, k)!r}')
  if fe.normalize == 'meanvar':
    sizes += f', stats_file={fe.stats_file!r}'
  call = f"audio_config_{name}({sizes})" if name != 'wavegrad' else f'audio_config({sizes})'
  return call + (f" with audio.{', audio.'.join(extra)}" if extra else '')
