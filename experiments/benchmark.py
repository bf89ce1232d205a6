r"""Measures training throughput (the real jitted train step) on synthetic batches; writes JSON.

  python -m experiments.benchmark --output=/tmp/benchmark.json \
      --benchmark=tiny:4,8,16 --benchmark=base:1,2

Each --benchmark is CONFIG:BATCH_SIZES with CONFIG a module in experiments/configs. For every
(config, batch size) the step is compiled once, run `--warmup_steps` times, then timed over
`--timed_steps` steps (each waited for); steps/s and examples/s come from the median step time.
Synthetic data keeps the numbers independent of the dataset and the input pipeline.
"""
import json
import sys

from absl import app
from absl import flags
from absl import logging

from wavegrad_jax.studies import benchmark as benchmark_lib
from experiments import cli
from experiments import config_overrides
from wavegrad_jax import errors
from wavegrad_jax import jsonable

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
  config_overrides.check_config_name(name, '--benchmark')
  return name, batches


def main(argv):
  """Runs every requested benchmark and writes the JSON report."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  jobs = [parse_benchmark(spec) for spec in _BENCHMARKS.value]
  errors.check_output_file(_OUTPUT.value, '--output')
  results = []
  for name, sizes in jobs:
    config = benchmark_lib.load_config(name)
    if _SEGMENT_FRAMES.value:
      config.data.segment_frames = _SEGMENT_FRAMES.value
    if _DTYPE.value:
      config.model.dtype = _DTYPE.value
    for batch_size in sizes:
      logging.info('benchmarking %s at batch %d', name, batch_size)
      result = {'config': name, **benchmark_lib.measure_train(config, batch_size, _WARMUP.value,
                                                              _TIMED.value)}
      print(json.dumps(result), flush=True)
      results.append(result)
  report = {
      'command': 'python -m experiments.benchmark ' + ' '.join(sys.argv[1:]),
      **benchmark_lib.host_description(),
      'warmup_steps': _WARMUP.value,
      'results': results,
  }
  jsonable.write(_OUTPUT.value, report)
  print(f'wrote {_OUTPUT.value}')


if __name__ == '__main__':
  cli.run(main)
