"""Training: sharding invariance, learning, exact resumption, preemption, checkpoint fallback.

Runs on CPU. Multi-device behaviour uses XLA's fake host devices, which must be requested before
jax is imported, hence subprocesses; the launcher tests drive `python -m experiments.main` on a
tiny dataset built once in a temporary directory.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import tiny
from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.training import checkpoints
from wavegrad_jax import models as model_lib
from wavegrad_jax.training import parallel
from wavegrad_jax.training import trainer as train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A model smaller than tiny (two UBlocks, one DBlock) so that every process compiles in seconds.
SMALL_MODEL = {
    'mel_channels': 16,
    'upsample_factors': (16, 16),
    'upsample_channels': (16, 8),
    'upsample_dilations': ((1, 2, 1, 2), (1, 2, 4, 8)),
    'waveform_channels': 8,
    'downsample_factors': (16,),
    'downsample_channels': (16,),
}


def small_config(segment_frames=4, batch_size=8):
  """tiny.py with SMALL_MODEL, short crops and warm-up off (so the first step moves params)."""
  config = tiny.get_config()
  for k, v in SMALL_MODEL.items():
    config.model[k] = v
  config.data.segment_frames = segment_frames
  config.train.batch_size = batch_size
  config.train.warmup_steps = 0
  return config


def _env(**extra):
  env = dict(os.environ)
  env.update({'PYTHONPATH': REPO + os.pathsep + env.get('PYTHONPATH', ''), 'JAX_PLATFORMS': 'cpu'})
  env.pop('XLA_FLAGS', None)
  env.update(extra)
  return env


# ------------------------------------------------------------------------- sharding invariance

_STEP_SCRIPT = r'''
import json, sys
import jax, numpy as np
from tests.test_train import small_config, synthetic_batches
from wavegrad_jax import models as model_lib
from wavegrad_jax.training import parallel
from wavegrad_jax.training import trainer as train


def two_steps(config, out):
  mesh = parallel.make_mesh(parallel.MeshSpec.from_config(config.mesh))
  model = model_lib.build_model_from_config(config)
  tx = train.make_optimizer(config.train)
  _, shardings = train.abstract_train_state(model, tx, config, mesh)
  state = train.init_train_state(model, tx, config, mesh)
  step_fn = train.compile_train_step(model, tx, config, mesh, shardings)
  losses = []
  for batch in synthetic_batches(config, 2):
    state, metrics = step_fn(state, parallel.to_global_batch(
        batch, parallel.batch_sharding(mesh, parallel.MeshSpec.from_config(config.mesh)), config.train.batch_size))
    losses.append(float(metrics['loss']))
  leaves = jax.tree_util.tree_flatten_with_path((state.params, state.ema_params))[0]
  np.savez(out + '.npz', **{jax.tree_util.keystr(path): np.asarray(v) for path, v in leaves})
  specs = sorted({json.dumps(tuple(s.spec)) for s in jax.tree.leaves(shardings)})
  return {'devices': jax.device_count(), 'losses': losses, 'param_specs': specs}


out = sys.argv[1]
info = {'plain': two_steps(small_config(), out)}
if jax.device_count() == 8:
  # Data parallel over 4 x FSDP over 2: params, EMA and Adam moments sharded over 'fsdp'.
  config = small_config()
  config.mesh.axis_names, config.mesh.shape = ('data', 'fsdp'), (-1, 2)
  config.mesh.batch_axes, config.mesh.fsdp_axis = ('data', 'fsdp'), 'fsdp'
  info['fsdp'] = two_steps(config, out + '_fsdp')
try:
  bad = small_config(batch_size=6)
  bad_mesh = parallel.MeshSpec.from_config(bad.mesh)
  parallel.check_batch_size(6, parallel.make_mesh(bad_mesh), bad_mesh)
  info['bad_batch_error'] = None
except ValueError as e:
  info['bad_batch_error'] = str(e)
json.dump(info, open(out + '.json', 'w'))
'''


def synthetic_batches(config, count, seed=0):
  """`count` batches of random crops: audio [B, T] in [-1, 1], mel [B, F, n_mels]."""
  rng = np.random.default_rng(seed)
  shapes = train.batch_shapes(config, int(config.train.batch_size))
  return [{'audio': np.clip(0.3 * rng.standard_normal(shapes['audio']), -1, 1).astype(np.float32),
           'mel': rng.normal(-4.0, 2.0, shapes['mel']).astype(np.float32)} for _ in range(count)]


def test_eight_devices_match_one_device(tmp_path):
  procs = {}
  for n in (1, 8):
    out = str(tmp_path / f'dev{n}')
    env = _env(XLA_FLAGS=f'--xla_force_host_platform_device_count={n}')
    procs[n] = (out, subprocess.Popen([sys.executable, '-c', _STEP_SCRIPT, out], cwd=REPO, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  results = {}
  for n, (out, proc) in procs.items():
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    results[n] = json.load(open(out + '.json'))
  one = dict(np.load(str(tmp_path / 'dev1.npz')))
  assert results[1]['plain']['devices'] == 1 and results[8]['plain']['devices'] == 8
  for name, suffix in (('plain', ''), ('fsdp', '_fsdp')):
    np.testing.assert_allclose(results[8][name]['losses'], results[1]['plain']['losses'],
                               rtol=1e-5, err_msg=name)
    eight = dict(np.load(str(tmp_path / f'dev8{suffix}.npz')))
    assert eight.keys() == one.keys()
    for k in one:
      np.testing.assert_allclose(eight[k], one[k], rtol=1e-5, atol=1e-6, err_msg=f'{name} {k}')
  assert results[8]['plain']['param_specs'] == ['[]']  # replicated
  assert '[null, null, "fsdp"]' in results[8]['fsdp']['param_specs']  # conv kernels split
  # The clear error for a batch that cannot be split over 8 devices.
  message = results[8]['bad_batch_error']
  assert message is not None and 'batch_size=6' in message and 'multiple of 8' in message
  assert results[1]['bad_batch_error'] is None  # 6 splits over one device


def test_mesh_shape_resolution_and_errors():
  config = small_config()
  assert parallel.mesh_shape(parallel.MeshSpec.from_config(config.mesh), 8) == (8,)
  config.mesh.axis_names, config.mesh.shape = ('data', 'fsdp'), (-1, 2)
  assert parallel.mesh_shape(parallel.MeshSpec.from_config(config.mesh), 8) == (4, 2)
  with pytest.raises(ValueError, match='do not divide'):
    parallel.mesh_shape(parallel.MeshSpec.from_config(config.mesh), 7)
  config.mesh.shape = (3, 2)
  with pytest.raises(ValueError, match='has 6 devices'):
    parallel.mesh_shape(parallel.MeshSpec.from_config(config.mesh), 8)


# ----------------------------------------------------------------------------------- learning


def _tone_batch(config, batch_size, seed=0):
  """Harmonic tones with their real log-mels: learnable, unlike white noise."""
  rng = np.random.default_rng(seed)
  hop, frames, sr = config.audio.hop_length, config.data.segment_frames, config.audio.sample_rate
  t = np.arange(frames * hop) / sr
  audio = np.stack([0.5 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 2 * f0 * t)
                    for f0 in rng.uniform(100, 400, batch_size)]).astype(np.float32)
  fe = mel_conventions.Frontend.from_config(config.audio)
  mel = np.asarray(audio_lib.log_mel_spectrogram(jnp.asarray(audio), fe), np.float32)
  return {'audio': audio, 'mel': mel}


def test_loss_falls_when_overfitting_a_few_segments():
  config = small_config(segment_frames=8, batch_size=4)
  config.train.learning_rate = 3e-3
  mesh = parallel.make_mesh(parallel.MeshSpec.from_config(config.mesh), jax.devices()[:1])
  model = model_lib.build_model_from_config(config)
  tx = train.make_optimizer(config.train)
  _, shardings = train.abstract_train_state(model, tx, config, mesh)
  state = train.init_train_state(model, tx, config, mesh)
  step_fn = train.compile_train_step(model, tx, config, mesh, shardings)
  batch = parallel.to_global_batch(_tone_batch(config, 4),
                                   parallel.batch_sharding(mesh, parallel.MeshSpec.from_config(config.mesh)), 4)
  losses = []
  for _ in range(120):
    state, metrics = step_fn(state, batch)
    losses.append(metrics['loss'])
  losses = np.asarray(jax.device_get(losses))
  assert np.isfinite(losses).all()
  assert losses[-20:].mean() < 0.5 * losses[:5].mean(), losses
  assert int(state.step) == 120


def test_bf16_compute_keeps_float32_params_and_loss():
  config = small_config(batch_size=2)
  config.model.dtype = 'bfloat16'
  mesh = parallel.make_mesh(parallel.MeshSpec.from_config(config.mesh), jax.devices()[:1])
  model = model_lib.build_model_from_config(config)
  tx = train.make_optimizer(config.train)
  _, shardings = train.abstract_train_state(model, tx, config, mesh)
  state = train.init_train_state(model, tx, config, mesh)
  step_fn = train.compile_train_step(model, tx, config, mesh, shardings)
  batch = parallel.to_global_batch(synthetic_batches(config, 1)[0],
                                   parallel.batch_sharding(mesh, parallel.MeshSpec.from_config(config.mesh)), 2)
  state, metrics = step_fn(state, batch)
  assert metrics['loss'].dtype == jnp.float32 and np.isfinite(float(metrics['loss']))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves((state.params, state.ema_params)))


def test_learning_rate_warmup_then_constant_and_ema_warmup():
  config = tiny.get_config()
  config.train.warmup_steps, config.train.learning_rate = 10, 1e-3
  schedule = train.learning_rate_schedule(config.train)
  assert float(schedule(0)) == 0.0
  np.testing.assert_allclose(float(schedule(5)), 5e-4, rtol=1e-6)
  np.testing.assert_allclose([float(schedule(s)) for s in (10, 500, 10**6)], 1e-3, rtol=1e-6)
  assert float(train.ema_decay(config.train, 0)) == pytest.approx(0.1)
  assert float(train.ema_decay(config.train, 10**6)) == pytest.approx(config.train.ema_decay)


# ------------------------------------------------------------------------ the real launcher


def launcher_args(workdir, tfds_dir, num_steps=12):
  """`python -m experiments.main` for a 12-step run of SMALL_MODEL on the test dataset."""
  def literal(v):
    return repr(v).replace(' ', '')
  args = [sys.executable, '-m', 'experiments.main', '--config=experiments/configs/tiny.py',
          f'--workdir={workdir}']
  args += [f'--config.model.{k}={literal(v)}' for k, v in SMALL_MODEL.items()]
  args += [f'--config.data.tfds_dir={tfds_dir}', '--config.data.max_files=8',
           '--config.data.heldout_fraction=0.3', '--config.data.segment_frames=4',
           '--config.train.batch_size=4', f'--config.train.num_steps={num_steps}',
           '--config.train.warmup_steps=2', '--config.train.log_every_steps=1',
           '--config.train.checkpoint_every_steps=4', '--config.train.keep_checkpoints=3',
           '--config.train.eval_every_steps=6', '--config.train.heldout_loss_batches=1',
           '--config.train.num_audio_examples=1', '--config.train.audio_example_seconds=0.3',
           '--config.logging.progress_bar=False']
  return args


def read_metrics(workdir, kind='train', key='loss'):
  """{step: value} of one kind of record in workdir/metrics.jsonl."""
  out = {}
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return out
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      if record.get('kind') == kind and key in record:
        out[record['step']] = record[key]
  return out


def _start(workdir, tfds_dir):
  return subprocess.Popen(launcher_args(workdir, tfds_dir), cwd=REPO, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=300):
  log, _ = proc.communicate(timeout=timeout)
  return proc.returncode, log


def _signal_after(proc, workdir, step, sig, timeout=300):
  """Sends `sig` once workdir's metrics show training step >= `step` (and checkpoint 4 exists)."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if proc.poll() is not None:
      raise AssertionError('run ended before it could be signalled:\n' + proc.stdout.read()[-3000:])
    if (max(read_metrics(workdir), default=0) >= step
        and os.path.exists(os.path.join(workdir, 'checkpoints', '4'))):
      proc.send_signal(sig)
      return
    time.sleep(0.05)
  proc.kill()
  raise AssertionError(f'run did not reach step {step} in {timeout} s')


