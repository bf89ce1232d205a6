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

This module is the driver (one budget, several budgets, the tables and plot); the parts live in
`schedule_candidates` (the space and the methods), `schedule_state` (scores on disk, the
fingerprint) and `schedule_scoring` (the model scorer), re-exported here.
"""
import csv
import json
import math
import os
import time

from absl import logging
import jax
import numpy as np

from wavegrad_jax import errors, processes, sampling
from wavegrad_jax import models as model_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.diffusion import schedules
# The search's parts, reachable from here as before: candidates and methods, resumable state,
# model scorer.
from wavegrad_jax.evaluation.schedule_candidates import (  # pylint: disable=unused-import
    METHODS, _METHOD_FNS, _Space, base_exponents, candidate_betas, candidate_key)
from wavegrad_jax.evaluation.schedule_scoring import (  # pylint: disable=unused-import
    CANDIDATE_MESH, candidate_mesh, make_batched_scorer, make_ls_mse_scorer, search_segments)
from wavegrad_jax.evaluation.schedule_state import (  # pylint: disable=unused-import
    Evaluator, ScoreStore, SearchResumeError, array_digest, search_fingerprint)
from wavegrad_jax.evaluation import time_grid_search

__all__ = ['CANDIDATE_MESH', 'METHODS', 'Evaluator', 'ScoreStore', 'SearchResumeError',
           'array_digest', 'base_exponents', 'candidate_betas', 'candidate_key', 'candidate_mesh',
           'check_grid_size', 'check_space_reaches_noise', 'make_batched_scorer',
           'make_ls_mse_scorer', 'parse_budgets', 'plot_best_scores', 'result_lines',
           'search_budgets', 'search_checkpoint', 'search_fingerprint', 'search_schedule',
           'search_segments']


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
    evaluate = Evaluator(scorer, store, space, search_cfg.chunk_size, method)
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
  todo = [name for name, b in found.items() if store.get(candidate_key(b)) is None]
  if todo:
    scores = np.asarray(scorer(np.stack([found[name] for name in todo])), np.float64)
    store.add([{'betas': [float(b) for b in found[name]],
                'score': float(s) if np.isfinite(s) else math.inf, 'method': f'named:{name}'}
               for name, s in zip(todo, scores)])
  out = {}
  for name, betas in found.items():
    score = store.get(candidate_key(betas))
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


# ---------------------------------------------------------------------- a checkpoint's search


def parse_budgets(search_cfg):
  """The step budgets [N, ...] of search.steps ('3,6'), checking search.method too.

  Raises:
    errors.ConfigError: no budget, a budget below 1, or an unknown method.
  """
  try:
    steps = [int(n) for n in str(search_cfg.steps).split(',') if n.strip()]
  except ValueError:
    steps = []
  if not steps or min(steps) < 1:
    raise errors.ConfigError(f"--steps={search_cfg.steps}: give comma-separated step budgets >= 1, "
                             "e.g. '6' or '3,6'")
  if search_cfg.method not in METHODS:
    raise errors.ConfigError(f'search.method={search_cfg.method!r}: choose one of '
                             f'{list(METHODS)}')
  return steps


def check_grid_size(search_cfg, steps):
  """Refuses a full grid larger than search.max_grid_candidates (9^6 = 531,441 by default)."""
  if search_cfg.method != 'grid' or int(search_cfg.max_candidates or 0) > 0:
    return
  limit = int(search_cfg.max_grid_candidates)
  for n in steps:
    size = _Space(n, search_cfg).size
    if limit and size > limit:
      raise errors.ConfigError(
          f'a full grid at {n} steps is {size:,} candidates, more than '
          f'search.max_grid_candidates={limit:,} (each costs a {n}-step synthesis); score a random '
          f'subset with --config.search.max_candidates={limit}, raise '
          '--config.search.max_grid_candidates, or use --method=coordinate')


def search_checkpoint(config, params, step, utterances, steps, output_dir, *, workdir):
  """Searches a restored checkpoint's schedules (or a flow run's time grids) for `steps`.

  Args:
    config: the checkpoint's full config (search, sampling, audio, eval, model).
    params: its parameters; step: their checkpoint step.
    utterances: held-out utterances (`input_pipeline.heldout_utterances`) to cut segments from.
    steps: the budgets [N, ...] (`parse_budgets`).
    output_dir: where the results go (`search_budgets`, `time_grid_search.search_budgets`).
    workdir: the run's folder, recorded in a flow search's fingerprint.
  Returns:
    (out, flow): the `search_budgets` result and whether it is a flow run's time-grid search.
  """
  s = config.search
  mels, refs, ids = search_segments(utterances, int(s.num_utterances), int(s.segment_frames),
                                    int(config.audio.hop_length),
                                    mel_conventions.silence_value(
                                        mel_conventions.Frontend.from_config(config.audio)))
  rng = jax.random.PRNGKey(int(s.seed))
  model = model_lib.build_model_from_config(config)
  scorer = make_ls_mse_scorer(sampling.model_eps_fn(model), params, mels, refs, rng, config)
  if processes.process_name_from_config(config) != 'wavegrad':
    # A flow run: the time-grid search (`time_grid_search`) instead of the betas search.
    logging.info('searching flow time grids of %s steps -> %s', steps, output_dir)
    return time_grid_search.search_budgets(
        scorer, steps, [float(p) for p in s.flow_powers], int(s.coordinate_max_sweeps),
        output_dir, fingerprint={'workdir': os.path.abspath(workdir), 'step': step,
                                 'solver': config.sampling.solver}), True
  # Everything a score depends on (checkpoint, segments, frontend, sampler incl. GLA, LS-MSE,
  # noise seed): a results file made under anything else is refused, naming what differs.
  fingerprint = search_fingerprint(config, step=step, params=params, mels=mels, references=refs,
                                   segment_ids=ids)
  logging.info('searching %s steps with %s on %d devices, %d segments of %d frames -> %s', steps,
               s.method, jax.device_count(), len(ids), s.segment_frames, output_dir)
  # The start-from-noise check uses the level of the very segments scored.
  speech_rms = float(np.sqrt(np.mean(np.square(np.asarray(refs, np.float64)))))
  return search_budgets(
      scorer, steps, s, output_dir, fingerprint=fingerprint,
      named=config.sampling.named_schedules.to_dict(), speech_rms=speech_rms,
      max_start_snr_db=config.sampling.get('start_max_snr_db', None)), False


def result_lines(out, flow):
  """The lines the launcher prints about `search_checkpoint`'s result."""
  lines = []
  for r in out['budgets']:
    best = 'none finite' if r['best_score'] is None else f'{r["best_score"]:.4g}'
    if flow:
      lines.append(f'N={r["num_steps"]} time grid: best LS-MSE {best} with times '
                   f'{["%.3g" % t for t in r["best_times"]]} ({r["scorings"]} scored)')
    else:
      named = ', '.join(f'{k}: {v:.4g}' for k, v in r['named_scores'].items() if v is not None)
      lines.append(f'N={r["num_steps"]} {r["method"]}: best LS-MSE {best} with betas '
                   f'{["%.3g" % b for b in r["best_betas"]]} ({r["scorings"]} scored, '
                   f'{r["reused"]} reused from earlier scores){"; named " + named if named else ""}')
    lines.append(f'  -> {r["paths"]["best"]}')
  if not flow and out['plot']:
    lines.append(f'plot: {out["plot"]}')
  return lines
