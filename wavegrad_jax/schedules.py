"""Noise schedules as pure numpy functions: betas [N] and noise levels sqrt(alpha_bar) [N + 1].

A schedule spec is one of:
  'linear:START:END:STEPS'   betas evenly spaced from START to END.
  'fibonacci:BASE:STEPS'     beta_i = BASE * Fib(i): BASE, 2 BASE, 3 BASE, 5 BASE, ...
  'list:B1,B2,...'           explicit betas.
  a path ending in .json     a list of betas, or an object with a "betas" list.
  a name                     looked up in the `named` mapping (config.sampling.named_schedules).
"""
import json
import os

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
