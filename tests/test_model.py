"""The WaveGrad denoiser: shapes, parameter counts, topology errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import base, base_hifigan, large, ljspeech, tiny
from wavegrad_jax import models as wg_model


def _param_count(config):
  model = wg_model.build_model_from_config(config)
  shapes = jax.eval_shape(lambda: wg_model.init_params_from_config(model, config, jax.random.key(0)))
  return wg_model.count_params(shapes)


@pytest.mark.parametrize('get_config, n_mels, expected', [
    (ljspeech.get_config, 80, 15.81e6), (base.get_config, 128, 15.92e6)])
def test_base_parameter_count_matches_paper(get_config, n_mels, expected):
  config = get_config()
  assert config.audio.n_mels == n_mels
  assert abs(_param_count(config) - expected) / expected < 0.01


def test_base_for_hifigan_mels():
  """Base at 22.05 kHz with HiFi-GAN / Tacotron 2 mels: hop 256 = 4*4*4*2*2, every UBlock's
  resolution on the waveform path, the paper's dilations, Base's 15,810,401 parameters at 80."""
  config = base_hifigan.get_config()
  a = config.audio
  assert (a.convention, a.sample_rate, a.hop_length, a.win_length, a.n_fft, a.n_mels, a.fmin,
          a.fmax, a.log_scale, a.log_floor) == ('hifigan', 22050, 256, 1024, 1024, 80, 0.0,
                                                8000.0, 'ln', 1e-5)
  model = wg_model.build_model_from_config(config)
  assert np.prod(model.upsample_factors) == 256
  # UBlock outputs every 64, 16, 4, 2, 1 samples, fed by DBlocks 4, 3, 2, 1 and the input conv.
  assert wg_model.validate_topology(model, 256) == (4, 3, 2, 1, 0)
  assert model.upsample_dilations == ((1, 2, 4, 8),) * 3 + ((1, 2, 1, 2),) * 2
  assert _param_count(config) == 15_810_401


def test_large_is_about_23m_and_tiny_is_small():
  assert 22.5e6 < _param_count(large.get_config()) < 23.5e6
  assert _param_count(tiny.get_config()) < 500_000


@pytest.mark.parametrize('downsample_mode', ['interpolate', 'conv'])
def test_shapes_and_dtype(downsample_mode):
  config = tiny.get_config()
  config.model.downsample_mode = downsample_mode
  model = wg_model.build_model_from_config(config)
  frames, hop = 3, config.audio.hop_length
  params = wg_model.init_params_from_config(model, config, jax.random.key(0))
  noisy = jax.random.normal(jax.random.key(1), (2, frames * hop))
  mel = jax.random.normal(jax.random.key(2), (2, frames, config.audio.n_mels))
  out = model.apply({'params': params}, noisy, mel, jnp.array([0.3, 0.9]))
  assert out.shape == (2, frames * hop) and out.dtype == jnp.float32
  # The noise level conditions the output.
  out2 = model.apply({'params': params}, noisy, mel, jnp.array([0.31, 0.2]))
  assert not np.allclose(out, out2)


def test_bfloat16_compute_keeps_float32_params():
  config = tiny.get_config()
  config.model.dtype = 'bfloat16'
  model = wg_model.build_model_from_config(config)
  params = wg_model.init_params_from_config(model, config, jax.random.key(0))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  hop = config.audio.hop_length
  out = model.apply({'params': params}, jnp.zeros((1, 2 * hop)), jnp.zeros((1, 2, 80)),
                    jnp.ones((1,)) * 0.5)
  assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))


def test_receptive_field_is_local():
  """A change late in the input does not reach far-away early outputs (finite receptive field)."""
  config = tiny.get_config()
  model = wg_model.build_model_from_config(config)
  hop = config.audio.hop_length
  params = wg_model.init_params_from_config(model, config, jax.random.key(0))
  mel = jnp.zeros((1, 40, 80))
  noisy = jax.random.normal(jax.random.key(1), (1, 40 * hop))
  a = model.apply({'params': params}, noisy, mel, jnp.ones((1,)) * 0.5)
  b = model.apply({'params': params}, noisy.at[:, -hop:].add(1.0), mel, jnp.ones((1,)) * 0.5)
  np.testing.assert_allclose(a[:, :10 * hop], b[:, :10 * hop], atol=1e-6)
  assert not np.allclose(a[:, -hop:], b[:, -hop:])


def test_noise_level_encoding():
  enc = wg_model.noise_level_encoding(jnp.array([0.0, 1.0]), 8, 5000.0)
  np.testing.assert_allclose(enc[0], [0, 0, 0, 0, 1, 1, 1, 1], atol=1e-7)
  freqs = np.exp(-np.log(1e4) * np.arange(4) / 4)
  np.testing.assert_allclose(enc[1, :4], np.sin(5000.0 * freqs), atol=2e-3)
  np.testing.assert_allclose(enc[1, 4:], np.cos(5000.0 * freqs), atol=2e-3)


def test_mismatched_lengths_raise():
  config = tiny.get_config()
  model = wg_model.build_model_from_config(config)
  params = wg_model.init_params_from_config(model, config, jax.random.key(0))
  with pytest.raises(ValueError, match=r'T must equal frames \* hop_length = 3 \* 256 = 768'):
    model.apply({'params': params}, jnp.zeros((1, 700)), jnp.zeros((1, 3, 80)), jnp.ones((1,)))


def test_upsample_factors_must_multiply_to_hop():
  config = tiny.get_config()
  config.audio.hop_length = 300
  with pytest.raises(ValueError, match=r'multiply to 256, but the mel hop is 300'):
    wg_model.init_params_from_config(wg_model.build_model_from_config(config), config, jax.random.key(0))


def test_ublock_resolution_without_waveform_stage_raises():
  config = tiny.get_config()
  config.model.downsample_factors = (16, 4)
  config.model.downsample_channels = (32, 48)
  with pytest.raises(ValueError, match='UBlock 2 outputs one step per 4 samples'):
    wg_model.init_params_from_config(wg_model.build_model_from_config(config), config, jax.random.key(0))


def test_mismatched_list_lengths_raise():
  config = tiny.get_config()
  config.model.upsample_channels = (64, 48, 32)
  with pytest.raises(ValueError, match='upsample_channels has 3 entries but upsample_factors has 4'):
    wg_model.init_params_from_config(wg_model.build_model_from_config(config), config, jax.random.key(0))


def test_variants_are_chosen_by_name_and_checked_field_by_field():
  config = tiny.get_config()
  assert config.model.name == 'wavegrad' and set(wg_model.MODELS) == {'wavegrad', 'frame_convnext'}
  model = wg_model.build_model_from_config(config)
  assert isinstance(model, wg_model.WaveGrad) and model.upsample_factors == (4, 4, 4, 4)
  # A config written before models had names builds the same model.
  del config.model['name']
  assert wg_model.build_model_from_config(config) == model
  config.model.name = 'wavenet'
  with pytest.raises(ValueError,
                     match=r"config.model.name must be one of \['frame_convnext', 'wavegrad'\]"):
    wg_model.build_model_from_config(config)
  config.model.name = 'wavegrad'
  config.model.extra_width = 3
  with pytest.raises(ValueError, match=r"unknown fields \['extra_width'\]"):
    wg_model.build_model_from_config(config)
