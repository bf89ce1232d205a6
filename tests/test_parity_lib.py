"""The torch-free helpers of the parity study: weight layout, name map, data cuts, curve statistics.

The reference's conventions are re-derived here independently (torch Conv1d as a float64 numpy
cross-correlation; the reference's module names and shapes from its constructor arguments), so
these tests need neither torch nor the reference package.
"""
import flax.linen as nn
import jax
import numpy as np
import pytest

from wavegrad_jax.studies import parity as parity_lib
from experiments.configs import parity as parity_config
from wavegrad_jax import models as wg_model


def _torch_conv1d(x, weight, bias, dilation, padding):
  """torch.nn.functional.conv1d in float64 numpy: x [in, T], weight [out, in, k] -> [out, T']."""
  x = np.pad(np.asarray(x, np.float64), ((0, 0), (padding, padding)))
  out_ch, _, k = weight.shape
  length = x.shape[1] - dilation * (k - 1)
  out = np.tile(np.asarray(bias, np.float64)[:, None], (1, length))
  for tap in range(k):
    out += weight[:, :, tap].astype(np.float64) @ x[:, tap * dilation:tap * dilation + length]
  return out


@pytest.mark.parametrize('kernel_size, dilation', [(1, 1), (3, 1), (3, 4), (5, 1)])
def test_converted_kernel_computes_the_same_conv_in_torch_layout(kernel_size, dilation):
  conv = nn.Conv(5, (kernel_size,), kernel_dilation=(dilation,), padding='SAME')
  rng = np.random.default_rng(kernel_size + dilation)
  x = rng.standard_normal((1, 40, 3)).astype(np.float32)
  params = {'kernel': rng.standard_normal((kernel_size, 3, 5)).astype(np.float32),
            'bias': rng.standard_normal(5).astype(np.float32)}
  ours = np.asarray(conv.apply({'params': params}, x))[0].T  # [out, T]
  weight = parity_lib.torch_conv_weight(params['kernel'])
  assert weight.shape == (5, 3, kernel_size)
  # The reference pads by `dilation` for kernel 3 and by 2 for kernel 5: half the dilated extent.
  theirs = _torch_conv1d(np.asarray(x)[0].T, weight, params['bias'], dilation,
                         dilation * (kernel_size - 1) // 2)
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def _reference_shapes(n_mels, mel_ch, up_ch, wave_ch, down_ch):
  """{name: shape} as the reference's WaveGrad constructor lays its modules out."""
  shapes = {'downsample.0.weight': (wave_ch, 1, 5), 'downsample.0.bias': (wave_ch,)}
  stages = [wave_ch, *down_ch]
  for i in range(len(down_ch)):
    cin, cout = stages[i], stages[i + 1]
    shapes.update({f'downsample.{i + 1}.residual_dense.weight': (cout, cin, 1),
                   f'downsample.{i + 1}.conv.0.weight': (cout, cin, 3),
                   f'downsample.{i + 1}.conv.1.weight': (cout, cout, 3),
                   f'downsample.{i + 1}.conv.2.weight': (cout, cout, 3)})
  n_up = len(up_ch)
  for k, s in enumerate(stages):
    shapes.update({f'film.{k}.input_conv.weight': (s, s, 3),
                   f'film.{k}.output_conv.weight': (2 * up_ch[n_up - 1 - k], s, 3)})
  inputs = [mel_ch, *up_ch[:-1]]
  for j, (cin, cout) in enumerate(zip(inputs, up_ch)):
    shapes.update({f'upsample.{j}.block1.weight': (cout, cin, 1),
                   f'upsample.{j}.block2.0.weight': (cout, cin, 3),
                   f'upsample.{j}.block2.1.weight': (cout, cout, 3),
                   f'upsample.{j}.block3.0.weight': (cout, cout, 3),
                   f'upsample.{j}.block3.1.weight': (cout, cout, 3)})
  shapes.update({'first_conv.weight': (mel_ch, n_mels, 3), 'last_conv.weight': (1, up_ch[-1], 3)})
  for name, shape in list(shapes.items()):
    shapes[name.replace('.weight', '.bias')] = (shape[0],)
  return shapes


def _state_of_shapes(config):
  model = wg_model.build_model_from_config(config)
  shapes = jax.eval_shape(lambda: wg_model.init_params_from_config(model, config,
                                                                   jax.random.key(0)))
  sources = wg_model.validate_topology(model, config.audio.hop_length)
  return jax.tree.map(lambda s: np.zeros(s.shape, np.float32), shapes), sources


@pytest.mark.parametrize('topology', ['base', 'curve'])
def test_state_dict_has_the_reference_names_and_shapes(topology):
  config = parity_config.get_config()
  m = config.model if topology == 'base' else config.parity.curve_model
  if topology == 'curve':
    config.model.update(config.parity.curve_model.to_dict())
  params, sources = _state_of_shapes(config)
  state = parity_lib.reference_state_dict(params, sources)
  expected = _reference_shapes(config.audio.n_mels, m.mel_channels, tuple(m.upsample_channels),
                               m.waveform_channels, tuple(m.downsample_channels))
  assert {k: v.shape for k, v in state.items()} == expected
  if topology == 'base':
    # The reference's WaveGrad(params) has 15,920,993 parameters (counted from wavegrad 0.1.5).
    assert sum(v.size for v in state.values()) == 15_920_993


def test_each_film_goes_to_the_stage_the_reference_feeds_it_from():
  config = parity_config.get_config()
  params, sources = _state_of_shapes(config)
  assert sources == (4, 3, 2, 1, 0)
  # Tag every UBlock's FiLM bias with its UBlock index and follow the tag.
  for j in range(5):
    params[f'films_{j}']['output_conv']['bias'][:] = j
  state = parity_lib.reference_state_dict(params, sources)
  for k in range(5):
    assert np.all(state[f'film.{k}.output_conv.bias'] == 4 - k)


def test_strided_downsampling_has_no_reference_counterpart():
  config = parity_config.get_config()
  config.model.downsample_mode = 'conv'
  params, sources = _state_of_shapes(config)
  with pytest.raises(ValueError, match="downsample_mode='interpolate'"):
    parity_lib.reference_state_dict(params, sources)


def test_reference_wiring_check():
  config = parity_config.get_config()
  parity_lib.check_reference_topology(config.model, (4, 3, 2, 1, 0))
  config.model.downsample_factors = (2, 2, 3, 5, 1)
  config.model.downsample_channels = (128, 128, 256, 512, 512)
  sources = wg_model.validate_topology(wg_model.build_model_from_config(config),
                                       config.audio.hop_length)
  with pytest.raises(ValueError, match='6 stages for 5 UBlocks'):
    parity_lib.check_reference_topology(config.model, sources)


def test_reference_variant_and_quick_config():
  config = parity_config.get_config()
  assert config.model.noise_encoding_scale == 1.0
  assert config.model.downsample_mode == 'interpolate'
  assert tuple(map(tuple, config.model.upsample_dilations)) == parity_lib.PEERS_DILATIONS
  assert sorted(parity_lib.PAPER_DILATIONS) == sorted(parity_lib.PEERS_DILATIONS)
  assert parity_config.get_config('quick').parity.curve_steps < config.parity.curve_steps
  with pytest.raises(ValueError, match="use '' \\(full study\\) or 'quick'"):
    parity_config.get_config('fast')


def test_split_files_is_stable_and_disjoint(tmp_path):
  files = [str(tmp_path / f'a-m-{i}.ogg') for i in range(200)]
  train, heldout = parity_lib.split_files(files, 10, 0, 0)
  assert not set(train) & set(heldout) and len(train) + len(heldout) == 200
  assert 5 < len(heldout) < 40
  again_train, again_heldout = parity_lib.split_files(list(reversed(files)), 10, 30, 3)
  assert again_train == train[:30] and again_heldout == heldout[:3]


def test_cut_crops_drops_silence_and_the_tail():
  audio = np.concatenate([np.full(100, 0.5), np.full(100, 0.001), np.full(150, -0.5)])
  crops = parity_lib.cut_crops(audio, 100, 0.05)
  np.testing.assert_array_equal(crops, [np.full(100, 0.5), np.full(100, -0.5)])


def test_speech_files_missing_corpus_names_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match='fillets-ng-data-cs'):
    parity_lib.speech_files(str(tmp_path), r'^x')


