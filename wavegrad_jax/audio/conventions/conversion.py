"""Converting a mel between two frontends, where the difference is invertible.

One job: `differences` sorts the fields two frontends differ in into those no conversion of a mel
undoes (sizes, rate, band edges, power, framing, padding, mel scale) and those `adapt` converts
through the linear mel (STFT scaling, filterbank norm, log base, dB, floor, normalisation).
"""
import math

import numpy as np

from wavegrad_jax.audio.conventions.recipes import MelConventionError
from wavegrad_jax.audio.conventions.recipes import require_frontend
from wavegrad_jax.audio.conventions.values import compress
from wavegrad_jax.audio.conventions.values import decompress
from wavegrad_jax.audio.conventions.values import describe
from wavegrad_jax.audio.conventions.values import effective_fields
from wavegrad_jax.audio.conventions.values import effective_floor
from wavegrad_jax.audio.conventions.values import filterbank
from wavegrad_jax.audio.conventions.values import preset_call
from wavegrad_jax.audio.conventions.values import stft_gain

# Fields whose difference changes which |STFT| bins or bands a mel value sums: no conversion of
# the mel undoes them.
_FIXED_FIELDS = ('sample_rate', 'hop_length', 'n_fft', 'win_length', 'window', 'n_mels', 'fmin',
                 'fmax', 'power', 'framing', 'pad_mode', 'mel_scale')



def _same(a, b):
  if isinstance(a, float) or isinstance(b, float):
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
  return a == b


def differences(declared, checkpoint):
  """What differs between the frontend a mel was made with and a checkpoint's.

  Args:
    declared, checkpoint: `Frontend`s.
  Returns:
    (refused, converted): lists of (field, declared value, checkpoint value). `refused` holds the
    differences no conversion of the mel undoes (sizes, rate, band edges, power, framing, padding,
    mel scale); `converted` those `adapt` converts (STFT scaling, filterbank norm, log base, dB,
    floor, normalisation, magnitude_eps, whose effect stays below 1e-5 of a bin, power_floor,
    which changes only bins quieter than sqrt(power_floor)).
  """
  d = require_frontend(declared, 'differences')
  c = require_frontend(checkpoint, 'differences')
  refused = [(k, getattr(d, k), getattr(c, k)) for k in _FIXED_FIELDS
             if not _same(getattr(d, k), getattr(c, k))]
  fd, fc = effective_fields(d), effective_fields(c)
  converted = []
  for k in ('stft_norm', 'magnitude_eps', 'power_floor', 'mel_norm', 'log_scale', 'log_floor', 'db_ref',
            'normalize', 'stats_sha256', 'range_in', 'range_out'):
    a, b = fd.get(k), fc.get(k)
    if a is None and b is None:
      continue
    if isinstance(a, list) or isinstance(b, list):
      differ = a != b
    else:
      differ = a is None or b is None or not _same(a, b)
    if not differ:
      continue
    if k == 'stats_sha256':
      if d.normalize == c.normalize:  # else 'normalize' already says it
        converted.append(('stats_file', d.stats_file, c.stats_file))
    elif k == 'power_floor':
      converted.append((k, d.power_floor, c.power_floor))
    elif k in ('db_ref', 'range_in', 'range_out') and (a is None or b is None):
      continue  # only one side uses the field: 'log_scale' / 'normalize' already say it
    else:
      converted.append((k, getattr(d, k), getattr(c, k)))
  return refused, converted


def _format_fields(fields):
  return '; '.join(f'{k}: {a!r} (mel) vs {b!r} (checkpoint)' for k, a, b in fields)


def adapt(mel, declared, checkpoint, source='mel'):
  """Converts a mel made with frontend `declared` into the checkpoint's values, where possible.

  Invertible differences (log base, dB, floor, normalisation with known statistics, STFT scaling,
  filterbank norm) are undone through the linear mel: decompress, rescale, compress.

  Args:
    mel: [..., frames, n_mels] values in the declared convention.
    declared: the `Frontend` the mel was made with.
    checkpoint: the checkpoint's `Frontend`.
    source: name of the mel in messages (e.g. its path).
  Returns:
    (mel [..., frames, n_mels] float32 in the checkpoint's values, list of message strings saying
    what was converted; empty when the frontends agree and the mel is returned unchanged).
  Raises:
    MelConventionError: a difference no conversion undoes; the message lists the fields and names
      the config each side needs.
  """
  d = require_frontend(declared, 'adapt')
  c = require_frontend(checkpoint, 'adapt')
  refused, converted = differences(d, c)
  if refused:
    note = (f' (besides, {_format_fields(converted)} would be converted)' if converted else '')
    raise MelConventionError(
        f"{source}: cannot be converted to the checkpoint's mel frontend; these fields differ "
        f'and no conversion of a mel undoes them: {_format_fields(refused)}{note}. '
        f'The checkpoint takes mels made with {preset_call(c)}: configure the TTS model to '
        f'predict those; or vocode these mels with a checkpoint trained on {preset_call(d)}')
  mel = np.asarray(mel)
  if not converted:
    return mel.astype(np.float32), []
  linear = decompress(mel.astype(np.float64), d, xp=np)
  ratio = (stft_gain(c) / stft_gain(d)) ** c.power
  if d.mel_norm != c.mel_norm:
    # Same triangles under either norm: the filterbanks differ by one factor per band.
    sum_d = np.sum(filterbank(d).astype(np.float64), axis=0)
    sum_c = np.sum(filterbank(c).astype(np.float64), axis=0)
    ratio = ratio * np.where(sum_d > 0, sum_c / np.where(sum_d > 0, sum_d, 1.0), 1.0)
  out = compress(linear * ratio, c, xp=np).astype(np.float32)
  messages = [f'{source}: converted from {describe(d)} to {describe(c)} '
              f'({_format_fields(converted)})']
  lost = effective_floor(d) * ratio > effective_floor(c) * (1 + 1e-6)
  if np.any(lost):
    messages.append(
        f'{source}: bands at or below the mel\'s floor ({float(np.max(effective_floor(d))):.3g} '
        f'linear) stay at it, above the checkpoint\'s floor '
        f'({float(np.min(effective_floor(c))):.3g}): the conversion cannot restore what the floor '
        'removed')
  if any(k == 'power_floor' for k, _, _ in converted):
    messages.append(f'{source}: power_floor {d.power_floor:g} vs {c.power_floor:g} left as is (it '
                    f'changes only |STFT| bins below {math.sqrt(max(d.power_floor, c.power_floor)):.3g}'
                    ', digital silence and the like)')
  if any(k == 'magnitude_eps' for k, _, _ in converted):
    messages.append(f'{source}: magnitude_eps {d.magnitude_eps:g} vs {c.magnitude_eps:g} left as '
                    'is (it moves a band by under 1e-5 of a bin magnitude)')
  return out, messages
