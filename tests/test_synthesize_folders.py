"""Synthesis of folders at scale and of other mel conventions: batching, resume, bad files, outputs.

Issue 9 items 4 and 6 (outputs checked before any work; one bad file among good ones) and issue
12 items 2 and 6 (--mel_convention; thousands of mels: batches, progress, resume, nothing skipped
silently), with the small random model of test_synthesize.py, and the launcher end to end.
"""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile

from tests import test_synthesize as ts
from wavegrad_jax.training import checkpoints
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax import models as model_lib
from wavegrad_jax.inference import synthesize
from wavegrad_jax.training import trainer as train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
setup = ts.setup  # the module-scoped fixture: (config, model, params, vocode, betas)


def _mels(config, folder, count, frames=12):
  os.makedirs(folder, exist_ok=True)
  paths = []
  for i in range(count):
    path = os.path.join(folder, f'm{i}.npy')
    np.save(path, ts._log_mel(config, (frames + i) * ts.HOP))
    paths.append(path)
  return paths


def _counting(vocode):
  """`vocode`, recording how many mels each call got."""
  calls = []

  def wrapped(params, betas, mels, rng, **kw):
    calls.append(len(mels))
    return vocode(params, betas, mels, rng, **kw)
  return wrapped, calls


def _run(setup, inputs_dir, out_dir, **kw):
  config, _, params, vocode, betas = kw.pop('setup_override', None) or setup
  inputs = synthesize.collect_inputs(inputs_dir, exclude=out_dir)
  return synthesize.synthesize_files(kw.pop('vocode', vocode), params, betas, config, inputs,
                                     str(out_dir), jax.random.PRNGKey(0), progress=False, **kw)


# ------------------------------------------------------------------------ 12.6: batching, resume


def test_a_folder_is_vocoded_in_groups_and_resumed_where_it_stopped(setup, tmp_path, monkeypatch):
  config = setup[0].copy_and_resolve_references()
  config.eval.files_per_group = 2
  small = (config,) + setup[1:]
  _mels(config, tmp_path / 'in', 5)
  vocode, calls = _counting(setup[3])
  settings = {'checkpoint': 'test', 'betas': [float(b) for b in setup[4]]}
  # A crash while the third wav is being written: the first two are complete, the third has
  # only a partial temporary file, which must never count as done.
  real_write, writes = soundfile.write, []

  def crashing_write(path, *args, **kw):
    writes.append(path)
    if len(writes) == 3:
      with open(path, 'wb') as f:
        f.write(b'RIFF....WAVEfmt ')  # a torn header, as a kill mid-write leaves
      raise OSError('killed mid-write')
    return real_write(path, *args, **kw)

  monkeypatch.setattr(soundfile, 'write', crashing_write)
  with pytest.raises(OSError, match='killed mid-write'):
    _run(small, tmp_path / 'in', tmp_path / 'out', vocode=vocode, settings=settings)
  monkeypatch.setattr(soundfile, 'write', real_write)
  assert sorted(os.listdir(tmp_path / 'out')) == ['.m2.wav.partial', 'm0.wav', 'm1.wav',
                                                  'synthesis.json']
  assert calls == [2, 2]  # groups of files_per_group files
  first = {n: os.path.getmtime(tmp_path / 'out' / n) for n in ('m0.wav', 'm1.wav')}

  calls.clear()
  out = _run(small, tmp_path / 'in', tmp_path / 'out', vocode=vocode, settings=settings)
  assert [os.path.basename(p) for p in out['outputs']] == ['m2.wav', 'm3.wav', 'm4.wav']
  assert [os.path.basename(p) for p in out['skipped']] == ['m0.wav', 'm1.wav']
  assert calls == [2, 1] and out['failed'] == {}
  assert {n: os.path.getmtime(tmp_path / 'out' / n) for n in first} == first  # not rewritten
  assert sorted(os.listdir(tmp_path / 'out')) == [f'm{i}.wav' for i in range(5)] + [
      'synthesis.json']
  for i in range(5):
    assert soundfile.info(str(tmp_path / 'out' / f'm{i}.wav')).frames == (12 + i) * ts.HOP

  # A wav cut short by something else, and an input changed after its wav: both redone.
  with open(tmp_path / 'out' / 'm0.wav', 'r+b') as f:
    f.truncate(200)
  older = os.path.getmtime(tmp_path / 'in' / 'm4.npy') - 10
  os.utime(tmp_path / 'out' / 'm4.wav', (older, older))
  out = _run(small, tmp_path / 'in', tmp_path / 'out', vocode=vocode, settings=settings)
  assert [os.path.basename(p) for p in out['outputs']] == ['m0.wav', 'm4.wav']
  # Everything there and valid: nothing vocoded, nothing compiled.
  calls.clear()
  out = _run(small, tmp_path / 'in', tmp_path / 'out', vocode=vocode, settings=settings)
  assert out['outputs'] == [] and len(out['skipped']) == 5 and calls == []


