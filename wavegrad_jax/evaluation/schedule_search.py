"""Searching inference noise schedules for a step budget N, scored by LS-MSE (or any scorer).

Candidates are beta_n = m_n * 10^(e_n + d_n): base exponents e_n spread from `exponent_low` to
`exponent_high` over the N steps, mantissas m_n from `mantissas`, exponent shifts d_n from
`exponent_moves` (just 0 by default). Three methods walk that space:

  grid        every candidate, in a fixed order: (|mantissas| * |moves|)^N scorings (the paper's).
  coordinate  coordinate descent: for each step n in turn, try every (m_n, d_n) with the others
              fixed and keep the best; sweep until a sweep changes nothing. About N * |grid|
              scorings per sweep.
  evolution   a (mu + lambda) evolution strategy over the same grid, seeded, with elitism.

A scorer is any function betas [K, N] float64 -> [K] scores (lower is better; NaN counts as +inf),
so tests inject analytic oracles and `make_ls_mse_scorer` vocodes held-out mels with the model,
vmapped over the K candidates and sharded over every device. Scores stream to a JSONL file as they
are made; rerunning with the same file scores nothing twice, and since every method visits
candidates in an order that depends only on the config and on scores, a killed search resumes to
the result it would have reached.
"""
import csv
import hashlib
import itertools
import json
import math
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax import jsonable, processes, sampling
from wavegrad_jax.evaluation import metrics
from wavegrad_jax.training import parallel
from wavegrad_jax.diffusion import schedules

METHODS = ('grid', 'coordinate', 'evolution')


class SearchResumeError(ValueError):
  """A results file written by a different scorer (other model, data or noise) than this one."""


# ------------------------------------------------------------------------------- candidate space


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


def _key(betas):
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


# ----------------------------------------------------------------------------- scores on disk


class ScoreStore:
  """Scores of candidate schedules, appended to a JSONL file as they are made.

  Line 1 is {"header": {...}} describing the scorer; then one line per candidate:
  {"betas": [...], "score": float or null (invalid / NaN), plus descriptive fields}.
  """

  def __init__(self, path, header):
    self.path = path
    self.scores = {}
    header = json.loads(json.dumps(header))  # normalise tuples etc. to what the file holds
    if os.path.exists(path) and os.path.getsize(path) > 0:
      with open(path) as f:
        lines = f.read().splitlines()
      try:
        first = json.loads(lines[0])
      except json.JSONDecodeError:
        first = {}
      if first.get('header') != header:
        # Its scores were made under other settings: mixing them in would rank unlike with unlike.
        diffs = jsonable.differences(first.get('header'), header, old_name='the file',
                                     root='header')
        raise SearchResumeError(
            f'{path} was written by a different search setup, so its scores cannot be reused; '
            'it differs in\n  ' + '\n  '.join(diffs) +
            '\nUse another --output_dir, or delete the file to start over.')
      for line in lines[1:]:
        try:
          rec = json.loads(line)
        except json.JSONDecodeError:
          continue  # a line cut short by a kill: that candidate is simply scored again.
        score = rec['score']
        self.scores[_key(rec['betas'])] = math.inf if score is None else float(score)
      self._file = open(path, 'a')
      if not lines[-1:] or not lines[-1].endswith('}'):
        self._file.write('\n')
    else:
      os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
      self._file = open(path, 'w')
      self._file.write(json.dumps({'header': header}) + '\n')
      self._file.flush()

  def get(self, key):
    """The stored score of a candidate keyed by its betas tuple, or None if never scored."""
    return self.scores.get(key)

  def add(self, records):
    """Stores and appends records (dicts with 'betas' and 'score'); flushed to disk at once."""
    for rec in records:
      score = rec['score']
      self.scores[_key(rec['betas'])] = score
      rec = dict(rec, score=None if not math.isfinite(score) else score)
      self._file.write(json.dumps(rec) + '\n')
    self._file.flush()
    os.fsync(self._file.fileno())

  def close(self):
    """Closes the file (every record is already on disk)."""
    self._file.close()


