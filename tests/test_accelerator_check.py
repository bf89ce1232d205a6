"""The accelerator check in its reduced CPU mode, so the script that GPUs run cannot rot."""
import json
import math
import os
import subprocess
import sys

from tests.test_train import REPO, _env


def test_reduced_accelerator_check_writes_every_figure(tmp_path):
  out = tmp_path / 'results'
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.accelerator_check', '--reduced',
       f'--output_dir={out}', f'--tfds_dir={tmp_path / "tfds"}'],
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  assert os.listdir(out) == ['accelerator_cpu_reduced.json']  # named after the device
  report = json.load(open(out / 'accelerator_cpu_reduced.json'))
  assert report['mode'] == 'reduced' and report['backend'] == 'cpu'
  assert report['command'].startswith('python -m experiments.accelerator_check --reduced')
  assert report['skipped'] == []
  finite = lambda v: isinstance(v, float) and math.isfinite(v) and v > 0
  [train] = report['train']
  assert train['dtype'] == 'float32' and finite(train['examples_per_sec'])
  assert train['host_peak_rss_bytes'] > 0
  assert [(r['num_steps'], r['batch_size']) for r in report['sampler']] == [(6, 1), (6, 2)]
  assert all(finite(r['rtf']) for r in report['sampler'])
  assert finite(report['search'][0]['candidates_per_second'])
  run = report['run']
  assert sorted(run['losses'], key=int) == ['1', '2', '3']
  assert all(math.isfinite(v) for v in run['losses'].values()) and finite(run['steps_per_sec_median'])
