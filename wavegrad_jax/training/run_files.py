"""The files of a training workdir: its layout, config.json, and moving runs or checkpoints aside.

Layout under a workdir (directory names come from `config.checkpoint`):
  config.json                 the run's full config (rewritten at every start).
  checkpoints/<step>/         periodic checkpoints, the latest `train.keep_checkpoints` kept;
    state/                    the TrainState pytree (step, params, ema_params, opt_state).
    config/                   the config as JSON, so each checkpoint rebuilds its own model.
  checkpoints_best/<step>/    the single checkpoint with the lowest held-out loss so far.
  checkpoints_corrupt/        checkpoints that failed to restore, moved aside (never deleted).
  previous_runs/<time>/       an earlier run's files, moved here by `archive_run` (--start_afresh).

config.json is written as it always was (`config_to_dict`, indent 2, sorted keys), so runs
written before and after any change of this package read back alike.
"""
import json
import os
import shutil
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import orbax.checkpoint as ocp

STATE = 'state'
CONFIG = 'config'
BEST_METRIC = 'heldout_loss'
CONFIG_FILE = 'config.json'
CORRUPT_DIR = 'checkpoints_corrupt'
PREVIOUS_RUNS_DIR = 'previous_runs'
# Defaults for workdirs whose config lacks a `checkpoint` section.
_DEFAULT_DIRS = {'directory': 'checkpoints', 'best_directory': 'checkpoints_best'}


def absolute_path(workdir):
  # Orbax wants absolute paths; URLs (gs://...) already are.
  workdir = os.fspath(workdir)
  return workdir if '://' in workdir else os.path.abspath(os.path.expanduser(workdir))


def checkpoint_dirs(workdir, config=None):
  """(periodic, best) checkpoint folders of `workdir`, named by `config.checkpoint` or defaults."""
  section = config.get('checkpoint', None) if config is not None else None
  workdir = absolute_path(workdir)
  get = lambda k: os.path.join(workdir, (section or {}).get(k, _DEFAULT_DIRS[k]))
  return get('directory'), get('best_directory')


def periodic_steps(workdir, config=None):
  """Steps of a workdir's periodic checkpoint folders, ascending, read from the folder names.

  Unfinished saves (orbax's *.orbax-checkpoint-tmp folders) are not steps. Opens no manager, so it
  is cheap and safe beside a running training.

  Args:
    workdir: a training run's directory.
    config: its config, for `checkpoint.directory` (None: the default name).
  Returns:
    (directory, [int step, ...]); the list is empty when the folder is missing.
  """
  directory, _ = checkpoint_dirs(workdir, config)
  if not os.path.isdir(directory):
    return directory, []
  return directory, sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def config_to_dict(config):
  """A JSON-serialisable nested dict of a ConfigDict (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def _tuplify(value):
  # JSON has no tuples, but every sequence in the experiment configs is a tuple: restoring them
  # keeps a reloaded config equal to (and as hashable as) the one that trained.
  if isinstance(value, dict):
    return {k: _tuplify(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_tuplify(v) for v in value)
  return value


def config_from_dict(d):
  """Inverse of `config_to_dict`: a ConfigDict with lists turned back into tuples."""
  return ml_collections.ConfigDict(_tuplify(d))


def save_config(workdir, config):
  """Writes workdir/config.json atomically (process 0 only; a no-op elsewhere)."""
  if jax.process_index() != 0:
    return
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  tmp = f'{path}.tmp-{os.getpid()}'
  try:
    with open(tmp, 'w') as f:
      json.dump(config_to_dict(config), f, indent=2, sort_keys=True)
    os.replace(tmp, path)
  except OSError:
    if os.path.exists(tmp):  # a torn copy on a full disk; the old config.json is kept
      os.remove(tmp)
    raise


def load_config(workdir):
  """The config a run in `workdir` trained with.

  Reads workdir/config.json, or, when that is missing, the config stored in the latest readable
  checkpoint.

  Args:
    workdir: a training run's directory.
  Returns:
    ml_collections.ConfigDict.
  Raises:
    FileNotFoundError: neither a config.json nor a checkpoint with a config exists.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(path):
    with open(path) as f:
      return config_from_dict(json.load(f))
  for directory in checkpoint_dirs(workdir):
    config = _config_of_latest(directory)
    if config is not None:
      return config
  raise FileNotFoundError(f'{workdir}: no {CONFIG_FILE} and no checkpoint holding a config; is '
                          'this a training workdir?')


def maybe_config(workdir):
  """workdir/config.json's config, or None when the workdir has none."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return config_from_dict(json.load(f))


# ------------------------------------------------------------------------------------ inference


def read_only_manager(directory):
  """A read-only orbax CheckpointManager of `directory` that this process opens on its own."""
  # Handlers named up front so that item metadata can be read before any restore. Each process
  # reads on its own (active_processes is itself) and skips orbax's barriers: these reads are not
  # made in lockstep by every process, and unmatched barriers fail (or hang) a multi-process run.
  process = jax.process_index()
  return ocp.CheckpointManager(
      directory,
      options=ocp.CheckpointManagerOptions(
          read_only=True, create=False, save_interval_steps=0, enable_async_checkpointing=False,
          multiprocessing_options=ocp.options.MultiprocessingOptions(
              primary_host=process, active_processes={process})),
      item_handlers={STATE: ocp.PyTreeCheckpointHandler(), CONFIG: ocp.JsonCheckpointHandler()})


def _config_of_latest(directory):
  if not os.path.isdir(directory):
    return None
  manager = read_only_manager(directory)
  try:
    for step in sorted(manager.all_steps(), reverse=True):
      try:
        restored = manager.restore(
            step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))
        return config_from_dict(restored[CONFIG])
      except Exception as e:  # pylint: disable=broad-except
        logging.warning('checkpoint %s/%d: config unreadable (%s); trying an older one',
                        directory, step, e)
  finally:
    manager.close()
  return None


def quarantine(directory, step, workdir):
  """Moves an unreadable step directory out of the manager's sight; returns the new path."""
  src = os.path.join(directory, str(step))
  dst = os.path.join(workdir, CORRUPT_DIR,
                     f'{os.path.basename(directory)}_{step}_{time.strftime("%Y%m%d-%H%M%S")}')
  if jax.process_index() == 0 and os.path.exists(src):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.move(src, dst)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'quarantine_{directory}_{step}')
  return dst


def archive_run(workdir):
  """Moves everything in `workdir` into workdir/previous_runs/<time>/ (process 0); nothing is lost.

  Returns:
    the folder the old run went to, or None when the workdir held nothing.
  """
  workdir = absolute_path(workdir)
  names = sorted(n for n in os.listdir(workdir) if n != PREVIOUS_RUNS_DIR) if os.path.isdir(
      workdir) else []
  if not names:
    return None
  target = os.path.join(workdir, PREVIOUS_RUNS_DIR, time.strftime('%Y%m%d-%H%M%S'))
  if jax.process_index() == 0:
    os.makedirs(target)
    for name in names:
      shutil.move(os.path.join(workdir, name), os.path.join(target, name))
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices('archive_run')
  return target
