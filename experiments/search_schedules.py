r"""Searches inference noise schedules for one or more step budgets, scored by LS-MSE.

  python -m experiments.search_schedules --workdir=runs/tiny --steps=6
  python -m experiments.search_schedules --workdir=runs/tiny --steps=3,6 --method=evolution
  python -m experiments.search_schedules --workdir=runs/tiny --steps=6 \
      --config.search.method=grid --config.search.max_candidates=2000 \
      --config.search.chunk_size=64

Writes to <output_dir> (default <workdir>/search): candidates_N<N>.jsonl (every score as it is
made: rerun the same command after a kill and nothing is scored twice; a rerun whose checkpoint,
segments, frontend, sampler (GLA included), LS-MSE or seed differ is refused, naming what differs),
ranked_N<N>.csv/.json,
best_N<N>.json (pass it to evaluate --schedules or synthesize --schedule), summary.json and, for
several budgets, best_score_vs_steps.png. Candidates are sharded over every local device. A full
grid larger than config.search.max_grid_candidates is refused (the default grid at 6 steps has
9^6 = 531,441 candidates); config.search.max_candidates scores a seeded random subset instead.
Flags and config fields are checked before the checkpoint is restored.

A run of process 'flow' searches time grids instead (`wavegrad_jax.evaluation.time_grid_search`: the power
family config.search.flow_powers, then coordinate sweeps), writing best_N<N>.json as {"times":
[...]}, ranked_N<N>.json and summary.json.
"""
import os

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from experiments import checkpoint_flags
from experiments import cli
from wavegrad_jax import errors
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax import sampling
from wavegrad_jax.evaluation import schedule_search
from wavegrad_jax.evaluation import time_grid_search

FLAGS = flags.FLAGS
flags.DEFINE_string('steps', None, "Comma-separated step budgets, e.g. '3,6' "
                    '(default config.search.steps).')
flags.DEFINE_enum('method', None, list(schedule_search.METHODS),
                  'Search method (default config.search.method).')
flags.DEFINE_string('output_dir', None, 'Default: <workdir>/search.')
flags.mark_flag_as_required('workdir')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  run()


def _apply_flags(config):
  """The launcher's flags on top of config.search (in place); returns the budgets [N, ...]."""
  s = config.search
  if FLAGS.steps is not None:
    s.steps = FLAGS.steps
  if FLAGS.method is not None:
    s.method = FLAGS.method
  try:
    steps = [int(n) for n in str(s.steps).split(',') if n.strip()]
  except ValueError:
    steps = []
  if not steps or min(steps) < 1:
    raise errors.ConfigError(f"--steps={s.steps}: give comma-separated step budgets >= 1, e.g. '6' "
                             "or '3,6'")
  if s.method not in schedule_search.METHODS:
    raise errors.ConfigError(f'search.method={s.method!r}: choose one of '
                             f'{list(schedule_search.METHODS)}')
  return steps


def check_grid_size(search_cfg, steps):
  """Refuses a full grid larger than search.max_grid_candidates (9^6 = 531,441 by default)."""
  if search_cfg.method != 'grid' or int(search_cfg.max_candidates or 0) > 0:
    return
  limit = int(search_cfg.max_grid_candidates)
  for n in steps:
    size = schedule_search._Space(n, search_cfg).size  # pylint: disable=protected-access
    if limit and size > limit:
      raise errors.ConfigError(
          f'a full grid at {n} steps is {size:,} candidates, more than '
          f'search.max_grid_candidates={limit:,} (each costs a {n}-step synthesis); score a random '
          f'subset with --config.search.max_candidates={limit}, raise '
          '--config.search.max_grid_candidates, or use --method=coordinate')


