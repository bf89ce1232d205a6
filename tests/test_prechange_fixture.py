"""A checkpoint written before the issue-10 restructuring restores and samples exactly as then.

tests/data/prechange_run/ and prechange_expected.npz were made by
tests/data/make_prechange_fixture.py from the code at commit b1a4748; nothing here regenerates
them.
"""
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import common
from tests.data import make_prechange_fixture as fixture
from wavegrad_jax.training import checkpoints
from wavegrad_jax import models as model_lib
from wavegrad_jax import sampling
from wavegrad_jax.training import parallel
from wavegrad_jax.training import trainer as train

EXPECTED = np.load(os.path.join(fixture.HERE, 'prechange_expected.npz'))
# Float32 XLA on another CPU may round differently; the code itself reproduces the files exactly.
TOLERANCE = dict(rtol=1e-4, atol=1e-4)


def test_parameter_tree_is_unchanged():
  params, config, step = checkpoints.restore_params(fixture.WORKDIR)
  assert step == fixture.NUM_STEPS
  model = model_lib.build_model_from_config(config)
  shapes = jax.eval_shape(lambda: model_lib.init_params_from_config(model, config, jax.random.key(0)))
  assert jax.tree.structure(shapes) == jax.tree.structure(params)
  assert jax.tree.leaves(jax.tree.map(lambda s: s.shape, shapes)) == jax.tree.leaves(
      jax.tree.map(lambda p: p.shape, params))
  assert model_lib.count_params(params) == 4429


def test_denoiser_output_is_unchanged():
  params, config, _ = checkpoints.restore_params(fixture.WORKDIR)
  eps = model_lib.build_model_from_config(config).apply(
      {'params': params}, jnp.asarray(EXPECTED['noisy']), jnp.asarray(EXPECTED['mel']),
      jnp.full((1,), 0.5))
  np.testing.assert_allclose(np.asarray(eps), EXPECTED['eps'], **TOLERANCE)


@pytest.mark.parametrize('name', ['ancestral', 'deterministic', 'gla'])
def test_samples_are_unchanged(name):
  params, config, step = checkpoints.load_for_inference(fixture.WORKDIR, common.get_common_config())
  assert step == fixture.NUM_STEPS
  # Every sampling field the expected samples depend on, pinned (not today's defaults or presets).
  # The fixture predates the GLA variants: its Griffin-Lim is the textbook fast one ('fast').
  changes = {**fixture.SAMPLING, **fixture.SAMPLERS[name],
             'gla': {**fixture.SAMPLING['gla'], 'variant': 'fast',
                     **fixture.SAMPLERS[name]['gla']}}
  config = sampling.with_sampling_fields_from_config(config, changes)
  sampler = sampling.sampler_from_config(model_lib.build_model_from_config(config), config)
  out = sampler(params, jnp.asarray(EXPECTED['betas'], jnp.float32), jnp.asarray(EXPECTED['mel']),
                jax.random.key(7))
  np.testing.assert_allclose(np.asarray(out), EXPECTED[f'samples_{name}'], **TOLERANCE)


def test_training_state_restores_and_the_run_may_resume(tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(fixture.WORKDIR, workdir)
  # Today's config for the same run is accepted as the same model and frontend.
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
