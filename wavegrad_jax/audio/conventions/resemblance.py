"""Which convention a mel's values look like: the check behind the wrong-convention warning.

One job: a mel of the wrong convention vocodes to muffled or noisy audio without an error, so
`resembles` reads a mel's value statistics (floor, spread, band means) against the forms the
conventions produce (`FORMS`), and `resemblance_warning` says when they do not fit the declared one.
"""
import math

import numpy as np

from wavegrad_jax.audio.conventions.recipes import require_frontend
from wavegrad_jax.audio.conventions.values import describe
from wavegrad_jax.audio.conventions.values import preset_call


# The forms mel values take under the conventions in use, with the conventions that produce each.
FORMS = {
    'ln': 'natural log of the mel (wavegrad, hifigan / Tacotron 2: ln(max(mel, 1e-5)))',
    'log10': 'log10 of the mel (parallel_wavegan alias espnet, espnet2: log10(max(mel, 1e-10)))',
    'meanvar': 'mean-variance normalised log mel (parallel_wavegan or espnet2 with a statistics '
               'file)',
    'unit': 'dB mel normalised to [0, 1] (lmnt WaveGrad / DiffWave)',
    'symmetric': 'dB mel normalised to a symmetric range such as [-1, 1] or [-4, 4] '
                 '(Tacotron-1-style)',
    'db': 'dB mel, not normalised (20*log10 or 10*log10)',
    'linear': 'linear mel, no log applied',
}


def _form_of(fe):
  """The value form the frontend produces (a FORMS key)."""
  if fe.normalize == 'meanvar':
    return 'meanvar'
  if fe.normalize == 'range':
    lo, hi = sorted(fe.range_out)
    return 'unit' if lo >= 0 else 'symmetric'
  return {'ln': 'ln', 'log10': 'log10', 'db': 'db'}[fe.log_scale]


# Values a floor or clip leaves many of, and the form that puts them there.
_FLOOR_SIGNATURES = ((math.log(1e-5), 'ln'), (math.log(1e-10), 'ln'), (-10.0, 'log10'),
                     (-5.0, 'log10'), (-100.0, 'db'), (-80.0, 'db'), (0.0, 'unit'),
                     (-1.0, 'symmetric'), (-4.0, 'symmetric'))


def value_stats(mel):
  """Summary statistics of a mel's values, as `resembles` reads them.

  Args:
    mel: [frames, n_mels] values.
  Returns:
    dict of floats: lo, hi, mean, std over all values; at_lo, the share of values at the minimum
    (a floor or clip); spread, the std of the values above it; bands, the range of the per-band
    means of those values (log units: about 5-8 for a natural log of speech, 2-3 for log10).
  """
  m = np.asarray(mel, np.float64).reshape(-1, np.asarray(mel).shape[-1])
  v = m.reshape(-1)
  lo, hi = float(v.min()), float(v.max())
  above = m > lo + 1e-4 * max(hi - lo, 1e-12)
  spread = float(m[above].std()) if above.any() else 0.0
  counts = above.sum(axis=0)
  means = np.where(counts > 0, np.where(above, m, 0.0).sum(axis=0) / np.maximum(counts, 1), lo)
  return dict(lo=lo, hi=hi, mean=float(v.mean()), std=float(v.std()),
              at_lo=float(1.0 - above.mean()), spread=spread,
              bands=float(means.max() - means.min()))


def _floor_form(s):
  """The form whose floor or clip sits at the minimum, when at least 0.5% of values sit there."""
  if s['at_lo'] < 0.005:
    return None
  for value, form in _FLOOR_SIGNATURES:
    if abs(s['lo'] - value) <= 1e-3 * max(1.0, abs(value)):
      return form
  return None


