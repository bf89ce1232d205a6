"""The adversarial fine-tune of a trained run's k-step sampler: launched from a teacher's workdir,
resumed exactly after SIGKILL, 2 devices equal to 1, bad requests refused in one line before any
work, and the result vocoded like any run."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments.configs import frame_tiny_gl_gan
from tests.test_train import read_metrics
from wavegrad_jax import errors
from wavegrad_jax import models as model_lib
from wavegrad_jax.models import discriminators
from wavegrad_jax.training import adversarial
from wavegrad_jax.training import adversarial_trainer
from wavegrad_jax.training import gan_losses

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'experiments/configs/frame_tiny_gl_gan.py'
SMALL = ['--config.train.batch_size=2', '--config.data.segment_frames=16',
         '--config.train.heldout_loss_batches=1', '--config.train.num_audio_examples=1',
         '--config.train.log_every_steps=1', '--config.logging.progress_bar=False',
         '--config.data.max_files=8', '--config.data.heldout_fraction=0.3']


def _env():
  return dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')


def _args(module, workdir, tfds_dir, *extra):
  return [sys.executable, '-m', f'experiments.{module}', f'--config={CONFIG}',
          f'--workdir={workdir}', f'--config.data.tfds_dir={tfds_dir}', *SMALL, *extra]


def _run(args, timeout=300):
  proc = subprocess.run(args, cwd=REPO, env=_env(), capture_output=True, text=True,
                        timeout=timeout)
  return proc.returncode, proc.stdout + proc.stderr


def _student(workdir, tfds_dir, teacher, *extra):
  return _args('finetune_adversarial', workdir, tfds_dir, f'--teacher={teacher}',
               '--config.train.num_steps=6', '--config.train.checkpoint_every_steps=2',
               '--config.train.eval_every_steps=6', *extra)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """A 4-step teacher; student A uninterrupted to step 6; student B SIGKILLed after its
  checkpoint 2, then restarted (A and B run side by side)."""
  root = tmp_path_factory.mktemp('adversarial')
  tfds_dir, teacher = str(root / 'tfds'), str(root / 'teacher')
  rc, log = _run(_args('main', teacher, tfds_dir, '--config.train.num_steps=4',
                       '--config.train.checkpoint_every_steps=4',
                       '--config.train.eval_every_steps=0'))
  assert rc == 0, log[-3000:]
  dirs = {k: str(root / k) for k in 'ab'}
  procs = {k: subprocess.Popen(_student(d, tfds_dir, teacher), cwd=REPO, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for k, d in dirs.items()}
  deadline = time.time() + 300
  while not (max(read_metrics(dirs['b']), default=0) >= 3
             and os.path.isdir(os.path.join(dirs['b'], 'checkpoints', '2'))):
    assert procs['b'].poll() is None, procs['b'].stdout.read()[-3000:]
    assert time.time() < deadline, 'student B did not reach step 3'
    time.sleep(0.05)
  procs['b'].send_signal(signal.SIGKILL)
  procs['b'].communicate(timeout=60)
  killed_at = max(read_metrics(dirs['b']))
  rc_b, log_b = _run(_student(dirs['b'], tfds_dir, teacher))
  log_a, _ = procs['a'].communicate(timeout=300)
  return {'root': root, 'tfds': tfds_dir, 'teacher': teacher, 'dirs': dirs,
          'rc_a': procs['a'].returncode, 'log_a': log_a, 'rc_b': rc_b, 'log_b': log_b,
          'killed_at': killed_at}


def test_the_fine_tune_starts_from_the_teacher_and_records_it(runs):
  assert runs['rc_a'] == 0, runs['log_a'][-3000:]
  assert f"initialised from {os.path.abspath(runs['teacher'])}" in runs['log_a']
  assert 'adversarial fine-tune of the 1-step sampler' in runs['log_a']
  saved = json.load(open(os.path.join(runs['dirs']['a'], 'config.json')))
  assert saved['adversarial']['teacher'] == os.path.abspath(runs['teacher'])
  records = [json.loads(l) for l in open(os.path.join(runs['dirs']['a'], 'metrics.jsonl'))]
  train = [r for r in records if r['kind'] == 'train']
  assert [r['step'] for r in train] == list(range(1, 7))
  for key in ('loss', 'disc_loss', 'loss_adversarial', 'loss_feature', 'loss_mel'):
    assert all(np.isfinite(r[key]) for r in train), key
  assert train[0]['disc_loss'] != train[-1]['disc_loss']  # the discriminators train


def test_sigkill_and_restart_reproduce_the_uninterrupted_fine_tune(runs):
  assert runs['rc_b'] == 0, runs['log_b'][-3000:]
  assert runs['killed_at'] < 6 and 'resumed from step' in runs['log_b']
  for key in ('loss', 'disc_loss', 'loss_mel'):
    a = read_metrics(runs['dirs']['a'], key=key)
    b = read_metrics(runs['dirs']['b'], key=key)
    assert sorted(b) == list(range(1, 7)), key
    np.testing.assert_array_equal([b[s] for s in sorted(b)], [a[s] for s in sorted(a)],
                                  err_msg=key)


def test_a_resume_under_another_teacher_is_refused(runs):
  config = _config(teacher=str(runs['root'] / 'other'))
  options = adversarial.AdversarialOptions.from_config(config)
  with pytest.raises(errors.ConfigError, match='no training run there'):
    adversarial_trainer.with_teacher(config, options, runs['dirs']['a'])
  os.makedirs(runs['root'] / 'other', exist_ok=True)
  with open(runs['root'] / 'other' / 'config.json', 'w') as f:
    f.write(open(os.path.join(runs['teacher'], 'config.json')).read())
  with pytest.raises(errors.ConfigError, match='holds a fine-tune of the teacher .*teacher'):
    adversarial_trainer.with_teacher(config, options, runs['dirs']['a'])
  # --start_afresh moves that fine-tune aside, so another teacher may start the new one.
  adversarial_trainer.with_teacher(config, options, runs['dirs']['a'], start_afresh=True)
  # The teacher it was started from resumes.
  config = _config(teacher=runs['teacher'])
  adversarial_trainer.with_teacher(config, adversarial.AdversarialOptions.from_config(config),
                                   runs['dirs']['a'])


# --------------------------------------------------------------------- refusals before any work


def _config(**fields):
  config = frame_tiny_gl_gan.get_config()
  config.adversarial.teacher = '/nonexistent'
  for key, value in fields.items():
    config.adversarial[key] = value
  return config


@pytest.mark.parametrize('fields,message', [
    ({'steps': 0}, 'adversarial.steps must be an integer from 1 to 8'),
    ({'steps': 9}, 'adversarial.steps must be an integer from 1 to 8'),
    ({'discriminators': ('mpd', 'bogus')}, "'bogus' is not a registered discriminator"),
    ({'mel_weight': -1.0}, 'adversarial.mel_weight must be >= 0'),
    ({'loss': 'wasserstein'}, 'adversarial.loss must be one of'),
    ({'teacher': ''}, 'no teacher'),
])
def test_bad_fine_tune_requests_are_refused_in_one_line(fields, message, tmp_path):
  with pytest.raises(errors.ConfigError, match=message) as info:
    adversarial_trainer.finetune_adversarial(_config(**fields), str(tmp_path / 'w'))
  assert '\n' not in str(info.value)
  assert not os.path.exists(tmp_path / 'w')


def test_the_launcher_refuses_a_bad_k_with_one_line(tmp_path):
  rc, log = _run([sys.executable, '-m', 'experiments.finetune_adversarial', f'--config={CONFIG}',
                  f'--workdir={tmp_path / "w"}', f'--teacher={tmp_path}',
                  '--config.adversarial.steps=9'])
  assert rc == 1 and log.strip().splitlines() == [
      'error: adversarial.steps must be an integer from 1 to 8 (the unrolled sampler\'s steps), '
      'got 9'], log


def test_a_teacher_of_another_frontend_is_refused(runs, tmp_path):
  config = _config(teacher=runs['teacher'])
  config.audio.fmax = 7000.0
  config.data.tfds_dir = runs['tfds']
  with pytest.raises(errors.ConfigError, match='audio.fmax') as info:
    adversarial_trainer.finetune_adversarial(config, str(tmp_path / 'w'))
  assert '\n' not in str(info.value) and not os.path.exists(tmp_path / 'w')


def test_a_grid_of_another_length_is_refused(runs, tmp_path):
  config = _config(teacher=runs['teacher'], steps=2, schedule='4')
  config.data.tfds_dir = runs['tfds']
  with pytest.raises(errors.ConfigError, match="costs 4 network evaluations .* adversarial.steps=2"):
    adversarial_trainer.finetune_adversarial(config, str(tmp_path / 'w'))


# ------------------------------------------------------------------------------------- the maths


def test_the_losses_are_hifigans_and_vocos():
  real, fake = [np.array([[1.0, 0.5]]), np.array([[0.0]])], [np.array([[0.0, 0.5]]),
                                                             np.array([[2.0]])]
  # LSGAN: mean (1 - D(x))^2 + mean D(G)^2, summed: (0 + 0.25) / 2 + 0 / 2 ... per member.
  assert np.isclose(gan_losses.discriminator_loss(real, fake, 'lsgan'),
                    (0.125 + 0.125) + (1.0 + 4.0))
  assert np.isclose(gan_losses.generator_adversarial_loss(fake, 'lsgan'), (1.0 + 0.25) / 2 + 1.0)
  assert np.isclose(gan_losses.discriminator_loss(real, fake, 'hinge'),
                    (0.25 + 1.25) + (1.0 + 3.0))
  # Vocos: mean relu(1 - D(G)): (1 + 0.5) / 2 + 0.
  assert np.isclose(gan_losses.generator_adversarial_loss(fake, 'hinge'), 0.75)
  feats_a, feats_b = [[np.ones((1, 3)), np.zeros((1, 2))]], [[np.zeros((1, 3)), np.ones((1, 2))]]
  assert np.isclose(gan_losses.feature_matching_loss(feats_a, feats_b), 2.0)


def test_the_period_discriminator_sees_every_pth_sample():
  # A signal that repeats every 5 samples folds to constant columns at period 5: each column of
  # the folded input is constant, so the outputs are identical along time away from the edges.
  d = discriminators.PeriodDiscriminator(period=5, channels=(4, 4))
  x = np.tile(np.array([0.3, -0.7, 0.1, 0.5, -0.2], np.float32), 200)[None]
  params = d.init(jax.random.key(0), x)
  logits, features = d.apply(params, x)
  assert len(features) == 3 and logits.shape[0] == 1
  interior = np.asarray(features[-1])[0, 6:-6]  # the zero padding reaches a few rows in
  middle = interior[len(interior) // 2][None]
  np.testing.assert_allclose(interior, np.broadcast_to(middle, interior.shape), rtol=1e-5,
                             atol=1e-6)
  # Not at period 2: the folded columns change along time (with period 5, coprime to the stride).
  d2 = discriminators.PeriodDiscriminator(period=2, channels=(4, 4))
  f2 = np.asarray(d2.apply(d2.init(jax.random.key(0), x), x)[1][-1])[0, 6:-6]
  assert not np.allclose(f2, np.broadcast_to(f2[len(f2) // 2][None], f2.shape), atol=1e-4)


def test_discriminators_come_from_the_registry_by_name():
  assert set(model_lib.DISCRIMINATORS) >= {'mpd', 'mrd'}
  d = model_lib.build_discriminators(('mrd',), {'mrd': {'channels': 4,
                                                        'resolutions': [[256, 64, 256]]}})
  x = np.zeros((2, 2048), np.float32)
  logits, features = d.apply(d.init(jax.random.key(0), x), x)
  assert len(logits) == 1 and logits[0].shape[0] == 2
  with pytest.raises(ValueError, match='has no field'):
    model_lib.build_discriminators(('mpd',), {'mpd': {'width': 3}})


_TWO_DEVICES = r'''
import json, sys
import jax, numpy as np
from experiments.configs import frame_tiny_gl_gan
from tests.test_train import synthetic_batches
from wavegrad_jax import models as model_lib
from wavegrad_jax.training import adversarial, parallel
from wavegrad_jax.training.state import make_optimizer

config = frame_tiny_gl_gan.get_config()
config.train.batch_size, config.data.segment_frames, config.train.warmup_steps = 4, 8, 0
options = adversarial.AdversarialOptions.from_config(config)
model = model_lib.build_model_from_config(config)
tx, disc, disc_tx = make_optimizer(config.train), options.build_discriminators(), options.disc_optimizer()
spec = parallel.MeshSpec.from_config(config.mesh)
out = {}
for n in (1, 2):
  mesh = parallel.make_mesh(spec, jax.devices()[:n])
  _, shardings = adversarial.abstract_state(model, tx, disc, disc_tx, config, mesh)
  state = adversarial.init_state(model, tx, disc, disc_tx, config, mesh)
  step = adversarial.compile_adversarial_step(model, tx, disc, disc_tx, config, options, mesh, shardings)
  metrics = []
  for batch in synthetic_batches(config, 2):
    state, m = step(state, parallel.to_global_batch(batch, parallel.batch_sharding(mesh, spec), 4))
    metrics.append({k: float(v) for k, v in m.items()})
  leaves = jax.tree_util.tree_leaves((state.params, state.disc_params))
  out[n] = {'metrics': metrics, 'leaves': [np.asarray(l).ravel().tolist() for l in leaves]}
json.dump(out, open(sys.argv[1], 'w'))
'''


def test_two_devices_fine_tune_as_one(tmp_path):
  out = str(tmp_path / 'out.json')
  env = dict(_env(), XLA_FLAGS='--xla_force_host_platform_device_count=2')
  proc = subprocess.run([sys.executable, '-c', _TWO_DEVICES, out], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  r = json.load(open(out))
  one, two = r['1'], r['2']
  for a, b in zip(one['metrics'], two['metrics']):
    for key in a:
      np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-6, err_msg=key)
  # Adam normalises each gradient, so a reduction-order difference in a near-zero gradient can
  # move a parameter by a fraction of one step (the generator's learning rate, 1e-3): 1e-4 is
  # 10% of a step (seen: 4e-5 in one parameter of 65,664).
  for a, b in zip(one['leaves'], two['leaves']):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
  assert one['metrics'][0]['disc_loss'] != one['metrics'][1]['disc_loss']


# ----------------------------------------------------------------------------------- the release


def test_a_release_vocodes_as_its_run_with_the_ema_weights_alone(runs, tmp_path):
  from wavegrad_jax.training import release
  from wavegrad_jax.training import run_files
  from wavegrad_jax.training.inference_loading import restore_params
  out = str(tmp_path / 'release')
  rc, log = _run([sys.executable, '-m', 'experiments.release', f'--workdir={runs["dirs"]["a"]}',
                  '--step=', '--schedule=1', f'--output_dir={out}'])
  assert rc == 0 and 'released step 6' in log, log[-3000:]
  info = json.load(open(os.path.join(out, release.RELEASE_FILE)))
  assert info['source_step'] == 6 and info['schedule'] == '1'
  assert json.load(open(os.path.join(out, 'config.json')))['sampling']['schedule'] == '1'
  manager = run_files.read_only_manager(os.path.join(out, 'checkpoints'))
  tree = manager.item_metadata(6)
  manager.close()
  assert set(tree['state'].tree) == {'step', 'ema_params'}  # no optimiser, raw or disc state
  assert release.folder_bytes(out) < 0.5 * release.folder_bytes(
      os.path.join(runs['dirs']['a'], 'checkpoints', '6'))
  # The same EMA weights as the run's, and a launcher vocodes with them.
  ours, _, _ = restore_params(out)
  theirs, _, _ = restore_params(runs['dirs']['a'])
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
    np.testing.assert_array_equal(a, b)
  rc, log = _run([sys.executable, '-m', 'experiments.synthesize', f'--workdir={out}',
                  '--input=/usr/share/sounds/alsa/Front_Center.wav',
                  f'--output_dir={tmp_path / "synth"}'])
  assert rc == 0 and os.path.exists(tmp_path / 'synth' / 'Front_Center.wav'), log[-3000:]
  # Anything but a release in the output folder is refused, and left alone.
  os.makedirs(tmp_path / 'busy')
  (tmp_path / 'busy' / 'keep.txt').write_text('x')
  with pytest.raises(errors.UserError, match='holds no release'):
    release.write_release(runs['dirs']['a'], None, str(tmp_path / 'busy'), '1')
  assert (tmp_path / 'busy' / 'keep.txt').exists()


def test_the_shipped_release_is_small_and_vocodes_with_its_tuned_sampler():
  from wavegrad_jax.training import release
  folder = os.path.join(REPO, 'pretrained', 'frame_small_gl')
  assert release.folder_bytes(folder) < 20e6
  info = json.load(open(os.path.join(folder, release.RELEASE_FILE)))
  config = json.load(open(os.path.join(folder, 'config.json')))
  assert info['sampler'] == 'euler_gl' and config['sampling']['schedule'] == info['schedule'] == '1'
  assert config['sampling']['final_projection'] == 4 and config['process']['name'] == 'flow'
  from wavegrad_jax.training.inference_loading import restore_params
  params, _, step = restore_params(folder)
  assert step == info['source_step'] and model_lib.count_params(params) == info['parameters']
