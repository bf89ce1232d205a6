"""Candidate noise schedules of the schedule search, and the methods that walk them.

Candidates are beta_n = m_n * 10^(e_n + d_n): base exponents e_n spread from `exponent_low` to
`exponent_high` over the N steps, mantissas m_n from `mantissas`, exponent shifts d_n from
`exponent_moves`. The methods (grid, coordinate descent, a (mu + lambda) evolution strategy) visit
candidates in an order that depends only on the config and on the scores they are given, so a
killed search resumes (`schedule_state`) to the result it would have reached. Follows the grid
search of the WaveGrad paper (Chen et al. 2021, section 3.3).
"""
import itertools
import math

import numpy as np
import tqdm

METHODS = ('grid', 'coordinate', 'evolution')


def base_exponents(num_steps, low=-6.0, high=-1.0, round_exponents=True):
  """Base exponents of the candidate grid.

  Args:
    num_steps: N.
    low, high: exponents of the first and last step (beta ~ 10^e).
    round_exponents: round to integers (np.round, halves to even).
  Returns:
    [N] float64 exponents spread evenly from `low` to `high` ([high] when N = 1).
  """
  if num_steps < 1:
    raise ValueError(f'a schedule needs at least one step, got {num_steps}')
  e = np.linspace(float(low), float(high), int(num_steps)) if num_steps > 1 else np.array([high])
  return np.round(e) if round_exponents else e


def candidate_betas(mantissas, exponents):
  """beta_n = m_n * 10^(e_n).

  Args:
    mantissas: [..., N].
    exponents: [..., N], broadcastable against `mantissas`.
  Returns:
    [..., N] float64 betas.
  """
  return np.asarray(mantissas, np.float64) * np.power(10.0, np.asarray(exponents, np.float64))


def candidate_key(betas):
  """A candidate's identity: its [N] betas as a tuple of floats."""
  return tuple(float(b) for b in betas)


class _Space:
  """The candidate grid of one budget: per step, options (m, d) indexed 0 .. |options| - 1."""

  def __init__(self, num_steps, cfg):
    self.num_steps = int(num_steps)
    self.exponents = base_exponents(num_steps, cfg.exponent_low, cfg.exponent_high,
                                    cfg.round_exponents)
    mantissas = [float(m) for m in cfg.mantissas]
    moves = [float(d) for d in cfg.exponent_moves]
    if not mantissas or not moves:
      raise ValueError('search.mantissas and search.exponent_moves must not be empty')
    # Shift 0 first so that ties favour the base exponent.
    moves = sorted(set(moves), key=lambda d: (abs(d), d))
    self.options = [(m, d) for d in moves for m in mantissas]
    init_m = float(cfg.init_mantissa)
    self.init = tuple([self.options.index((init_m, moves[0])) if (init_m, moves[0]) in
                       self.options else 0] * self.num_steps)

  def betas(self, idx):
    """[N] betas of a candidate given as a tuple of option indices."""
    m = [self.options[i][0] for i in idx]
    e = [self.exponents[n] + self.options[i][1] for n, i in enumerate(idx)]
    return candidate_betas(m, e)

  def describe(self, idx):
    m = [self.options[i][0] for i in idx]
    e = [float(self.exponents[n] + self.options[i][1]) for n, i in enumerate(idx)]
    return m, e

  @property
  def size(self):
    return len(self.options) ** self.num_steps

  def lowest_level(self):
    """The lowest final noise level sqrt(alpha_bar_N) any valid candidate reaches (each step's
    largest beta below 1)."""
    level_sq = 1.0
    for n in range(self.num_steps):
      betas = [m * 10.0 ** (self.exponents[n] + d) for m, d in self.options]
      valid = [b for b in betas if 0.0 < b < 1.0]
      level_sq *= 1.0 - max(valid) if valid else 1.0
    return math.sqrt(level_sq)


# ----------------------------------------------------------------------------------- methods


