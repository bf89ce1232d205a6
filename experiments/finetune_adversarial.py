r"""Fine-tunes a trained run's k-step sampler adversarially: flags in, one library call.

  python -m experiments.finetune_adversarial --config=experiments/configs/frame_small_gl_gan.py \
      --teacher=runs/frame_small_gl --workdir=runs/frame_small_gl_gan

The generator is the teacher's sampler over config.adversarial.steps fixed steps, started from
the teacher's EMA weights; discriminators and losses are in config.adversarial (see
wavegrad_jax/training/adversarial.py). Re-running with the same --workdir resumes exactly (both
optimisers are in each checkpoint); a resume names the same --teacher or is refused. The result
is a run like any other: evaluate, synthesize and compare_samplers take its --workdir.
"""
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import cli
from wavegrad_jax.training import adversarial_trainer
from wavegrad_jax.training import checkpoints

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Fine-tune config file (the teacher\'s config plus an adversarial section).',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory of the fine-tune.')
_TEACHER = flags.DEFINE_string('teacher', '', 'Workdir of the trained run to fine-tune '
                               '(sets config.adversarial.teacher).')
_START_AFRESH = flags.DEFINE_bool('start_afresh', False, 'Move the fine-tune in --workdir aside '
                                  'and start again from the teacher.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  """Runs the fine-tune with the parsed config; extra positional arguments are an error."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  if 'adversarial' not in config:
    raise app.UsageError(f'--config={flags.FLAGS["config"].value} has no adversarial section; use '
                        'a fine-tune config (e.g. experiments/configs/frame_small_gl_gan.py)')
  if _TEACHER.value:
    with config.unlocked():
      config.adversarial.teacher = _TEACHER.value
  try:
    adversarial_trainer.finetune_adversarial(config, _WORKDIR.value,
                                             start_afresh=_START_AFRESH.value)
  except Exception as e:  # pylint: disable=broad-except
    stopped = checkpoints.write_failure(e, _WORKDIR.value, config)
    if stopped is None:
      raise
    raise stopped from None


if __name__ == '__main__':
  cli.run(main)
