"""Flags shared by every launcher that reads a training run's checkpoint, and the restore they drive.

Defined once here, so launchers that import each other (or a test importing several) never
register a flag twice.

The model, frontend and data always come from the checkpoint. The inference sections (sampling,
eval, search, compile) come from:
- the checkpoint, with `--config.<section>.<field>=value` overrides on top when no --config file
  is given (e.g. `--config.sampling.eta=0`); overriding any other section is refused;
- a --config file's sampling / eval / search / compile sections (with its overrides) when one is
  given, which replace the checkpoint's; the log says so.
"""
import os

from absl import flags
from ml_collections import config_flags

from experiments import config_overrides as overrides_lib
from experiments.configs import common
from wavegrad_jax.inference import run_config

FLAGS = flags.FLAGS
# Read when overrides come without a --config file (cli.parse_flags puts it on the command line).
DEFAULT_CONFIG_FILE = os.path.join(os.path.dirname(os.path.abspath(common.__file__)), 'common.py')

WORKDIR = flags.DEFINE_string('workdir', None, 'Training run directory holding the checkpoints.')
STEP = flags.DEFINE_string('step', '', "Checkpoint step: '' for the latest, 'best', or a number.")
EMA = flags.DEFINE_bool('ema', None, 'Use the EMA weights (default: config.eval.ema, True).')
CONFIG = config_flags.DEFINE_config_file(
    'config', None,
    "Optional experiment config whose sampling / eval / search sections replace the checkpoint's. "
    "Without it, --config.<section>.<field>=value overrides those sections of the checkpoint's "
    'config.', lock_config=False)
overrides_lib.DEFAULT_CONFIG_FILES['config'] = DEFAULT_CONFIG_FILE


def config_file_given():
  """Whether --config=<file> was on the command line (not just --config.<field> overrides)."""
  return CONFIG.value is not None and 'config' not in overrides_lib.DEFAULT_CONFIG_FILES_USED


def config_overrides():
  """{'section.field': value} of the --config.<section>.<field>=value flags."""
  if CONFIG.value is None:
    return {}
  return dict(config_flags.get_override_values(FLAGS['config']))


def _file_config():
  return CONFIG.value if config_file_given() else None


def preview_config():
  """The config the command will run with, read cheaply (config.json) before any restore.

  For checks before work: schedules, splits, output paths, the sampling section
  (`check_sampling`). See `run_config.preview_config`.
  """
  return run_config.preview_config(WORKDIR.value, STEP.value, config_overrides(), _file_config(),
                                   common.get_common_config())


def load_checkpoint():
  """Restores --workdir's checkpoint (--step, --ema) with the inference sections described above.

  Returns:
    (params, config, step): see `run_config.load_checkpoint`.
  """
  return run_config.load_checkpoint(
      WORKDIR.value, STEP.value, EMA.value, config_overrides(), _file_config(),
      common.get_common_config(),
      FLAGS['config'].config_filename if config_file_given() else None)


# Shared checks of the inference launchers, defined in the library.
check_sampling = run_config.check_sampling
require_utterances = run_config.require_utterances
check_split = run_config.check_split
