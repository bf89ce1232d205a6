"""Nothing lost, nothing stale, errors before work: one test per defect of issue 9.

- A resume under settings that change the saved state is refused, nothing is set aside, and
  --start_afresh keeps the old run.
- A failed checkpoint write (an injected "No space left on device") stops training at once; a rerun
  resumes from the last good checkpoint (and names a setting changed since).
- A prepared folder dataset is rebuilt when a file is fixed or added.
- A missing data folder is reported before anything is created or compiled.
- A restart from an earlier step keeps the metrics it drops.
- Inference commands take --config.<section>.<field> overrides without a --config file, and name
  the data.unseen_speakers setting when the unseen split is empty.

Training runs in-process on the minimal model of tests/data/prechange_run and 16 embedded-corpus
files; about a minute on 2 CPU cores.
"""
import errno
import glob
import json
import os
import re
import shutil

import numpy as np
import orbax.checkpoint as ocp
import pytest
import soundfile

from tests import launcher_driver
from tests.data import make_prechange_fixture as fixture
from wavegrad_jax import errors
from wavegrad_jax.data import options as data_options
from wavegrad_jax.training import reporting
from wavegrad_jax.training import trainer as train
from wavegrad_jax.data import builders
from wavegrad_jax.data import fingerprint

_FILLETS = '/usr/share/games/fillets-ng/sound'
needs_fillets = pytest.mark.skipif(not os.path.isdir(_FILLETS),
                                   reason='Debian fillets-ng-data-cs not installed')


def _tree(root):
  """{relative path: file bytes, or None for a folder} of everything under `root`."""
  out = {}
  for folder, dirs, files in os.walk(root):
    for name in dirs:
      out[os.path.relpath(os.path.join(folder, name), root)] = None
    for name in files:
      with open(os.path.join(folder, name), 'rb') as f:
        out[os.path.relpath(os.path.join(folder, name), root)] = f.read()
  return out


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  """A prepared 16-file embedded-corpus dataset for the minimal model's runs."""
  path = str(tmp_path_factory.mktemp('tfds'))
  data_options.prepare_dataset_from_config(_config(path, 1))
  return path


def _config(tfds, num_steps, **train_fields):
  """The prechange run's config (today's spelling) on the small dataset, evaluation off."""
  config = fixture.fixture_config()
  config.data.tfds_dir, config.data.max_files, config.data.heldout_fraction = tfds, 8, 0.3
  config.train.batch_size = 4
  config.train.num_steps = num_steps
  config.train.eval_every_steps = 0
  config.train.log_every_steps = 1
  config.logging.progress_bar = False
  for k, v in train_fields.items():
    config.train[k] = v
  return config


def _logged_steps(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line)['step'] for line in f if '"train"' in line]


# ------------------------------------------------------------------- 1. resume under a new setting


@needs_fillets
def test_resume_with_another_optimiser_is_refused_and_nothing_is_set_aside(tmp_path, tfds_dir):
  workdir = str(tmp_path / 'run')
  shutil.copytree(fixture.WORKDIR, workdir)
  history = ''.join(json.dumps({'step': s, 'kind': 'train', 'loss': 0.5}) + '\n'
                    for s in (50, 100))
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
    f.write(history)
  before = _tree(workdir)
  # No clipping turns the optimiser state (clip, adam) into (adam): another tree of arrays.
  config = _config(tfds_dir, 110, grad_clip_norm=0.0)
  with pytest.raises(errors.ResumeMismatchError) as raised:
    train.train_and_evaluate(config, workdir)
  first, *details = str(raised.value).splitlines()
  # A short first line naming the setting and the ways out; the arrays on the lines after it.
  assert re.search(r'checkpoints/100 holds a training state made under other settings.*'
                   r'train.grad_clip_norm: 1.0 in the checkpoint vs 0.0 now.*Nothing was '
                   r'changed.*--start_afresh', first), first
  assert len(first) < 400 and 'arrays only in the checkpoint' not in first, first
  assert any('arrays only in the checkpoint' in line for line in details), details
  assert _tree(workdir) == before  # no checkpoint moved, metrics and config.json untouched

  # The explicit way out: the old run moves aside, whole, and training starts from step 0.
  config.train.num_steps = 2
  summary = train.train_and_evaluate(config, workdir, start_afresh=True)
  assert summary['step'] == 2
  (previous,) = glob.glob(os.path.join(workdir, 'previous_runs', '*'))
  assert _tree(previous) == before
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2']
  assert _logged_steps(workdir) == [1, 2]


