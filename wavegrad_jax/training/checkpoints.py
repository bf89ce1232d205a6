"""Orbax checkpoints of a training run, and restoring what inference needs from a workdir alone.

Every launcher that reads a run loads it with `load_for_inference`: the parameters, with the
model and frontend of the checkpoint and the inference sections (sampling, eval, search) of
--config when one is given. A --config whose model or frontend differs from the checkpoint's (the
other UBlock dilation order, say, which has the same parameter shapes) is refused with the
differing fields, never loaded silently.

Layout under a workdir (directory names come from `config.checkpoint`):
  config.json                 the run's full config (rewritten at every start).
  checkpoints/<step>/         periodic checkpoints, the latest `train.keep_checkpoints` kept;
    state/                    the TrainState pytree (step, params, ema_params, opt_state).
    config/                   the config as JSON, so each checkpoint rebuilds its own model.
  checkpoints_best/<step>/    the single checkpoint with the lowest held-out loss so far.
  checkpoints_corrupt/        checkpoints that failed to restore, moved aside (never deleted).
  previous_runs/<time>/       an earlier run's files, moved here by `archive_run` (--start_afresh).

Checkpoints whose step directory cannot be read (truncated or deleted files) are moved aside with a
logged warning and the next older one is tried, so a crash during a write or a damaged disk costs
at most one checkpoint interval. A readable checkpoint whose saved state has another structure than
the run's (the run's config changed: model, frontend, optimiser) is not corruption: resuming from
it is refused (`errors.ResumeMismatchError`, naming the differing fields) and nothing is moved.
A save that fails (e.g. no space left) raises `errors.CheckpointSaveError` naming the step, the
folder and the cause: at once for synchronous saves, and for asynchronous ones at the first
training step after the background write failed (`RunCheckpoints.check_saves`).
"""
import errno
import json
import os
import re
import shutil
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import orbax.checkpoint as ocp

from wavegrad_jax import errors
from wavegrad_jax import jsonable
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes

STATE = 'state'
CONFIG = 'config'
BEST_METRIC = 'heldout_loss'
CONFIG_FILE = 'config.json'
CORRUPT_DIR = 'checkpoints_corrupt'
PREVIOUS_RUNS_DIR = 'previous_runs'
# Defaults for workdirs whose config lacks a `checkpoint` section.
_DEFAULT_DIRS = {'directory': 'checkpoints', 'best_directory': 'checkpoints_best'}


def _absolute(workdir):
  # Orbax wants absolute paths; URLs (gs://...) already are.
  workdir = os.fspath(workdir)
  return workdir if '://' in workdir else os.path.abspath(os.path.expanduser(workdir))


def _checkpoint_dirs(workdir, config=None):
  section = config.get('checkpoint', None) if config is not None else None
  workdir = _absolute(workdir)
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
  directory, _ = _checkpoint_dirs(workdir, config)
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
  for directory in _checkpoint_dirs(workdir):
    config = _config_of_latest(directory)
    if config is not None:
      return config
  raise FileNotFoundError(f'{workdir}: no {CONFIG_FILE} and no checkpoint holding a config; is '
                          'this a training workdir?')


def _read_only_manager(directory):
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
  manager = _read_only_manager(directory)
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


def _quarantine(directory, step, workdir):
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


def _barrier_prefix(name):
  # With several processes, two managers whose async saves overlap (a best and a periodic save of
  # one step) would otherwise wait at barriers of the same name and fail.
  return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name)


# Training settings that, with the model and frontend, decide the saved state's structure and
# values.
STATE_TRAIN_FIELDS = ('grad_clip_norm', 'learning_rate', 'lr_schedule', 'warmup_steps',
                      'end_lr_factor', 'adam_b1', 'adam_b2', 'adam_eps', 'ema_decay', 'ema_warmup')


def _key_name(entry):
  for attribute in ('name', 'key', 'idx'):
    if hasattr(entry, attribute):
      return str(getattr(entry, attribute))
  return str(entry)


