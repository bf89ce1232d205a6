"""UBlock dilation orders by name, recorded by every run, and refused when a run's differs.

The two orders have identical parameter shapes, so a checkpoint of one would load silently into a
model of the other; resuming, evaluating and vocoding must refuse that instead.
"""
import logging
import os
import shutil
import subprocess
import sys

import jax
import pytest
import soundfile
import numpy as np

from experiments.configs import base, base_hifigan, common, large, ljspeech, small, tiny
from tests.data import make_prechange_fixture as fixture
from wavegrad_jax.training import checkpoints
from wavegrad_jax import models as model_lib
from wavegrad_jax.training import trainer as train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
L, S = (1, 2, 4, 8), (1, 2, 1, 2)
# The public PyTorch reimplementations' Base (lmnt-com/wavegrad model.py, ivanvovk/WaveGrad
# configs/default.json): short dilations on the x5, x5 blocks nearest the mel.
PEERS_BASE = (S, S, L, L, L)


@pytest.mark.parametrize('get_config, expected', [
    (base.get_config, (L, L, L, S, S)),          # Appendix A: strides 60, 12, 4 | 2, 1
    (ljspeech.get_config, (L, L, L, S, S)),
    (base_hifigan.get_config, (L, L, L, S, S)),  # x4 x4 x4 x2 x2: strides 64, 16, 4 | 2, 1
    (large.get_config, (L, L, L, L, L, S, S)),   # strides 60, 60, 12, 4, 4 | 2, 1
    (tiny.get_config, (L, L, L, S)),             # x4 four times: strides 64, 16, 4 | 1
    (small.get_config, (L, L, L, S)),
])
def test_the_paper_order_is_every_configs_default(get_config, expected):
  config = get_config()
  assert config.model.dilation_order == 'paper'
  assert model_lib.build_model_from_config(config).upsample_dilations == expected
  other = get_config()
  other.model.dilation_order = 'reimplementations'
  assert model_lib.build_model_from_config(other).upsample_dilations == expected[::-1]


def test_reimplementations_order_is_the_peers_base():
  config = base.get_config()
  config.model.dilation_order = 'reimplementations'
  assert model_lib.build_model_from_config(config).upsample_dilations == PEERS_BASE
  assert model_lib.dilation_order_of(PEERS_BASE, (5, 5, 3, 2, 2)) == 'reimplementations'
  assert model_lib.dilation_order_of((L,) * 5, (5, 5, 3, 2, 2)) == 'custom'
  # Same parameter shapes: nothing but the recorded order tells the two apart.
  shapes = {}
  for order in ('paper', 'reimplementations'):
    c = tiny.get_config()
    c.model.dilation_order = order
    m = model_lib.build_model_from_config(c)
    shapes[order] = jax.tree.map(lambda x: x.shape, jax.eval_shape(
        lambda: model_lib.init_params_from_config(m, c, jax.random.key(0))))
  assert shapes['paper'] == shapes['reimplementations']


def test_a_run_records_the_dilations_and_their_order():
  config = tiny.get_config()
  assert config.model.upsample_dilations == ()
  recorded = model_lib.resolved_from_config(config)
  assert recorded.model.upsample_dilations == (L, L, L, S)
  assert recorded.model.dilation_order == 'paper' and config.model.upsample_dilations == ()
  saved = checkpoints.config_from_dict(checkpoints.config_to_dict(recorded))  # as config.json
  assert model_lib.build_model_from_config(saved) == model_lib.build_model_from_config(config)


def test_explicit_dilations_are_custom_and_old_configs_keep_loading(caplog):
  # A config written before orders had names: explicit tuples, no dilation_order.
  old = checkpoints.load_config(fixture.WORKDIR)
  assert 'dilation_order' not in old.model
  assert model_lib.model_section_from_config(old.model)['dilation_order'] == 'reimplementations'
  assert model_lib.build_model_from_config(old).upsample_dilations == (S, L)
  config = tiny.get_config()
  config.model.upsample_dilations = ((1, 2, 2, 1),) * 4
  with caplog.at_level(logging.WARNING):
    assert model_lib.build_model_from_config(config).upsample_dilations == ((1, 2, 2, 1),) * 4
  assert any("is given, so it is used ('custom')" in r.getMessage() for r in caplog.records)
  config.model.dilation_order = 'custom'
  assert model_lib.model_section_from_config(config.model)['dilation_order'] == 'custom'


