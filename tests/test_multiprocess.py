"""Two JAX processes on this machine train through the users' launcher, as a multi-host run would.

`python -m experiments.main` is started twice with JAX_COORDINATOR_ADDRESS (127.0.0.1, a free
port), JAX_NUM_PROCESSES=2, JAX_PROCESS_ID=0/1 and two CPU devices each (gloo collectives), next to
a single process over four devices. The two-process run is killed in one process part-way, the
other must stop on its own, and both are restarted to finish. Checked: each process reads only its
own shard of every global batch; the result equals the single process's; only process 0 writes
logs, samples and the config (every Python-level write under the workdir is recorded by an audit
hook in each process); every process takes part in the orbax checkpoints. Every wait is bounded.
"""
import json
import os
import resource
import signal
import socket
import subprocess
import time

import jax
import numpy as np
import pytest

from tests.test_train import REPO, launcher_args, read_metrics
from wavegrad_jax.training import checkpoints

NUM_STEPS = 12
HEARTBEAT_SECONDS = 10
# Process 0 writes these; any other process writing outside the checkpoints is a bug.
CHECKPOINT_DIRS = ('checkpoints', 'checkpoints_best')

# Installed as sitecustomize in the launched processes: records every path under the run's workdir
# that Python code opens for writing, creates, renames or removes, one file per process.
_AUDIT_HOOK = r'''
import os, sys, threading
_out = os.environ.get('WAVEGRAD_TEST_WRITE_AUDIT')
if _out:
  _root = os.path.realpath(os.environ['WAVEGRAD_TEST_AUDIT_ROOT']) + os.sep
  _log = open(_out, 'a', buffering=1)
  _writing_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
  _busy = threading.local()
  _EVENTS = {'os.mkdir': (0,), 'os.rename': (0, 1), 'os.remove': (0,), 'os.rmdir': (0,),
             'shutil.move': (0, 1), 'shutil.rmtree': (0,), 'os.truncate': (0,)}

  def _hook(event, args):
    if getattr(_busy, 'on', False):
      return
    if event == 'open':
      path, mode, flags = args
      writing = (any(c in mode for c in 'wax+') if isinstance(mode, str)
                 else bool((flags or 0) & _writing_flags))
      paths = [path] if writing else []
    elif event in _EVENTS:
      paths = [args[i] for i in _EVENTS[event]]
    else:
      return
    _busy.on = True
    try:
      for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)):
          full = os.path.realpath(os.fsdecode(os.fspath(path)))
          if full.startswith(_root):
            _log.write(f'{event} {full[len(_root):]}\n')
    finally:
      _busy.on = False

  sys.addaudithook(_hook)
'''


def _free_port():
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