@pytest.fixture(scope='module')
def launcher_runs(tmp_path_factory):
  """Runs, two at a time: A uninterrupted; B SIGKILLed then restarted; C SIGTERMed."""
  root = tmp_path_factory.mktemp('launcher')
  tfds_dir = str(root / 'tfds')
  # Built once here so concurrent runs only open it.
  from wavegrad_jax.data import options as data_options  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.data.tfds_dir, config.data.max_files, config.data.heldout_fraction = tfds_dir, 8, 0.3
  splits = data_options.prepare_dataset_from_config(config)
  assert len(splits['train']) and len(splits['heldout'])

  dirs = {k: str(root / k) for k in ('a', 'b', 'c')}
  proc_a, proc_b = _start(dirs['a'], tfds_dir), _start(dirs['b'], tfds_dir)
  _signal_after(proc_b, dirs['b'], 7, signal.SIGKILL)
  rc_b_killed, _ = _finish(proc_b)
  b_steps_at_kill = max(read_metrics(dirs['b']))
  proc_b2, proc_c = _start(dirs['b'], tfds_dir), _start(dirs['c'], tfds_dir)
  _signal_after(proc_c, dirs['c'], 5, signal.SIGTERM)
  results = {'dirs': dirs, 'tfds_dir': tfds_dir, 'rc_b_killed': rc_b_killed,
             'b_steps_at_kill': b_steps_at_kill}
  for name, proc in (('a', proc_a), ('b', proc_b2), ('c', proc_c)):
    results[f'rc_{name}'], results[f'log_{name}'] = _finish(proc)
  return results