def test_wavs_of_other_settings_are_not_mixed_in(setup, tmp_path):
  _mels(setup[0], tmp_path / 'in', 2)
  _run(setup, tmp_path / 'in', tmp_path / 'out', settings={'betas': [0.1, 0.2]})
  with pytest.raises(synthesize.SynthesisOutputError,
                     match=r'already holds 2 of these wavs.*betas.*--overwrite'):
    _run(setup, tmp_path / 'in', tmp_path / 'out', settings={'betas': [0.3]})
  out = _run(setup, tmp_path / 'in', tmp_path / 'out', settings={'betas': [0.3]}, resume=False)
  assert len(out['outputs']) == 2 and out['skipped'] == []
  assert synthesize.read_settings(str(tmp_path / 'out')) == {'betas': [0.3]}


def test_outputs_in_the_input_folder_are_not_inputs(setup, tmp_path):
  _mels(setup[0], tmp_path, 2)
  out = _run(setup, tmp_path, tmp_path)  # wavs written beside the mels
  assert len(out['outputs']) == 2
  assert [os.path.basename(s) for s, _ in synthesize.collect_inputs(tmp_path, exclude=tmp_path)
          ] == ['m0.npy', 'm1.npy']
  out = _run(setup, tmp_path, tmp_path)
  assert out['outputs'] == [] and len(out['skipped']) == 2


# ------------------------------------------------------------------ 9.6: one bad file among good


def test_bad_files_are_reported_and_the_good_ones_vocoded(setup, tmp_path):
  config = setup[0]
  good = _mels(config, tmp_path / 'in', 3)
  bad = {
      'empty.npy': b'',
      'garbage.npy': b'not a numpy file',
      'broken.wav': b'RIFF\x00\x00\x00\x00WAVEjunk',
  }
  for name, data in bad.items():
    (tmp_path / 'in' / name).write_bytes(data)
  np.save(tmp_path / 'in' / 'nan.npy', np.full((10, ts.N_MELS), np.nan, np.float32))
  np.save(tmp_path / 'in' / 'wide.npy', np.zeros((10, ts.N_MELS + 1), np.float32))
  out = _run(setup, tmp_path / 'in', tmp_path / 'out')
  assert sorted(os.path.basename(p) for p in out['outputs']) == ['m0.wav', 'm1.wav', 'm2.wav']
  reasons = {os.path.basename(k): v for k, v in out['failed'].items()}
  assert sorted(reasons) == sorted(list(bad) + ['nan.npy', 'wide.npy'])
  assert 'not a .npy array' in reasons['empty.npy'] and 'not a .npy' in reasons['garbage.npy']
  assert 'not a readable audio file' in reasons['broken.wav']
  assert 'NaN' in reasons['nan.npy'] and '17 mel bands' in reasons['wide.npy']
  for path, reason in out['failed'].items():
    assert reason.startswith(path)  # every reason names its file
  # Fail-fast, as an option: the first bad file stops the run before anything is vocoded.
  with pytest.raises(synthesize.SynthesisInputError, match='broken.wav'):
    _run(setup, tmp_path / 'in', tmp_path / 'out2', fail_fast=True)
  assert not os.path.exists(tmp_path / 'out2')
  assert len(good) == 3


# --------------------------------------------------------------- 9.4: outputs checked before work


def test_unwritable_outputs_are_refused_before_anything_is_created(tmp_path):
  (tmp_path / 'file').write_text('x')
  before = sorted(os.listdir(tmp_path))
  with pytest.raises(synthesize.SynthesisOutputError, match='is a file, not a folder'):
    synthesize.check_output_dir(str(tmp_path / 'file'))
  with pytest.raises(synthesize.SynthesisOutputError, match=r'cannot be created: .*file is a file'):
    synthesize.check_output_dir(str(tmp_path / 'file' / 'sub' / 'out'))
  synthesize.check_output_dir(str(tmp_path / 'new' / 'deeper'))  # creatable: fine
  assert sorted(os.listdir(tmp_path)) == before  # nothing created, no probe left behind


