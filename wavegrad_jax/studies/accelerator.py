"""The accelerator check: training speed and memory, sampler RTF, search rate and a short run.

The launcher is experiments/accelerator_check.py (its docstring lists the sections and the JSON).
Measurements reuse `wavegrad_jax.studies.benchmark`, the code behind experiments.benchmark and
benchmark_sampler; this module only orders them within a time budget and writes the report.
"""
import dataclasses
import json
import os
import re
import tempfile
import time
from typing import Sequence

from absl import logging
import jax

from wavegrad_jax import models as model_lib
from wavegrad_jax.studies import benchmark as benchmark_lib
from wavegrad_jax.training import trainer as train

# --reduced: the tiny config with two UBlocks and one DBlock, which compiles in seconds on CPU.
_REDUCED_MODEL = {
    'mel_channels': 16, 'upsample_factors': (16, 16), 'upsample_channels': (16, 8),
    'upsample_dilations': ((1, 2, 1, 2), (1, 2, 4, 8)), 'waveform_channels': 8,
    'downsample_factors': (16,), 'downsample_channels': (16,),
}


@dataclasses.dataclass(frozen=True)
class AcceleratorPlan:
  """What the check measures (the launcher resolves --reduced's defaults into it).

  Fields:
    reduced: the CPU smoke-test config (tiny cut to two UBlocks) instead of Base.
    output_dir: the folder of the JSON.
    max_minutes: start no section after this many minutes.
    dtypes: model compute dtypes of the training measurements.
    train_batch_sizes: training batch sizes (examples).
    timed_steps: timed train steps per measurement.
    sampler_steps: sampler schedule lengths (network evaluations).
    sampler_batches: sampler batch sizes (utterances).
    search_candidates: schedule-search candidates per scorer call.
    run_steps: steps of the short training run.
    run_batch_size: its batch size (examples).
    tfds_dir: the run's prepared-dataset folder ('': the config's data.tfds_dir).
    command: the command line recorded in the JSON.
  """
  reduced: bool
  output_dir: str
  max_minutes: float
  dtypes: Sequence[str]
  train_batch_sizes: Sequence[int]
  timed_steps: int
  sampler_steps: Sequence[int]
  sampler_batches: Sequence[int]
  search_candidates: int
  run_steps: int
  run_batch_size: int
  tfds_dir: str
  command: str


def check_config(reduced):
  """(name, config) measured: Base, or for --reduced the cut-down tiny config."""
  if not reduced:
    return 'base', benchmark_lib.load_config('base')
  config = benchmark_lib.load_config('tiny')
  config.model.update(_REDUCED_MODEL)
  config.data.segment_frames = 4
  config.search.segment_frames = 8
  config.search.num_utterances = 1
  return 'tiny_reduced', config


def training_run(config, steps, batch_size, tfds_dir, reduced):
  """A short run of `train.train_and_evaluate` on the embedded corpus in a temporary workdir.

  Returns:
    dict: losses per logged step, first / last loss, steps/s over the run after compilation, the
    train step's compile seconds; or {'skipped': reason} when the corpus is missing.
  """
  config = config.copy_and_resolve_references()
  if not os.path.isdir(os.path.expanduser(config.data.dir)):
    return {'skipped': f'no corpus at {config.data.dir} (data.dir)'}
  c = config.train
  c.num_steps, c.batch_size, c.warmup_steps = steps, batch_size, min(int(c.warmup_steps), steps)
  c.log_every_steps = max(1, steps // 20)
  c.eval_every_steps, c.checkpoint_every_steps = 0, steps
  config.logging.progress_bar = False
  config.compile.cache_dir = ''  # compile time is one of the figures.
  if tfds_dir:
    config.data.tfds_dir = tfds_dir
  if reduced:
    config.data.max_files, config.data.heldout_fraction = 8, 0.3
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    summary = train.train_and_evaluate(config, workdir)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  losses = {r['step']: r['loss'] for r in records if r.get('kind') == 'train'}
  rates = [r['steps_per_sec'] for r in records if r.get('kind') == 'train']
  return {'steps': steps, 'batch_size': batch_size, 'dtype': config.model.dtype,
          'data': config.data.source, 'max_files': int(config.data.max_files),
          'losses': losses, 'first_loss': losses[min(losses)], 'last_loss': summary['loss'],
          'steps_per_sec_median': sorted(rates)[len(rates) // 2], 'wall_seconds': wall,
          **benchmark_lib.peak_memory()}


def device_slug():
  """The device kind as a file-name part, e.g. 'NVIDIA_H100_80GB_HBM3' or 'cpu'."""
  return re.sub(r'[^A-Za-z0-9]+', '_', jax.devices()[0].device_kind).strip('_') or 'device'


def run_check(plan):
  """Runs the plan's sections within plan.max_minutes and writes the JSON.

  Returns:
    (path, report): the written file and its dict.
  """
  start = time.perf_counter()
  reduced = plan.reduced
  name, config = check_config(reduced)
  sampler_config = config.copy_and_resolve_references()
  sampler_config.sampling.clip = 1.0  # random weights stay finite: no inf / NaN arithmetic
  model = model_lib.build_model_from_config(sampler_config)
  params = model_lib.random_params_from_config(model, sampler_config)
  jobs = [('train', dtype, batch) for dtype in plan.dtypes for batch in plan.train_batch_sizes]
  jobs += [('sampler', steps, batch) for steps in plan.sampler_steps
           for batch in plan.sampler_batches]
  jobs.append(('search', 6, plan.search_candidates))
  jobs.append(('run', plan.run_steps, plan.run_batch_size))

  sections = {'train': [], 'sampler': [], 'search': [], 'run': None}
  skipped = []
  for job in jobs:
    kind = job[0]
    if time.perf_counter() - start > 60 * plan.max_minutes:
      skipped.append(list(job))
      continue
    logging.info('accelerator check: %s', job)
    if kind == 'train':
      train_config = config.copy_and_resolve_references()
      train_config.model.dtype = job[1]
      r = {'config': name, **benchmark_lib.measure_train(train_config, job[2], 2,
                                                          plan.timed_steps)}
    elif kind == 'sampler':
      r = benchmark_lib.measure_rtf(name, sampler_config, model, params, job[1], job[2], 1.0,
                                    3, 20.0)
    elif kind == 'search':
      r = benchmark_lib.measure_search(name, sampler_config, model, params, job[1], job[2], 3,
                                       20.0)
    else:
      r = training_run(config, job[1], job[2], plan.tfds_dir, reduced)
    print(json.dumps({'section': kind, **r}), flush=True)
    if kind == 'run':
      sections['run'] = r
    else:
      sections[kind].append(r)
  report = {
      'command': plan.command,
      'mode': 'reduced' if reduced else 'full', 'config': name,
      **benchmark_lib.host_description(),
      **sections, 'skipped': skipped,
      'peak_memory': benchmark_lib.peak_memory(),
      'elapsed_seconds': time.perf_counter() - start,
  }
  os.makedirs(plan.output_dir, exist_ok=True)
  path = os.path.join(plan.output_dir,
                      f'accelerator_{device_slug()}{"_reduced" if reduced else ""}.json')
  with open(path, 'w') as f:
    json.dump(report, f, indent=2)
  return path, report
