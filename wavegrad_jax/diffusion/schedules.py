"""Noise schedules as pure numpy functions: betas [N] and noise levels sqrt(alpha_bar) [N + 1].

A schedule spec is one of:
  'linear:START:END:STEPS'   betas evenly spaced from START to END.
  'fibonacci:BASE:STEPS'     beta_i = BASE * Fib(i): BASE, 2 BASE, 3 BASE, 5 BASE, ...
  'list:B1,B2,...'           explicit betas.
  a path ending in .json     a list of betas, or an object with a "betas" list.
  a name                     looked up in the `named` mapping (config.sampling.named_schedules).
"""
import json
import math
import os

from absl import logging
import numpy as np


class ScheduleError(ValueError):
  """A schedule spec or file that cannot be turned into valid betas."""


def linear_betas(start, end, steps):
  """Betas evenly spaced from `start` to `end`, [steps] float64."""
  return np.linspace(float(start), float(end), int(steps), dtype=np.float64)


def fibonacci_betas(base, steps):
  """beta_i = base * Fib(i) with Fib = 1, 2, 3, 5, 8, ... (the paper's 25-step schedule)."""
  fib = [1, 2]
  while len(fib) < int(steps):
    fib.append(fib[-1] + fib[-2])
  return float(base) * np.asarray(fib[:int(steps)], dtype=np.float64)


def validate_betas(betas, source='schedule'):
  """Returns betas as float64 [N]; raises ScheduleError unless 0 < beta < 1 for each of N >= 1."""
  betas = np.asarray(betas, dtype=np.float64)
  if betas.ndim != 1 or betas.size == 0:
    raise ScheduleError(f'{source}: a schedule is a non-empty list of betas, got shape {betas.shape}')
  bad = ~np.isfinite(betas) | (betas <= 0) | (betas >= 1)
  if bad.any():
    i = int(np.argmax(bad))
    raise ScheduleError(f'{source}: beta[{i}] = {float(betas[i])!r} is outside (0, 1); every beta must be '
                        'a variance strictly between 0 and 1')
  return betas


def load_schedule_json(path):
  """Reads betas from a JSON file holding a list or {"betas": [...]}; returns float64 [N]."""
  try:
    with open(path) as f:
      data = json.load(f)
  except FileNotFoundError:
    raise ScheduleError(f'{path}: schedule file not found') from None
  except json.JSONDecodeError as e:
    raise ScheduleError(f'{path}: not valid JSON ({e})') from None
  if isinstance(data, dict):
    if 'betas' not in data:
      raise ScheduleError(f'{path}: a schedule object needs a "betas" list, has keys {sorted(data)}')
    data = data['betas']
  return validate_betas(data, path)