def test_overlap_and_order_comparison():
  rng = np.random.default_rng(0)
  base = np.linspace(1.0, 0.2, 11)
  seeds = base + 0.05 * rng.standard_normal((3, 11))
  close = seeds + 1e-3 * rng.standard_normal((3, 11))
  result = parity_lib.overlap(close, seeds)
  assert result['bands_overlap'] and result['max_paired_abs_diff'] < 5e-3
  assert not parity_lib.overlap(seeds + 0.5, seeds)['bands_overlap']
  assert parity_lib.overlap(seeds[:1], seeds[:1])['bands_overlap'] is None
  summary = parity_lib.curve_summary(seeds)
  np.testing.assert_allclose(summary['std'], seeds.std(axis=0, ddof=1))
  comparison = parity_lib.compare_orders(seeds - 0.1, seeds, final_evals=3)
  assert comparison['area']['a_lower_in_every_seed']
  np.testing.assert_allclose(comparison['final']['paired_diff'], [-0.1] * 3)
  np.testing.assert_allclose(comparison['area']['a'], (seeds - 0.1)[:, 1:].mean(axis=1))
  np.testing.assert_allclose(comparison['log_area']['b'], np.log(seeds[:, 1:]).mean(axis=1))
  with pytest.raises(ValueError, match='different shapes'):
    parity_lib.overlap(seeds, seeds[:2])
