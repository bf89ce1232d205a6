r"""Measures training throughput (the real jitted train step) on synthetic batches; writes JSON.

  python -m experiments.benchmark --output=/tmp/benchmark.json \
      --benchmark=tiny:4,8,16 --benchmark=base:1,2

Each --benchmark is CONFIG:BATCH_SIZES with CONFIG a module in experiments/configs. For every
(config, batch size) the step is compiled once, run `--warmup_steps` times, then timed over
`--timed_steps` steps (each waited for); steps/s and examples/s come from the median step time.
Synthetic data keeps the numbers independent of the dataset and the input pipeline.
"""
import importlib
import json
import os
import platform
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from experiments import cli
from wavegrad_jax import errors
from wavegrad_jax import model as model_lib
from wavegrad_jax import parallel
from wavegrad_jax import train

_BENCHMARKS = flags.DEFINE_multi_string(
    'benchmark', ['tiny:4,8,16', 'base:1,2'], 'CONFIG:B1,B2,... (config module, batch sizes).')
_WARMUP = flags.DEFINE_integer('warmup_steps', 2, 'Untimed steps after compilation.')
_TIMED = flags.DEFINE_integer('timed_steps', 10, 'Timed steps per (config, batch size).')
_SEGMENT_FRAMES = flags.DEFINE_integer(
    'segment_frames', 0, 'Mel frames per crop; 0 keeps each config\'s data.segment_frames.')
_DTYPE = flags.DEFINE_string('dtype', '', "Model compute dtype override ('bfloat16'), or ''.")
_OUTPUT = flags.DEFINE_string('output', None, 'Where to write the JSON results.')
flags.mark_flag_as_required('output')


def parse_benchmark(spec):
  """'tiny:4,8' -> ('tiny', [4, 8]); names a known config and positive batch sizes, or raises."""
  name, _, sizes = spec.partition(':')
  try:
    batches = [int(b) for b in sizes.split(',') if b]
  except ValueError:
    batches = []
  if not name or not batches or min(batches) < 1:
    raise app.UsageError(f'--benchmark wants CONFIG:B1,B2,... with batch sizes >= 1, got {spec!r}')
  cli.check_config_name(name, '--benchmark')
  return name, batches


def synthetic_batch(config, batch_size, rng):
  """Random crops of the config's shape: {'audio': [B, T] in [-1, 1], 'mel': [B, F, M]}."""
  shapes = train.batch_shapes(config, batch_size)
  return {'audio': np.clip(0.3 * rng.standard_normal(shapes['audio']), -1, 1).astype(np.float32),
          'mel': rng.normal(-4.0, 2.0, shapes['mel']).astype(np.float32)}


def measure(config, batch_size, warmup_steps, timed_steps):
  """Times the compiled train step of `config` at `batch_size`; returns a result dict."""
  config = config.copy_and_resolve_references()
  config.train.batch_size = batch_size
  mesh = parallel.make_mesh(config.mesh)
  model = model_lib.build_model(config)
  tx = train.make_optimizer(config.train)
  _, shardings = train.abstract_train_state(model, tx, config, mesh)
  state = train.init_train_state(model, tx, config, mesh)
  start = time.perf_counter()
  step_fn = train.compile_train_step(model, tx, config, mesh, shardings)
  compile_s = time.perf_counter() - start
  sharding = parallel.batch_sharding(mesh, config.mesh)
  batch = parallel.to_global_batch(synthetic_batch(config, batch_size, np.random.default_rng(0)),
                                sharding, batch_size)
  for _ in range(warmup_steps):
    state, metrics = step_fn(state, batch)
  jax.block_until_ready(state)
  times = []
  for _ in range(timed_steps):
    start = time.perf_counter()
    state, metrics = step_fn(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  median = float(np.median(times))
  return {
      'batch_size': batch_size,
      'segment_frames': int(config.data.segment_frames),
      'samples_per_example': int(config.data.segment_frames) * int(config.audio.hop_length),
      'params': model_lib.count_params(state.params),
      'dtype': config.model.dtype,
      'compile_s': round(compile_s, 3),
      'step_time_median_s': median,
      'step_time_min_s': float(np.min(times)),
      'steps_per_sec': 1.0 / median,
      'examples_per_sec': batch_size / median,
      'audio_seconds_per_sec': batch_size * int(config.data.segment_frames)
                               * int(config.audio.hop_length) / int(config.audio.sample_rate)
                               / median,
      'timed_steps': timed_steps,
      'last_loss': float(metrics['loss']),
  }


def main(argv):
  """Runs every requested benchmark and writes the JSON report."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  jobs = [parse_benchmark(spec) for spec in _BENCHMARKS.value]
  errors.check_output_file(_OUTPUT.value, '--output')
  results = []
  for name, sizes in jobs:
    config = importlib.import_module(f'experiments.configs.{name}').get_config()
    if _SEGMENT_FRAMES.value:
      config.data.segment_frames = _SEGMENT_FRAMES.value
    if _DTYPE.value:
      config.model.dtype = _DTYPE.value
    for batch_size in sizes:
      logging.info('benchmarking %s at batch %d', name, batch_size)
      result = {'config': name, **measure(config, batch_size, _WARMUP.value, _TIMED.value)}
      print(json.dumps(result), flush=True)
      results.append(result)
  report = {
      'command': 'python -m experiments.benchmark ' + ' '.join(sys.argv[1:]),
      'jax_version': jax.__version__,
      'backend': jax.default_backend(),
      'device_kind': jax.devices()[0].device_kind,
      'device_count': jax.device_count(),
      'process_count': jax.process_count(),
      'host_cpu_count': os.cpu_count(),
      'python': platform.python_version(),
      'warmup_steps': _WARMUP.value,
      'results': results,
  }
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, 'w') as f:
    json.dump(report, f, indent=2)
  print(f'wrote {_OUTPUT.value}')


if __name__ == '__main__':
  cli.run(main)
