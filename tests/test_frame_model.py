"""The frame-domain ConvNeXt denoiser: shapes for any hop and FFT size, that its waveform is the
inverse STFT of its head's spectrum, that a zero network leaves the process's source untouched,
clear refusals, and 2-device training equal to 1-device training."""
import json
import os
import subprocess
import sys

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import common
from experiments.configs import frame_small_flow
from experiments.configs import tiny
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frame_config(hop=256, n_fft=1024, hop_divisor=1, process='flow', prediction='x1'):
  """tiny's frontend (hop changed) with a small frame network."""
  config = tiny.get_config()
  config.audio.hop_length = hop
  config.model = common.frame_model_config()
  config.model.n_fft, config.model.hop_divisor = n_fft, hop_divisor
  config.model.dim, config.model.intermediate_dim, config.model.num_layers = 16, 32, 2
  config.model.cond_dim = 16
  config.process.name = process
  config.process.flow.prediction = prediction
  config.sampling.schedule = '2'
  config.train.sample_schedule = '2'
  return config


@pytest.mark.parametrize('hop,n_fft,divisor', [(256, 1024, 1), (300, 1200, 2), (64, 128, 1),
                                               (256, 512, 2), (120, 480, 3)])
def test_shapes_for_any_hop_and_fft_size(hop, n_fft, divisor):
  config = frame_config(hop, n_fft, divisor)
  model = model_lib.build_model_from_config(config)
  params = model_lib.init_params_from_config(model, config, jax.random.key(0), frames=5)
  for frames in (3, 7):
    x = jax.random.normal(jax.random.key(1), (2, frames * hop))
    out = model.apply({'params': params}, x, jnp.zeros((2, frames, 80)), jnp.ones((2,)))
    assert out.shape == x.shape and out.dtype == jnp.float32
    assert np.all(np.isfinite(out))