@pytest.mark.parametrize('order, dilations, message', [
    ('appendix', (), r"dilation_order must be one of \('paper', 'reimplementations', 'custom'\)"),
    ('custom', (), "dilation_order='custom' needs model.upsample_dilations"),
])
def test_bad_orders_name_the_fix(order, dilations, message):
  config = tiny.get_config()
  config.model.dilation_order = order
  config.model.upsample_dilations = dilations
  with pytest.raises(ValueError, match=message):
    model_lib.build_model_from_config(config)


# ---------------------------------------------------------------- refusing the other order


def _config_of_order(order):
  """The fixture run's config (peers' order, recorded as explicit tuples) with a named order."""
  config = fixture.fixture_config()
  config.model.upsample_dilations = ()
  config.model.dilation_order = order
  return config


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('run') / 'run')
  shutil.copytree(fixture.WORKDIR, workdir)
  return workdir


def test_resume_refuses_the_other_order(run_dir):
  train.check_resume_compatible(run_dir, _config_of_order('reimplementations'))  # same model
  with pytest.raises(ValueError, match=r'model.dilation_order: "reimplementations" in the workdir '
                     r"""vs "paper" now.*--config.model.dilation_order='reimplementations'"""):
    train.check_resume_compatible(run_dir, _config_of_order('paper'))
  with pytest.raises(ValueError, match='model.upsample_dilations'):
    train.train_and_evaluate(_config_of_order('paper'), run_dir)


def test_inference_refuses_the_other_order(run_dir):
  defaults = common.get_common_config()
  params, _, step = checkpoints.load_for_inference(
      run_dir, defaults, override=_config_of_order('reimplementations'))
  assert step == fixture.NUM_STEPS
  with pytest.raises(ValueError, match=(
      r'--config describes another model or frontend than the checkpoint.*model.dilation_order: '
      r'"reimplementations" in the checkpoint vs "paper" now.*Drop --config')):
    checkpoints.load_for_inference(run_dir, defaults, override=_config_of_order('paper'))
  # Another frontend is refused the same way; the compute dtype is not a model difference.
  other = _config_of_order('reimplementations')
  other.audio.n_mels = 64
  with pytest.raises(ValueError, match=r'audio.n_mels: 80 in the checkpoint vs 64 now'):
    checkpoints.load_for_inference(run_dir, defaults, override=other)
  other = _config_of_order('reimplementations')
  other.model.dtype = 'bfloat16'
  checkpoints.load_for_inference(run_dir, defaults, override=other)


_ORDER_CONFIG = '''
from tests.data import make_prechange_fixture as fixture


def get_config():
  config = fixture.fixture_config()
  config.model.upsample_dilations = ()
  config.model.dilation_order = 'paper'
  return config
'''


def test_evaluate_and_synthesize_launchers_refuse_the_other_order(run_dir, tmp_path):
  config_file = tmp_path / 'paper_order.py'
  config_file.write_text(_ORDER_CONFIG)
  wav = str(tmp_path / 'in.wav')
  soundfile.write(wav, np.zeros(2048, np.float32), 22050)
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  common_flags = [f'--workdir={run_dir}', f'--config={config_file}']
  commands = {
      'evaluate': ['-m', 'experiments.evaluate', '--max_utterances=1'] + common_flags,
      'synthesize': ['-m', 'experiments.synthesize', f'--input={wav}',
                     f'--output_dir={tmp_path / "synth"}'] + common_flags,
  }
  procs = {name: subprocess.Popen([sys.executable] + args, cwd=REPO, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
           for name, args in commands.items()}
  for name, proc in procs.items():
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, (name, out[-2000:])
    assert 'model.dilation_order: "reimplementations" in the checkpoint vs "paper"' in out, (
        name, out[-2000:])
  assert not os.path.exists(tmp_path / 'synth')
