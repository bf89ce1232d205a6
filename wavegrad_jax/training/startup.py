"""What a training run checks and prepares before its first step.

Everything that can be wrong with a request is found before anything is created in the workdir,
restored or compiled: the config (`validate_config`), the devices (`validate_devices`), the
workdir's earlier run (`check_resume_compatible`), a fine-tune's source (`init_source`) and the
data (`open_dataset`). PriorGrad's energy range is measured here (`with_prior_energy_range`).
"""
import os

from absl import logging
import jax
import jax.numpy as jnp

from wavegrad_jax import errors
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax.diffusion import priors
from wavegrad_jax.training import checkpoints
from wavegrad_jax.training import parallel
from wavegrad_jax.training.state import learning_rate_schedule
from wavegrad_jax.training.step import train_noise_levels


def _data_options():
  # Imported lazily: the pipeline (and its dataset builders) is only needed by real runs, not by
  # the step functions that tests and the benchmark drive with synthetic batches.
  from wavegrad_jax.data import options as data_options  # pylint: disable=g-import-not-at-top
  return data_options


def with_prior_energy_range(config, splits):
  """A copy of `config` with diffusion.prior_energy_range measured on the training split.

  PriorGrad normalises frame energies by the training data's range; recording it in the run's
  config makes resumption, evaluation and synthesis use the very same prior.

  Args:
    config: the run's config.
    splits: `open_dataset(config)`.
  """
  train_split = splits['train']
  low, high = priors.energy_range((train_split[i]['mel'] for i in range(len(train_split))),
                                  priors.PriorOptions.from_config(config).frontend)
  config = config.copy_and_resolve_references()
  config.diffusion.prior_energy_range = (low, high)
  logging.info('PriorGrad frame-energy range of the training data: %.4g .. %.4g', low, high)
  return config


def open_dataset(config):
  """`data.options.prepare_dataset_from_config(config)`, built by process 0 before the others."""
  return parallel.process_zero_first(lambda: _data_options().prepare_dataset_from_config(config),
                                     'wavegrad_dataset_prepared')


def validate_config(config):
  """Raises errors.ConfigError (a ValueError) for settings train_and_evaluate cannot run with.

  Checks what can be checked without devices, data or files: step counts, batch sizes, the
  learning-rate schedule, the model's topology against the frontend, and the schedules.
  """
  c = config.train
  for name in ('num_steps', 'batch_size', 'log_every_steps', 'checkpoint_every_steps',
               'keep_checkpoints'):
    if int(c[name]) < 1:
      raise errors.ConfigError(f'train.{name} must be >= 1, got {c[name]}')
  for name in ('eval_every_steps', 'heldout_loss_batches', 'eval_batch_size'):
    if int(c[name]) < 0:
      raise errors.ConfigError(f'train.{name} must be >= 0, got {c[name]}')
  if int(config.data.segment_frames) < 1:
    raise errors.ConfigError(f'data.segment_frames must be >= 1, got {config.data.segment_frames}')
  if not 0 <= float(config.data.heldout_fraction) < 1:
    raise errors.ConfigError('data.heldout_fraction must be in [0, 1), got '
                             f'{config.data.heldout_fraction}')
  if int(config.data.get('min_heldout_utterances', 0)) < 0:
    raise errors.ConfigError('data.min_heldout_utterances must be >= 0, got '
                             f'{config.data.min_heldout_utterances}')
  try:
    learning_rate_schedule(c)
    model_lib.build_model_from_config(config)  # checks the model variant's fields and topology
    processes.check_name(processes.process_name_from_config(config))
    train_noise_levels(config)
    # The process's own options (prediction, loss weights) and the sampler's; with PriorGrad and
    # no recorded energy range both are built once training has measured it.
    measured_later = priors.needs_energy_range(priors.PriorOptions.from_config(config))
    if not measured_later:
      processes.from_config(config)
    if int(c.eval_every_steps) and int(c.num_audio_examples):
      if not measured_later:
        processes.check_sampling_from_config(config)
      processes.parse_grid_from_config(config, c.sample_schedule or config.sampling.schedule)
  except errors.ConfigError:
    raise
  except ValueError as e:
    raise errors.ConfigError(str(e)) from None