def test_the_output_is_the_inverse_stft_of_the_head_spectrum():
  config = frame_config()
  model = model_lib.build_model_from_config(config)
  params = model_lib.init_params_from_config(model, config, jax.random.key(2), frames=8)
  x = jax.random.normal(jax.random.key(3), (2, 8 * 256))
  mel = jax.random.normal(jax.random.key(4), (2, 8, 80))
  out, state = model.apply({'params': params}, x, mel, jnp.full((2,), 0.3),
                           capture_intermediates=True)
  head = state['intermediates']['head']['__call__'][0]
  bins = config.model.n_fft // 2 + 1
  norm = model.window_norm()
  spec = (np.asarray(head[..., :bins], np.float64) + 1j * np.asarray(head[..., bins:])) * norm
  # An independent float64 inverse STFT ('hop_center': (n_fft - hop) / 2 samples padded at each
  # end): windowed overlap-add over the window's summed squares.
  n, hop = config.model.n_fft, 256
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
  frames = np.fft.irfft(spec, n=n, axis=-1) * window
  total = (frames.shape[1] - 1) * hop + n
  y, wss = np.zeros((2, total)), np.zeros(total)
  for i in range(frames.shape[1]):
    y[:, i * hop:i * hop + n] += frames[:, i]
    wss[i * hop:i * hop + n] += window ** 2
  pad = (n - hop) // 2
  y = y / np.where(wss > 0, wss, 1.0)
  expected = y[:, pad:pad + 8 * hop]
  np.testing.assert_allclose(out, expected, atol=1e-4 * np.abs(expected).max())
  # A mutation the comparison catches: the other framing shifts every sample.
  shifted = y[:, n // 2:n // 2 + 8 * hop]
  assert np.abs(np.asarray(out) - shifted).max() > 10 * 1e-4 * np.abs(expected).max()


def test_a_zero_network_reduces_to_the_process_source():
  config = frame_config(prediction='velocity')
  model = model_lib.build_model_from_config(config)
  params = model_lib.init_params_from_config(model, config, jax.random.key(5), frames=8)
  zero = jax.tree.map(jnp.zeros_like, params)
  mel = jnp.zeros((2, 8, 80))
  sampler = processes.sampler_from_config(model, config)
  out = sampler(zero, jnp.asarray([0.0, 0.5, 1.0]), mel, jax.random.key(6))
  source = jax.random.normal(jax.random.key(6), (2, 8 * 256)) * config.process.flow.sigma
  np.testing.assert_allclose(out, source, atol=1e-6)  # v = 0: the sample is the source draw
  # x1 prediction with a zero network: one Euler step from t = 0 lands on x1_hat = 0.
  config = frame_config(prediction='x1')
  out = processes.sampler_from_config(model, config)(zero, jnp.asarray([0.0, 1.0]), mel,
                                                    jax.random.key(6))
  np.testing.assert_allclose(out, 0.0, atol=1e-6)


@pytest.mark.parametrize('field,value,match', [
    ('n_fft', 300, 'at least twice the STFT hop'), ('n_fft', 1023, 'must be even'),
    ('hop_divisor', 3, 'positive divisor of the mel hop'), ('output', 'polar', 'model.output'),
    ('cond_dim', 15, 'cond_dim must be even'), ('num_layers', 0, 'num_layers must be >= 1')])
def test_networks_that_do_not_fit_are_refused_with_the_fix(field, value, match):
  config = frame_config()
  config.model[field] = value
  with pytest.raises(ValueError, match=match):
    model_lib.build_model_from_config(config)


def test_a_wavegrad_field_in_a_frame_config_is_named():
  config = frame_config()
  config.model.upsample_factors = (4, 4)
  with pytest.raises(ValueError, match=r"unknown fields \['upsample_factors'\]"):
    model_lib.build_model_from_config(config)


def test_frame_small_has_a_hundred_times_fewer_macs_per_second_than_base():
  from experiments.configs import base  # pylint: disable=g-import-not-at-top
  frame = model_lib.macs_per_second_from_config(model_lib.build_model_from_config(frame_small_flow.get_config()),
                                    frame_small_flow.get_config())
  wavegrad = model_lib.macs_per_second_from_config(model_lib.build_model_from_config(base.get_config()),
                                       base.get_config())
  assert wavegrad / frame > 100, (wavegrad, frame)


_STEP_SCRIPT = r'''
import json, sys
import jax, numpy as np
from tests.test_frame_model import frame_config
from tests.test_train import synthetic_batches
from wavegrad_jax import models as model_lib
from wavegrad_jax.training import parallel
from wavegrad_jax.training import trainer as train

config = frame_config()
config.train.batch_size, config.data.segment_frames, config.train.warmup_steps = 4, 8, 0
mesh = parallel.make_mesh(parallel.MeshSpec.from_config(config.mesh))
model = model_lib.build_model_from_config(config)
tx = train.make_optimizer(config.train)
_, shardings = train.abstract_train_state(model, tx, config, mesh)
state = train.init_train_state(model, tx, config, mesh)
step_fn = train.compile_train_step(model, tx, config, mesh, shardings)
losses = []
for batch in synthetic_batches(config, 3):
  state, metrics = step_fn(state, parallel.to_global_batch(
      batch, parallel.batch_sharding(mesh, parallel.MeshSpec.from_config(config.mesh)), config.train.batch_size))
  losses.append(float(metrics['loss']))
leaves = jax.tree_util.tree_flatten_with_path(state.params)[0]
np.savez(sys.argv[1] + '.npz', **{jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves})
json.dump({'devices': jax.device_count(), 'losses': losses}, open(sys.argv[1] + '.json', 'w'))
'''


def test_two_devices_train_as_one(tmp_path):
  results = {}
  for n in (1, 2):
    out = str(tmp_path / f'dev{n}')
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu',
               XLA_FLAGS=f'--xla_force_host_platform_device_count={n}')
    proc = subprocess.run([sys.executable, '-c', _STEP_SCRIPT, out], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results[n] = (json.load(open(out + '.json')), dict(np.load(out + '.npz')))
  assert results[1][0]['devices'] == 1 and results[2][0]['devices'] == 2
  np.testing.assert_allclose(results[2][0]['losses'], results[1][0]['losses'], rtol=1e-5)
  # Adam normalises each gradient, so a reduction-order difference in a near-zero gradient can
  # move a parameter by a fraction of the learning rate (1e-3 a step): 1e-5 is 1% of one step.
  for k, v in results[1][1].items():
    np.testing.assert_allclose(results[2][1][k], v, rtol=1e-4, atol=1e-5, err_msg=k)
  assert not np.allclose(results[1][0]['losses'][0], results[1][0]['losses'][-1])  # it trained


def test_a_zero_head_and_unit_skip_start_the_network_as_the_identity():
  config = frame_config()
  config.model.input_skip_init, config.model.zero_head = 1.0, True
  model = model_lib.build_model_from_config(config)
  params = model_lib.init_params_from_config(model, config, jax.random.key(0), frames=8)
  x = 0.1 * jax.random.normal(jax.random.key(1), (2, 8 * 256))
  out = model.apply({'params': params}, x, jnp.zeros((2, 8, 80)), jnp.array([0.0, 0.7]))
  np.testing.assert_allclose(out, x, atol=1e-6)
  config.model.zero_head = False  # the default head adds its own spectrum
  model = model_lib.build_model_from_config(config)
  params = model_lib.init_params_from_config(model, config, jax.random.key(0), frames=8)
  out = model.apply({'params': params}, x, jnp.zeros((2, 8, 80)), jnp.array([0.0, 0.7]))
  assert float(jnp.abs(out - x).max()) > 0.1
  config.model.zero_head, config.model.input_skip = True, False
  with pytest.raises(ValueError, match='zero_head=True without model.input_skip'):
    model_lib.resolved_from_config(config)
  config.model.input_skip, config.model.output = True, 'mag_phase'
  with pytest.raises(ValueError, match="zero head is a unit magnitude"):
    model_lib.resolved_from_config(config)
