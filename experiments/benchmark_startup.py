r"""Wall time of the README's evaluate and compare_samplers commands: no cache, cold and warm cache.

  nice -n 10 python -m experiments.benchmark_startup --workdir=runs/tiny \
      --output=experiments/results/startup_cpu.json

Each command runs in a fresh process on a copy of --workdir (so the run is never written to), in
this order: with the persistent compilation cache off (`--config.compile.cache_dir=`), then with
an empty cache directory (cold: every program compiles and is stored), then again with that
directory (warm: programs are read back). --before_root names another checkout (e.g. the code
before the cache and the length buckets) whose launchers run the same commands without cache
flags, as the 'before' row. Only wall seconds of the whole command are recorded (start-up, data,
compilation and the work itself), with the load average around each run.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from experiments import cli
from wavegrad_jax import errors
from wavegrad_jax import jsonable

_WORKDIR = flags.DEFINE_string('workdir', 'runs/tiny', 'A trained run (the README main run).')
_BEFORE_ROOT = flags.DEFINE_string('before_root', '', "Another checkout's root to time as "
                                   "'before' ('': none).")
_OUTPUT = flags.DEFINE_string('output', None, 'Where to write the JSON.')
flags.mark_flag_as_required('output')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The README's commands, with --workdir replaced by the copy.
COMMANDS = {
    'evaluate': ['-m', 'experiments.evaluate', '--schedules=6,25,50', '--max_utterances=8',
                 '--max_seconds=3'],
    'compare_samplers': ['-m', 'experiments.compare_samplers'],
}


def timed_run(root, args, workdir):
  """Runs `python <args> --workdir=<workdir>` in `root`; returns its wall seconds and loads."""
  env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS='cpu')
  before = os.getloadavg()[0]
  start = time.perf_counter()
  proc = subprocess.run([sys.executable, *args, f'--workdir={workdir}'], cwd=root, env=env,
                        capture_output=True, text=True, timeout=3600)
  seconds = time.perf_counter() - start
  if proc.returncode:
    raise RuntimeError(f'{args} failed in {root}:\n{proc.stderr[-3000:]}')
  return {'wall_seconds': seconds, 'load_average_before': before,
          'load_average_after': os.getloadavg()[0]}


def main(argv):
  """Times every (command, cache mode) and writes the JSON report."""
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not os.path.isdir(_WORKDIR.value):
    raise errors.UserError(f'--workdir={_WORKDIR.value}: no such folder; train the README main '
                           'run first')
  errors.check_output_file(_OUTPUT.value, '--output')
  results = []
  with tempfile.TemporaryDirectory() as scratch:
    cache = os.path.join(scratch, 'jax_cache')
    modes = [('no_cache', ['--config.compile.cache_dir=']),
             ('cold_cache', [f'--config.compile.cache_dir={cache}']),
             ('warm_cache', [f'--config.compile.cache_dir={cache}'])]
    for name, args in COMMANDS.items():
      shutil.rmtree(cache, ignore_errors=True)
      runs = [('before', _BEFORE_ROOT.value, [])] if _BEFORE_ROOT.value else []
      runs += [(mode, REPO, extra) for mode, extra in modes]
      for mode, root, extra in runs:
        workdir = os.path.join(scratch, f'{name}_{mode}')
        shutil.copytree(_WORKDIR.value, workdir)
        result = {'command': name, 'mode': mode, 'root': root,
                  **timed_run(os.path.abspath(root), args + extra, workdir)}
        print(json.dumps(result), flush=True)
        results.append(result)
        shutil.rmtree(workdir)
  report = {
      'command': 'python -m experiments.benchmark_startup ' + ' '.join(sys.argv[1:]),
      'readme_commands': {k: 'python ' + ' '.join(v) + ' --workdir=runs/tiny'
                          for k, v in COMMANDS.items()},
      'host_cpu_count': os.cpu_count(), 'results': results,
  }
  jsonable.write(_OUTPUT.value, report)
  print(f'wrote {_OUTPUT.value}')


if __name__ == '__main__':
  cli.run(main)
