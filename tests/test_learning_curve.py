"""The learning-curve bookkeeping: run specs, checkpoint selection, logged losses, crossings, plot."""
import json
import os

import pytest

from wavegrad_jax.training import checkpoints
from wavegrad_jax import jsonable
from wavegrad_jax.evaluation import learning_curve as lc


def _run_dir(tmp_path, steps, eval_records=()):
  workdir = tmp_path / 'run'
  (workdir / 'checkpoints').mkdir(parents=True)
  for s in steps:
    (workdir / 'checkpoints' / str(s)).mkdir()
  (workdir / 'checkpoints' / '7.orbax-checkpoint-tmp').mkdir()  # an unfinished save: not a step
  (workdir / checkpoints.CONFIG_FILE).write_text(json.dumps({'checkpoint': {
      'directory': 'checkpoints'}}))
  with open(workdir / 'metrics.jsonl', 'w') as f:
    for step, loss in eval_records:
      f.write(json.dumps({'step': step, 'kind': 'train', 'loss': 9.0}) + '\n')
      f.write(json.dumps({'step': step, 'kind': 'eval', 'heldout_loss': loss}) + '\n')
    f.write('{"step": 99, "kind": "ev')  # cut by a kill mid-write
  return str(workdir)


def test_run_specs_are_labelled_and_distinct():
  assert lc.parse_runs(['a=/x/run1', '/y/run2/']) == [('a', '/x/run1'), ('run2', '/y/run2/')]
  with pytest.raises(ValueError, match='distinct labels'):
    lc.parse_runs(['/x/run', '/y/run'])
  with pytest.raises(ValueError, match='LABEL=WORKDIR'):
    lc.parse_runs(['a='])


def test_checkpoint_steps_thins_but_keeps_the_latest(tmp_path):
  workdir = _run_dir(tmp_path, [500, 1000, 1500, 2000, 2051])
  assert lc.checkpoint_steps(workdir) == [500, 1000, 1500, 2000, 2051]
  assert lc.checkpoint_steps(workdir, every=1000) == [1000, 2000, 2051]
  assert lc.checkpoint_steps(workdir, every=1000, max_step=2000) == [1000, 2000]
  with pytest.raises(FileNotFoundError, match='no checkpoint'):
    lc.checkpoint_steps(workdir, max_step=100)


def test_logged_heldout_losses_read_eval_records_only(tmp_path):
  workdir = _run_dir(tmp_path, [10], [(10, 0.5), (20, 0.25)])
  assert lc.logged_heldout_losses(workdir) == {10: 0.5, 20: 0.25}
  assert lc.logged_heldout_losses(str(tmp_path / 'nowhere')) == {}


def _results():
  def point(step, stoi, pesq, loss):
    rows = [{'split': 'heldout', 'schedule': '6', 'stoi': stoi, 'pesq': pesq, 'mrstft': 2.0},
            {'split': 'heldout', 'schedule': '50', 'stoi': stoi + 0.1, 'pesq': None,
             'mrstft': 1.0}]
    return {'step': step, 'heldout_loss': loss, 'rows': rows}
  run = {'label': 'paper', 'points': [point(1000, 0.5, 1.1, 0.09), point(2000, 0.8, 1.3, 0.07),
                                      point(3000, 0.95, 1.2, None)],
         'griffin_lim': [{'split': 'heldout', 'schedule': 'none', 'stoi': 0.85, 'pesq': 3.0,
                          'mrstft': 1.5}]}
  return {'runs': [run], 'splits': ['heldout'], 'schedules': ['6', '50']}


def test_series_and_crossings_against_griffin_lim():
  results = _results()
  run = results['runs'][0]
  assert lc.series(run, 'heldout', '6', 'stoi') == ([1000, 2000, 3000], [0.5, 0.8, 0.95])
  assert lc.series(run, 'heldout', '50', 'pesq') == ([], [])  # missing values are left out
  assert lc.crossing(run, run['griffin_lim'], 'heldout', '6', 'stoi') == 3000
  assert lc.crossing(run, run['griffin_lim'], 'heldout', '50', 'stoi') == 2000
  assert lc.crossing(run, run['griffin_lim'], 'heldout', '6', 'pesq') is None
  # Lower is better for a distance: 2.0 never beats 1.5, 1.0 does from the first point.
  assert lc.crossing(run, run['griffin_lim'], 'heldout', '6', 'mrstft', False) is None
  assert lc.crossing(run, run['griffin_lim'], 'heldout', '50', 'mrstft', False) == 1000
  assert lc.crossing(run, [], 'heldout', '6', 'stoi') is None
  summary = {(e['schedule']): e for e in lc.summarize(results)}
  assert summary['6']['last_stoi'] == 0.95 and summary['6']['beats_griffin_lim_stoi_at'] == 3000
  assert summary['6']['beats_griffin_lim_pesq_at'] is None
  assert 'last_pesq' not in summary['50']


def test_plot_and_json_are_written(tmp_path):
  results = _results()
  results['runs'][0]['points'][0]['rows'][0]['stoi'] = float('nan')
  jsonable.write(str(tmp_path / 'out' / 'curve.json'), results)
  with open(tmp_path / 'out' / 'curve.json') as f:
    assert json.load(f)['runs'][0]['points'][0]['rows'][0]['stoi'] is None  # NaN -> null
  lc.plot(results, str(tmp_path / 'out' / 'curve.png'))
  with open(tmp_path / 'out' / 'curve.png', 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert os.path.getsize(tmp_path / 'out' / 'curve.png') > 10_000


def test_training_seconds_sum_each_interval_at_its_rate(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  with open(workdir / 'metrics.jsonl', 'w') as f:
    for step, rate in ((100, 2.0), (200, 4.0), (300, 1.0)):
      f.write(json.dumps({'step': step, 'kind': 'train', 'steps_per_sec': rate}) + '\n')
    f.write(json.dumps({'step': 300, 'kind': 'eval', 'heldout_loss': 0.1}) + '\n')
  assert lc.training_seconds(str(workdir)) == {100: 50.0, 200: 75.0, 300: 175.0}
  assert lc.training_seconds(str(tmp_path / 'nowhere')) == {}


def test_markdown_rows_pick_the_step_and_the_schedules():
  row = lambda split, schedule, stoi: {'split': split, 'schedule': schedule, 'stoi': stoi,
                                       'pesq': 1.5, 'dnsmos_ovrl': None}
  results = {'runs': [
      {'label': 'a', 'points': [{'step': 1000, 'rows': [row('heldout', '4', 0.5)]},
                                {'step': 2000, 'rows': [row('heldout', '4', 0.6),
                                                        row('unseen', '4', 0.4)]}]},
      {'label': 'b', 'points': [{'step': 2000, 'rows': [row('heldout', '4', 0.7)]}]}]}
  assert lc.markdown_rows(results, 'heldout', ['4', '50']) == [
      '| a | 2,000 | 0.600 / 1.50 / - | - |', '| b | 2,000 | 0.700 / 1.50 / - | - |']
  assert lc.markdown_rows(results, 'heldout', ['4'], step=1000) == ['| a | 1,000 | 0.500 / 1.50 / - |']