def validate_devices(config, mesh):
  """Raises errors.ConfigError unless the batch sizes divide over `mesh`'s batch axes."""
  sizes = [('train.batch_size', int(config.train.batch_size))]
  if int(config.train.eval_every_steps):
    sizes.append(('train.eval_batch_size',
                  int(config.train.eval_batch_size) or int(config.train.batch_size)))
  mesh_spec = parallel.MeshSpec.from_config(config.mesh)
  for name, size in sizes:
    try:
      parallel.check_batch_size(size, mesh, mesh_spec, name)
    except ValueError as e:
      raise errors.ConfigError(str(e)) from None


def check_resume_compatible(workdir, config):
  """Refuses to resume a workdir whose checkpoints hold another model or frontend.

  Without this, restoring would fail on every checkpoint, each would be set aside as unreadable
  and training would silently restart from step 0.

  Raises:
    ValueError naming each differing `model.*` / `audio.*` field (compute dtype excepted).
  """
  if not os.path.exists(os.path.join(workdir, checkpoints.CONFIG_FILE)):
    return
  differences = checkpoints.frontend_differences(
      checkpoints.load_config(workdir), config, a_name='the workdir', b_name='this run',
      ignore=('model.dtype',))
  if differences:
    raise errors.ResumeMismatchError(
        f'{workdir} holds a run with a different model or frontend, so its checkpoints cannot be '
        'resumed: ' + '; '.join(differences) + '. Nothing was changed. Use a new --workdir, pass '
        '--start_afresh to move the old run into previous_runs/ and train from step 0, or use '
        'the config that run was started with'
        + checkpoints.recorded_choice_hint(checkpoints.load_config(workdir), differences) + '.')


def init_source(workdir, config, *, start_afresh=False):
  """The checkpoint a fine-tune starts from (config.train.init_from), checked against this run.

  Reads only config files, so a mismatch is refused before anything is created or compiled.

  Args:
    workdir: this run's directory.
    config: this run's config.
    start_afresh: the workdir's run is moved aside first, so its checkpoints do not count.
  Returns:
    (init workdir, step for `checkpoints.restore_params`), or None when train.init_from is empty
    or `workdir` already holds a checkpoint (a resumed fine-tune continues from its own).
  Raises:
    errors.ConfigError: init_from is not a workdir or checkpoint folder, or its model or frontend
      differs from this config's (each field named).
  """
  init_from = str(config.train.get('init_from', '') or '')
  periodic = os.path.join(workdir, config.checkpoint.directory)
  if not init_from or (not start_afresh and os.path.isdir(periodic)
                       and any(n.isdigit() for n in os.listdir(periodic))):
    return None
  try:
    source = checkpoints.resolve_checkpoint_path(init_from)
  except FileNotFoundError as e:
    raise errors.ConfigError(f'train.init_from: {e}') from None
  differences = checkpoints.frontend_differences(
      checkpoints.load_config(source[0]), config, a_name='train.init_from', b_name='this run',
      ignore=('model.dtype',))
  if differences:
    raise errors.ConfigError(
        f'train.init_from={init_from} holds a run with another model or frontend, so its weights '
        'cannot start this one: ' + '; '.join(differences) + '. Use a config with its model and '
        'audio sections (e.g. the one it was trained with, with only data and train fields '
        'changed).')
  return source


def init_from_checkpoint(state, shardings, source, config):
  """`state` with the parameters (raw and EMA) of another run's checkpoint; optimiser and step kept.

  Args:
    state: a fresh TrainState (step 0, freshly initialised optimiser state).
    shardings: its per-leaf shardings (`abstract_train_state`).
    source: (workdir, step) from `init_source`.
    config: this run's config (train.init_from_ema picks EMA or raw weights).
  Returns:
    (new TrainState, one line saying where the weights came from).
  """
  ema = bool(config.train.get('init_from_ema', True))
  params, saved, step = checkpoints.restore_params(source[0], source[1], ema=ema)
  differences = checkpoints.frontend_differences(saved, config, a_name='train.init_from',
                                                 b_name='this run', ignore=('model.dtype',))
  if differences:  # the step's own config, in case the workdir's config.json was rewritten
    raise errors.ConfigError(f'{source[0]} step {step} has another model or frontend: '
                             + '; '.join(differences))
  # Two copies: the train step donates the state, so params and EMA must not share buffers.
  params, ema_params = jax.jit(lambda p: (p, jax.tree.map(jnp.copy, p)),
                               out_shardings=(shardings.params, shardings.ema_params))(params)
  line = (f"initialised from {source[0]} step {step} ({'EMA' if ema else 'raw'} weights) with a "
          'fresh optimiser')
  return state.replace(params=params, ema_params=ema_params), line
