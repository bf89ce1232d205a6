"""Orbax checkpoints of a training run: saving, restoring the latest, and failed writes.

This module is the way in: it holds `RunCheckpoints` (the orbax CheckpointManagers of a run) and
`write_failure`, and re-exports the names of its siblings, so `checkpoints.<name>` keeps working:
`run_files` (the workdir layout, config.json, `archive_run`), `compatibility` (whether a
checkpoint fits a run, `frontend_differences`) and `inference_loading` (`restore_params`,
`load_for_inference`: what inference needs from a workdir alone).

The layout under a workdir is in `run_files`'s docstring.

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
import os
import re

from absl import logging
import orbax.checkpoint as ocp

from wavegrad_jax import errors
from wavegrad_jax.training.compatibility import STATE_TRAIN_FIELDS
from wavegrad_jax.training.compatibility import check_resumable
from wavegrad_jax.training.compatibility import frontend_differences
from wavegrad_jax.training.compatibility import model_and_frontend
from wavegrad_jax.training.compatibility import recorded_choice_hint
from wavegrad_jax.training.compatibility import refuse_mismatch
from wavegrad_jax.training.compatibility import saved_metadata
from wavegrad_jax.training.compatibility import state_config_differences
from wavegrad_jax.training.compatibility import state_differences
from wavegrad_jax.training.inference_loading import INFERENCE_SECTIONS
from wavegrad_jax.training.inference_loading import inference_config
from wavegrad_jax.training.inference_loading import load_for_inference
from wavegrad_jax.training.inference_loading import parse_step
from wavegrad_jax.training.inference_loading import resolve_checkpoint_path
from wavegrad_jax.training.inference_loading import restore_params
from wavegrad_jax.training.run_files import BEST_METRIC
from wavegrad_jax.training.run_files import CONFIG
from wavegrad_jax.training.run_files import CONFIG_FILE
from wavegrad_jax.training.run_files import CORRUPT_DIR
from wavegrad_jax.training.run_files import PREVIOUS_RUNS_DIR
from wavegrad_jax.training.run_files import STATE
from wavegrad_jax.training.run_files import absolute_path
from wavegrad_jax.training.run_files import archive_run
from wavegrad_jax.training.run_files import checkpoint_dirs
from wavegrad_jax.training.run_files import config_from_dict
from wavegrad_jax.training.run_files import config_to_dict
from wavegrad_jax.training.run_files import load_config
from wavegrad_jax.training.run_files import periodic_steps
from wavegrad_jax.training.run_files import quarantine
from wavegrad_jax.training.run_files import save_config

# Re-exported: callers reach every checkpoint function as `checkpoints.<name>`.
__all__ = [
    'BEST_METRIC', 'CONFIG', 'CONFIG_FILE', 'CORRUPT_DIR', 'INFERENCE_SECTIONS',
    'PREVIOUS_RUNS_DIR', 'STATE', 'STATE_TRAIN_FIELDS', 'RunCheckpoints', 'archive_run',
    'check_resumable', 'config_from_dict', 'config_to_dict', 'frontend_differences',
    'inference_config', 'load_config', 'load_for_inference', 'model_and_frontend', 'parse_step',
    'periodic_steps', 'recorded_choice_hint', 'resolve_checkpoint_path', 'restore_params',
    'save_config', 'save_error_cause', 'state_config_differences', 'state_differences',
    'write_failure',
]


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
  where = named or absolute_path(workdir)
  _, steps = periodic_steps(workdir, config)
  resume = f'it resumes from checkpoint {max(steps)}' if steps else 'it starts again'
  return errors.CheckpointSaveError(
      f'writing to {where} failed: {os.strerror(code)}. Training stopped. Free space (or fix the '
      f'folder), then rerun the same command: {resume}')


def _barrier_prefix(name):
  # With several processes, two managers whose async saves overlap (a best and a periodic save of
  # one step) would otherwise wait at barriers of the same name and fail.
  return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name)


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
    self.workdir = absolute_path(workdir)
    self._config = config
    self.directory, self.best_directory = checkpoint_dirs(workdir, config)
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
        saved_tree, saved_config = saved_metadata(self.directory, step)
      except Exception as e:  # pylint: disable=broad-except
        self._set_aside(step, e)
        continue
      refuse_mismatch(self.directory, step, saved_tree, saved_config, abstract_state,
                       self._config, self.workdir)
      try:
        restored = self._manager.restore(
            step, args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(abstract_state)}))
        return restored[STATE], step
      except Exception as e:  # pylint: disable=broad-except
        self._set_aside(step, e)
    return None, None

  def _set_aside(self, step, error):
    moved = quarantine(self.directory, step, self.workdir)
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
