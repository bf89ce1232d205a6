"""A release: one checkpoint's EMA weights in a folder shaped like a workdir, for shipping.

`write_release(workdir, step, output_dir, schedule)` writes
  output_dir/config.json                 the run's config, sampling.schedule = the tuned grid
  output_dir/checkpoints/<step>/         an orbax checkpoint of {'step', 'ema_params'} only
  output_dir/RELEASE.json                where it came from: run, step, schedule, parameters
so that every inference launcher takes `--workdir=output_dir` as it takes a run's (they restore
the EMA weights alone, `inference_loading.restore_params`), with no optimiser state, raw
weights or discriminators: a fraction of a training checkpoint's size.
"""
import json
import os
import shutil

import jax
import orbax.checkpoint as ocp

from wavegrad_jax import errors
from wavegrad_jax import models as model_lib
from wavegrad_jax import sampling
from wavegrad_jax.training import run_files
from wavegrad_jax.training.inference_loading import inference_config
from wavegrad_jax.training.inference_loading import restore_params

RELEASE_FILE = 'RELEASE.json'


def write_release(workdir, step, output_dir, schedule, note='', sampler=None, defaults=None):
  """Writes the release of `workdir`'s checkpoint `step` into `output_dir` (replacing one there).

  Args:
    workdir: a training run's directory.
    step: None (latest), 'best' or an int step (as `restore_params`).
    output_dir: the release folder; an existing release there is replaced, anything else is
      refused.
    schedule: the sampler grid spec the release vocodes with by default (its sampling.schedule,
      and its train.sample_schedule).
    note: a line recorded in RELEASE.json (what the model is, how it scores).
    sampler: a sampler preset (`sampling.SAMPLER_PRESETS`) whose fields become the release's
      sampling section (its default sampler), or None to keep the run's.
    defaults: a full default config (experiments.configs.common.get_common_config()) whose
      inference-section fields fill those a run older than them lacks, or None.
  Returns:
    the RELEASE.json dict.
  Raises:
    errors.UserError: output_dir holds something other than a release; no checkpoint matches.
  """
  output_dir = os.path.abspath(output_dir)  # orbax writes absolute paths only
  if os.path.isdir(output_dir) and os.listdir(output_dir) and not os.path.exists(
      os.path.join(output_dir, RELEASE_FILE)):
    raise errors.UserError(f'--output_dir={output_dir} is not empty and holds no release; give an '
                           'empty or new folder')
  try:
    params, config, saved_step = restore_params(workdir, step, ema=True)
  except FileNotFoundError as e:
    raise errors.UserError(str(e)) from None
  if defaults is not None:
    config = inference_config(config, defaults)
  if sampler:
    config = sampling.preset_from_config(config, sampler)
  with config.unlocked():
    config.sampling.schedule = str(schedule)
    config.train.sample_schedule = str(schedule)
    config.eval.ema = True  # the release holds the EMA weights alone
  tmp = f'{output_dir.rstrip(os.sep)}.tmp-{os.getpid()}'
  shutil.rmtree(tmp, ignore_errors=True)
  info = {'source_workdir': os.path.abspath(workdir), 'source_step': saved_step,
          'schedule': str(schedule), 'sampler': sampler or '',
          'parameters': model_lib.count_params(params),
          'model': config.model.get('name', 'wavegrad'),
          'process': config.get('process', {}).get('name', 'wavegrad'), 'note': note}
  try:  # written beside the release, then renamed into place: a failure leaves the old one
    manager = ocp.CheckpointManager(os.path.join(tmp, config.checkpoint.directory))
    try:
      state = {'step': jax.numpy.asarray(saved_step, jax.numpy.int32), 'ema_params': params}
      manager.save(saved_step, args=ocp.args.Composite(**{
          run_files.STATE: ocp.args.StandardSave(state),
          run_files.CONFIG: ocp.args.JsonSave(run_files.config_to_dict(config))}))
      manager.wait_until_finished()
    finally:
      manager.close()
    run_files.save_config(tmp, config)
    with open(os.path.join(tmp, RELEASE_FILE), 'w') as f:
      json.dump(info, f, indent=2, sort_keys=True)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  shutil.rmtree(output_dir, ignore_errors=True)
  os.replace(tmp, output_dir)
  return info


def folder_bytes(path):
  """Total size in bytes of the files under `path`."""
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
