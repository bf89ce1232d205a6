"""Training WaveGrad with jax.jit over a device mesh: sharded batches, replicated (or FSDP) state.

The train step is one pure function of (state, batch), compiled ahead of time once per run. The
per-step PRNG key is fold_in(key(config.seed), step), drawn inside the step for the noise level and
the noise; with JAX's partitionable threefry the draws do not depend on how the batch is sharded,
so a step on 8 devices computes what it computes on 1 (up to float reduction order). The input
pipeline is a pure function of (seed, step, host), so a run restarted from a checkpoint at step N
sees exactly the batches and keys an uninterrupted run sees from step N on.

Multi-process runs (several hosts, or one process per GPU): `config.mesh.distributed` = 'auto'
initialises jax.distributed when the environment shows more than one process (see
`parallel.maybe_initialize_distributed`). Each process reads only its `1 / process_count` share of
every global batch, and only process 0 writes logs, samples and the config (orbax coordinates
checkpoint writes itself). Preemption: in one process a SIGTERM handler sets a flag checked after
every step; with several, the coordination service's preemption notice is agreed on, so every
process stops at the same step (`parallel.Preemption`). Either way a checkpoint of the current step
is written and waited for before returning.

This module holds the loop; its parts live beside it: the train state and optimiser in `state`,
the pure steps and their compilation in `step`, the checks made before anything is written in
`startup`, evaluation in `evaluator`, mesh, shardings and host copies in `parallel`, TensorBoard /
JSONL / console output in `reporting`, and the typed options of those last two in `options`. The
names callers use (`train.make_optimizer`, `train.compile_train_step`, ...) are re-exported here.
"""
import collections
import dataclasses
import os
import sys
import time
from typing import Any

from absl import logging
import jax
import numpy as np

from wavegrad_jax import errors
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax.diffusion import priors
from wavegrad_jax.training import checkpoints
from wavegrad_jax.training import options as options_lib
from wavegrad_jax.training import parallel
from wavegrad_jax.training.evaluator import Evaluator
from wavegrad_jax.training.evaluator import example_mels
from wavegrad_jax.training.evaluator import heldout_crops
from wavegrad_jax.training.startup import _data_options
from wavegrad_jax.training.startup import check_resume_compatible
from wavegrad_jax.training.startup import init_from_checkpoint
from wavegrad_jax.training.startup import init_source
from wavegrad_jax.training.startup import open_dataset
from wavegrad_jax.training.startup import validate_config
from wavegrad_jax.training.startup import validate_devices
from wavegrad_jax.training.startup import with_prior_energy_range
from wavegrad_jax.training.state import TrainState
from wavegrad_jax.training.state import abstract_train_state
from wavegrad_jax.training.state import create_train_state
from wavegrad_jax.training.state import ema_decay
from wavegrad_jax.training.state import init_train_state
from wavegrad_jax.training.state import learning_rate_schedule
from wavegrad_jax.training.state import make_optimizer
from wavegrad_jax.training.step import batch_shapes
from wavegrad_jax.training.step import compile_eval_step
from wavegrad_jax.training.step import compile_train_step
from wavegrad_jax.training.step import heldout_losses
from wavegrad_jax.training.step import step_rng
from wavegrad_jax.training.step import train_noise_levels
from wavegrad_jax.training.step import train_step

# Re-exported: callers reach the training API as `train.<name>` (trainer imported as train).
__all__ = [
    'Evaluator', 'TrainState', 'abstract_train_state', 'batch_shapes', 'check_resume_compatible',
    'compile_eval_step', 'compile_train_step', 'create_train_state', 'ema_decay', 'example_mels',
    'heldout_crops', 'heldout_losses', 'init_from_checkpoint', 'init_source', 'init_train_state',
    'learning_rate_schedule', 'make_optimizer', 'open_dataset', 'step_rng', 'train_and_evaluate',
    'train_noise_levels', 'train_step', 'validate_config', 'validate_devices',
    'with_prior_energy_range',
]


class _CompletedSteps:
  """Moves the progress bar on as steps *complete*, not as they are dispatched.

  jax.jit returns before the step has run, so counting calls races ahead of the device and then
  stalls at the next host transfer. Instead each dispatched step's loss (a scalar) is kept, and the
  bar advances once it is ready, waiting on the oldest only when more than `_AHEAD` steps are in
  flight: the device always has queued work, so training is not slowed, and the host never runs
  more than `_AHEAD` steps ahead (bounding the batches and buffers held for queued steps).
  """
  _AHEAD = 2

  def __init__(self, reporter):
    self._reporter = reporter
    self._in_flight = collections.deque()

  def dispatched(self, loss):
    """Records a dispatched step (its loss scalar) and shows the steps that have finished."""
    self._in_flight.append(loss)
    done = 0
    while self._in_flight and (len(self._in_flight) > self._AHEAD
                               or self._in_flight[0].is_ready()):
      self._in_flight.popleft().block_until_ready()
      done += 1
    if done:
      self._reporter.advance(done)

  def all_done(self, **postfix):
    """Waits for every dispatched step and shows them (and `postfix` scalars) as done."""
    for loss in self._in_flight:
      loss.block_until_ready()
    self._reporter.advance(len(self._in_flight), **postfix)
    self._in_flight.clear()