class _Evaluator:
  """Scores candidates through the store: stored ones are free, new ones go to the scorer."""

  def __init__(self, scorer, store, space, chunk_size, method):
    self.scorer, self.store, self.space = scorer, store, space
    self.chunk_size = max(1, int(chunk_size))
    self.method = method
    self.scorings = 0      # candidates sent to the scorer by this run.
    self.reused = 0        # candidate visits answered from the store (file or this run).
    self.visited = {}      # key -> (score, idx), in first-visit order.

  def __call__(self, candidates):
    """Scores a list of option-index tuples; returns their scores (inf for invalid)."""
    betas = [self.space.betas(c) for c in candidates]
    keys = [_key(b) for b in betas]
    todo, todo_keys = [], set()
    for c, b, k in zip(candidates, betas, keys):
      if self.store.get(k) is None and k not in todo_keys:
        todo.append((c, b, k))
        todo_keys.add(k)
      elif k not in todo_keys:
        self.reused += 1
    invalid = [t for t in todo if np.any(t[1] >= 1.0)]
    if invalid:  # a variance >= 1 is no schedule; recorded so that it is never tried again.
      self.store.add([self._record(c, b, math.inf) for c, b, _ in invalid])
    todo = [t for t in todo if not np.any(t[1] >= 1.0)]
    for start in range(0, len(todo), self.chunk_size):
      chunk = todo[start:start + self.chunk_size]
      scores = np.asarray(self.scorer(np.stack([b for _, b, _ in chunk])), np.float64)
      if scores.shape != (len(chunk),):
        raise ValueError(f'the scorer returned shape {scores.shape} for {len(chunk)} candidates')
      scores = np.where(np.isfinite(scores), scores, np.inf)
      self.scorings += len(chunk)
      self.store.add([self._record(c, b, float(s)) for (c, b, _), s in zip(chunk, scores)])
    out = []
    for c, k in zip(candidates, keys):
      score = self.store.get(k)
      self.visited.setdefault(k, (score, c))
      out.append(score)
    return out

  def _record(self, idx, betas, score):
    m, e = self.space.describe(idx)
    return {'betas': [float(b) for b in betas], 'score': score, 'mantissas': m, 'exponents': e,
            'method': self.method, 'time': round(time.time(), 3)}


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


# ---------------------------------------------------------------------------------- driver


def check_space_reaches_noise(space, speech_rms, max_snr_db):
  """Warns once when no candidate of the space starts from noise (`schedules.start_snr_db`).

  Returns:
    the lowest final noise level of the space.
  """
  lowest = space.lowest_level()
  key = ('space', space.num_steps, tuple(space.exponents), tuple(space.options),
         round(float(speech_rms), 3), float(max_snr_db))
  limit = schedules.max_start_level(speech_rms, max_snr_db)
  if lowest > limit and key not in schedules._WARNED:  # pylint: disable=protected-access
    schedules._WARNED.add(key)  # pylint: disable=protected-access
    logging.warning(
        'schedule search: no %d-step candidate starts from noise: the largest betas of the search '
        'space (exponents %s, shifts %s, mantissas up to %g) end at noise level %.3g at best, '
        'where the speech (RMS %.3g) is at %.1f dB SNR > %g dB. Widen config.search.exponent_moves '
        '(e.g. (0, 1), the default) or raise search.exponent_high.', space.num_steps,
        [float(e) for e in space.exponents], sorted({d for _, d in space.options}),
        max(m for m, _ in space.options), lowest, speech_rms,
        schedules.start_snr_db(lowest, speech_rms), max_snr_db)
  return lowest


