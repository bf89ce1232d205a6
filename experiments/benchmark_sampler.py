r"""Measures the sampler's real-time factor and the schedule search's scoring rate; writes JSON.

  python -m experiments.benchmark_sampler --output=experiments/results/sampler_cpu.json \
      --rtf=tiny:6,25,50,1000:1,16 --rtf=base:6,25:1 --search=tiny:6:16 --search=base:6:2

--rtf is CONFIG:STEPS:BATCH_SIZES: for each schedule length N (the config's named schedule of that
length, else linear 1e-6..0.01) and batch size B, the jitted sampler is compiled ahead of time
(untimed) and then timed on B random mels of --seconds each; RTF = wall seconds / seconds of audio
produced (B * seconds), so below 1 is faster than real time. Runs repeat up to --repeats times while
their total stays under --max_timed_seconds (at least once); the median is reported.

--search is CONFIG:N:K: candidates of N steps scored per second by the search's LS-MSE scorer,
vmapped over K candidates at once (and sharded over every device), on config.search.num_utterances
random segments of config.search.segment_frames frames.

Weights are random (timing does not depend on them); sampling.clip = 1 keeps the random model's
samples finite so no inf / NaN arithmetic skews the timing. CONFIG is a module in
experiments/configs.
"""
import sys

from absl import app
from absl import flags
from absl import logging
import tqdm

from wavegrad_jax.studies import benchmark as benchmark_lib
from experiments import cli
from experiments import config_overrides
from wavegrad_jax import errors
from wavegrad_jax import jsonable
from wavegrad_jax import models as model_lib

_RTF = flags.DEFINE_multi_string('rtf', ['tiny:6,25,50,1000:1,16', 'base:6:1'],
                                 'CONFIG:STEPS:BATCH_SIZES to time the sampler at.')
_SEARCH = flags.DEFINE_multi_string('search', ['tiny:6:16'],
                                    'CONFIG:N:K search scoring rates to measure.')
_SECONDS = flags.DEFINE_float('seconds', 1.0, 'Audio seconds per batch item (whole frames).')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Most timed runs per measurement.')
_MAX_TIMED = flags.DEFINE_float('max_timed_seconds', 20.0,
                                'Stop repeating a measurement once its runs took this long.')
_OUTPUT = flags.DEFINE_string('output', None, 'Where to write the JSON results.')
flags.mark_flag_as_required('output')


def parse_spec(spec, parts):
  """'tiny:6,25:1,16' -> ('tiny', [6, 25], [1, 16]) (with `parts` numeric lists after the name)."""
  fields = spec.split(':')
  try:
    lists = [[int(v) for v in f.split(',') if v] for f in fields[1:]]
  except ValueError:
    lists = []
  if (len(fields) != parts + 1 or not fields[0] or len(lists) != parts
      or not all(lists) or min(min(v) for v in lists) < 1):
    raise app.UsageError(f'expected CONFIG followed by {parts} ":"-separated lists of positive '
                         f'integers, got {spec!r}')
  config_overrides.check_config_name(fields[0], 'the spec')
  return (fields[0],) + tuple(lists)


def load_config(name):
  """experiments/configs/<name>.py's config, with clipping so random weights stay finite."""
  config = benchmark_lib.load_config(name)
  config.sampling.clip = 1.0
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  rtf_jobs = [parse_spec(s, 2) for s in _RTF.value]
  search_jobs = [parse_spec(s, 2) for s in _SEARCH.value]
  errors.check_output_file(_OUTPUT.value, '--output')
  models = {}

  def get(name):
    if name not in models:
      config = load_config(name)
      model = model_lib.build_model_from_config(config)
      models[name] = (config, model, model_lib.random_params_from_config(model, config))
    return models[name]

  todo = [('rtf', name, n, b) for name, steps, batches in rtf_jobs for n in steps for b in batches]
  todo += [('search', name, n, k) for name, ns, ks in search_jobs for n in ns for k in ks]
  rtf, search = [], []
  for kind, name, n, size in tqdm.tqdm(todo, desc='benchmarks', unit='run'):
    config, model, params = get(name)
    if kind == 'rtf':
      r = benchmark_lib.measure_rtf(name, config, model, params, n, size, _SECONDS.value,
                                    _REPEATS.value, _MAX_TIMED.value)
      rtf.append(r)
      logging.info('%s N=%d B=%d: RTF %.4g (%.3g s for %.3g s of audio)', name, n, size, r['rtf'],
                   r['wall_seconds'], r['audio_seconds'])
    else:
      r = benchmark_lib.measure_search(name, config, model, params, n, size, _REPEATS.value,
                                       _MAX_TIMED.value)
      search.append(r)
      logging.info('%s search N=%d K=%d: %.3g candidates/s', name, n, size,
                   r['candidates_per_second'])
  out = dict(
      command='python -m experiments.benchmark_sampler ' + ' '.join(sys.argv[1:]),
      **benchmark_lib.host_description(), seconds_per_item=_SECONDS.value, rtf=rtf,
      search=search)
  jsonable.write(_OUTPUT.value, out)
  for r in rtf:
    print(f'{r["config"]:>5} N={r["num_steps"]:<5d} B={r["batch_size"]:<3d} RTF {r["rtf"]:.4g}')
  for r in search:
    print(f'{r["config"]:>5} search N={r["num_steps"]} K={r["candidates_per_call"]}: '
          f'{r["candidates_per_second"]:.3g} candidates/s')
  print(f'wrote {_OUTPUT.value}')


if __name__ == '__main__':
  cli.run(main)