class _Run:
  """Launches `python -m experiments.main` processes, output to files, with bounded waits."""

  def __init__(self, root, tfds_dir):
    self.root = root
    self.tfds_dir = tfds_dir
    self.audit_dir = os.path.join(root, 'audit')
    os.makedirs(self.audit_dir, exist_ok=True)
    with open(os.path.join(self.audit_dir, 'sitecustomize.py'), 'w') as f:
      f.write(_AUDIT_HOOK)

  def start(self, workdir, name, devices, process=None, port=None):
    env = dict(os.environ)
    for key in ('XLA_FLAGS', 'JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID'):
      env.pop(key, None)
    env.update({
        'PYTHONPATH': os.pathsep.join([self.audit_dir, REPO, env.get('PYTHONPATH', '')]),
        'JAX_PLATFORMS': 'cpu', 'PYTHONUNBUFFERED': '1',
        'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
        'WAVEGRAD_TEST_WRITE_AUDIT': os.path.join(self.audit_dir, f'{name}.txt'),
        'WAVEGRAD_TEST_AUDIT_ROOT': workdir,
    })
    if process is not None:
      # The documented multi-process launch; CPU devices of several processes talk over gloo.
      env.update({'JAX_COORDINATOR_ADDRESS': f'127.0.0.1:{port}', 'JAX_NUM_PROCESSES': '2',
                  'JAX_PROCESS_ID': str(process), 'JAX_CPU_COLLECTIVES_IMPLEMENTATION': 'gloo'})
    args = launcher_args(workdir, self.tfds_dir, NUM_STEPS) + [
        '--config.logging.record_examples=True',
        # The restarted processes read the programs the first ones compiled.
        f'--config.compile.cache_dir={os.path.join(self.root, "jax_cache")}',
        '--config.mesh.initialization_timeout_seconds=120',
        f'--config.mesh.heartbeat_timeout_seconds={HEARTBEAT_SECONDS}',
        f'--config.mesh.shutdown_timeout_seconds={HEARTBEAT_SECONDS}']
    log = open(os.path.join(self.root, f'{name}.log'), 'w')
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = log.name
    log.close()
    return proc

  @staticmethod
  def finish(proc, deadline):
    """(returncode, output) once `proc` exits; kills it and fails at `deadline` (time.time())."""
    try:
      proc.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
      with open(proc.log_path) as f:
        raise AssertionError(f'{proc.args[:3]} did not finish in time:\n{f.read()[-3000:]}')
    with open(proc.log_path) as f:
      return proc.returncode, f.read()


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """One process over 4 devices, and 2 processes x 2 devices killed part-way and restarted."""
  root = str(tmp_path_factory.mktemp('multiprocess'))
  tfds_dir = os.path.join(root, 'tfds')
  from experiments.configs import tiny  # pylint: disable=g-import-not-at-top
  from wavegrad_jax.data import options as data_options  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.data.tfds_dir, config.data.max_files, config.data.heldout_fraction = tfds_dir, 8, 0.3
  data_options.prepare_dataset_from_config(config)  # built once here; the runs only open it

  # A process stopped by JAX's coordination service aborts: no core files (the limit is inherited).
  core_limit = resource.getrlimit(resource.RLIMIT_CORE)
  resource.setrlimit(resource.RLIMIT_CORE, (0, core_limit[1]))
  try:
    return _train_kill_restart(root, tfds_dir)
  finally:
    resource.setrlimit(resource.RLIMIT_CORE, core_limit)


def _train_kill_restart(root, tfds_dir):
  launcher = _Run(root, tfds_dir)
  one, two = os.path.join(root, 'one'), os.path.join(root, 'two')
  deadline = time.time() + 600
  single = launcher.start(one, 'single', devices=4)
  port = _free_port()
  first = [launcher.start(two, f'first_{p}', devices=2, process=p, port=port) for p in (0, 1)]

  # Kill process 1 once process 0 has logged step 5 and checkpoint 4 is on disk.
  while True:
    if any(p.poll() is not None for p in first):
      outputs = [launcher.finish(p, deadline)[1][-2000:] for p in first]
      raise AssertionError('the two-process run ended before it could be killed:\n'
                           + '\n'.join(outputs))
    if (max(read_metrics(two), default=0) >= 5
        and os.path.exists(os.path.join(two, 'checkpoints', '4'))):
      break
    if time.time() > deadline:
      for p in first:
        p.kill()
      raise AssertionError('the two-process run did not reach step 5 in time')
    time.sleep(0.05)
  first[1].send_signal(signal.SIGKILL)
  killed_at = time.time()
  rc_survivor, log_survivor = launcher.finish(first[0], killed_at + HEARTBEAT_SECONDS + 90)
  survivor_seconds = time.time() - killed_at
  launcher.finish(first[1], deadline)
  steps_before_restart = max(read_metrics(two), default=0)

  port = _free_port()
  second = [launcher.start(two, f'second_{p}', devices=2, process=p, port=port) for p in (0, 1)]
  results = {'one': one, 'two': two, 'audit_dir': launcher.audit_dir,
             'rc_survivor': rc_survivor, 'log_survivor': log_survivor,
             'survivor_seconds': survivor_seconds, 'steps_before_restart': steps_before_restart}
  for name, proc in (('second_0', second[0]), ('second_1', second[1]), ('single', single)):
    results[f'rc_{name}'], results[f'log_{name}'] = launcher.finish(proc, deadline)
  return results


def _examples_read(workdir, process):
  """{step: record} of examples_read/process_<k>.jsonl (the last record of each step)."""
  out = {}
  with open(os.path.join(workdir, 'examples_read', f'process_{process}.jsonl')) as f:
    for line in f:
      record = json.loads(line)
      out[record['step']] = record
  return out


