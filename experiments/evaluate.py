r"""Evaluates a training run's checkpoint: vocodes held-out utterances with several schedules.

Writes <output_dir>/metrics.json (mean LS-MSE, MR-STFT, mel L1, PESQ, STOI, RTF per schedule),
per_utterance.jsonl, TensorBoard scalars in tb/ and the wavs in wavs/<schedule>/.

  python -m experiments.evaluate --workdir=runs/tiny
  python -m experiments.evaluate --workdir=runs/tiny --schedules=6,25,50,1000 --split=unseen \
      --max_utterances=8
  python -m experiments.evaluate --workdir=runs/tiny --step=best \
      --schedules=runs/tiny/search/best_N6.json,6
  python -m experiments.evaluate --workdir=runs/tiny --config.sampling.eta=0 \
      --config.eval.chunk_frames=64 --config.eval.pesq=False

The model, frontend and data come from the checkpoint; `--config.<section>.<field>=value`
overrides its sampling / eval / search sections, and a --config file (optional) replaces them
(experiments/checkpoint_flags.py).
"""
import os

from absl import app
from absl import flags
from absl import logging

from experiments import checkpoint_flags
from experiments import cli
from wavegrad_jax import errors
from wavegrad_jax.evaluation import evaluate
from wavegrad_jax import models as model_lib
from wavegrad_jax import sampling

FLAGS = flags.FLAGS
flags.DEFINE_string('schedules', None, "Comma-separated schedules ('6,25,50,1000', names, "
                    "'linear:..', .json paths; use ';' between them if one is 'list:a,b').")
flags.DEFINE_enum('split', None, ['heldout', 'unseen'],
                  'Held-out split (default config.eval.split).')
flags.DEFINE_integer('max_utterances', None, 'At most this many utterances (0: all).')
flags.DEFINE_float('max_seconds', None, 'Cut each utterance to at most this many seconds '
                   '(0: whole).')
flags.DEFINE_string('output_dir', None, 'Default: <workdir>/eval/step_<step>.')
flags.mark_flag_as_required('workdir')


def _apply_flags(config):
  """The launcher's flags on top of config.eval (in place); returns config.eval."""
  e = config.eval
  for name in ('schedules', 'split', 'max_utterances', 'max_seconds'):
    if getattr(FLAGS, name) is not None:
      e[name] = getattr(FLAGS, name)
  return e


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  from wavegrad_jax.data import options as data_options  # pylint: disable=g-import-not-at-top
  # Everything the user gave is checked before the checkpoint is restored or anything compiled.
  config = checkpoint_flags.preview_config()
  e = _apply_flags(config)
  checkpoint_flags.check_split(e.split)
  try:
    schedule_list = evaluate.parse_schedule_list(e.schedules, config=config)
  except ValueError as err:
    raise errors.ConfigError(f'--schedules={e.schedules}: {err}') from None
  errors.check_output_dir(FLAGS.output_dir or os.path.join(FLAGS.workdir, 'eval'),
                          '--output_dir')
  utterances = data_options.heldout_utterances_from_config(
      config, split=e.split, max_count=int(e.max_utterances) or None,
      max_seconds=float(e.max_seconds) or None)
  checkpoint_flags.require_utterances(utterances, e.split, config)
  params, config, step = checkpoint_flags.load_checkpoint()
  _apply_flags(config)
  output_dir = FLAGS.output_dir or evaluate.default_output_dir(FLAGS.workdir, step)
  logging.info('step %s, %d %s utterances, schedules %s -> %s', step, len(utterances), e.split,
               [n for n, _ in schedule_list], output_dir)
  model = model_lib.build_model_from_config(config)
  results = evaluate.evaluate_utterances(
      sampling.model_eps_fn(model), params, config, utterances, schedule_list,
      evaluate.evaluation_rng(config), output_dir=output_dir, step=step)
  print(evaluate.format_table(results))
  print(f'wrote {output_dir}/metrics.json')


if __name__ == '__main__':
  cli.run(main)