def search_schedule(scorer, num_steps, search_cfg, output_dir, *, fingerprint=None, named=None,
                    progress=True, speech_rms=None, max_start_snr_db=None):
  """Searches one step budget and writes its results.

  Args:
    scorer: betas [K, N] float64 -> [K] scores, lower is better (K <= search_cfg.chunk_size).
    num_steps: the budget N.
    search_cfg: the `search` config section (method, grid, chunk size, method settings).
    output_dir: receives candidates_N{N}.jsonl (every score, streamed; the resume file),
      ranked_N{N}.csv / .json (the best `table_size` candidates this run visited) and
      best_N{N}.json (the best schedule, readable by `schedules.parse_schedule`).
    fingerprint: JSON-able description of the scorer (model step, data, noise seed); a results
      file with another fingerprint is refused rather than mixed in.
    named: named schedules ({name: spec}); those with N steps are scored too, for reference.
    progress: show a progress bar.
    speech_rms, max_start_snr_db: the data's RMS and config.sampling.start_max_snr_db; when given,
      a search space that cannot start from noise and a best schedule that does not are warned
      about (once, with the numbers; `schedules.start_snr_db`), and the summary gets 'best_start'.
  Returns:
    dict: num_steps, method, best_betas, best_score, scorings (new scorer calls this run, per
    candidate), reused (answered from earlier scores: this run's or the results file's), visited,
    named_scores, paths (and best_start).
  """
  method = search_cfg.method
  if method not in METHODS:
    raise ValueError(f'search.method must be one of {METHODS}, got {method!r}')
  space = _Space(num_steps, search_cfg)
  checking = speech_rms is not None and max_start_snr_db is not None
  if checking:
    check_space_reaches_noise(space, speech_rms, max_start_snr_db)
  header = {'num_steps': int(num_steps), 'scorer': fingerprint or {}}
  paths = {name: os.path.join(output_dir, f'{stem}_N{num_steps}.{ext}') for name, stem, ext in
           (('candidates', 'candidates', 'jsonl'), ('ranked', 'ranked', 'csv'),
            ('ranked_json', 'ranked', 'json'), ('best', 'best', 'json'))}
  store = ScoreStore(paths['candidates'], header)
  try:
    evaluate = _Evaluator(scorer, store, space, search_cfg.chunk_size, method)
    start = time.perf_counter()
    _METHOD_FNS[method](evaluate, space, search_cfg, progress)
    seconds = time.perf_counter() - start
    visited = list(evaluate.visited.items())
    named_scores = _score_named(scorer, store, named, num_steps)
  finally:
    store.close()
  order = sorted(range(len(visited)), key=lambda i: (visited[i][1][0], i))
  ranked = [visited[i] for i in order]
  best_key, (best_score, best_idx) = ranked[0]
  m, e = space.describe(best_idx)
  summary = dict(num_steps=int(num_steps), method=method, best_betas=list(best_key),
                 best_score=best_score if math.isfinite(best_score) else None,
                 best_mantissas=m, best_exponents=e, scorings=evaluate.scorings,
                 reused=evaluate.reused, visited=len(visited), seconds=seconds,
                 named_scores=named_scores, paths=paths)
  if checking:
    summary['best_start'] = schedules.warn_unless_starts_from_noise(
        best_key, f'best_N{num_steps}', speech_rms, max_start_snr_db, where='schedule search')
  _write_tables(paths, ranked, space, int(search_cfg.table_size))
  if math.isfinite(best_score):
    schedules.save_schedule_json(paths['best'], best_key, score=best_score, metric='score',
                                 num_steps=int(num_steps), method=method,
                                 mantissas=m, exponents=e, scorer=fingerprint or {})
  return summary


def _score_named(scorer, store, named, num_steps):
  """Scores the named schedules with `num_steps` steps (one scorer call); {name: score or None}."""
  found = {}
  for name, spec in sorted((named or {}).items()):
    betas = schedules.parse_schedule(spec)
    if betas.size == num_steps:
      found[name] = betas
  todo = [name for name, b in found.items() if store.get(_key(b)) is None]
  if todo:
    scores = np.asarray(scorer(np.stack([found[name] for name in todo])), np.float64)
    store.add([{'betas': [float(b) for b in found[name]],
                'score': float(s) if np.isfinite(s) else math.inf, 'method': f'named:{name}'}
               for name, s in zip(todo, scores)])
  out = {}
  for name, betas in found.items():
    score = store.get(_key(betas))
    out[name] = score if math.isfinite(score) else None
  return out


def _write_tables(paths, ranked, space, table_size):
  rows = ranked[:table_size] if table_size > 0 else ranked
  table = []
  for rank, (key, (score, idx)) in enumerate(rows, 1):
    m, e = space.describe(idx)
    table.append({'rank': rank, 'score': score if math.isfinite(score) else None,
                  'betas': list(key), 'mantissas': m, 'exponents': e})
  with open(paths['ranked_json'], 'w') as f:
    json.dump(table, f, indent=1)
  with open(paths['ranked'], 'w', newline='') as f:
    w = csv.writer(f)
    n = space.num_steps
    w.writerow(['rank', 'score'] + [f'beta_{i + 1}' for i in range(n)])
    for row in table:
      w.writerow([row['rank'], '' if row['score'] is None else f'{row["score"]:.6g}']
                 + [f'{b:.6g}' for b in row['betas']])


