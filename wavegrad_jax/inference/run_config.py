"""The config an inference command runs with: a run's checkpoint config plus the user's overrides.

The rules (the launchers' flags are experiments/checkpoint_flags.py): the model, frontend and
data always come from the checkpoint. The inference sections (sampling, eval, search, compile)
come from the checkpoint with `--config.<section>.<field>=value` overrides on top when no --config
file is given; or, when one is given, from that file's sections (with its overrides), which
replace the checkpoint's. Every check raises `errors.UserError` (or ConfigError) naming the flag.
"""
import os

from absl import logging

from wavegrad_jax import errors
from wavegrad_jax import processes
from wavegrad_jax import sampling
from wavegrad_jax.training import checkpoints
from wavegrad_jax.training import options as training_options


def checked_overrides(values, file_given):
  """`values` ({'section.field': value}) unless one overrides a section the checkpoint fixes."""
  if file_given:
    return values
  sections = checkpoints.INFERENCE_SECTIONS
  for key in values:
    if key.split('.', 1)[0] not in sections:
      raise errors.ConfigError(
          f'--config.{key}: the model, frontend and data come from the checkpoint; inference '
          f'commands override only the {", ".join(sections)} sections')
  return values


def checked_step(step_text):
  """The --step text as `checkpoints.parse_step` reads it ('' latest, 'best' or a step)."""
  try:
    return checkpoints.parse_step(step_text)
  except ValueError:
    raise errors.ConfigError(f"--step={step_text}: give '' (the latest), 'best' or a step "
                             'number') from None


def checked_workdir(workdir):
  """`workdir`, unless it is not a folder."""
  if not os.path.isdir(workdir):
    raise errors.UserError(f'--workdir={workdir}: no such folder; give a training run\'s workdir')
  return workdir


def preview_config(workdir, step_text, overrides, file_config, defaults):
  """The config the command will run with, read cheaply (config.json) before any restore.

  For checks before work: schedules, splits, output paths, the sampling section
  (`check_sampling`).

  Args:
    workdir: the training run's directory (--workdir).
    step_text: --step.
    overrides: {'section.field': value} of the --config.<section>.<field> flags.
    file_config: the --config file's config when one was given, else None.
    defaults: the common experiment config (fields a run's config.json lacks).
  """
  workdir = checked_workdir(workdir)
  step = checked_step(step_text)
  values = checked_overrides(overrides, file_config is not None)
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
  if file_config is not None:
    config = checkpoints.inference_config(saved, defaults, file_config)
  else:
    config = checkpoints.inference_config(saved, defaults)
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
    processes.check_sampling_from_config(config)
    sampling.SamplerOptions.from_config(config)
    sampling.check_gla_steps(config.sampling.gla.steps)
  except ValueError as e:
    raise errors.ConfigError(f'--config.sampling: {e}') from None


def load_checkpoint(workdir, step_text, ema, overrides, file_config, defaults,
                    config_filename=None):
  """Restores the run's checkpoint with the inference sections described in the module docstring.

  Also turns on the persistent compilation cache of the resulting config (`compile.cache_dir`).

  Args:
    workdir, step_text, overrides, file_config, defaults: as in `preview_config`.
    ema: use the EMA weights (None: the override eval.ema, else config.eval.ema).
    config_filename: the --config file's name, for the log.
  Returns:
    (params, config, step): see `checkpoints.load_for_inference`.
  Raises:
    errors.UserError: no such workdir or checkpoint, a bad --step, or an override outside the
      inference sections.
  """
  workdir = checked_workdir(workdir)
  step = checked_step(step_text)
  values = checked_overrides(overrides, file_config is not None)
  if ema is None and 'eval.ema' in values:
    ema = bool(values['eval.ema'])
  if file_config is not None:
    logging.info("--config=%s: its sampling, eval, search and compile sections replace the "
                 "checkpoint's", config_filename)
  try:
    params, config, step = checkpoints.load_for_inference(workdir, defaults, step, ema,
                                                          file_config)
  except FileNotFoundError as e:
    raise errors.UserError(str(e)) from None
  if file_config is None:
    config.update_from_flattened_dict(values)
  training_options.enable_persistent_cache_from_config(config)  # before anything compiles
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