# -------------------------------------------------------------- 12.2: declared mel conventions


def _log10_audio(config):
  audio = config.audio.copy_and_resolve_references()
  audio.convention, audio.log_scale, audio.log_floor = 'espnet', 'log10', 1e-10
  return audio


def test_a_declared_convention_is_converted_or_refused_before_any_mel(setup, tmp_path):
  config = setup[0]
  declared = _log10_audio(config)
  notes = synthesize.conversion_notes(declared, config.audio, 'tts mels')
  assert len(notes) == 1 and notes[0].startswith('tts mels: converted from espnet: log10(')
  ln = ts._log_mel(config, 30 * ts.HOP)
  log10 = np.asarray(ln / np.log(10.0), np.float32)  # above the floor: exactly log10 of the mel
  converted = synthesize.check_mel(log10, config.audio, 'tts.npy', declared=declared)
  np.testing.assert_allclose(converted, ln, atol=1e-4)
  other = declared.copy_and_resolve_references()
  other.hop_length, other.n_fft = 80, 320
  with pytest.raises(mel_conventions.MelConventionError,
                     match=r'tts mels: .*hop_length: 80 \(mel\) vs 64 \(checkpoint\)'):
    synthesize.conversion_notes(other, config.audio, 'tts mels')
  np.save(tmp_path / 'tts.npy', log10)
  out = ts._synth(setup, tmp_path, [str(tmp_path / 'tts.npy')], declared=declared)
  assert out['frames'] == [30]


# ----------------------------------------------------------------------- the launcher end to end


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  """A workdir holding a checkpoint of the small random model (clipped: finite samples)."""
  config = ts._config()
  config.sampling.clip = 1.0
  config.eval.files_per_group = 2
  workdir = str(tmp_path_factory.mktemp('run'))
  model = model_lib.build_model_from_config(config)
  state = train.create_train_state(model, train.make_optimizer(config.train), config)
  checkpoints.save_config(workdir, config)
  ckpts = checkpoints.RunCheckpoints(workdir, config)
  ckpts.save(0, state)
  ckpts.close()
  return workdir, config


