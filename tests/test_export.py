"""The exported artifact: loadable and runnable with JAX alone, and equal to the in-process
chunked vocoder on a mel longer than one batch of chunks."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from tests.test_frame_model import frame_config
from wavegrad_jax.inference import export
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax.inference import synthesize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_RUNTIME = r'''
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location('export_runtime', sys.argv[1])
runtime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtime)
vocoder = runtime.load(sys.argv[2])
np.save(sys.argv[4], vocoder(np.load(sys.argv[3]), seed=7))
assert not any(m.startswith('wavegrad_jax') for m in sys.modules), 'imported the library'
'''


def test_the_exported_vocoder_runs_alone_and_matches_the_in_process_one(tmp_path):
  config = frame_config()
  model = model_lib.build_model_from_config(config)
  params = model_lib.init_params_from_config(model, config, jax.random.key(0), frames=8)
  chunk, overlap, batch = 8, 2, 2
  meta = export.export_vocoder(params, config, '2', chunk, overlap, batch, str(tmp_path / 'art'))
  assert meta['network_evaluations'] == 2 and meta['process']['name'] == 'flow'
  mel = np.random.default_rng(1).normal(-4.0, 1.5, (37, 80)).astype(np.float32)  # 6 chunks
  np.save(tmp_path / 'mel.npy', mel)
  # The runtime file alone, outside the package, in a fresh interpreter.
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH='')
  proc = subprocess.run([sys.executable, '-c', _RUNTIME,
                         os.path.join(REPO, 'wavegrad_jax', 'inference', 'export_runtime.py'),
                         str(tmp_path / 'art'), str(tmp_path / 'mel.npy'),
                         str(tmp_path / 'out.npy')], cwd=str(tmp_path), env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  exported = np.load(tmp_path / 'out.npy')
  vocode = synthesize.make_chunked_vocoder(
      processes.sampler_from_config(model, config), hop_length=256, chunk_frames=chunk,
      overlap_frames=overlap, batch_size=batch,
      pad_value=mel_conventions.silence_value(mel_conventions.Frontend.from_config(config.audio)))
  grid = jnp.asarray(processes.parse_grid_from_config(config, '2'), jnp.float32)
  (expected,), _ = vocode(params, grid, [mel], jax.random.PRNGKey(7))
  assert exported.shape == (37 * 256,)
  np.testing.assert_allclose(exported, expected, atol=1e-5 * np.abs(expected).max())
  # Another seed gives other noise: the comparison sees the key.
  (other,), _ = vocode(params, grid, [mel], jax.random.PRNGKey(8))
  assert np.abs(other - exported).max() > 1e-2 * np.abs(expected).max()