def test_launcher_run_writes_everything(launcher_runs):
  r = launcher_runs
  a = r['dirs']['a']
  assert r['rc_a'] == 0, r['log_a'][-3000:]
  losses = read_metrics(a)
  assert sorted(losses) == list(range(1, 13)) and all(np.isfinite(list(losses.values())))
  assert set(read_metrics(a, 'eval', 'heldout_loss')) == {6, 12}
  assert sorted(int(s) for s in os.listdir(os.path.join(a, 'checkpoints'))) == [4, 8, 12]
  assert len(os.listdir(os.path.join(a, 'checkpoints_best'))) == 1
  for step in (6, 12):
    wavs = os.listdir(os.path.join(a, 'samples', f'step_{step}'))
    assert len(wavs) == 1 and wavs[0].endswith('.wav')
  events = os.listdir(os.path.join(a, 'tensorboard'))
  assert any(f.startswith('events.out.tfevents') for f in events)
  for what in ('checkpoints', 'TensorBoard', 'wav samples'):
    assert what in r['log_a']


def test_command_line_overrides_reach_the_config(launcher_runs):
  config = checkpoints.load_config(launcher_runs['dirs']['a'])
  assert config.train.batch_size == 4 and config.data.segment_frames == 4  # tiny.py: 8 and 16
  assert tuple(config.model.upsample_factors) == (16, 16)
  assert config.data.tfds_dir == launcher_runs['tfds_dir']