@dataclasses.dataclass
class _Run:
  """What the parts of one `train_and_evaluate` share: the run, its devices and its outputs."""
  config: Any
  workdir: str
  mesh: Any
  model: Any
  shardings: Any
  splits: Any
  ckpts: Any = None
  reporter: Any = None
  preemption: Any = None
  summary: dict = None
  evaluator: Any = None


class _Interval:
  """Wall time and steps since the last train log; evaluation and saving time is taken out."""

  def __init__(self):
    self.start, self.steps = time.time(), 0


# ------------------------------------------------------------------------------ before the loop


def _start_devices(config):
  """jax.distributed as config.mesh says, then the run's device mesh (errors as ConfigError)."""
  try:
    options_lib.maybe_initialize_distributed_from_config(config.mesh)
    return options_lib.make_mesh_from_config(config.mesh)
  except ValueError as e:
    raise errors.ConfigError(str(e)) from None


def _checked_request(config, workdir, mesh, start_afresh):
  """Checks the config, devices, workdir and data; returns (config, workdir, init, splits).

  The config returned records the dilations themselves (not only their order's name) and, for
  PriorGrad, the training data's energy range; `init` is `init_source`'s fine-tune source.
  """
  validate_config(config)
  config = model_lib.resolved_from_config(config)
  validate_devices(config, mesh)
  workdir = os.path.abspath(workdir)
  errors.check_output_dir(workdir, 'the workdir')
  if not start_afresh:
    check_resume_compatible(workdir, config)
  init = init_source(workdir, config, start_afresh=start_afresh)  # reads config files only
  splits = open_dataset(config)  # builds it when needed: a data error stops the run here.
  if priors.needs_energy_range(priors.PriorOptions.from_config(config)):
    config = with_prior_energy_range(config, splits)
  return config, workdir, init, splits


def _restore_or_start(run, tx, abstract, init, start_afresh, fresh_state=None):
  """Opens the checkpoints and restores the latest, or starts (or fine-tunes) from step 0.

  `fresh_state()` makes the step-0 state (default: `init_train_state`; the adversarial
  fine-tune's has its discriminators too).

  Returns:
    (state, start step, (changed settings, archived folder, fine-tune line)) for `_announce`.
  """
  config, workdir = run.config, run.workdir
  changed = [] if start_afresh else checkpoints.check_resumable(workdir, config, abstract)
  archived = checkpoints.archive_run(workdir) if start_afresh else None
  run.ckpts = checkpoints.RunCheckpoints(workdir, config)
  state, start_step = run.ckpts.restore_latest(abstract)
  checkpoints.save_config(workdir, config)
  init_line = None
  if state is None:
    state = (fresh_state or (lambda: init_train_state(run.model, tx, config, run.mesh)))()
    start_step = 0
    if init is not None:
      state, init_line = init_from_checkpoint(state, run.shardings, init, config)
  return state, start_step, (changed, archived, init_line)


def _announce(run, abstract, start_step, notes):
  """The console lines that open a run: network, devices, where it starts and what changed."""
  config, reporter, mesh = run.config, run.reporter, run.mesh
  changed, archived, init_line = notes
  if init_line:
    reporter.console(init_line)
  reporter.console(
      f'{model_lib.model_name_from_config(config.model)} network under process '
      f'{processes.process_name_from_config(config)!r}: '
      f'{model_lib.count_params(abstract.params):,} parameters; mesh '
      f'{dict(mesh.shape)} over {jax.device_count()} {jax.devices()[0].device_kind} device(s), '
      f'{jax.process_count()} process(es); '
      + (f'resumed from step {start_step}' if start_step else
         'fine-tuning from step 0' if init_line else 'starting from scratch'))
  if changed and start_step:
    reporter.console('resuming under changed settings: ' + '; '.join(changed))
  if archived:
    reporter.console(f'--start_afresh: the run that was in {run.workdir} is now in {archived}')
  if reporter.metrics_backup:
    reporter.console(f'{reporter.metrics_path} held records past step {start_step}, where this run '
                     f'starts; they were dropped from it, and the whole old file was kept as '
                     f'{reporter.metrics_backup}')
  if reporter.active and not start_step:
    reporter.text('config', '```\n' + str(config) + '\n```', 0)