def search_budgets(scorer, steps, search_cfg, output_dir, *, fingerprint=None, named=None,
                   progress=True, speech_rms=None, max_start_snr_db=None):
  """Searches several step budgets; writes summary.json and, for 2+ budgets, a PNG plot.

  Args:
    scorer: betas [K, N] -> [K] scores for any N (a model scorer compiles once per N and K).
    steps: iterable of budgets N.
    search_cfg, output_dir, fingerprint, named, progress, speech_rms, max_start_snr_db: as
      `search_schedule`.
  Returns:
    {'budgets': [summary per N], 'plot': path or None}, also written to output_dir/summary.json.
  """
  results = [search_schedule(scorer, int(n), search_cfg, output_dir, fingerprint=fingerprint,
                             named=named, progress=progress, speech_rms=speech_rms,
                             max_start_snr_db=max_start_snr_db) for n in steps]
  plot = None
  if len(results) > 1:
    plot = os.path.join(output_dir, 'best_score_vs_steps.png')
    plot_best_scores(results, plot)
  out = {'budgets': results, 'plot': plot}
  with open(os.path.join(output_dir, 'summary.json'), 'w') as f:
    json.dump(out, f, indent=2)
  return out


def plot_best_scores(results, path):
  """Plots best score against step budget (log score axis when positive), named ones as crosses.

  Args:
    results: summaries from `search_schedule`, one per budget.
    path: PNG file to write (matplotlib's Agg backend: no display needed).
  """
  import matplotlib  # only the search's report needs it.
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5, 3.5))
  n = [r['num_steps'] for r in results]
  s = [r['best_score'] if r['best_score'] is not None else np.nan for r in results]
  ax.plot(n, s, 'o-', label=f'searched ({results[0]["method"]})')
  named = {}
  for r in results:
    for name, score in r['named_scores'].items():
      if score is not None:
        named[name] = (r['num_steps'], score)
  for name, (steps, score) in sorted(named.items()):
    ax.plot([steps], [score], 'x', label=f'named {name}')
  ax.set_xlabel('steps N')
  ax.set_ylabel('best score (LS-MSE)')
  if all(v > 0 for v in s if np.isfinite(v)):
    ax.set_yscale('log')
  ax.set_xticks(n)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


# ------------------------------------------------------------------------------- fingerprint


def array_digest(*arrays):
  """SHA-256 (hex) of arrays' dtypes, shapes and bytes, in order: equal iff the data are equal.

  Args:
    *arrays: numpy / JAX arrays, or pytrees of them (leaves in `jax.tree.leaves` order).
  Returns:
    64-character hex string.
  """
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(list(arrays)):
    leaf = np.ascontiguousarray(np.asarray(leaf))
    h.update(f'{leaf.dtype.str}{leaf.shape}'.encode())
    h.update(leaf.tobytes())
  return h.hexdigest()


def search_fingerprint(config, *, step, params, mels, references, segment_ids):
  """Everything an LS-MSE score of `make_ls_mse_scorer` depends on, for the results-file header.

  A results file is resumed only when this matches exactly, so scores made under other settings
  are never ranked with new ones; `jsonable.differences` names what changed. The search method,
  grid and chunk size are left out: they choose which candidates are scored, not their scores.

  Args:
    config: the full config the scorer was built from (audio, model, sampling incl. gla, eval's
      LS-MSE and ema, search's split / num_utterances / segment_frames / seed).
    step: the checkpoint step the parameters come from.
    params: those parameters (digested: another run's checkpoint at the same step differs).
    mels: [B, F, n_mels] held-out segments the scorer vocodes.
    references: [B, F * hop] their audio.
    segment_ids: the B utterance ids the segments were cut from.
  Returns:
    JSON-able dict with sections checkpoint, segments, audio, model, sampling, ls_mse, seed.
  """
  s, e = config.search, config.eval
  sampling_cfg = {k: v for k, v in config.sampling.to_dict().items()
                  if k not in ('schedule', 'named_schedules')}
  if not sampling_cfg['gla']['enabled']:
    # Disabled GLA options change no score; recording them would refuse resumes for nothing.
    sampling_cfg['gla'] = {'enabled': False}
  return dict(
      checkpoint=dict(step=step, ema=bool(e.ema), params_sha256=array_digest(params)),
      segments=dict(split=s.split, num_utterances=int(s.num_utterances),
                    segment_frames=int(s.segment_frames), ids=[str(i) for i in segment_ids],
                    sha256=array_digest(np.asarray(mels, np.float32),
                                        np.asarray(references, np.float32))),
      audio=config.audio.to_dict(), model=config.model.to_dict(), sampling=sampling_cfg,
      ls_mse=dict(window_hops=int(e.ls_mse_window_hops), hop_divisor=int(e.ls_mse_hop_divisor),
                  eps=float(e.ls_mse_eps)),
      seed=int(s.seed))