def save_schedule_json(path, betas, **metadata):
  """Writes {"betas": [...], **metadata} so that `parse_schedule(path)` reads it back."""
  betas = validate_betas(betas, path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w') as f:
    json.dump({'betas': [float(b) for b in betas], **metadata}, f, indent=2)


def parse_schedule(spec, named=None):
  """Turns a schedule spec (see module docstring) into betas, float64 [N]."""
  if not isinstance(spec, str):
    return validate_betas(spec, 'schedule')
  named = dict(named or {})
  if spec in named:
    return parse_schedule(named[spec], None)
  if spec.endswith('.json') or os.path.isfile(spec):
    return load_schedule_json(spec)
  kind, _, rest = spec.partition(':')
  args = rest.split(':') if rest else []
  try:
    if kind == 'linear' and len(args) == 3:
      return validate_betas(linear_betas(*args), spec)
    if kind == 'fibonacci' and len(args) == 2:
      return validate_betas(fibonacci_betas(*args), spec)
    if kind == 'list' and len(args) == 1:
      return validate_betas([float(b) for b in args[0].split(',')], spec)
  except ValueError as e:
    if isinstance(e, ScheduleError):
      raise
    raise ScheduleError(f'schedule {spec!r}: cannot parse numbers ({e})') from None
  known = ', '.join(sorted(named)) or 'none'
  raise ScheduleError(f"unknown schedule {spec!r}: use 'linear:START:END:STEPS', "
                      f"'fibonacci:BASE:STEPS', 'list:B1,B2,...', a .json file, or a name "
                      f'({known})')


def noise_levels(betas):
  """Continuous noise levels l_0 = 1, l_n = sqrt(prod_{s<=n} (1 - beta_s)); float64 [N + 1]."""
  betas = validate_betas(betas)
  return np.concatenate([[1.0], np.sqrt(np.cumprod(1.0 - betas))])


# ------------------------------------------------------------------------- starting from noise


def start_snr_db(level, speech_rms):
  """Signal-to-noise ratio (dB) of the speech a schedule's noisiest sample y_N still holds.

  The sampler draws y_N ~ N(0, I). A schedule ending at noise level l_N = sqrt(alpha_bar_N)
  describes y_N = l_N y_0 + sqrt(1 - l_N^2) eps instead: a copy of the speech at amplitude l_N
  over noise of power 1 - l_N^2. Starting from pure noise is consistent (the paper's criterion,
  q(y_N | y_0) close to N(0, I)) only when that copy is negligible, i.e. when

    SNR_N = l_N^2 sigma^2 / (1 - l_N^2)

  is small, sigma being the RMS of the data (speech normalised to a 0.9 peak has sigma of about
  0.1). Both halves of the mismatch shrink with it: the speech the sampler leaves out (power
  l_N^2 sigma^2) and the excess power of its unit-variance start (l_N^2 (1 - sigma^2)); the mean
  per-sample KL(q(y_N | y_0) || N(0, 1)) = (l_N^2 sigma^2 - l_N^2 - ln(1 - l_N^2)) / 2 is small
  exactly when l_N is.

  Args:
    level: l_N in [0, 1).
    speech_rms: sigma > 0, in the units of the waveform (full scale 1).
  Returns:
    SNR_N in dB (-inf for l_N = 0).
  """
  level, speech_rms = float(level), float(speech_rms)
  if level <= 0.0:
    return -math.inf
  return 10.0 * math.log10(level * level * speech_rms * speech_rms / (1.0 - level * level))


def max_start_level(speech_rms, max_snr_db):
  """The highest final noise level l_N whose `start_snr_db` is at most `max_snr_db`.

  Solves l^2 sigma^2 / (1 - l^2) = r with r = 10^(max_snr_db / 10): l = sqrt(r / (sigma^2 + r)).
  """
  r = 10.0 ** (float(max_snr_db) / 10.0)
  return math.sqrt(r / (float(speech_rms) ** 2 + r))


def start_check(betas, speech_rms, max_snr_db):
  """How far a schedule's noisiest sample is from pure noise.

  Args:
    betas: [N] schedule.
    speech_rms: RMS of the data (full scale 1).
    max_snr_db: the largest `start_snr_db` that counts as starting from noise.
  Returns:
    dict(level=l_N, snr_db=SNR_N, max_level=`max_start_level`, max_snr_db, speech_rms,
    starts_from_noise=bool).
  """
  level = float(noise_levels(betas)[-1])
  snr = start_snr_db(level, speech_rms)
  return dict(level=level, snr_db=snr, max_level=max_start_level(speech_rms, max_snr_db),
              max_snr_db=float(max_snr_db), speech_rms=float(speech_rms),
              starts_from_noise=bool(snr <= max_snr_db))


def start_message(name, check):
  """A one-line description of a `start_check` result that failed, with the numbers and the fix."""
  return (f'schedule {name} ends at noise level sqrt(alpha_bar_N) = {check["level"]:.3g}: its '
          f'noisiest sample y_N still holds the speech (RMS {check["speech_rms"]:.3g}) at '
          f'{check["snr_db"]:.1f} dB SNR, but the sampler starts from pure noise N(0, I), which '
          f'its first steps take for that sample (most of what the model learnt is lost). '
          f'Schedules that start from noise end at <= {check["max_snr_db"]:g} dB (level <= '
          f'{check["max_level"]:.3g} at this speech level): raise the last betas (e.g. '
          "'list:1e-4,1e-3,1e-2,0.05,0.5,0.95' or "
          "'linear:1e-4:0.2:50'), or use the named schedules '6', '25', '50', '1000' of "
          'experiments/configs/common.py')


_WARNED = set()


def warn_unless_starts_from_noise(betas, name, speech_rms, max_snr_db, where=''):
  """Logs `start_message` once per process and schedule when the schedule keeps the signal.

  Args:
    betas: [N] schedule (concrete values, not traced).
    name: how the user named it (a spec, a name, a file).
    speech_rms: RMS of the data (full scale 1).
    max_snr_db: threshold of `start_check`.
    where: a prefix naming the caller ('evaluation', 'schedule search', ...).
  Returns:
    the `start_check` dict.
  """
  betas = validate_betas(betas, str(name))
  check = start_check(betas, speech_rms, max_snr_db)
  name = repr(name) if isinstance(name, str) else name
  # float32 values: the same schedule given as a float64 list or a float32 device array.
  key = (betas.astype(np.float32).tobytes(), round(float(speech_rms), 3), float(max_snr_db))
  if not check['starts_from_noise'] and key not in _WARNED:
    _WARNED.add(key)
    logging.warning('%s%s', f'{where}: ' if where else '', start_message(name, check))
  return check