def _leaf_table(tree):
  """{'a/b/0/c': (shape, dtype name)} of a pytree of arrays or array metadata."""
  return {'/'.join(_key_name(k) for k in path): (tuple(leaf.shape), str(leaf.dtype))
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def state_differences(saved_tree, abstract_state, limit=3):
  """How a checkpoint's saved state differs from the state a run would restore into it.

  Args:
    saved_tree: the checkpoint's state metadata tree (`item_metadata(step)['state'].tree`).
    abstract_state: the run's TrainState of jax.ShapeDtypeStruct leaves.
    limit: examples per kind of difference.
  Returns:
    list of short strings (arrays only in the checkpoint, only in this run, or with another
    shape / dtype); empty when every array matches.
  """
  saved, wanted = _leaf_table(saved_tree), _leaf_table(abstract_state)
  out = []
  for names, where in ((sorted(set(saved) - set(wanted)), 'only in the checkpoint'),
                       (sorted(set(wanted) - set(saved)), 'only in this run')):
    if names:
      out.append(f'{len(names)} arrays {where} (e.g. {", ".join(names[:limit])})')
  other = [f'{k} {saved[k][1]}{list(saved[k][0])} vs {wanted[k][1]}{list(wanted[k][0])}'
           for k in sorted(set(saved) & set(wanted)) if saved[k] != wanted[k]]
  if other:
    out.append(f'{len(other)} arrays with another shape or dtype (e.g. {"; ".join(other[:limit])})')
  return out


def state_config_differences(saved_config, config):
  """Fields of the sections that shape the saved state (model, audio, the optimiser and EMA
  settings of `train`, mesh) that differ between a checkpoint's config and a run's."""
  out = frontend_differences(saved_config, config, a_name='the checkpoint', b_name='this run',
                             ignore=('model.dtype',))
  pick = lambda c: {'train': {k: c.train.get(k, None) for k in STATE_TRAIN_FIELDS},
                    'mesh': c.get('mesh', ml_collections.ConfigDict()).to_dict()}
  return out + jsonable.differences(pick(saved_config), pick(config), old_name='the checkpoint',
                                    new_name='this run')


def save_error_cause(error):
  """A short reason for a failed write: the OS error's text when there is one."""
  code = getattr(error, 'errno', None)
  if code is None:
    match = re.search(r"os_error_code='?(\d+)", str(error))
    code = int(match.group(1)) if match else None
  if code:
    return os.strerror(code)
  text = str(error).splitlines()[0] if str(error) else ''
  return f'{type(error).__name__}: {text[:200]}'


# Errors that say a write could not be made for want of space (or a read-only filesystem).
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
# Free bytes under which a write failure without an errno (libsndfile's "System error") is taken
# for a full disk: less than a checkpoint of the smallest model.
_FULL_BYTES = 1 << 20


def _chain(error):
  """`error` and the errors it was raised from or while handling, innermost last."""
  seen = []
  while error is not None and not any(error is e for e in seen):
    seen.append(error)
    error = error.__cause__ or error.__context__
  return seen


def _write_errno(error):
  code = getattr(error, 'errno', None)
  if code in _WRITE_ERRNOS:
    return code
  match = re.search(r"os_error_code='?(\d+)", str(error))  # tensorstore's errors carry it as text
  if match and int(match.group(1)) in _WRITE_ERRNOS:
    return int(match.group(1))
  return None


def _free_bytes(path):
  try:
    st = os.statvfs(errors._nearest_existing(path))  # pylint: disable=protected-access
  except OSError:
    return None
  return st.f_bavail * st.f_frsize


def write_failure(error, workdir, config=None):
  """A one-line errors.CheckpointSaveError for a run stopped by a full disk, else None.

  A disk that fills up fails whatever writes next, checkpoint or not (a sample wav, metrics.jsonl,
  config.json on a rerun), often with a chain of errors from the background writers behind it;
  the user needs only what happened and what to do.

  Args:
    error: the exception that stopped training.
    workdir: the run's directory.
    config: its config (for the checkpoint folder's name).
  Returns:
    the error to raise instead (a CheckpointSaveError is returned as it is), or None when
    `error` is not a failed write (a bug keeps its traceback).
  """
  chain = _chain(error)
  saved = next((e for e in chain if isinstance(e, errors.CheckpointSaveError)), None)
  if saved is not None:
    return saved
  code = next((c for c in map(_write_errno, chain) if c is not None), None)
  if code is None:
    # Writers that give no errno: libsndfile ("Error opening ...: System error."), tensorstore.
    if not any(isinstance(e, OSError) or type(e).__name__.startswith('SoundFile')
               or type(e).__name__ == 'LibsndfileError' or 'Error writing' in str(e)
               for e in chain):
      return None
    free = _free_bytes(workdir)
    if free is None or free >= _FULL_BYTES:
      return None
    code = errno.ENOSPC
  named = next((getattr(e, 'filename', None) for e in chain if getattr(e, 'filename', None)),
               None)
  where = named or _absolute(workdir)
  _, steps = periodic_steps(workdir, config)
  resume = f'it resumes from checkpoint {max(steps)}' if steps else 'it starts again'
  return errors.CheckpointSaveError(
      f'writing to {where} failed: {os.strerror(code)}. Training stopped. Free space (or fix the '
      f'folder), then rerun the same command: {resume}')


def archive_run(workdir):
  """Moves everything in `workdir` into workdir/previous_runs/<time>/ (process 0); nothing is lost.

  Returns:
    the folder the old run went to, or None when the workdir held nothing.
  """
  workdir = _absolute(workdir)
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


def _saved_metadata(directory, step):
  """(state metadata tree, config or None) of checkpoint `step`; raises when unreadable."""
  manager = _read_only_manager(directory)
  try:
    tree = manager.item_metadata(step)[STATE].tree
    try:
      restored = manager.restore(step, args=ocp.args.Composite(**{CONFIG: ocp.args.JsonRestore()}))
      config = config_from_dict(restored[CONFIG])
    except Exception:  # pylint: disable=broad-except
      config = None  # the state decides whether the checkpoint is readable.
    return tree, config
  finally:
    manager.close()


def _refuse_mismatch(directory, step, saved_tree, saved_config, abstract_state, config, workdir):
  mismatch = state_differences(saved_tree, abstract_state)
  if not mismatch:
    return
  fields = state_config_differences(saved_config, config) if saved_config is not None else []
  # The first line is what a person reads: which setting differs and the way out; the internal
  # array paths follow on their own lines.
  # A changed value says more than a field one config lacks (a newer version's additions).
  ranked = sorted(fields, key=lambda f: ' vs ' not in f)
  differs = (f'{ranked[0]}' + (f', and {len(ranked) - 1} more setting(s)' if len(ranked) > 1
                               else '') if ranked else 'no recorded config field differs')
  raise errors.ResumeMismatchError(
      f'{directory}/{step} holds a training state made under other settings, so this run cannot '
      f'resume from it ({differs}). Nothing was changed. Train in a new --workdir, pass '
      '--start_afresh, or rerun with the settings that run was trained with.\n'
      + (f'  differing settings: {"; ".join(fields)}\n' if fields else '')
      + f'  saved state: {"; ".join(mismatch)}\n'
      f'  --start_afresh moves the old run into {os.path.join(workdir, PREVIOUS_RUNS_DIR)}/ and '
      'trains from step 0 here')


def check_resumable(workdir, config, abstract_state):
  """Raises errors.ResumeMismatchError unless a run can resume from its newest readable checkpoint.

  The check `RunCheckpoints.restore_latest` makes, made before anything is opened for writing:
  it creates, moves and restores nothing (unreadable checkpoints are skipped here; restoring sets
  them aside).

  Args:
    workdir: the run's directory.
    config: this run's config.
    abstract_state: this run's TrainState of jax.ShapeDtypeStruct leaves.
  Returns:
    the `state_config_differences` of a checkpoint the run can resume from (settings such as the
    learning rate that change the training but not the saved state's shape), to be reported.
  """
  directory, _ = _checkpoint_dirs(workdir, config)
  if not os.path.isdir(directory):
    return []
  manager = _read_only_manager(directory)
  try:
    steps = sorted(manager.all_steps(), reverse=True)
  finally:
    manager.close()
  for step in steps:
    try:
      saved_tree, saved_config = _saved_metadata(directory, step)
    except Exception:  # pylint: disable=broad-except
      continue
    _refuse_mismatch(directory, step, saved_tree, saved_config, abstract_state, config,
                     _absolute(workdir))
    return state_config_differences(saved_config, config) if saved_config is not None else []
  return []


class RunCheckpoints:
  """The periodic and best-by-held-out-loss checkpoint managers of one training run.

  Saves are asynchronous when `config.checkpoint.async_save`: `save` returns once the arrays are
  copied off the devices, and the next save (or `wait_until_finished`) waits for the write.

  Attributes:
    directory: periodic checkpoints directory.
    best_directory: best checkpoint directory.
  """

  def __init__(self, workdir, config):
    """Opens (creating) the managers of `workdir` with the options in `config`.

    Args:
      workdir: the run's directory.
      config: the full experiment config (uses `checkpoint` and `train.keep_checkpoints`).
    """
    self.workdir = _absolute(workdir)
    self._config = config
    self.directory, self.best_directory = _checkpoint_dirs(workdir, config)
    ckpt = config.checkpoint
    self._manager = ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
        max_to_keep=int(config.train.keep_checkpoints),
        enable_async_checkpointing=bool(ckpt.async_save),
        cleanup_tmp_directories=True, multiprocessing_options=_barrier_prefix('periodic')))
    self._best = None
    self._save_failed = False  # a save's failure was raised: closing says nothing more
    self._pending = {}  # id(manager) -> the step of its latest asynchronous save.
    if ckpt.keep_best:
      self._best = ocp.CheckpointManager(self.best_directory, options=ocp.CheckpointManagerOptions(
          max_to_keep=1, best_fn=lambda metrics: metrics[BEST_METRIC], best_mode='min',
          keep_checkpoints_without_metrics=False,
          enable_async_checkpointing=bool(ckpt.async_save), cleanup_tmp_directories=True,
          multiprocessing_options=_barrier_prefix('best')))

  def _args(self, state):
    return ocp.args.Composite(**{STATE: ocp.args.StandardSave(state),
                                 CONFIG: ocp.args.JsonSave(config_to_dict(self._config))})

  def latest_step(self):
    """The newest periodic checkpoint's step, or None."""
    return self._manager.latest_step()

  def all_steps(self):
    """Steps of the periodic checkpoints on disk, ascending."""
    return sorted(self._manager.all_steps())

  def save(self, step, state):
    """Saves `state` as periodic checkpoint `step` unless one exists; returns whether it saved.

    Args:
      step: the number of completed training steps (the state's step).
      state: the TrainState pytree of (possibly sharded) jax.Arrays.
    Raises:
      errors.CheckpointSaveError: this save, or an earlier asynchronous one, failed.
    """
    if step in self._manager.all_steps():
      return False
    self._finish(self._manager)  # orbax waits for the previous save anyway; its error is its own
    try:
      saved = self._manager.save(step, args=self._args(state), force=True)
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_error(self._manager, step, e) from e
    self._pending[id(self._manager)] = step
    return saved

  def _save_error(self, manager, step, error):
    self._save_failed = True
    directory = self.directory if manager is self._manager else self.best_directory
    last = [s for s in self._manager.all_steps() if s != step]
    resume = (f'it resumes from checkpoint {max(last)}' if last else 'it starts again')
    what = 'a checkpoint' if step is None else f'checkpoint {step}'
    return errors.CheckpointSaveError(
        f'saving {what} to {directory} failed: {save_error_cause(error)}. Training stopped. Free '
        f'space (or fix the folder), then rerun the same command: {resume}')

  def _finish(self, manager):
    """Waits for `manager`'s pending save; its failure raises CheckpointSaveError for its step."""
    try:
      manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_error(manager, self._pending.get(id(manager)), e) from e

  def check_saves(self):
    """Raises errors.CheckpointSaveError if an asynchronous save has failed; never blocks.

    Call it after every training step: a failed write then stops the run at once instead of at
    the next save.
    """
    for manager in (self._manager, self._best):
      if manager is not None and not manager.is_saving_in_progress():
        self._finish(manager)  # returns at once; raises a finished save's error.

  @property
  def best_loss(self):
    """The held-out loss of the best checkpoint, or +inf when there is none."""
    if self._best is None:
      return float('inf')
    step = self._best.best_step()
    if step is None:
      return float('inf')
    metrics = self._best.metrics(step) or {}
    return float(metrics.get(BEST_METRIC, float('inf')))

  def maybe_save_best(self, step, state, heldout_loss):
    """Saves `state` as the best checkpoint if `heldout_loss` beats the best so far.

    Args:
      step: the state's step.
      state: the TrainState.
      heldout_loss: scalar held-out loss of `state` (lower is better).
    Returns:
      True when saved.
    """
    if self._best is None or not heldout_loss < self.best_loss:
      return False
    if step in self._best.all_steps():  # a resumed run reproducing an evaluation it already saved
      return False
    self._finish(self._best)
    try:
      saved = self._best.save(step, args=self._args(state),
                              metrics={BEST_METRIC: float(heldout_loss)}, force=True)
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_error(self._best, step, e) from e
    self._pending[id(self._best)] = step
    return saved

  def restore_latest(self, abstract_state):
    """Restores the newest readable periodic checkpoint into the shardings of `abstract_state`.

    Unreadable checkpoints are moved to workdir/checkpoints_corrupt with a warning and the next
    older one is tried. A readable one whose state has another structure (shapes, dtypes, tree)
    than `abstract_state` was made under other settings: it is left in place and resuming is
    refused.

    Args:
      abstract_state: a TrainState of jax.ShapeDtypeStruct leaves carrying their target shardings.
    Returns:
      (state, step), or (None, None) when no readable checkpoint exists.
    Raises:
      errors.ResumeMismatchError: the newest readable checkpoint's state does not fit this run's
        (the message names the differing config fields and arrays, and the ways out).
    """
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        saved_tree, saved_config = _saved_metadata(self.directory, step)
      except Exception as e:  # pylint: disable=broad-except
        self._set_aside(step, e)
        continue
      _refuse_mismatch(self.directory, step, saved_tree, saved_config, abstract_state,
                       self._config, self.workdir)
      try:
        restored = self._manager.restore(
            step, args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(abstract_state)}))
        return restored[STATE], step
      except Exception as e:  # pylint: disable=broad-except
        self._set_aside(step, e)
    return None, None

  def _set_aside(self, step, error):
    moved = _quarantine(self.directory, step, self.workdir)
    logging.warning('checkpoint %s/%d cannot be restored (%s: %s); moved it to %s and '
                    'falling back to the previous checkpoint', self.directory, step,
                    type(error).__name__, (str(error).splitlines() or [''])[0][:300], moved)
    self._manager.reload()

  def wait_until_finished(self):
    """Blocks until every pending asynchronous save is on disk.

    Raises:
      errors.CheckpointSaveError: a save failed.
    """
    for manager in (self._manager, self._best):
      if manager is not None:
        self._finish(manager)

  def close(self):
    """Waits for pending saves and releases the managers (raises CheckpointSaveError).

    A failed save raises once, here or earlier: orbax's close() re-raises the failed write's
    error (or "Event loop is closed" after it), which would otherwise replace the one-line
    CheckpointSaveError with its traceback.
    """
    failed = None
    try:
      self.wait_until_finished()
    except errors.CheckpointSaveError as e:
      failed = e
    for manager in (self._manager, self._best):
      if manager is None:
        continue
      try:
        manager.close()
      except Exception as e:  # pylint: disable=broad-except
        if failed is None and not self._save_failed:
          failed = self._save_error(manager, self._pending.get(id(manager)), e)
          failed.__cause__ = e
        else:
          logging.info('closing %s after a failed save: %s', manager.directory, e)
    if failed is not None:
      raise failed