def test_restart_from_an_earlier_step_keeps_the_dropped_metrics(tmp_path):
  path = str(tmp_path / 'metrics.jsonl')
  lines = [json.dumps({'step': s, 'kind': 'train', 'loss': 1.0 / s}) for s in (10, 20, 30, 40)]
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  assert reporting.truncate_metrics(path, 40) is None  # nothing past the checkpoint: no copy
  backup = reporting.truncate_metrics(path, 20)
  with open(path) as f:
    assert [json.loads(line)['step'] for line in f] == [10, 20]
  with open(backup) as f:
    assert f.read() == '\n'.join(lines) + '\n'
  assert os.path.dirname(backup) == str(tmp_path) and 'before_step_20' in backup


def test_reruns_from_one_restart_point_keep_one_backup_of_the_metrics(tmp_path):
  path = str(tmp_path / 'metrics.jsonl')

  def attempt(last):  # a run that logged up to `last` before failing
    with open(path, 'w') as f:
      f.write(''.join(json.dumps({'step': s, 'kind': 'train'}) + '\n' for s in range(10, last + 1,
                                                                                  10)))
  attempt(40)
  first = reporting.truncate_metrics(path, 20)
  os.rename(first, first[:-6] + '000000')  # as if made earlier (names carry the time, to seconds)
  attempt(50)
  second = reporting.truncate_metrics(path, 20)
  backups = sorted(n for n in os.listdir(tmp_path) if 'before_step_' in n)
  assert backups == [os.path.basename(second)]  # one copy per restart point, the newest
  with open(second) as f:
    assert [json.loads(line)['step'] for line in f] == [10, 20, 30, 40, 50]
  attempt(40)
  third = reporting.truncate_metrics(path, 30)  # another restart point keeps its own
  assert sorted(n for n in os.listdir(tmp_path) if 'before_step_' in n) == sorted(
      [os.path.basename(second), os.path.basename(third)])


# ------------------------------------------------------------------------- 3. a failed save


@needs_fillets
def test_failed_save_stops_the_run_at_once_and_a_rerun_resumes(tmp_path, tfds_dir, monkeypatch,
                                                              capsys):
  workdir = str(tmp_path / 'run')
  config = _config(tfds_dir, 18, checkpoint_every_steps=6)
  config.checkpoint.async_save = True
  writes = []
  original = ocp.JsonCheckpointHandler._save_fn  # pylint: disable=protected-access

  async def disk_full_after_one_checkpoint(self, item, directory):
    writes.append(str(directory))
    if len(writes) > 1:  # the config item of every checkpoint after the first
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
    return await original(self, item, directory)

  monkeypatch.setattr(ocp.JsonCheckpointHandler, '_save_fn', disk_full_after_one_checkpoint)
  with pytest.raises(errors.CheckpointSaveError) as raised:
    train.train_and_evaluate(config, workdir)
  message = str(raised.value)
  assert '\n' not in message
  assert message == (f'saving checkpoint 12 to {workdir}/checkpoints failed: No space left on '
                     'device. Training stopped. Free space (or fix the folder), then rerun the '
                     'same command: it resumes from checkpoint 6')
  # Stopped at the step the failure was noticed, not at the next save (step 18). The background
  # write takes a machine-dependent number of (tiny, fast) steps to fail, hence the range.
  assert 12 <= max(_logged_steps(workdir)) < 18
  assert [n for n in os.listdir(os.path.join(workdir, 'checkpoints')) if n.isdigit()] == ['6']

  monkeypatch.undo()
  capsys.readouterr()
  config.train.learning_rate = 1e-3  # changes the training, not the saved state: resumes, saying so
  summary = train.train_and_evaluate(config, workdir)
  assert summary['step'] == 18
  printed = capsys.readouterr().out
  assert 'resumed from step 6' in printed
  assert ('resuming under changed settings: train.learning_rate: 0.003 in the checkpoint vs 0.001 '
          'now') in printed
  assert sorted(s for s in os.listdir(os.path.join(workdir, 'checkpoints'))
                if s.isdigit()) == ['12', '18']
  assert _logged_steps(workdir) == list(range(1, 19))


# ------------------------------------------------------------------------- 2. a stale dataset


def _voice(seconds, seed, rate=22050):
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * rate)) / rate
  return (0.3 * np.sin(2 * np.pi * (120 + 20 * seed) * t) + 0.01 * rng.standard_normal(t.size)
          ).astype(np.float32)


