"""Both processes and both network families through the same launchers: a tiny frame-domain run
under flow matching trains, resumes, evaluates, vocodes, compares, searches time grids and is
scored by the learning curve, and samplers of the other process are refused in one line."""
import json
import os

import pytest

from tests import launcher_driver

FRAME = ['--config.model.dim=16', '--config.model.intermediate_dim=32',
         '--config.model.num_layers=2', '--config.model.cond_dim=16']
SMALL = ['--config.data.max_files=8', '--config.data.heldout_fraction=0.3',
         '--config.data.segment_frames=8', '--config.train.batch_size=4',
         '--config.train.eval_every_steps=6', '--config.train.checkpoint_every_steps=3',
         '--config.train.num_audio_examples=1', '--config.train.audio_example_seconds=0.5',
         '--config.train.heldout_loss_batches=1', '--config.train.heldout_loss_utterances=2',
         '--config.logging.progress_bar=False']


def _case(module, args, cwd):
  return {'module': module, 'args': args, 'cwd': cwd}


@pytest.fixture(scope='module')
def flow_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('flow')
  tfds = str(root / 'tfds')
  work = str(root / 'run')
  train = ['--config=experiments/configs/frame_small_flow.py', f'--workdir={work}',
           f'--config.data.tfds_dir={tfds}'] + FRAME + SMALL
  repo = launcher_driver.REPO
  inference = [f'--workdir={work}', '--max_utterances=1', '--max_seconds=0.5']
  cases = [
      _case('experiments.main', train + ['--config.train.num_steps=3'], repo),
      _case('experiments.main', train + ['--config.train.num_steps=6'], repo),  # resumes at 3
      _case('experiments.evaluate', inference + ['--schedules=1,heun_grid',
                                                  f'--output_dir={root}/eval'], repo),
      _case('experiments.compare_samplers', inference + [
          '--schedules=1,2', '--samplers=euler,heun,griffin_lim', '--splits=heldout',
          f'--output={root}/compare'], repo),
      _case('experiments.compare_samplers', inference + ['--samplers=ancestral'], repo),
      _case('experiments.synthesize', [f'--workdir={work}', '--schedule=power:3:2',
                                       '--input=/usr/share/sounds/alsa/Front_Center.wav',
                                       f'--output_dir={root}/synth'], repo),
      _case('experiments.search_schedules', [f'--workdir={work}', '--steps=1,3',
                                             f'--output_dir={root}/search',
                                             '--config.search.num_utterances=1',
                                             '--config.search.segment_frames=8',
                                             '--config.search.coordinate_max_sweeps=1'], repo),
      _case('experiments.learning_curve', [f'--runs=flow={work}', '--schedules=1,2',
                                           '--splits=heldout', '--max_utterances=1',
                                           '--max_seconds=0.5', f'--output={root}/lc.json'], repo),
      _case('experiments.evaluate', inference + ['--schedules=list:0,0.7,0.5,1'], repo),
      _case('experiments.evaluate', inference + ['--config.sampling.eta=0.0',
                                                  '--schedules=2'], repo),
  ]
  # 'heun_grid' is not a grid: the evaluate case above must refuse it in one line.
  return root, work, launcher_driver.drive(cases, timeout=1500)


def _ok(result):
  assert result['status'] == 0, (result['stdout'][-2000:], result['stderr'][-3000:])


def test_train_and_resume(flow_run):
  _, work, results = flow_run
  _ok(results[0])
  _ok(results[1])
  assert 'resumed from step 3' in results[1]['stdout'] + results[1]['stderr']
  steps = sorted(int(s) for s in os.listdir(os.path.join(work, 'checkpoints')))
  assert steps == [3, 6]
  config = json.load(open(os.path.join(work, 'config.json')))
  assert config['process']['name'] == 'flow' and config['model']['name'] == 'frame_convnext'


def test_a_bad_grid_name_is_one_line(flow_run):
  _, _, results = flow_run
  r = results[2]
  assert r['status'] != 0 and 'Traceback' not in r['stderr']
  assert "cannot read time grid 'heun_grid'" in r['stderr']


def test_compare_and_the_other_process_refused(flow_run):
  root, _, results = flow_run
  _ok(results[3])
  rows = json.load(open(os.path.join(root, 'compare', 'results.json')))['rows']
  evaluations = {(r['sampler'], r['schedule']): r.get('network_evaluations') for r in rows}
  assert evaluations[('euler', '1')] == 1 and evaluations[('heun', '2')] == 3
  assert evaluations[('euler', '2')] == 2
  refused = results[4]
  assert refused['status'] != 0 and 'Traceback' not in refused['stderr']
  assert "['ancestral'] sample another process than this run's 'flow'" in refused['stderr']


def test_synthesize_and_search(flow_run):
  root, _, results = flow_run
  _ok(results[5])
  assert any(f.endswith('.wav') for f in os.listdir(os.path.join(root, 'synth')))
  _ok(results[6])
  best = json.load(open(os.path.join(root, 'search', 'best_N3.json')))
  assert len(best['times']) == 4 and best['times'][0] == 0.0 and best['times'][-1] == 1.0
  assert 'N=3 time grid: best LS-MSE' in results[6]['stdout']


def test_learning_curve_scores_a_flow_run(flow_run):
  root, _, results = flow_run
  _ok(results[7])
  data = json.load(open(os.path.join(root, 'lc.json')))
  run = data['runs'][0]
  assert run['process']['name'] == 'flow' and run['sampler'] == 'euler'
  assert [p['step'] for p in run['points']] == [3, 6]
  assert all(p['train_seconds'] > 0 for p in run['points'])
  assert os.path.exists(os.path.join(root, 'lc_seconds.png'))


def test_bad_time_grid_and_wavegrad_sampler_fields_are_refused(flow_run):
  _, _, results = flow_run
  for r, pattern in ((results[8], 'rising strictly from 0 to 1'),
                     (results[9], "sampling.eta=0.0 set a reverse-diffusion sampler")):
    assert r['status'] != 0 and 'Traceback' not in r['stderr'], r['stderr'][-2000:]
    assert pattern in r['stderr']