def restore_params(workdir, step=None, ema=True):
  """Restores just the (EMA) parameters of a run for inference, on this process's first device.

  Works on any machine, whatever mesh the run trained on: arrays are read unsharded onto a single
  device, and only the requested parameter tree is read.

  Args:
    workdir: a training run's directory.
    step: None for the latest readable periodic checkpoint, 'best' for the best-by-held-out-loss
      checkpoint, or an int step of a periodic checkpoint.
    ema: True for the exponential moving average of the parameters (what to vocode with), False
      for the raw trained parameters.
  Returns:
    (params, config, step): params is a nested dict of float32 jax.Arrays as `build_model(config)`
    expects, config the ConfigDict the checkpoint was trained with, step its int step.
  Raises:
    FileNotFoundError: no (readable) checkpoint matches.
  """
  periodic, best = _checkpoint_dirs(workdir, _maybe_config(workdir))
  directory = best if step == 'best' else periodic
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'{workdir}: no checkpoint directory {directory}')
  manager = _read_only_manager(directory)
  try:
    steps = sorted(manager.all_steps(), reverse=True)
    if isinstance(step, int):
      if step not in steps:
        raise FileNotFoundError(f'{directory}: no checkpoint at step {step}; have {sorted(steps)}')
      candidates = [step]
    else:
      candidates = steps
    if not candidates:
      raise FileNotFoundError(f'{directory}: holds no checkpoint')
    key = 'ema_params' if ema else 'params'
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    errors = []
    for s in candidates:
      try:
        tree = manager.item_metadata(s)[STATE].tree[key]
        abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                                tree)
        restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), abstract)
        restored = manager.restore(s, args=ocp.args.Composite(**{
            STATE: ocp.args.PyTreeRestore(item={key: abstract}, restore_args={key: restore_args},
                                          partial_restore=True),
            CONFIG: ocp.args.JsonRestore()}))
        return restored[STATE][key], config_from_dict(restored[CONFIG]), int(s)
      except Exception as e:  # pylint: disable=broad-except
        errors.append(f'step {s}: {type(e).__name__}: {str(e).splitlines()[0][:200]}')
        logging.warning('checkpoint %s/%d cannot be restored (%s); trying an older one',
                        directory, s, errors[-1])
    raise FileNotFoundError(f'{directory}: no readable checkpoint ({"; ".join(errors)})')
  finally:
    manager.close()


