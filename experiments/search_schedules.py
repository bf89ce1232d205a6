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
from absl import app
from absl import flags

from experiments import checkpoint_flags
from experiments import cli
from wavegrad_jax import errors
from wavegrad_jax import processes
from wavegrad_jax.evaluation import schedule_search

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
  return schedule_search.parse_budgets(s)


def run():
  """Restores the checkpoint, scores FLAGS.steps' candidates and prints the best schedules."""
  from wavegrad_jax.data import options as data_options  # pylint: disable=g-import-not-at-top
  # Everything the user gave is checked before the checkpoint is restored or anything compiled.
  config = checkpoint_flags.preview_config()
  steps = _apply_flags(config)
  s = config.search
  if processes.process_name_from_config(config) == 'wavegrad':  # a flow run searches time grids instead
    schedule_search.check_grid_size(s, steps)
  checkpoint_flags.check_split(s.split)
  output_dir = FLAGS.output_dir or f'{FLAGS.workdir}/search'
  errors.check_output_dir(output_dir, '--output_dir')
  utterances = data_options.heldout_utterances_from_config(config, split=s.split,
                                                           max_count=int(s.num_utterances))
  checkpoint_flags.require_utterances(utterances, s.split, config)
  params, config, step = checkpoint_flags.load_checkpoint()
  _apply_flags(config)
  out, flow = schedule_search.search_checkpoint(config, params, step, utterances, steps,
                                                output_dir, workdir=FLAGS.workdir)
  for line in schedule_search.result_lines(out, flow):
    print(line)


if __name__ == '__main__':
  cli.run(main)