def _launch(*args):
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  return subprocess.run([sys.executable, '-m', 'experiments.synthesize', *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=600)


def test_launcher_refuses_bad_outputs_and_conventions_before_restoring(run_dir, tmp_path):
  workdir, config = run_dir
  # A workdir with the config but no checkpoint: had anything been restored first, the error
  # would be about the missing checkpoint instead.
  empty = tmp_path / 'no_checkpoint'
  checkpoints.save_config(str(empty), config)
  _mels(config, tmp_path / 'in', 1)
  (tmp_path / 'taken').write_text('x')
  before = sorted(os.listdir(tmp_path))
  r = _launch(f'--workdir={empty}', f'--input={tmp_path / "in"}',
              f'--output_dir={tmp_path / "taken"}')
  assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
  assert 'is a file, not a folder' in r.stderr
  r = _launch(f'--workdir={empty}', f'--input={tmp_path / "in"}',
              f'--output_dir={tmp_path / "out"}', '--mel_convention=hifigan')
  assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
  assert 'sample_rate: 22050 (mel) vs 8000 (checkpoint)' in r.stderr
  assert "framing: 'hop_center' (mel) vs 'center' (checkpoint)" in r.stderr
  assert 'checkpoint trained on audio_config_hifigan(' in r.stderr
  assert sorted(os.listdir(tmp_path)) == before


def test_launcher_vocodes_good_files_reports_bad_ones_and_resumes(run_dir, tmp_path):
  workdir, config = run_dir
  good = []
  os.makedirs(tmp_path / 'in')
  for i in range(3):
    mel = ts._log_mel(config, (10 + i) * ts.HOP) / np.log(10.0)
    np.save(tmp_path / 'in' / f'g{i}.npy', np.asarray(mel, np.float32))  # log10 mels
    good.append(f'g{i}.wav')
  (tmp_path / 'in' / 'corrupt.npy').write_bytes(b'\x93NUMPY garbage')
  frontend = tmp_path / 'tts_frontend.py'
  frontend.write_text(
      'import ml_collections\n'
      'from experiments.configs import common\n'
      'def get_config():\n'
      '  c = ml_collections.ConfigDict()\n'
      f'  c.audio = common.audio_config(sample_rate={ts.SR}, n_fft=256, win_length=256, '
      f'hop_length={ts.HOP}, n_mels={ts.N_MELS}, fmax={ts.SR / 2})\n'
      "  c.audio.convention, c.audio.log_scale, c.audio.log_floor = 'espnet', 'log10', 1e-10\n"
      '  return c\n')
  args = [f'--workdir={workdir}', f'--input={tmp_path / "in"}', f'--output_dir={tmp_path / "out"}',
          f'--mel_convention={frontend}', '--schedule=list:1e-4,1e-2,0.2']
  r = _launch(*args)
  assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr  # one failed: non-zero ...
  assert 'converted from espnet: log10(' in r.stdout
  assert '1 of 4 inputs failed' in r.stderr and 'corrupt.npy: not a readable .npy' in r.stderr
  assert sorted(n for n in os.listdir(tmp_path / 'out') if n.endswith('.wav')) == good  # ... good
  os.remove(tmp_path / 'out' / 'g1.wav')
  r = _launch(*args)
  assert '2 of 4 wavs are already in' in r.stdout and 'vocoding the other 1' in r.stdout, r.stdout
  assert 'wrote 1 wavs' in r.stdout and r.returncode == 1
  for name in good:
    assert soundfile.info(str(tmp_path / 'out' / name)).samplerate == ts.SR


# ------------------------------------------------ issue 22.3: another convention, undeclared


def test_undeclared_mels_of_another_convention_are_refused_or_vocoded_when_allowed(run_dir,
                                                                                  tmp_path):
  workdir, config = run_dir
  empty = tmp_path / 'no_checkpoint'  # had anything been restored, the error would say so
  checkpoints.save_config(str(empty), config)
  ln = ts._log_mel(config, 20 * ts.HOP)
  # Normalised over all values and scaled by 0.8: inside this small frontend's ln range (up to
  # 1.42), which the per-band normalisation of real statistics would pass on a full-size one.
  meanvar = 0.8 * (ln - ln.mean()) / ln.std()
  for name, mel, flag in [('log10', ln / np.log(10.0), '--mel_convention=espnet to convert'),
                          ('meanvar', meanvar, '--mel_convention=espnet --mel_stats=')]:
    folder = tmp_path / name
    folder.mkdir()
    np.save(folder / 'a.npy', np.asarray(mel, np.float32))
    before = sorted(os.listdir(tmp_path))
    r = _launch(f'--workdir={empty}', f'--input={folder}', f'--output_dir={tmp_path / "out"}')
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith(f'error: {folder / "a.npy"}: its values'), lines
    assert flag in lines[0] and '--allow_mel_mismatch' in lines[0]
    assert sorted(os.listdir(tmp_path)) == before  # no output folder
  r = _launch(f'--workdir={workdir}', f'--input={tmp_path / "log10"}',
              f'--output_dir={tmp_path / "out"}', '--schedule=list:1e-4,1e-2,0.2',
              '--allow_mel_mismatch')
  assert r.returncode == 0, r.stderr
  assert 'a.wav' in os.listdir(tmp_path / 'out')
  assert 'look like another convention' in r.stdout  # vocoded, still with the warning's count


def test_mels_past_the_checked_ones_are_refused_as_bad_inputs(setup, tmp_path):
  config = setup[0]
  ln = ts._log_mel(config, 16 * ts.HOP)
  os.makedirs(tmp_path / 'in')
  np.save(tmp_path / 'in' / 'good.npy', ln)
  np.save(tmp_path / 'in' / 'log10.npy', np.asarray(ln / np.log(10.0), np.float32))
  result = _run(setup, tmp_path / 'in', tmp_path / 'out', refuse_other_convention=True)
  assert [os.path.basename(p) for p in result['outputs']] == ['good.wav']
  (reason,) = result['failed'].values()
  assert 'look like a log10 of the mel' in reason and '--mel_convention=espnet' in reason
  # The library's default is still the warning, and the mel is vocoded.
  with pytest.warns(mel_conventions.MelConventionWarning, match='look like a log10'):
    result = _run(setup, tmp_path / 'in', tmp_path / 'out2')
  assert len(result['outputs']) == 2 and result['mel_warnings'] == 1