def _initial_summary(run, start_step):
  """The summary `train_and_evaluate` returns, before any step: the step and the output paths."""
  return {'step': start_step, 'preempted': False, 'loss': None, 'heldout_loss': None,
          'checkpoints': run.ckpts.directory, 'best_checkpoints': run.ckpts.best_directory,
          'tensorboard': run.reporter.tb_dir, 'samples': run.reporter.samples_dir,
          'metrics': run.reporter.metrics_path}


def _compiled_step(run, tx):
  """`compile_train_step` for this run, its compile time reported."""
  compile_start = time.time()
  step_fn = compile_train_step(run.model, tx, run.config, run.mesh, run.shardings)
  run.reporter.console(f'train step compiled in {time.time() - compile_start:.1f} s')
  return step_fn


def _train_batches(run):
  """This process's share of every global batch (`data.pipeline.TrainBatches`)."""
  config = run.config
  read_log = None
  if config.logging.get('record_examples', False):
    os.makedirs(os.path.join(run.workdir, 'examples_read'), exist_ok=True)
    read_log = os.path.join(run.workdir, 'examples_read', f'process_{jax.process_index()}.jsonl')
  return _data_options().train_batches_from_config(
      config, jax.process_index(), jax.process_count(),
      num_data_devices=parallel.batch_partitions(run.mesh,
                                                 parallel.MeshSpec.from_config(config.mesh)),
      splits=run.splits, read_log=read_log)


# -------------------------------------------------------------------------------------- the loop


def _log_train(run, step, values, interval, global_batch):
  """Writes the mean train scalars of the steps since the last log (`values`, on the host)."""
  elapsed = max(time.time() - interval.start, 1e-9)
  scalars = {k: float(np.mean([v[k] for v in values])) for k in values[0]}
  scalars['steps_per_sec'] = interval.steps / elapsed
  scalars['examples_per_sec'] = interval.steps * global_batch / elapsed
  run.reporter.scalars(step, 'train', scalars)
  run.summary['loss'] = scalars['loss']
  interval.start, interval.steps = time.time(), 0


def _evaluate(run, step, state):
  """Held-out loss (keeping the best checkpoint) and vocoded examples at `step`."""
  if run.evaluator is None:
    run.evaluator = Evaluator(run.config, run.model, run.mesh, run.shardings, run.reporter,
                              run.splits)
  losses = run.evaluator.heldout_loss(state)
  if losses:
    run.reporter.scalars(step, 'eval', losses)
    run.summary['heldout_loss'] = losses['heldout_loss']
    if run.ckpts.maybe_save_best(step, state, losses['heldout_loss']):
      losses['saved_best'] = True
  wav_dir = run.evaluator.vocode_examples(state, step)
  run.reporter.console(f'step {step}: ' + ', '.join(f'{k} {v:.4f}' for k, v in losses.items()
                                                     if k != 'saved_best')
                       + (f'; samples in {wav_dir}' if wav_dir else ''))
  run.reporter.flush()


def _stop_for_preemption(run, step):
  """Waits for the checkpoint of `step` and records the preemption."""
  run.ckpts.wait_until_finished()
  run.reporter.event(step, 'preempted')
  run.reporter.console(f'preemption requested: saved a checkpoint at step {step}, exiting')
  run.summary['preempted'] = True


def _peer_failure(error, step, ckpts):
  """The error of a multi-process run whose shared computation failed at `step`."""
  # A peer that died mid-collective surfaces here; one that died elsewhere is caught by the
  # coordination service, which stops this process within mesh.heartbeat_timeout_seconds.
  return RuntimeError(
      f'process {jax.process_index()} of {jax.process_count()}: a computation shared with the '
      f'other processes failed at step {step} ({str(error).splitlines()[0][:300]}), most likely '
      'because another process of this run stopped. Restart every process with the same '
      'command and --workdir: training resumes from the latest checkpoint '
      f'(step {ckpts.latest_step()}).')