def resolve_checkpoint_path(path):
  """Which run and checkpoint a path names: a workdir or one of its checkpoint folders.

  Args:
    path: a training workdir (its latest periodic checkpoint), its periodic or best checkpoint
      directory (e.g. runs/tiny/checkpoints, runs/tiny/checkpoints_best), or one step of those
      (runs/tiny/checkpoints/2000).
  Returns:
    (workdir, step) for `restore_params`: step None (latest), 'best' or an int.
  Raises:
    FileNotFoundError: the path is none of these, naming what was expected.
  """
  path = _absolute(path).rstrip('/')
  if not os.path.isdir(path):
    raise FileNotFoundError(f'{path}: no such directory; give a training workdir or one of its '
                            'checkpoint folders (<workdir>/checkpoints[/<step>], '
                            '<workdir>/checkpoints_best)')
  name, parent = os.path.basename(path), os.path.dirname(path)
  candidates = [(path, None)]
  if name.isdigit():
    candidates.append((os.path.dirname(parent), int(name)))
  candidates.append((parent, None))
  for workdir, step in candidates:
    try:
      periodic, best = _checkpoint_dirs(workdir, _maybe_config(workdir))
    except (OSError, ValueError):
      continue
    where = parent if isinstance(step, int) else path
    if where == workdir and os.path.isdir(periodic):
      return workdir, None
    if where == periodic:
      return workdir, step
    if where == best:
      return workdir, 'best'
  raise FileNotFoundError(f'{path}: neither a training workdir (with a {CONFIG_FILE} and '
                          'checkpoints/) nor one of its checkpoint folders '
                          '(<workdir>/checkpoints[/<step>], <workdir>/checkpoints_best)')


