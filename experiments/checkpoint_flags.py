"""Flags shared by every launcher that reads a training run's checkpoint, and the restore they drive.

Defined once here, so launchers that import each other (or a test importing several) never
register a flag twice.
"""
from absl import flags
from ml_collections import config_flags

from experiments.configs import common
from wavegrad_jax import checkpoints
from wavegrad_jax import compilation

WORKDIR = flags.DEFINE_string('workdir', None, 'Training run directory holding the checkpoints.')
STEP = flags.DEFINE_string('step', '', "Checkpoint step: '' for the latest, 'best', or a number.")
EMA = flags.DEFINE_bool('ema', None, 'Use the EMA weights (default: config.eval.ema, True).')
CONFIG = config_flags.DEFINE_config_file(
    'config', None, "Optional experiment config whose sampling / eval / search sections replace "
    "the checkpoint's.", lock_config=False)


def load_checkpoint():
  """Restores --workdir's checkpoint (--step, --ema) with --config's inference sections.

  Also turns on the persistent compilation cache of the resulting config (`compile.cache_dir`).

  Returns:
    (params, config, step): see `checkpoints.load_for_inference`.
  """
  params, config, step = checkpoints.load_for_inference(
      WORKDIR.value, common.get_common_config(), STEP.value, EMA.value, CONFIG.value)
  compilation.enable_persistent_cache(config)  # before the launcher compiles anything
  return params, config, step
