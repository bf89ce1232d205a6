"""Fine-tuning (train.init_from): where the weights come from, refusal of another model or frontend,
and the improvement on predicted-like mels at a small scale (experiments/finetune_study.py)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import degrade
from experiments.configs import tiny
from tests import test_synthesize as ts
from wavegrad_jax.training import checkpoints
from wavegrad_jax import errors
from wavegrad_jax.studies import finetune
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax import models as model_lib
from wavegrad_jax.training import parallel
from wavegrad_jax.data import predicted_mels
from wavegrad_jax.training import trainer as train


def _fake_run(root, config):
  """A workdir layout (config.json, checkpoints/2000, checkpoints_best/1500) without weights."""
  checkpoints.save_config(str(root), config)
  os.makedirs(root / 'checkpoints' / '2000')
  os.makedirs(root / 'checkpoints_best' / '1500')
  return root


def test_init_from_names_a_workdir_or_one_of_its_checkpoints(tmp_path):
  run = str(_fake_run(tmp_path / 'run', tiny.get_config()))
  resolve = checkpoints.resolve_checkpoint_path
  assert resolve(run) == (run, None)
  assert resolve(f'{run}/') == (run, None)
  assert resolve(f'{run}/checkpoints') == (run, None)
  assert resolve(f'{run}/checkpoints/2000') == (run, 2000)
  assert resolve(f'{run}/checkpoints_best') == (run, 'best')
  assert resolve(f'{run}/checkpoints_best/1500') == (run, 'best')
  for bad in (tmp_path / 'nowhere', tmp_path):
    with pytest.raises(FileNotFoundError, match='training workdir'):
      resolve(str(bad))


def test_init_from_another_model_or_frontend_is_refused_before_anything_is_made(tmp_path):
  run = str(_fake_run(tmp_path / 'run', tiny.get_config()))
  config = tiny.get_config()
  config.train.init_from = run
  config.model.mel_channels = 32
  config.audio.fmax = 8000.0
  workdir = tmp_path / 'finetune'
  with pytest.raises(ValueError) as e:
    train.train_and_evaluate(config, str(workdir))
  text = str(e.value)
  assert f'train.init_from={run} holds a run with another model or frontend' in text
  assert 'model.mel_channels: 64 in train.init_from vs 32 now' in text
  assert 'audio.fmax: 11025.0 in train.init_from vs 8000.0 now' in text
  assert not workdir.exists()
  # A data or train field may differ: that is what fine-tuning changes.
  config = tiny.get_config()
  config.data.source, config.train.learning_rate = 'paired', 1e-5
  config.train.init_from = f'{run}/checkpoints/2000'
  assert train.init_source(str(workdir), config) == (run, 2000)
  # A workdir with a checkpoint of its own resumes from it: init_from no longer applies.
  os.makedirs(workdir / 'checkpoints' / '10')
  assert train.init_source(str(workdir), config) is None
  # ... unless --start_afresh sets that run aside first.
  assert train.init_source(str(workdir), config, start_afresh=True) == (run, 2000)


def test_degraded_mels_are_smoothed_noisy_and_aligned():
  config = tiny.get_config().audio
  rng = np.random.default_rng(0)
  t = np.arange(200)[:, None]
  # A pulse train in time: smoothing spreads it, noise perturbs every value above the floor.
  mel = np.where(t % 20 == 0, -1.0, -6.0) + 0.0 * np.arange(80)[None, :]
  fe = mel_conventions.Frontend.from_config(config)
  out = predicted_mels.degrade_mel(mel, fe, rng, time_sigma_frames=2.0, band_sigma=0.0,
                                   noise_std=0.0)
  assert out.shape == mel.shape and out.dtype == np.float32
  assert out[0, 0] < -2.0 and out[3, 0] > -6.0 + 0.1  # peaks lowered, valleys raised
  np.testing.assert_allclose(out.mean(), mel.mean(), atol=0.05)  # smoothing keeps the level
  noisy = predicted_mels.degrade_mel(mel, fe, rng, time_sigma_frames=0.0, band_sigma=0.0,
                                     noise_std=0.2)
  assert 0.18 < float(np.std(noisy - mel)) < 0.22  # nats, as documented
  # Other conventions: the same degradation in their own values (here log10 with its floor).
  espnet = tiny.get_config().audio
  espnet.convention, espnet.log_scale, espnet.log_floor = 'espnet', 'log10', 1e-10
  log10 = mel / np.log(10.0)
  espnet_fe = mel_conventions.Frontend.from_config(espnet)
  same = predicted_mels.degrade_mel(log10, espnet_fe, np.random.default_rng(1), time_sigma_frames=2.0,
                                    band_sigma=1.0, noise_std=0.1)
  ref = predicted_mels.degrade_mel(mel, fe, np.random.default_rng(1), time_sigma_frames=2.0,
                                   band_sigma=1.0, noise_std=0.1)
  np.testing.assert_allclose(same * np.log(10.0), ref, atol=1e-4)
  assert mel_conventions.Frontend.from_config(espnet).log_scale == 'log10'


def test_init_from_checkpoint_loads_the_chosen_weights_with_a_fresh_optimiser(tmp_path):
  config = ts._config()
  model = model_lib.build_model_from_config(config)
  tx = train.make_optimizer(config.train)
  mesh = parallel.make_mesh(parallel.MeshSpec.from_config(config.mesh))
  saved = train.init_train_state(model, tx, config, mesh)
  saved = saved.replace(ema_params=jax.tree.map(lambda p: p + 1.0, saved.params),
                        step=jnp.asarray(7, jnp.int32))
  run = str(tmp_path / 'run')
  checkpoints.save_config(run, config)
  ckpts = checkpoints.RunCheckpoints(run, config)
  ckpts.save(7, saved)
  ckpts.close()
  config.train.init_from = run
  config.seed = 1  # a fresh state of other weights, which init_from replaces
  _, shardings = train.abstract_train_state(model, tx, config, mesh)
  for ema, want in ((True, saved.ema_params), (False, saved.params)):
    config.train.init_from_ema = ema
    fresh = train.init_train_state(model, tx, config, mesh)
    state, line = train.init_from_checkpoint(fresh, shardings,
                                             train.init_source(str(tmp_path / 'ft'), config),
                                             config)
    assert f'{run} step 7 (' in line and ('EMA' if ema else 'raw') in line
    for tree in (state.params, state.ema_params):
      jax.tree.map(np.testing.assert_array_equal, tree, want)
    assert int(state.step) == 0
    jax.tree.map(np.testing.assert_array_equal, state.opt_state, fresh.opt_state)


def test_fine_tuning_on_degraded_pairs_improves_them_at_a_small_scale(tmp_path):
  """experiments/finetune_study.py in miniature: a briefly trained model, fine-tuned on degraded
  pairs, vocodes held-out degraded mels closer to the real audio (LS-MSE and MR-STFT)."""
  def small(source, steps):
    c = ts._config()
    c.data.source, c.data.tfds_dir, c.data.build_threads = source, str(tmp_path / 'tfds'), 1
    c.data.max_files, c.data.heldout_fraction, c.data.segment_frames = 12, 0.25, 16
    t = c.train
    t.batch_size, t.learning_rate, t.warmup_steps, t.ema_decay = 8, 2e-3, 5, 0.9
    t.num_steps, t.checkpoint_every_steps, t.eval_every_steps = steps, steps, 0
    t.log_every_steps = 10
    c.logging.progress_bar = False
    c.sampling.clip = 1.0
    c.eval.stoi = False
    return c

  source = small('fillets', 30)
  train.train_and_evaluate(source, str(tmp_path / 'init'))
  degrade_cfg = degrade.get_config()
  study = finetune.run_study(
      small('paired', 60), source, degrade_cfg, init_from=str(tmp_path / 'init'),
      workdir=str(tmp_path / 'study'), steps=60, max_train=0, max_utterances=3, max_seconds=1.0,
      schedules='25', arms=('degraded',))
  assert study['pairs']['degraded']['mean_abs_deviation_nats'] > 0.2
  before = study['results']['init']['degraded_mels']['25']
  after = study['results']['finetuned_degraded']['degraded_mels']['25']
  assert study['results']['finetuned_degraded']['step'] == 60
  assert after['ls_mse'] < 0.9 * before['ls_mse'], (before, after)
  assert after['mrstft'] < 0.95 * before['mrstft'], (before, after)


def test_a_study_folder_made_with_other_settings_is_refused(tmp_path):
  folder = str(tmp_path / 'study')
  finetune.check_study_folder(folder, {'steps': 300, 'max_train': 200, 'degrade': {'seed': 0}})
  # The same settings again: a rerun, which reuses the pairs and finished arms.
  finetune.check_study_folder(folder, {'steps': 300, 'max_train': 200, 'degrade': {'seed': 0}})
  with pytest.raises(errors.UserError, match='other max_train, steps; its pairs'):
    finetune.check_study_folder(folder, {'steps': 200, 'max_train': 100,
                                         'degrade': {'seed': 0}})