def _maybe_config(workdir):
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return config_from_dict(json.load(f))


# ------------------------------------------------------------------------------------ inference


INFERENCE_SECTIONS = ('sampling', 'eval', 'search', 'compile')


def _merged(default, override):
  out = dict(default)
  for k, v in override.items():
    out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
  return out


def inference_config(checkpoint_config, defaults, override=None):
  """The config an inference launcher runs with.

  The model and frontend always come from the checkpoint. The inference-time sections (sampling,
  eval, search) come from `override` (the launcher's --config, with its --config.x=y flags) when
  given, else from the checkpoint; fields either lacks (a run older than the field) take the
  values in `defaults`.

  Args:
    checkpoint_config: the ConfigDict the checkpoint trained with.
    defaults: a full default config (experiments.configs.common.get_common_config()).
    override: optional ConfigDict from --config.
  Returns:
    A new, unlocked ConfigDict.
  """
  out = checkpoint_config.to_dict()
  for section in INFERENCE_SECTIONS:
    source = override if override is not None else checkpoint_config
    value = source.get(section, None) if hasattr(source, 'get') else None
    base = defaults[section].to_dict()
    out[section] = _merged(base, value.to_dict() if value is not None else {})
  return ml_collections.ConfigDict(out)


def model_and_frontend(config):
  """{'model', 'audio', 'process'} of a config as plain dicts, with what an older run lacks filled in.

  The model's variant name, the mel-convention fields added since, and the process (runs from
  before processes had names: 'wavegrad') take their defaults.
  """
  return {'model': model_lib.model_config_dict(config.model),
          'audio': mel_conventions.with_default_fields(config.audio.to_dict()),
          'process': processes.recorded_fields(config)}