def _search_time_grids(scorer, steps, config, output_dir, step):
  """A flow run: the time-grid search (`time_grid_search`) instead of the betas search."""
  s = config.search
  logging.info('searching flow time grids of %s steps -> %s', steps, output_dir)
  out = time_grid_search.search_budgets(
      scorer, steps, [float(p) for p in s.flow_powers], int(s.coordinate_max_sweeps),
      output_dir, fingerprint={'workdir': os.path.abspath(FLAGS.workdir), 'step': step,
                               'solver': config.sampling.solver})
  for r in out['budgets']:
    best = 'none finite' if r['best_score'] is None else f'{r["best_score"]:.4g}'
    print(f'N={r["num_steps"]} time grid: best LS-MSE {best} with times '
          f'{["%.3g" % t for t in r["best_times"]]} ({r["scorings"]} scored)')
    print(f'  -> {r["paths"]["best"]}')


def run():
  """Restores the checkpoint, scores FLAGS.steps' candidates and prints the best schedules."""
  from wavegrad_jax.data import pipeline as input_pipeline  # pylint: disable=g-import-not-at-top
  # Everything the user gave is checked before the checkpoint is restored or anything compiled.
  config = checkpoint_flags.preview_config()
  steps = _apply_flags(config)
  s = config.search
  if processes.process_name(config) == 'wavegrad':  # a flow run searches time grids instead
    check_grid_size(s, steps)
  checkpoint_flags.check_split(s.split)
  output_dir = FLAGS.output_dir or f'{FLAGS.workdir}/search'
  errors.check_output_dir(output_dir, '--output_dir')
  utterances = input_pipeline.heldout_utterances(config, split=s.split,
                                                 max_count=int(s.num_utterances))
  checkpoint_flags.require_utterances(utterances, s.split, config)
  params, config, step = checkpoint_flags.load_checkpoint()
  _apply_flags(config)
  s = config.search
  hop = int(config.audio.hop_length)
  mels, refs, ids = schedule_search.search_segments(
      utterances, int(s.num_utterances), int(s.segment_frames), hop,
      mel_conventions.silence_value(config.audio))
  rng = jax.random.PRNGKey(int(s.seed))
  model = model_lib.build_model(config)
  scorer = schedule_search.make_ls_mse_scorer(sampling.model_eps_fn(model), params, mels, refs,
                                              rng, config)
  if processes.process_name(config) != 'wavegrad':
    _search_time_grids(scorer, steps, config, output_dir, step)
    return
  # Everything a score depends on (checkpoint, segments, frontend, sampler incl. GLA, LS-MSE,
  # noise seed): a results file made under anything else is refused, naming what differs.
  fingerprint = schedule_search.search_fingerprint(config, step=step, params=params, mels=mels,
                                                   references=refs, segment_ids=ids)
  logging.info('searching %s steps with %s on %d devices, %d segments of %d frames -> %s', steps,
               s.method, jax.device_count(), len(ids), s.segment_frames, output_dir)
  # The start-from-noise check uses the level of the very segments scored.
  speech_rms = float(np.sqrt(np.mean(np.square(np.asarray(refs, np.float64)))))
  out = schedule_search.search_budgets(
      scorer, steps, s, output_dir, fingerprint=fingerprint,
      named=config.sampling.named_schedules.to_dict(), speech_rms=speech_rms,
      max_start_snr_db=config.sampling.get('start_max_snr_db', None))
  for r in out['budgets']:
    named = ', '.join(f'{k}: {v:.4g}' for k, v in r['named_scores'].items() if v is not None)
    best = 'none finite' if r['best_score'] is None else f'{r["best_score"]:.4g}'
    print(f'N={r["num_steps"]} {r["method"]}: best LS-MSE {best} with betas '
          f'{["%.3g" % b for b in r["best_betas"]]} ({r["scorings"]} scored, {r["reused"]} '
          f'reused from earlier scores){"; named " + named if named else ""}')
    print(f'  -> {r["paths"]["best"]}')
  if out['plot']:
    print(f'plot: {out["plot"]}')


if __name__ == '__main__':
  cli.run(main)
