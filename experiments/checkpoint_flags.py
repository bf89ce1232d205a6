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
from absl import logging
from ml_collections import config_flags

from experiments import cli
from experiments.configs import common
from wavegrad_jax.training import checkpoints
from wavegrad_jax.training import compilation
from wavegrad_jax import errors
from wavegrad_jax import processes
from wavegrad_jax import sampling

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
cli.DEFAULT_CONFIG_FILES['config'] = DEFAULT_CONFIG_FILE


def config_file_given():
  """Whether --config=<file> was on the command line (not just --config.<field> overrides)."""
  return CONFIG.value is not None and 'config' not in cli.DEFAULT_CONFIG_FILES_USED


def config_overrides():
  """{'section.field': value} of the --config.<section>.<field>=value flags."""
  if CONFIG.value is None:
    return {}
  return dict(config_flags.get_override_values(FLAGS['config']))


def _checked_overrides():
  values = config_overrides()
  if config_file_given():
    return values
  sections = checkpoints.INFERENCE_SECTIONS
  for key in values:
    if key.split('.', 1)[0] not in sections:
      raise errors.ConfigError(
          f'--config.{key}: the model, frontend and data come from the checkpoint; inference '
          f'commands override only the {", ".join(sections)} sections')
  return values


def _checked_step():
  try:
    return checkpoints.parse_step(STEP.value)
  except ValueError:
    raise errors.ConfigError(f"--step={STEP.value}: give '' (the latest), 'best' or a step "
                             'number') from None


def _checked_workdir():
  workdir = WORKDIR.value
  if not os.path.isdir(workdir):
    raise errors.UserError(f'--workdir={workdir}: no such folder; give a training run\'s workdir')
  return workdir


def preview_config():
  """The config the command will run with, read cheaply (config.json) before any restore.

  For checks before work: schedules, splits, output paths, the sampling section
  (`check_sampling`).
  """
  workdir = _checked_workdir()
  step = _checked_step()
  values = _checked_overrides()
  try:
    saved = checkpoints.load_config(workdir)
  except FileNotFoundError as e:
    raise errors.UserError(str(e)) from None
  if isinstance(step, int):
    directory = os.path.join(workdir, saved.get('checkpoint', {}).get('directory', 'checkpoints'))
    have = sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if os.path.isdir(
        directory) else []
    if step not in have:
      raise errors.UserError(f'--step={step}: {directory} holds no checkpoint {step}; it has '
                             f"{have}, or give --step=best or '' (the latest)")
  if config_file_given():
    config = checkpoints.inference_config(saved, common.get_common_config(), CONFIG.value)
  else:
    config = checkpoints.inference_config(saved, common.get_common_config())
    config.update_from_flattened_dict(values)
  check_sampling(config)
  return config


def check_sampling(config):
  """Raises errors.ConfigError, naming the field, unless config.sampling makes a sampler.

  Every inference launcher reads its config through `preview_config`, so a bad algorithm,
  noise_scale, eta or gla.steps is one line before the checkpoint is restored, not a traceback
  after (and never ignored by a launcher that builds its samplers from presets).
  """
  try:
    # A sampler of the other process (a flow run's eta, a wavegrad run's ODE solver) too.
    processes.check_sampling(config)
    sampling.SamplerOptions.from_config(config)
    sampling.check_gla_steps(config.sampling.gla.steps)
  except ValueError as e:
    raise errors.ConfigError(f'--config.sampling: {e}') from None


def load_checkpoint():
  """Restores --workdir's checkpoint (--step, --ema) with the inference sections described above.

  Also turns on the persistent compilation cache of the resulting config (`compile.cache_dir`).

  Returns:
    (params, config, step): see `checkpoints.load_for_inference`.
  Raises:
    errors.UserError: no such workdir or checkpoint, a bad --step, or an override outside the
      inference sections.
  """
  workdir = _checked_workdir()
  step = _checked_step()
  values = _checked_overrides()
  ema = EMA.value
  if ema is None and 'eval.ema' in values:
    ema = bool(values['eval.ema'])
  if config_file_given():
    logging.info("--config=%s: its sampling, eval, search and compile sections replace the "
                 "checkpoint's",
                 FLAGS['config'].config_filename)
  try:
    params, config, step = checkpoints.load_for_inference(
        workdir, common.get_common_config(), step, ema,
        CONFIG.value if config_file_given() else None)
  except FileNotFoundError as e:
    raise errors.UserError(str(e)) from None
  if not config_file_given():
    config.update_from_flattened_dict(values)
  compilation.enable_persistent_cache(config)  # before the launcher compiles anything
  return params, config, step


def require_utterances(utterances, split, config):
  """Raises UserError when an evaluation split of the run's data holds no utterance.

  Args:
    utterances: what `input_pipeline.heldout_utterances` returned.
    split: the split's name.
    config: the run's config (its data section names the source).
  """
  if utterances:
    return
  hint = ''
  if split == 'unseen' and str(config.data.source) != 'fillets':
    hint = (f': a {config.data.source} source has unseen speakers only when the run trained with '
            "--config.data.unseen_speakers=<speaker ids>; evaluate on --split=heldout instead")
  elif split == 'heldout':
    hint = ': the run trained with data.heldout_fraction too small for this corpus'
  raise errors.UserError(f"the {split} split of this run's data ({config.data.source} corpus in "
                         f'{config.data.dir}) holds no utterances{hint}')


def check_split(name):
  """Raises UserError unless `name` is one of the dataset's splits."""
  from wavegrad_jax.data import builders  # pylint: disable=g-import-not-at-top
  if name not in builders.SPLITS:
    raise errors.ConfigError(f'split {name!r}: choose one of {list(builders.SPLITS)}')