def frontend_differences(a, b, a_name='the checkpoint', b_name='--config', ignore=()):
  """Fields of the `model`, `audio` and `process` sections that differ between two configs.

  Args:
    a: the recorded config (a checkpoint's, a workdir's).
    b: the config compared with it (--config, this run's).
    a_name, b_name: where `a` and `b` come from, for the messages.
    ignore: dotted paths left out, e.g. ('model.dtype',).
  Returns:
    list of 'section.field: <a value> in <a_name> vs <b value> now' strings
    (`jsonable.differences`), empty when the models and frontends agree.
  """
  return jsonable.differences(model_and_frontend(a), model_and_frontend(b), old_name=a_name,
                              new_name=b_name, ignore=ignore)


def recorded_choice_hint(recorded, differences):
  """A clause naming the --config flags that select what a run recorded, for refusal messages.

  Args:
    recorded: the config a run recorded (its config.json or a checkpoint's).
    differences: `frontend_differences` strings.
  Returns:
    '' when no named choice differs, else e.g. " (its model: --config.model.dilation_order=
    'reimplementations')".
  """
  model = model_lib.model_config_dict(recorded.model)
  flags = [f'--config.model.{key}={model[key]!r}' for key in ('name', 'dilation_order')
           if key in model and any(d.startswith(f'model.{key}:') for d in differences)]
  process = processes.recorded_fields(recorded)
  flags += [f'--config.process.{"flow." if key != "name" else ""}{key}={process[key]!r}'
            for key in process if any(d.startswith(f'process.{key}:') for d in differences)]
  return f' (its model: {" ".join(flags)})' if flags else ''