# ---------------------------------------------------------------------------- model scorer


# The scorer's mesh: one axis, over which the K candidates of a call are split.
CANDIDATE_MESH = parallel.MeshSpec.one_axis('candidates')


def candidate_mesh(devices=None):
  """The 1-D mesh 'candidates' (`CANDIDATE_MESH`) over `devices` (default: every device)."""
  return parallel.make_mesh(CANDIDATE_MESH, devices)


def make_batched_scorer(eps_fn, params, mels, score_fn, rng, *, hop_length, mesh=None,
                        target_magnitude=None, score_args=(), options=None, sampler=None,
                        **option_values):
  """A scorer that vocodes fixed mels with K candidate schedules at once, sharded over devices.

  Every candidate sees the same mels and the same noise (one rng), so scores differ only by the
  schedule. The candidate axis is sharded over the mesh; K is padded to a multiple of its size.

  Args:
    eps_fn: eps_fn(params, noisy [B, T], mel [B, F, M], noise_level [B]) -> [B, T].
    params: denoiser parameters (replicated on every device).
    mels: [B, F, M] conditioning.
    score_fn: jittable score_fn(generated [K, B, F * hop], *score_args) -> [K] scores.
    rng: PRNG key of the reverse diffusion.
    hop_length: samples per frame.
    mesh: a Mesh with axis 'candidates' (default: every device).
    target_magnitude: [B, F * hop // gla hop, gla n_fft // 2 + 1] |STFT| of the clean segments,
      for GLA magnitude 'given' only; shared by every candidate.
    score_args: arrays score_fn needs (reference audio, say), passed as replicated arguments
      rather than closed over, so they are not baked into the compiled program as constants.
    options: `sampling.SamplerOptions` of the reverse process (None: the defaults).
    sampler: a multi-grid sampler(params, grids [K, ...], mel, rng, target_magnitude=...) to use
      instead of reverse diffusion with `options` (a flow run's ODE solver,
      `processes.sampler_from_config(..., multi=True)`); its grids are what the scorer takes.
    **option_values: its fields to replace (eta=0.0, ...), as `sampling.make_sampler` takes them.
  Returns:
    scorer(betas [K, N]) -> [K] float64 numpy, NaN mapped to +inf. K is padded up to a power of
    two (and a multiple of the device count), so calls with any K compile at most log2(K) + 1 times.
  """
  mesh = mesh if mesh is not None else candidate_mesh()
  if sampler is None:
    sampler = sampling.make_multi_schedule_sampler(eps_fn, hop_length=hop_length,
                                                   options=options, **option_values)
  replicated = parallel.replicated(mesh)
  by_candidate = parallel.batch_sharding(mesh, CANDIDATE_MESH)

  def score(params, betas, mel, rng, target, args):
    return score_fn(sampler(params, betas, mel, rng, target_magnitude=target), *args)

  jitted = jax.jit(score, in_shardings=(replicated, by_candidate, replicated, replicated,
                                        replicated, replicated), out_shardings=by_candidate)
  score_args = tuple(jax.device_put(jnp.asarray(a), replicated) for a in score_args)
  params = jax.device_put(params, replicated)
  mels = jax.device_put(jnp.asarray(mels, jnp.float32), replicated)
  rng = jax.device_put(rng, replicated)
  if target_magnitude is not None:
    target_magnitude = jax.device_put(jnp.asarray(target_magnitude, jnp.float32), replicated)
  n_dev = mesh.devices.size

  def scorer(betas):
    betas = np.asarray(betas, np.float32)
    k = betas.shape[0]
    padded = 1 << max(k - 1, 0).bit_length()  # few distinct shapes: few compilations
    padded += -padded % n_dev
    pad = padded - k
    if pad:  # repeats of the last candidate: results dropped, shapes divisible by the mesh.
      betas = np.concatenate([betas, np.repeat(betas[-1:], pad, axis=0)])
    out = np.asarray(jitted(params, jax.device_put(betas, by_candidate), mels, rng,
                            target_magnitude, score_args), np.float64)
    out = out[:k]
    return np.where(np.isfinite(out), out, np.inf)

  scorer.num_compilations = jitted._cache_size  # pylint: disable=protected-access
  return scorer