def test_folder_dataset_is_rebuilt_when_a_file_is_fixed_or_added(tmp_path, capsys, caplog):
  folder = tmp_path / 'corpus' / 'spk'
  folder.mkdir(parents=True)
  for i in range(3):
    soundfile.write(str(folder / f'u{i}.wav'), _voice(0.5, i), 22050)
  (folder / 'bad.wav').write_bytes(b'RIFF\x24\x00\x00\x00WAVEjunk' + bytes(40))
  config = fixture.fixture_config()
  config.data.source, config.data.dir = 'folder', str(tmp_path / 'corpus')
  config.data.tfds_dir, config.data.heldout_fraction = str(tmp_path / 'tfds'), 0.0

  def train_ids():
    splits = data_options.prepare_dataset_from_config(config)
    return [e['id'].decode() for e in splits['train']], splits.info.data_dir

  ids, data_dir = train_ids()
  assert ids == ['spk/u0.wav', 'spk/u1.wav', 'spk/u2.wav']
  assert '1 skipped as unreadable' in capsys.readouterr().out
  assert train_ids() == (ids, data_dir)  # unchanged folder: reused, no rebuild
  assert 'changed' not in capsys.readouterr().out

  soundfile.write(str(folder / 'bad.wav'), _voice(0.5, 7), 22050)  # the corrupt file is fixed
  ids, again = train_ids()
  assert again == data_dir and ids == ['spk/bad.wav', 'spk/u0.wav', 'spk/u1.wav', 'spk/u2.wav']
  printed = capsys.readouterr().out
  assert f'changed since its dataset was built (1 changed (spk/bad.wav)): deleting the stale ' \
         f'{data_dir}' in printed and '0 skipped as unreadable' in printed
  # Printed once, not logged as well (both reach the console).
  assert printed.count('changed since its dataset was built') == 1
  assert not [r for r in caplog.records if 'changed since its dataset' in r.getMessage()]

  soundfile.write(str(folder / 'u9.wav'), _voice(0.5, 9), 22050)  # a file is added
  ids, _ = train_ids()
  assert 'spk/u9.wav' in ids and len(ids) == 5
  assert '(1 added (spk/u9.wav))' in capsys.readouterr().out

  # A build made before listings were recorded is trusted; one whose folder is gone still opens.
  shutil.rmtree(tmp_path / 'corpus')
  assert len(train_ids()[0]) == 5


def test_listing_changes_names_what_changed():
  old = {'a.wav': [10, 1], 'b.wav': [10, 1], 'c.wav': [10, 1]}
  new = {'a.wav': [10, 1], 'b.wav': [11, 2], 'd.wav': [5, 3]}
  assert fingerprint.listing_changes(old, dict(old)) is None
  assert fingerprint.listing_changes(old, new) == ('1 added (d.wav), 1 removed (c.wav), '
                                                '1 changed (b.wav)')


# ------------------------------------------------------------------ 4. errors before any work


