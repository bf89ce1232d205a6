"""A checkpoint written before the issue-16 layout move restores and samples exactly as then.

tests/data/prelayout_run/ and prelayout_expected.npz were made by
tests/data/make_prelayout_fixture.py from the code at commit 041ceb2 (flat layout); nothing here
regenerates them. They hold the second process ('flow') and network family ('frame_convnext').
"""
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import common
from tests.data import make_prelayout_fixture as fixture
from wavegrad_jax.training import checkpoints
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax.training import parallel
from wavegrad_jax.training import trainer as train

EXPECTED = np.load(os.path.join(fixture.HERE, 'prelayout_expected.npz'))
# Float32 XLA on another CPU may round differently; the code itself reproduces the files exactly.
TOLERANCE = dict(rtol=1e-4, atol=1e-4)


def test_network_output_is_unchanged():
  params, config, step = checkpoints.restore_params(fixture.WORKDIR)
  assert step == fixture.NUM_STEPS
  assert config.model.name == 'frame_convnext' and config.process.name == 'flow'
  assert model_lib.count_params(params) == 44003
  out = model_lib.build_model_from_config(config).apply(
      {'params': params}, jnp.asarray(EXPECTED['noisy']), jnp.asarray(EXPECTED['mel']),
      jnp.full((1,), 0.5))
  np.testing.assert_allclose(np.asarray(out), EXPECTED['net'], **TOLERANCE)


@pytest.mark.parametrize('name', sorted(fixture.SAMPLERS))
def test_samples_are_unchanged(name):
  params, config, step = checkpoints.load_for_inference(fixture.WORKDIR, common.get_common_config())
  assert step == fixture.NUM_STEPS
  grid, solver = fixture.SAMPLERS[name]
  config.sampling.solver = solver
  times = processes.parse_grid_from_config(config, grid)
  np.testing.assert_array_equal(times, EXPECTED[f'times_{name}'])
  sampler = processes.sampler_from_config(model_lib.build_model_from_config(config), config)
  out = sampler(params, jnp.asarray(times, jnp.float32), jnp.asarray(EXPECTED['mel']),
                jax.random.key(7))
  np.testing.assert_allclose(np.asarray(out), EXPECTED[f'samples_{name}'], **TOLERANCE)


def test_training_state_restores_and_the_run_may_resume(tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(fixture.WORKDIR, workdir)
  train.check_resume_compatible(workdir, fixture.fixture_config())
  config = checkpoints.load_config(workdir)
  mesh = parallel.make_mesh(parallel.MeshSpec.from_config(config.mesh), jax.devices()[:1])
  model = model_lib.build_model_from_config(config)
  tx = train.make_optimizer(config.train)
  abstract, _ = train.abstract_train_state(model, tx, config, mesh)
  ckpts = checkpoints.RunCheckpoints(workdir, config)
  state, step = ckpts.restore_latest(abstract)
  ckpts.close()
  assert step == fixture.NUM_STEPS and int(state.step) == fixture.NUM_STEPS
  ema, _, _ = checkpoints.restore_params(fixture.WORKDIR)
  jax.tree.map(np.testing.assert_array_equal, state.ema_params, ema)