def make_ls_mse_scorer(eps_fn, params, mels, references, rng, config, mesh=None):
  """The search's scorer: mean LS-MSE of the vocoded mels against their reference audio.

  Args:
    eps_fn: the model's denoiser (`sampling.model_eps_fn(model)`) or an oracle.
    params: its parameters.
    mels: [B, F, n_mels] held-out log-mels.
    references: [B, F * hop] the matching audio.
    rng: PRNG key shared by every candidate.
    config: the full config (audio, sampling incl. GLA, eval LS-MSE settings). With GLA
      magnitude 'given' the target |STFT| is the references'.
    mesh: optional device mesh (default: every device).
  Returns:
    scorer(betas [K, N]) -> [K] float64 mean LS-MSE over the B segments; for a run of process
    'flow', scorer(times [K, N + 1]) over time grids.
  """
  options = sampling.SamplerOptions.from_config(config)
  sampler = None
  if processes.process_name(config) != 'wavegrad':
    sampler = processes.from_config(config).make_sampler(eps_fn, config, multi=True)
    options = None
  e = config.eval
  ls_cfg = metrics.ls_mse_audio_config(config.audio, e.ls_mse_window_hops, e.ls_mse_hop_divisor)
  references = jnp.asarray(references, jnp.float32)
  eps = float(e.ls_mse_eps)

  def score_fn(generated, refs):
    return jnp.mean(metrics.ls_mse(generated, refs[None], ls_cfg, eps), axis=-1)

  target = None
  gla = options.gla if options is not None else None
  if gla is not None and gla.magnitude == 'given':
    # The references are the clean segments: their |STFT| is the true magnitude ('given').
    gl = gla.griffin_lim
    target = audio_lib.stft_magnitude(references, gl.n_fft, gl.hop_length, gl.win_length,
                                      gl.window, gl.pad_mode, gl.framing)
  return make_batched_scorer(eps_fn, params, mels, score_fn, rng,
                             hop_length=int(config.audio.hop_length), mesh=mesh,
                             target_magnitude=target, score_args=(references,), options=options,
                             sampler=sampler)


def search_segments(utterances, num_utterances, segment_frames, hop_length, pad_value):
  """Cuts the loudest `segment_frames` frames of the first utterances, with their audio.

  Args:
    utterances: list of {'audio' [T], 'mel' [F, M], ...} (`input_pipeline.heldout_utterances`).
    num_utterances: how many to use.
    segment_frames: frames per segment; shorter utterances are padded with silence.
    hop_length: samples per frame.
    pad_value: log-mel of silence.
  Returns:
    (mels [B, segment_frames, M] float32, audio [B, segment_frames * hop] float32, ids list).
  """
  if not utterances:
    raise ValueError('no held-out utterances to score schedules on')
  mels, refs, ids = [], [], []
  for u in utterances[:num_utterances]:
    mel = np.asarray(u['mel'], np.float32)
    wave = np.asarray(u['audio'], np.float32)
    f = mel.shape[0]
    if f >= segment_frames:
      energy = np.convolve(np.exp(mel).sum(axis=1), np.ones(segment_frames), mode='valid')
      start = int(np.argmax(energy))
    else:
      start = 0
    seg = np.full((segment_frames, mel.shape[1]), pad_value, np.float32)
    take = mel[start:start + segment_frames]
    seg[:take.shape[0]] = take
    ref = np.zeros(segment_frames * hop_length, np.float32)
    piece = wave[start * hop_length:(start + take.shape[0]) * hop_length]
    ref[:piece.size] = piece
    mels.append(seg)
    refs.append(ref)
    ids.append(u.get('id', str(len(ids))))
  return np.stack(mels), np.stack(refs), ids
