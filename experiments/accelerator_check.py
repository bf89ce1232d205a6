r"""Accelerator figures from one command: training speed and memory, sampler RTF, search rate, a run.

  python -m experiments.accelerator_check                 # on one GPU / TPU: about 6 minutes
  python -m experiments.accelerator_check --reduced --output_dir=/tmp/accelerator   # CPU, CI

Writes <output_dir>/accelerator_<device kind>[_reduced].json with the command, the host, and:
  train      Base training examples/s and step time at --train_batch_sizes in each of --dtypes
             (synthetic batches, compiled train step incl. the EMA update), with the running
             peak device memory (host RSS on CPU) after each;
  sampler    sampler RTF at --sampler_steps (6, 50, 1000) x --sampler_batches (1, 16) on 1 s mels;
  search     schedule-search candidates scored per second (N=6, --search_candidates per call);
  run        a short Base training run on the embedded corpus (--run_steps steps through
             train.train_and_evaluate): its losses, steps/s and compile time; skipped with a note
             when the corpus is not on the machine.
Sections are run in that order; once --max_minutes have passed, the ones not started are listed
under 'skipped' instead (the file is still written), so the script always ends within budget.

--reduced is the same script on CPU in well under a minute: the tiny config cut to two UBlocks,
float32 at one batch size, 6 steps at batches 1 and 2, two candidates, a 3-step run on 8 files of
the corpus.
CI runs it (tests/test_accelerator_check.py) so that it cannot rot. Measurements reuse
wavegrad_jax/studies/benchmark.py, the code behind experiments.benchmark and benchmark_sampler.
"""
import json
import os
import re
import sys
import tempfile
import time

from absl import flags
from absl import logging
import jax

from wavegrad_jax.studies import benchmark as benchmark_lib
from experiments import cli
from wavegrad_jax import models as model_lib
from wavegrad_jax.training import trainer as train

_REDUCED = flags.DEFINE_bool('reduced', False, 'CPU smoke-test sizes (what CI runs).')
_OUTPUT_DIR = flags.DEFINE_string('output_dir', 'experiments/results', 'Where the JSON goes.')
_MAX_MINUTES = flags.DEFINE_float('max_minutes', 7.5, 'Start no section after this long.')
_TRAIN_BATCHES = flags.DEFINE_list('train_batch_sizes', ['16', '64', '256'],
                                   'Base training batch sizes (--reduced: 2).')
_DTYPES = flags.DEFINE_list('dtypes', ['float32', 'bfloat16'],
                            'Model compute dtypes (--reduced: float32).')
_TIMED_STEPS = flags.DEFINE_integer('timed_steps', 10, 'Timed train steps per measurement.')
_SAMPLER_STEPS = flags.DEFINE_list('sampler_steps', ['6', '50', '1000'],
                                   'Sampler schedule lengths (--reduced: 6).')
_SAMPLER_BATCHES = flags.DEFINE_list('sampler_batches', ['1', '16'],
                                     'Sampler batch sizes (--reduced: 1, 2).')
_SEARCH_CANDIDATES = flags.DEFINE_integer('search_candidates', 64,
                                          'Candidates per scorer call (--reduced: 2).')
_RUN_STEPS = flags.DEFINE_integer('run_steps', 200, 'Steps of the short training run '
                                  '(--reduced: 3).')
_RUN_BATCH = flags.DEFINE_integer('run_batch_size', 32, 'Its batch size (--reduced: 2).')
_TFDS_DIR = flags.DEFINE_string('tfds_dir', '', "The run's prepared-dataset folder ('': the "
                                "config's data.tfds_dir).")

# --reduced: the tiny config with two UBlocks and one DBlock, which compiles in seconds on CPU.
_REDUCED_MODEL = {
    'mel_channels': 16, 'upsample_factors': (16, 16), 'upsample_channels': (16, 8),
    'upsample_dilations': ((1, 2, 1, 2), (1, 2, 4, 8)), 'waveform_channels': 8,
    'downsample_factors': (16,), 'downsample_channels': (16,),
}


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


def sizes(flag, reduced_value, reduced):
  """The flag's ints, or `reduced_value` under --reduced when the flag was left at its default."""
  if reduced and not flags.FLAGS[flag.name].present:
    return list(reduced_value)
  return [int(v) for v in flag.value]


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


def main(argv):
  """Runs the sections within --max_minutes and writes the JSON."""
  del argv
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # orbax and TFDS log every file at INFO
  start = time.perf_counter()
  reduced = _REDUCED.value
  name, config = check_config(reduced)
  sampler_config = config.copy_and_resolve_references()
  sampler_config.sampling.clip = 1.0  # random weights stay finite: no inf / NaN arithmetic
  model = model_lib.build_model(sampler_config)
  params = model_lib.random_params(model, sampler_config)
  jobs = []
  dtypes = (['float32'] if reduced and not flags.FLAGS['dtypes'].present else _DTYPES.value)
  for dtype in dtypes:
    for batch in sizes(_TRAIN_BATCHES, (2,), reduced):
      jobs.append(('train', dtype, batch))
  for steps in sizes(_SAMPLER_STEPS, (6,), reduced):
    for batch in sizes(_SAMPLER_BATCHES, (1, 2), reduced):
      jobs.append(('sampler', steps, batch))
  jobs.append(('search', 6, 2 if reduced and not flags.FLAGS['search_candidates'].present
               else _SEARCH_CANDIDATES.value))
  jobs.append(('run', 3 if reduced and not flags.FLAGS['run_steps'].present else _RUN_STEPS.value,
               2 if reduced and not flags.FLAGS['run_batch_size'].present else _RUN_BATCH.value))

  sections = {'train': [], 'sampler': [], 'search': [], 'run': None}
  skipped = []
  for job in jobs:
    kind = job[0]
    if time.perf_counter() - start > 60 * _MAX_MINUTES.value:
      skipped.append(list(job))
      continue
    logging.info('accelerator check: %s', job)
    if kind == 'train':
      train_config = config.copy_and_resolve_references()
      train_config.model.dtype = job[1]
      r = {'config': name, **benchmark_lib.measure_train(train_config, job[2], 2,
                                                          _TIMED_STEPS.value)}
    elif kind == 'sampler':
      r = benchmark_lib.measure_rtf(name, sampler_config, model, params, job[1], job[2], 1.0,
                                    3, 20.0)
    elif kind == 'search':
      r = benchmark_lib.measure_search(name, sampler_config, model, params, job[1], job[2], 3,
                                       20.0)
    else:
      r = training_run(config, job[1], job[2], _TFDS_DIR.value, reduced)
    print(json.dumps({'section': kind, **r}), flush=True)
    if kind == 'run':
      sections['run'] = r
    else:
      sections[kind].append(r)
  report = {
      'command': 'python -m experiments.accelerator_check ' + ' '.join(sys.argv[1:]),
      'mode': 'reduced' if reduced else 'full', 'config': name,
      **benchmark_lib.host_description(),
      **sections, 'skipped': skipped,
      'peak_memory': benchmark_lib.peak_memory(),
      'elapsed_seconds': time.perf_counter() - start,
  }
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  path = os.path.join(_OUTPUT_DIR.value,
                      f'accelerator_{device_slug()}{"_reduced" if reduced else ""}.json')
  with open(path, 'w') as f:
    json.dump(report, f, indent=2)
  print(f'wrote {path} ({report["elapsed_seconds"]:.0f} s'
        + (f'; skipped {len(skipped)} measurements past --max_minutes' if skipped else '') + ')')


if __name__ == '__main__':
  cli.run(main)
