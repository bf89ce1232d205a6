"""Runs launcher command lines in-process, one fork each, so a table of them costs one import.

  python tests/launcher_driver.py cases.json results.json

Each case is {'module': 'experiments.evaluate', 'args': ['--workdir=...', ...], 'cwd': folder};
the result is {'status': exit status, 'stdout': ..., 'stderr': ..., 'seconds': ...}. The libraries
are imported once by this process, then every case runs in a forked child exactly as
`python -m <module> <args>` would run `cli.run(main)`: absl flags are process-global and cannot be
defined twice, so a fresh child per case is what makes the cases independent. JAX is imported but
never started in this process, so forking is safe; each child starts its own backend.
"""
import importlib
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Imported once, before any fork; none of them defines absl flags or starts a JAX backend.
PRELOAD = ('jax', 'numpy', 'flax.linen', 'optax', 'orbax.checkpoint', 'tensorflow_datasets',
           'ml_collections.config_flags', 'soundfile', 'tensorboardX', 'experiments.cli',
           'experiments.configs.common', 'wavegrad_jax.training.trainer', 'wavegrad_jax.data.pipeline',
           'wavegrad_jax.training.checkpoints', 'wavegrad_jax.evaluation.evaluate', 'wavegrad_jax.evaluation.compare',
           'wavegrad_jax.evaluation.schedule_search', 'wavegrad_jax.inference.synthesize', 'wavegrad_jax.evaluation.perceptual')


def _child(case, out_path, err_path):
  status = 0
  try:
    for fd, path in ((1, out_path), (2, err_path)):
      handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
      os.dup2(handle, fd)
      os.close(handle)
    os.chdir(case['cwd'])
    sys.argv = [case['module']] + list(case['args'])
    module = importlib.import_module(case['module'])
    from experiments import cli  # pylint: disable=g-import-not-at-top
    cli.run(module.main)
  except SystemExit as e:
    if e.code is not None and not isinstance(e.code, int):
      print(e.code, file=sys.stderr)  # as the interpreter does with sys.exit('message')
    status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
  except BaseException:  # pylint: disable=broad-except
    import traceback  # pylint: disable=g-import-not-at-top
    traceback.print_exc()
    status = 1
  finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # pylint: disable=protected-access


def run_cases(cases):
  """Runs each case in a forked child; returns one result dict per case, in order."""
  results = []
  with tempfile.TemporaryDirectory() as tmp:
    for i, case in enumerate(cases):
      out_path, err_path = os.path.join(tmp, f'{i}.out'), os.path.join(tmp, f'{i}.err')
      start = time.time()
      pid = os.fork()
      if pid == 0:
        _child(case, out_path, err_path)
      _, wait_status = os.waitpid(pid, 0)
      with open(out_path) as f_out, open(err_path) as f_err:
        results.append({'status': os.waitstatus_to_exitcode(wait_status), 'stdout': f_out.read(),
                        'stderr': f_err.read(), 'seconds': time.time() - start})
  return results


def main():
  sys.path.insert(0, REPO)
  for name in PRELOAD:
    importlib.import_module(name)
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  assert not xla_bridge.backends_are_initialized(), 'a preloaded module started JAX'
  with open(sys.argv[1]) as f:
    cases = json.load(f)
  with open(sys.argv[2], 'w') as f:
    json.dump(run_cases(cases), f)


def drive(cases, env=None, timeout=600):
  """Runs `cases` through this script in a fresh interpreter (from a test); returns the results.

  Args:
    cases: list of {'module', 'args', 'cwd'}.
    env: extra environment variables (e.g. XLA_FLAGS for several CPU devices).
    timeout: seconds for all of them.
  """
  import subprocess  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    cases_path, results_path = os.path.join(tmp, 'cases.json'), os.path.join(tmp, 'results.json')
    with open(cases_path, 'w') as f:
      json.dump(cases, f)
    full_env = dict(os.environ)
    full_env.update({'PYTHONPATH': REPO + os.pathsep + full_env.get('PYTHONPATH', ''),
                     'JAX_PLATFORMS': 'cpu'})
    full_env.pop('XLA_FLAGS', None)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), cases_path, results_path],
                          env=full_env, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if proc.returncode:
      raise AssertionError(f'launcher driver failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    with open(results_path) as f:
      return json.load(f)


if __name__ == '__main__':
  main()