def parse_step(text):
  """A --step flag: '' or None -> None (latest), 'best' -> 'best', '123' -> 123."""
  text = str(text if text is not None else '').strip()
  if not text:
    return None
  return 'best' if text == 'best' else int(text)


def _refuse_other_model(workdir, recorded, override):
  diffs = frontend_differences(recorded, override, ignore=('model.dtype',))
  if diffs:
    raise errors.ConfigError(
        f'--config describes another model or frontend than the checkpoint in {workdir}: '
        + '; '.join(diffs) + '. The checkpoint would be vocoded as a different network (or from '
        "other mels), so it is refused. Drop --config (the checkpoint's own model, frontend and "
        'inference settings are used), or pass the config the run was trained with'
        + recorded_choice_hint(recorded, diffs) + '; only the sampling / eval / search sections '
        'of --config are applied.')


def load_for_inference(workdir, defaults, step=None, ema=None, override=None):
  """Restores a run's parameters with the config inference should use.

  Args:
    workdir: the training run's directory.
    defaults: a full default config (experiments.configs.common.get_common_config()).
    step: '' / None (latest), 'best', or an int step (strings are parsed).
    ema: True / False, or None for config.eval.ema.
    override: optional --config ConfigDict (see `inference_config`); its model and audio sections
      must describe the checkpoint's model and frontend (compute dtype excepted).
  Returns:
    (params, config, step).
  Raises:
    errors.ConfigError: `override` describes another model or frontend than the checkpoint, e.g. the
      other UBlock dilation order, whose parameters have the same shapes (the message lists the
      differing fields and the flags that match the checkpoint).
    FileNotFoundError: no readable checkpoint.
  """
  recorded = load_config(workdir)
  if override is not None:
    _refuse_other_model(workdir, recorded, override)
  saved = inference_config(recorded, defaults, override)
  ema = bool(saved.eval.ema if ema is None else ema)
  params, ckpt_config, step = restore_params(workdir, parse_step(step), ema=ema)
  if override is not None:
    _refuse_other_model(workdir, ckpt_config, override)
  config = inference_config(ckpt_config, defaults, override)
  config.eval.ema = ema
  return params, config, step