def test_sigkill_and_restart_reproduces_the_uninterrupted_run(launcher_runs):
  r = launcher_runs
  assert r['rc_b_killed'] == -signal.SIGKILL and r['b_steps_at_kill'] < 12
  assert r['rc_b'] == 0, r['log_b'][-3000:]
  assert 'resumed from step' in r['log_b']
  a, b = read_metrics(r['dirs']['a']), read_metrics(r['dirs']['b'])
  assert sorted(b) == list(range(1, 13))
  np.testing.assert_array_equal([b[s] for s in sorted(b)], [a[s] for s in sorted(a)])
  np.testing.assert_array_equal(
      list(read_metrics(r['dirs']['b'], 'eval', 'heldout_loss').values()),
      list(read_metrics(r['dirs']['a'], 'eval', 'heldout_loss').values()))
  params_a, _, _ = checkpoints.restore_params(r['dirs']['a'])
  params_b, _, step = checkpoints.restore_params(r['dirs']['b'])
  assert step == 12
  jax.tree.map(np.testing.assert_array_equal, params_a, params_b)


def test_sigterm_saves_a_checkpoint_of_the_current_step(launcher_runs):
  r = launcher_runs
  c = r['dirs']['c']
  assert r['rc_c'] == 0, r['log_c'][-3000:]
  last = max(read_metrics(c))
  assert last < 12
  with open(os.path.join(c, 'metrics.jsonl')) as f:
    events = [json.loads(line) for line in f]
  assert events[-1] == {'step': last, 'kind': 'preempted'}
  assert max(int(s) for s in os.listdir(os.path.join(c, 'checkpoints'))) == last
  _, _, step = checkpoints.restore_params(c)
  assert step == last


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(launcher_runs, tmp_path, caplog):
  workdir = str(tmp_path / 'run')
  shutil.copytree(launcher_runs['dirs']['a'], workdir)
  # Damage the newest checkpoint: delete its array data and truncate its metadata.
  state_dir = os.path.join(workdir, 'checkpoints', '12', 'state')
  for root, _, files in os.walk(state_dir):
    for name in files:
      path = os.path.join(root, name)
      if os.sep + 'd' + os.sep in path:
        os.remove(path)
      elif name in ('manifest.ocdbt', '_METADATA'):
        with open(path, 'r+b') as f:
          f.truncate(max(os.path.getsize(path) // 2, 1))

  params, config, step = checkpoints.restore_params(workdir)
  assert step == 8

  mesh = parallel.make_mesh(parallel.MeshSpec.from_config(config.mesh), jax.devices()[:1])
  model = model_lib.build_model_from_config(config)
  tx = train.make_optimizer(config.train)
  abstract, _ = train.abstract_train_state(model, tx, config, mesh)
  ckpts = checkpoints.RunCheckpoints(workdir, config)
  with caplog.at_level('WARNING'):
    state, step = ckpts.restore_latest(abstract)
  ckpts.close()
  assert step == 8 and int(state.step) == 8
  assert any('cannot be restored' in rec.getMessage() for rec in caplog.records)
  assert sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints'))) == [4, 8]
  assert os.listdir(os.path.join(workdir, checkpoints.CORRUPT_DIR))
  jax.tree.map(np.testing.assert_array_equal, state.ema_params, params)


def test_restore_params_best_and_raw(launcher_runs):
  a = os.path.relpath(launcher_runs['dirs']['a'])  # relative paths work too
  best, config, best_step = checkpoints.restore_params(a, step='best')
  assert best_step in (6, 12)
  raw, _, step = checkpoints.restore_params(a, step=8, ema=False)
  assert step == 8
  model = model_lib.build_model_from_config(config)
  shapes = jax.eval_shape(lambda: model_lib.init_params_from_config(model, config, jax.random.key(0)))
  assert jax.tree.structure(shapes) == jax.tree.structure(best) == jax.tree.structure(raw)
  with pytest.raises(FileNotFoundError):
    checkpoints.restore_params(a, step=5)


def test_resuming_with_another_model_is_refused(tmp_path):
  config = small_config()
  checkpoints.save_config(str(tmp_path), config)
  train.check_resume_compatible(str(tmp_path), small_config())  # same config: fine
  changed = small_config()
  changed.model.mel_channels = 32
  changed.model.dtype = 'bfloat16'  # compute dtype alone may change between runs
  with pytest.raises(ValueError, match=r"model.mel_channels: 16 in the workdir vs 32 now.*new --workdir"):
    train.check_resume_compatible(str(tmp_path), changed)


def _tensorboard_tags(tb_dir):
  """{tag: kind} of every summary in a run's event files, read as TFRecords without TensorBoard."""
  import struct  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  tags = {}
  for name in os.listdir(tb_dir):
    with open(os.path.join(tb_dir, name), 'rb') as f:
      data = f.read()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack('<Q', data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      for value in event.summary.value:
        kind = value.WhichOneof('value') or 'tensor'
        tags[value.tag] = 'scalar' if kind == 'simple_value' else kind
  return tags


def test_tensorboard_tags_are_the_readme_s(launcher_runs):
  """The TensorBoard tags the README lists, by name and kind, in the uninterrupted run's logs."""
  tags = _tensorboard_tags(os.path.join(launcher_runs['dirs']['a'], 'tensorboard'))
  with open(os.path.join(REPO, 'README.md')) as f:
    readme = f.read()
  scalars = ['train/loss', 'train/grad_norm', 'train/learning_rate', 'train/steps_per_sec',
             'train/examples_per_sec', 'eval/heldout_loss', 'eval/heldout_loss_raw']
  for tag in scalars:
    assert f'`{tag}`' in readme and tags.get(tag) == 'scalar', tag
  for prefix, kind in (('generated/', 'audio'), ('real/', 'audio'), ('mel/', 'image')):
    assert f'`{prefix}<id>`' in readme
    assert [t for t, k in tags.items() if t.startswith(prefix) and k == kind], prefix