def test_both_processes_finish_after_the_restart(runs):
  for name in ('second_0', 'second_1', 'single'):
    assert runs[f'rc_{name}'] == 0, runs[f'log_{name}'][-3000:]
  assert 'mesh {\'data\': 4} over 4 cpu device(s), 2 process(es)' in runs['log_second_0']
  assert 'resumed from step' in runs['log_second_0']
  assert runs['steps_before_restart'] < NUM_STEPS


def test_killing_one_process_stops_the_other_with_a_clear_message(runs):
  assert runs['rc_survivor'] != 0
  assert runs['survivor_seconds'] < HEARTBEAT_SECONDS + 60, runs['survivor_seconds']
  log = runs['log_survivor']
  assert 'Trained to step' not in log
  # JAX's coordination service names the dead task; a collective that fails first gives ours.
  assert ('another task died' in log or 'another process of this run stopped' in log), log[-3000:]


def test_each_process_reads_only_its_own_shard_of_every_batch(runs):
  single = _examples_read(runs['one'], 0)
  shards = [_examples_read(runs['two'], p) for p in (0, 1)]
  assert set(range(NUM_STEPS)) <= set(single)
  for step in range(NUM_STEPS):
    first, second = shards[0][step], shards[1][step]
    assert first['process'] == 0 and second['process'] == 1
    # Global batch 4: process 0 reads examples 4s, 4s+1 and process 1 reads 4s+2, 4s+3 ...
    assert first['examples'] == [4 * step, 4 * step + 1], first
    assert second['examples'] == [4 * step + 2, 4 * step + 3], second
    # ... which together are exactly the batch the single process reads, crops included.
    for key in ('ids', 'utterances', 'first_frames'):
      assert first[key] + second[key] == single[step][key], (step, key)


def test_two_processes_train_what_one_process_over_four_devices_trains(runs):
  one, two = read_metrics(runs['one']), read_metrics(runs['two'])
  assert sorted(one) == sorted(two) == list(range(1, NUM_STEPS + 1))
  np.testing.assert_allclose([two[s] for s in sorted(two)], [one[s] for s in sorted(one)],
                             rtol=1e-5)
  np.testing.assert_allclose(list(read_metrics(runs['two'], 'eval', 'heldout_loss').values()),
                             list(read_metrics(runs['one'], 'eval', 'heldout_loss').values()),
                             rtol=1e-5)
  for ema in (True, False):
    params_one, _, step_one = checkpoints.restore_params(runs['one'], ema=ema)
    params_two, _, step_two = checkpoints.restore_params(runs['two'], ema=ema)
    assert step_one == step_two == NUM_STEPS
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 params_two, params_one)


def test_every_process_writes_its_part_of_each_checkpoint(runs):
  for step in (8, 12):
    state = os.path.join(runs['two'], 'checkpoints', str(step), 'state')
    assert {'ocdbt.process_0', 'ocdbt.process_1'} <= set(os.listdir(state)), os.listdir(state)
    assert os.path.exists(os.path.join(state, 'commit_success.txt'))


def _audited_writes(audit_dir, prefix):
  paths = set()
  for name in os.listdir(audit_dir):
    if name.startswith(prefix) and name.endswith('.txt'):
      with open(os.path.join(audit_dir, name)) as f:
        paths.update(line.split(' ', 1)[1].strip() for line in f if ' ' in line)
  return paths


def test_only_process_zero_writes_logs_samples_and_the_config(runs):
  zero = _audited_writes(runs['audit_dir'], 'second_0') | _audited_writes(runs['audit_dir'],
                                                                          'first_0')
  one = _audited_writes(runs['audit_dir'], 'second_1') | _audited_writes(runs['audit_dir'],
                                                                         'first_1')
  top = lambda paths: {p.split(os.sep)[0] for p in paths}
  assert {'metrics.jsonl', 'tensorboard', 'samples'} <= top(zero), sorted(zero)
  assert any(p.startswith('config.json') for p in zero), sorted(zero)
  # Process 1 writes only its own record of the examples it read (and orbax its checkpoint part).
  own = os.path.join('examples_read', 'process_1.jsonl')
  others = {p for p in one if p.split(os.sep)[0] not in CHECKPOINT_DIRS}
  assert own in others and others <= {'examples_read', own}, sorted(one)