def _grid_order(space, cfg):
  """Candidates in grid (product) order, or a seeded random subset of max_candidates of them."""
  n_opt, size = len(space.options), space.size
  cap = int(cfg.max_candidates or 0)
  if cap <= 0 or cap >= size:
    return size, itertools.product(range(n_opt), repeat=space.num_steps)
  if size > 2**62:
    raise ValueError(f'a grid of {n_opt}^{space.num_steps} candidates is too large to subsample; '
                     "use search.method='coordinate' or 'evolution'")
  # A prefix of the product order would only vary the last steps: sample the whole grid instead.
  flat = np.random.default_rng(int(cfg.seed)).choice(size, cap, replace=False)

  def decode(i):
    digits = []
    for _ in range(space.num_steps):
      i, d = divmod(int(i), n_opt)
      digits.append(d)
    return tuple(reversed(digits))

  return cap, (decode(i) for i in flat)


def _grid(evaluate, space, cfg, progress):
  total, it = _grid_order(space, cfg)
  # Blocks of several chunks keep the scorer's batches full; the order is deterministic.
  block = max(1, int(cfg.chunk_size)) * 4
  with tqdm.tqdm(total=total, desc=f'grid N={space.num_steps}', unit='cand',
                 disable=not progress) as bar:
    while True:
      cands = list(itertools.islice(it, block))
      if not cands:
        break
      evaluate(cands)
      bar.update(len(cands))


def _coordinate(evaluate, space, cfg, progress):
  current = space.init
  best = evaluate([current])[0]
  n_opt = len(space.options)
  sweeps = max(1, int(cfg.coordinate_max_sweeps))
  with tqdm.tqdm(total=sweeps * space.num_steps, desc=f'coordinate N={space.num_steps}',
                 unit='step', disable=not progress) as bar:
    for _ in range(sweeps):
      improved = False
      for n in range(space.num_steps):
        cands = [current[:n] + (i,) + current[n + 1:] for i in range(n_opt)]
        scores = evaluate(cands)
        i = int(np.argmin(scores))  # first minimum: ties keep the earlier option, deterministic.
        if scores[i] < best:
          best, current, improved = scores[i], cands[i], True
        bar.update(1)
        bar.set_postfix(best=f'{best:.4g}')
      if not improved:
        break


def _evolution(evaluate, space, cfg, progress):
  rng = np.random.default_rng(int(cfg.seed))
  n_opt, n = len(space.options), space.num_steps
  pop_size = max(2, int(cfg.evolution_population))
  elite_size = max(1, min(int(cfg.evolution_elite), pop_size))
  rate = float(cfg.evolution_mutation_rate)
  pop = [space.init] + [tuple(int(i) for i in rng.integers(0, n_opt, n))
                        for _ in range(pop_size - 1)]
  scores = evaluate(pop)

  def mutate(parent):
    child = list(parent)
    mask = rng.random(n) < rate
    if not mask.any():
      mask[rng.integers(n)] = True
    for j in np.flatnonzero(mask):
      # Mostly small steps in mantissa order, sometimes a jump anywhere on the grid.
      if rng.random() < 0.8:
        child[j] = int(np.clip(child[j] + rng.choice([-2, -1, 1, 2]), 0, n_opt - 1))
      else:
        child[j] = int(rng.integers(n_opt))
    return tuple(child)

  with tqdm.tqdm(total=int(cfg.evolution_generations), desc=f'evolution N={n}', unit='gen',
                 disable=not progress) as bar:
    for _ in range(int(cfg.evolution_generations)):
      order = sorted(range(len(pop)), key=lambda i: (scores[i], i))
      elite = [pop[i] for i in order[:elite_size]]
      elite_scores = [scores[i] for i in order[:elite_size]]
      children = [mutate(elite[int(rng.integers(elite_size))]) for _ in range(pop_size)]
      child_scores = evaluate(children)
      pop, scores = elite + children, elite_scores + child_scores
      bar.update(1)
      bar.set_postfix(best=f'{min(scores):.4g}')


_METHOD_FNS = {'grid': _grid, 'coordinate': _coordinate, 'evolution': _evolution}
