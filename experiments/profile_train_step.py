r"""Profiles the compiled train step: XLA's cost and memory analyses and a timed breakdown; JSON.

  nice -n 10 python -m experiments.profile_train_step --config_name=base --batch_sizes=2,4,8 \
      --output=experiments/results/profile_train_step_cpu.json

For every batch size the step of `train.compile_train_step` is compiled on a synthetic batch of the
config's segment size, then timed, and so are its parts (forward, forward+backward, optimiser, EMA,
host-to-device batch copy), each jitted alone on the same shapes (`profile_lib`). On a shared host
only fractions and ratios mean something: the JSON records the load average.
"""
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

from wavegrad_jax.studies import benchmark as benchmark_lib
from experiments import cli
from experiments import config_overrides
from wavegrad_jax.studies import profiling as profile_lib
from wavegrad_jax import errors
from wavegrad_jax import jsonable

_CONFIG = flags.DEFINE_string('config_name', 'base', 'Config module in experiments/configs.')
_BATCHES = flags.DEFINE_list('batch_sizes', ['2', '4', '8'], 'Global batch sizes to profile.')
_WARMUP = flags.DEFINE_integer('warmup_steps', 1, 'Untimed runs of each program.')
_TIMED = flags.DEFINE_integer('timed_steps', 3, 'Timed runs of each program (median reported).')
_OUTPUT = flags.DEFINE_string('output', None, 'Where to write the JSON results.')
flags.mark_flag_as_required('output')


def main(argv):
  """Profiles every batch size and writes the JSON report."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config_overrides.check_config_name(_CONFIG.value, '--config_name')
  try:
    sizes = [int(b) for b in _BATCHES.value]
  except ValueError:
    sizes = []
  if not sizes or min(sizes) < 1:
    raise app.UsageError(f'--batch_sizes wants positive integers, got {_BATCHES.value}')
  if _TIMED.value < 1:
    raise app.UsageError('--timed_steps must be at least 1')
  errors.check_output_file(_OUTPUT.value, '--output')
  config = benchmark_lib.load_config(_CONFIG.value)
  load_before = list(os.getloadavg())
  results = []
  for batch_size in sizes:
    logging.info('profiling %s at batch %d', _CONFIG.value, batch_size)
    result = profile_lib.profile_batch(config, batch_size, _WARMUP.value, _TIMED.value)
    print(json.dumps({'batch_size': batch_size,
                      'step_s': result['step']['time_median_s'],
                      'fractions': {k: round(v['fraction_of_step'], 3)
                                    for k, v in result['pieces'].items()}}), flush=True)
    results.append(result)
  report = {
      'command': 'python -m experiments.profile_train_step ' + ' '.join(sys.argv[1:]),
      'config': _CONFIG.value,
      **benchmark_lib.host_description(),
      'load_average_before': load_before,
      'warmup_steps': _WARMUP.value,
      'timed_steps': _TIMED.value,
      'results': results,
  }
  jsonable.write(_OUTPUT.value, report)
  print(f'wrote {_OUTPUT.value}')


if __name__ == '__main__':
  cli.run(main)