def _fits(form, s):
  """Whether statistics `s` (from `value_stats`) are those of real speech in value form `form`.

  Thresholds come from 60 Fish Fillets lines and the ALSA clips, loud and quiet, and temporally
  smoothed as predicted mels are: a natural-log mel of speech has a spread above the floor of
  1.6-2.5 and band means 3.6-8 apart; log10 0.7-1.0 and 1.6-2.9; the ambiguous middle fits both.
  """
  lo, hi, mean = s['lo'], s['hi'], s['mean']
  floor = _floor_form(s)
  if form == 'linear':
    return lo >= 0.0 and hi > 1.0
  if form == 'unit':
    return lo >= 0.0 and hi <= 1.0
  if form == 'symmetric':
    return (lo < 0.0 < hi and max(-lo, hi) <= 4.0 + 1e-6 and
            (floor == 'symmetric' or (lo >= -1.0 - 1e-6 and hi <= 1.0 + 1e-6)))
  if form == 'db':
    return lo < -20.0 or hi > 15.0
  if floor is not None and floor != form:
    return False
  if form == 'meanvar':
    return abs(mean) <= 1.2 and lo < -1.0 and hi > 0.5 and s['std'] <= 3.0
  if form == 'ln':
    return (-24.0 <= lo and hi <= 8.0 and mean <= -1.0 and
            (floor == 'ln' or s['spread'] >= 1.15 or s['bands'] >= 3.2))
  if form == 'log10':
    return (-10.0 - 1e-3 <= lo and hi <= 3.5 and mean <= -0.7 and
            (floor == 'log10' or (s['spread'] < 1.3 and s['bands'] < 3.6)))
  raise ValueError(f'unknown value form {form!r}; known: {sorted(FORMS)}')


def resembles(mel):
  """The value forms (FORMS keys) a mel's statistics fit, most specific first.

  Args:
    mel: [frames, n_mels] values of some convention (a second or more of real speech).
  Returns:
    list of FORMS keys; empty if it fits none.
  """
  s = value_stats(mel)
  forms = [f for f in ('unit', 'symmetric', 'linear', 'db', 'meanvar', 'log10', 'ln')
           if _fits(f, s)]
  floor = _floor_form(s)
  return sorted(forms, key=lambda f: f != floor)


def other_form(mel, fe):
  """The value form (a FORMS key) a mel looks like when it does not look like its declared one.

  Args:
    mel: [frames, n_mels] values, declared to be in `fe`'s convention.
    fe: the declared `Frontend`.
  Returns:
    the most likely other form, or None when the values fit the declared convention's form (or
    no form at all): exactly when `resemblance_warning` has nothing to say.
  """
  require_frontend(fe, 'other_form')
  declared = _form_of(fe)
  s = value_stats(mel)
  if declared in ('unit', 'symmetric'):
    lo, hi = sorted(fe.range_out)
    fits_declared = lo - 1e-6 <= s['lo'] and s['hi'] <= hi + 1e-6
  else:
    fits_declared = _fits(declared, s)
  if fits_declared:
    return None
  others = [f for f in resembles(mel) if f != declared]
  return others[0] if others else None


def resemblance_warning(mel, fe, source='mel'):
  """A warning when a mel's values look like another convention than the one declared.

  Args:
    mel: [frames, n_mels] values, declared to be in `fe`'s convention.
    fe: the declared `Frontend`.
    source: name of the mel in the message.
  Returns:
    the warning text, or None when the values fit the declared convention's form (or no form).
  """
  form = other_form(mel, fe)
  if form is None:
    return None
  s = value_stats(mel)
  return (f"{source}: declared as {describe(fe)}, but its values (from {s['lo']:.3g} to "
          f"{s['hi']:.3g}, mean {s['mean']:.3g}, std {s['std']:.3g}) look like a "
          f'{FORMS[form]}. If it is one, give that convention so the mel is converted '
          f"(mel_conventions.adapt), or make the mels with the checkpoint's frontend, "
          f'{preset_call(fe)}: a mel of the wrong convention vocodes to muffled or noisy audio '
          'without an error')