def _train_loop(run, step_fn, state, iterator, start_step):
  """Trains from `start_step` to train.num_steps, or to a preemption; returns the last step.

  Logs every train.log_every_steps, evaluates every train.eval_every_steps and saves every
  train.checkpoint_every_steps (and at the last step, and on preemption).
  """
  c = run.config.train
  num_steps, global_batch = int(c.num_steps), int(c.batch_size)
  eval_every, log_every, ckpt_every = (int(c.eval_every_steps), int(c.log_every_steps),
                                       int(c.checkpoint_every_steps))
  data_sharding = options_lib.batch_sharding_from_config(run.mesh, run.config.mesh)
  pending, progress, interval = [], _CompletedSteps(run.reporter), _Interval()
  step = start_step
  try:
    while step < num_steps:
      local = next(iterator)
      state, metrics = step_fn(state, parallel.to_global_batch(local, data_sharding,
                                                               global_batch))
      pending.append(metrics)
      progress.dispatched(metrics['loss'])
      step += 1
      interval.steps += 1
      if step % log_every == 0 or step == num_steps:
        _log_train(run, step, jax.device_get(pending), interval, global_batch)
        pending = []
        progress.all_done(loss=run.summary['loss'])
      stop = run.preemption.requested(step)
      paused = time.time()
      if eval_every and (step % eval_every == 0 or step == num_steps) and not stop:
        progress.all_done()
        _evaluate(run, step, state)
      if step % ckpt_every == 0 or step == num_steps or stop:
        progress.all_done()
        run.ckpts.save(step, state)
      run.ckpts.check_saves()  # a failed asynchronous save stops the run now, not at the next save
      if stop:
        _stop_for_preemption(run, step)
        break
      interval.start += time.time() - paused  # evaluation/saving time is not training time
  except jax.errors.JaxRuntimeError as e:
    if jax.process_count() == 1:
      raise
    raise _peer_failure(e, step, run.ckpts) from e
  return step


def _close(run, iterator, stopping):
  """Closes the checkpoints, the reporter and the input; `stopping`: an error is on its way out.

  With an error on its way out (a failed save, a full disk), closing must not replace it with its
  own (orbax re-raises the failed write, then "Event loop is closed").
  """
  try:
    run.ckpts.close()  # raises CheckpointSaveError if the last save failed
  except Exception as e:  # pylint: disable=broad-except
    if not stopping:
      raise
    logging.info('closing the checkpoints after an error: %s', e)
  finally:
    try:
      run.reporter.close()
    except Exception as e:  # pylint: disable=broad-except
      if not stopping:
        raise
      logging.info('closing the reporter after an error: %s', e)
    run.preemption.restore()
    close = getattr(iterator, 'close', None)
    if close is not None:
      close()


def train_and_evaluate(config, workdir, *, start_afresh=False):
  """Trains (resuming from the latest checkpoint in `workdir`) and evaluates periodically.

  Writes under `workdir`: config.json, checkpoints/ (latest `train.keep_checkpoints`),
  checkpoints_best/ (lowest held-out loss), tensorboard/ (scalars, audio, mel images),
  metrics.jsonl (one record per log/eval), samples/step_<N>/<id>.wav (EMA vocoded held-out audio).

  Args:
    config: the experiment ConfigDict (see experiments/configs).
    workdir: output directory; an existing run there is resumed.
    start_afresh: first move whatever is in `workdir` into workdir/previous_runs/<time>/, and
      train from step 0.
  Returns:
    dict with the final 'step', 'preempted' (bool), the last 'loss' / 'heldout_loss' seen, and
    the output paths.
  """
  mesh = _start_devices(config)
  options_lib.enable_persistent_cache_from_config(config)
  # Everything that can be wrong with the request is checked before anything is created in the
  # workdir, restored or compiled: the config, the devices, the workdir, the data.
  config, workdir, init, splits = _checked_request(config, workdir, mesh, start_afresh)
  model = model_lib.build_model_from_config(config)
  tx = make_optimizer(config.train)
  abstract, shardings = abstract_train_state(model, tx, config, mesh)
  run = _Run(config, workdir, mesh, model, shardings, splits)
  state, start_step, notes = _restore_or_start(run, tx, abstract, init, start_afresh)
  run.preemption = parallel.Preemption()
  run.reporter = options_lib.reporter_from_config(workdir, config, start_step)
  _announce(run, abstract, start_step, notes)
  run.summary = _initial_summary(run, start_step)

  num_steps = int(config.train.num_steps)
  if start_step >= num_steps:
    run.reporter.console(f'already trained to step {start_step} >= train.num_steps={num_steps}')
    _close(run, None, stopping=False)
    run.reporter.print_outputs(run.summary)
    return run.summary

  step_fn = _compiled_step(run, tx)
  batches = _train_batches(run)
  run.reporter.start_progress()
  step = start_step
  iterator = batches.iterate(start_step)
  try:
    step = _train_loop(run, step_fn, state, iterator, start_step)
  finally:
    _close(run, iterator, stopping=sys.exc_info()[1] is not None)
  run.summary['step'] = step
  run.reporter.print_outputs(run.summary)
  return run.summary
