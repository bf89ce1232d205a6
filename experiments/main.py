r"""Trains WaveGrad: parses flags and calls `train.train_and_evaluate`.

  python -m experiments.main --config=experiments/configs/tiny.py --workdir=runs/tiny

Any config field can be overridden from the command line, e.g. `--config.train.batch_size=4
--config.train.num_steps=200`. Re-running with the same --workdir resumes from its latest
checkpoint; a workdir whose checkpoints were made under settings that shape the saved state
differently (model, frontend, optimiser structure) is refused, naming the fields. --start_afresh
moves such a workdir's old run into <workdir>/previous_runs/<time>/ and trains from step 0. A write
that fails for want of space (a checkpoint or anything else) stops training with one `error:` line
naming where it resumes.
"""
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import cli
from wavegrad_jax.training import checkpoints
from wavegrad_jax.training import trainer as train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file (a get_config() module).', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and samples.')
_START_AFRESH = flags.DEFINE_bool(
    'start_afresh', False, "Train from step 0 in --workdir, first moving the run already there "
    "(checkpoints, metrics, logs, samples) into <workdir>/previous_runs/<time>/.")
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  """Runs training with the parsed config; extra positional arguments are an error."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    # Progress goes to the console, TensorBoard and metrics.jsonl; --verbosity=0 brings the INFO
    # logs (the dataset build's, orbax's, TFDS's) back.
    logging.set_verbosity(logging.WARNING)
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, start_afresh=_START_AFRESH.value)
  except Exception as e:  # pylint: disable=broad-except
    # A full disk fails whatever writes next (a checkpoint, a sample, config.json on a rerun):
    # one line saying so and where training resumes, instead of the writers' tracebacks.
    stopped = checkpoints.write_failure(e, _WORKDIR.value, _CONFIG.value)
    if stopped is None:
      raise
    raise stopped from None


if __name__ == '__main__':
  cli.run(main)