def test_missing_data_folder_fails_before_anything_is_created_or_compiled(tmp_path, monkeypatch):
  def compiled(*args, **kwargs):
    raise AssertionError('compiled before the data were checked')
  monkeypatch.setattr(train, 'compile_train_step', compiled)
  config = _config(str(tmp_path / 'tfds'), 10)
  config.data.dir = str(tmp_path / 'nowhere')
  with pytest.raises(builders.DataSourceError, match='nowhere does not exist'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert sorted(os.listdir(tmp_path)) == []


# ---------------------------------------------- 7. inference overrides without a --config file


def test_inference_overrides_apply_on_top_of_the_checkpoint_config(tmp_path):
  probe = 'tests.inference_config_probe'
  run = ['--workdir=' + fixture.WORKDIR]
  own_config = tmp_path / 'own_config.py'  # the run's own config, as a --config file
  own_config.write_text(
      'import json\nfrom wavegrad_jax.training import checkpoints\n\n\ndef get_config():\n'
      f'  with open({os.path.join(fixture.WORKDIR, "config.json")!r}) as f:\n'
      '    return checkpoints.config_from_dict(json.load(f))\n')
  cases = [{'module': probe, 'cwd': str(tmp_path), 'args': run + args} for args in (
      [],
      ['--config.sampling.eta=0', '--config.eval.ema=False', '--config.search.steps=3'],
      ['--config=' + str(own_config), '--config.sampling.eta=0.5'],
      # A config file of another model (the fixture is not tiny) is refused in one line.
      ['--config=' + os.path.join(launcher_driver.REPO, 'experiments/configs/tiny.py')],
  )]
  results = launcher_driver.drive(cases)
  refused = results.pop()
  assert refused['status'] == 1 and 'Traceback' not in refused['stderr'], refused['stderr'][-3000:]
  assert ('--config describes another model or frontend than the checkpoint'
          in refused['stderr'] and 'model.mel_channels: 8 in the checkpoint vs 64 now'
          in refused['stderr'])
  for r in results:
    assert r['status'] == 0, r['stderr'][-3000:]
  plain, overridden, from_file = (json.loads(r['stdout'].strip().splitlines()[-1]) for r in results)
  assert plain == {'eta': 1.0, 'ema': True, 'steps': '6', 'step': 100, 'file': False}
  assert overridden == {'eta': 0.0, 'ema': False, 'steps': '3', 'step': 100, 'file': False}
  assert from_file == {'eta': 0.5, 'ema': True, 'steps': '6', 'step': 100, 'file': True}
  assert ('sampling, eval, search and compile sections replace the checkpoint'
          in results[2]['stderr'])


def test_empty_unseen_split_names_the_setting(tmp_path):
  corpus = tmp_path / 'corpus' / 'spk'
  corpus.mkdir(parents=True)
  for i in range(3):
    soundfile.write(str(corpus / f'u{i}.wav'), _voice(0.5, i), 22050)
  workdir = tmp_path / 'run'
  shutil.copytree(fixture.WORKDIR, workdir)
  with open(workdir / 'config.json') as f:
    config = json.load(f)
  config['data'].update(source='folder', dir=str(tmp_path / 'corpus'),
                        tfds_dir=str(tmp_path / 'tfds'), unseen_speakers=[])
  with open(workdir / 'config.json', 'w') as f:
    json.dump(config, f)
  (result,) = launcher_driver.drive([{'module': 'experiments.evaluate', 'cwd': str(tmp_path),
                                      'args': [f'--workdir={workdir}', '--split=unseen']}])
  assert result['status'] == 1 and 'Traceback' not in result['stderr']
  assert ("error: the unseen split of this run's data (folder corpus in "
          f"{tmp_path / 'corpus'}) holds no utterances: a folder source has unseen speakers only "
          'when the run trained with --config.data.unseen_speakers=') in result['stderr']
  assert not os.path.exists(workdir / 'eval')


# ------------------------------------------------------- issue 22.4: a full disk, one line


class _FailingManager:
  """An orbax manager whose background save failed for want of space and whose close re-raises."""
  directory = '/run/checkpoints'

  def __init__(self, steps):
    self.steps = steps

  def all_steps(self):
    return self.steps

  def wait_until_finished(self):
    raise ValueError('RESOURCE_EXHAUSTED: Error writing local file: Failed to write 41332 bytes: '
                     "No space left on device [os_error_code='28']")

  def close(self):
    raise RuntimeError('Event loop is closed')


def test_closing_after_a_failed_save_raises_its_one_line_error_not_orbax_s():
  from wavegrad_jax.training import checkpoints  # pylint: disable=g-import-not-at-top
  ckpts = object.__new__(checkpoints.RunCheckpoints)
  ckpts.directory, ckpts.best_directory = '/run/checkpoints', '/run/checkpoints_best'
  ckpts._manager, ckpts._best = _FailingManager([20, 40]), None  # pylint: disable=protected-access
  ckpts._save_failed = False  # pylint: disable=protected-access
  ckpts._pending = {id(ckpts._manager): 60}  # pylint: disable=protected-access
  with pytest.raises(errors.CheckpointSaveError) as raised:
    ckpts.close()
  assert str(raised.value) == (
      'saving checkpoint 60 to /run/checkpoints failed: No space left on device. Training '
      'stopped. Free space (or fix the folder), then rerun the same command: it resumes from '
      'checkpoint 40')


def test_a_full_disk_is_one_error_line_from_the_training_launcher(tmp_path):
  """Whatever a full disk fails (config.json on a rerun, a background checkpoint write followed
  by orbax's "Event loop is closed", a sample wav without an errno), the launcher prints one line
  naming the cause and the checkpoint it resumes from; any other error keeps its traceback."""
  workdir = tmp_path / 'run'
  shutil.copytree(fixture.WORKDIR, workdir)  # holds checkpoint 100
  args = ['--config=' + os.path.join(launcher_driver.REPO, 'experiments/configs/tiny.py'),
          f'--workdir={workdir}']
  cases = [{'module': 'tests.disk_full_probe', 'cwd': str(tmp_path),
            'args': args + [f'--probe_failure={kind}']}
           for kind in ('config', 'orbax', 'sample', 'bug')]
  results = launcher_driver.drive(cases)
  resume = 'Training stopped. Free space (or fix the folder), then rerun the same command: ' \
           'it resumes from checkpoint 100'
  expected = {'config': f'error: writing to {workdir}/config.json failed: No space left on '
                        f'device. {resume}',
              'orbax': f'error: writing to {workdir} failed: No space left on device. {resume}',
              'sample': f'error: writing to {workdir} failed: No space left on device. {resume}'}
  for case, result in zip(cases, results):
    kind = case['args'][-1].split('=')[1]
    output = (result['stdout'] + result['stderr']).strip().splitlines()
    if kind == 'bug':
      assert result['status'] == 1 and 'Traceback' in result['stderr']  # a bug stays a bug
      continue
    assert result['status'] == 1, result
    assert output == [expected[kind]], output  # the one line alone
