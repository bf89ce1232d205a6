"""44.1 and 48 kHz: the configs build and validate, train a few steps on the embedded corpus
resampled up, and vocode; a factor list that misses the hop is refused with lists that work."""
import importlib
import os

import jax
import numpy as np
import pytest
import soundfile

from experiments.configs import common
from wavegrad_jax.training import checkpoints
from wavegrad_jax.data import options as data_options
from wavegrad_jax import models as model_lib
from wavegrad_jax import sampling
from wavegrad_jax.inference import synthesize
from wavegrad_jax.training import trainer as train

# config: (sample rate, hop, n_fft, n_mels, fmax)
FRONTENDS = {'base_44k': (44100, 512, 2048, 128, 22050.0), 'tiny_44k': (44100, 512, 2048, 128,
                                                                        22050.0),
             'base_48k': (48000, 480, 2048, 128, 24000.0), 'tiny_48k': (48000, 480, 2048, 128,
                                                                        24000.0)}


def _config(name):
  return importlib.import_module(f'experiments.configs.{name}').get_config()


@pytest.mark.parametrize('name', sorted(FRONTENDS))
def test_high_rate_configs_build(name):
  config = _config(name)
  a = config.audio
  assert (a.sample_rate, a.hop_length, a.n_fft, a.n_mels, a.fmax) == FRONTENDS[name]
  assert a.convention == 'hifigan' and a.win_length == 2048
  assert int(np.prod(config.model.upsample_factors)) == a.hop_length
  model = model_lib.build_model_from_config(config)  # the topology validation
  shapes = jax.eval_shape(lambda: model_lib.init_params_from_config(model, config, jax.random.key(0)))
  count = model_lib.count_params(shapes)
  # Base's channels and kernels, so Base's count (README); tiny's, with 128 mels.
  assert count == (15_920_993 if name.startswith('base') else 230_673)


@pytest.mark.parametrize('hop, factors', [(480, (5, 5, 4, 2, 2)), (512, (5, 5, 3, 2, 2)),
                                          (600, (4, 4, 4, 4, 2))])
def test_a_factor_list_that_misses_the_hop_is_refused_with_lists_that_work(hop, factors):
  config = _config('base_48k')
  config.audio.hop_length = hop
  config.model.upsample_factors = factors
  with pytest.raises(ValueError, match=rf'multiply to {int(np.prod(factors))}, but the mel hop '
                                       rf'is {hop}') as e:
    model_lib.build_model_from_config(config)
  suggestions = model_lib.upsample_factor_suggestions(hop, len(factors))
  assert len(suggestions) == 3
  for up, down in suggestions:
    assert f'upsample_factors={up} with downsample_factors={down}' in str(e.value)
    assert int(np.prod(up)) == hop and len(up) == len(factors)
    config.model.upsample_factors, config.model.downsample_factors = up, down
    # Each suggestion passes, with the dilations its order gives that many UBlocks.
    model_lib.validate_topology(model_lib.build_model_from_config(config), hop)


@pytest.mark.parametrize('name', ['tiny_44k', 'tiny_48k'])
def test_high_rate_config_trains_and_vocodes(name, tmp_path):
  config = _config(name)
  d, t = config.data, config.train
  d.tfds_dir, d.max_files, d.heldout_fraction, d.build_threads = str(tmp_path / 'tfds'), 1, 0.0, 1
  t.batch_size, t.num_steps, t.eval_every_steps, t.checkpoint_every_steps = 2, 3, 0, 3
  t.log_every_steps = 1
  config.logging.progress_bar = False
  workdir = str(tmp_path / 'run')
  summary = train.train_and_evaluate(config, workdir)
  assert summary['step'] == 3 and np.isfinite(summary['loss'])
  splits = data_options.prepare_dataset_from_config(config)
  example = splits['train'][0]
  assert example['audio'].shape[0] == example['mel'].shape[0] * config.audio.hop_length
  params, inference, step = checkpoints.load_for_inference(workdir, common.get_common_config())
  assert step == 3 and inference.audio.sample_rate == config.audio.sample_rate
  inference.sampling.clip = 1.0
  inference.eval.chunk_frames, inference.eval.overlap_frames = 40, 0  # one small chunk
  vocode = synthesize.chunked_vocoder_from_config(
      sampling.sampler_from_config(model_lib.build_model_from_config(inference), inference), inference)
  np.save(tmp_path / 'mel.npy', example['mel'][:40])
  out = synthesize.synthesize_files(
      vocode, params, [1e-4, 1e-2, 0.2], inference,
      synthesize.collect_inputs(str(tmp_path / 'mel.npy')), str(tmp_path / 'out'),
      jax.random.PRNGKey(0), progress=False, fail_fast=True)
  info = soundfile.info(out['outputs'][0])
  assert info.samplerate == config.audio.sample_rate
  assert info.frames == 40 * config.audio.hop_length
  wave, _ = soundfile.read(out['outputs'][0])
  assert np.all(np.isfinite(wave)) and os.path.basename(out['outputs'][0]) == 'mel.wav'
