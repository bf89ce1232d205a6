"""The train-step profiler: its pieces compute the train step, and its report's structure.

Timings are never asserted (speed lives in experiments/profile_train_step.py's JSON).
"""
import jax
import numpy as np

from wavegrad_jax.studies import benchmark as benchmark_lib
from wavegrad_jax.studies import profiling as profile_lib
from tests import test_train
from wavegrad_jax import models as model_lib
from wavegrad_jax import processes
from wavegrad_jax.training import trainer as train


def test_pieces_compose_to_the_train_step():
  """forward_backward -> optimizer -> ema, jitted apart, give the step's state and loss."""
  config = test_train.small_config(segment_frames=4, batch_size=2)
  model = model_lib.build_model_from_config(config)
  tx = train.make_optimizer(config.train)
  state = train.create_train_state(model, tx, config)
  pieces = {k: jax.jit(f) for k, f in profile_lib.piece_functions(config, model, tx).items()}
  step_fn = jax.jit(lambda s, b: train.train_step(
      s, b, model=model, tx=tx, process=processes.from_config(config), seed=int(config.seed),
      train_config=config.train))
  rng = np.random.default_rng(1)
  for _ in range(2):  # the second step has a non-trivial EMA and Adam state
    batch = benchmark_lib.synthetic_batch(config, 2, rng)
    loss, grads = pieces['forward_backward'](state.params, batch, state.step)
    params, opt_state = pieces['optimizer'](grads, state.opt_state, state.params)
    ema_params = pieces['ema'](state.ema_params, params, state.step)
    np.testing.assert_allclose(pieces['forward'](state.params, batch, state.step), loss,
                               rtol=1e-6)
    state, metrics = step_fn(state, batch)
    np.testing.assert_allclose(loss, metrics['loss'], rtol=1e-6)
    for mine, theirs in ((params, state.params), (ema_params, state.ema_params),
                         (opt_state, state.opt_state)):
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                   mine, theirs)


def test_profile_reports_donated_state_and_every_piece():
  """The step aliases every state buffer to its output, and every piece has a time and a cost."""
  config = test_train.small_config(segment_frames=4, batch_size=2)
  result = profile_lib.profile_batch(config, 2, warmup_steps=0, timed_steps=1)
  donation = result['step']['donation']
  assert donation['aliased_buffers'] == donation['state_buffers'] > 0
  assert donation['input_buffers_deleted_after_call'] == donation['state_buffers']
  assert result['step']['memory']['alias_size_in_bytes'] == donation['state_bytes']
  assert set(result['pieces']) == {'forward', 'forward_backward', 'optimizer', 'ema'}
  for piece in result['pieces'].values():
    assert piece['time_median_s'] > 0 and piece['cost']['flops'] > 0
  # The backward pass costs more flops than the forward pass; the update is a small part.
  pieces = result['pieces']
  assert pieces['forward_backward']['cost']['flops'] > 2 * pieces['forward']['cost']['flops']
  assert result['step']['cost']['flops'] >= pieces['forward_backward']['cost']['flops']
  assert result['host_to_device']['batch_bytes'] == 2 * 4 * 256 * 4 + 2 * 4 * 80 * 4
  ops = result['ops']
  assert ops['thread_s_per_step'] > 0 and any('convolution' in k for k in ops['by_kind'])
  assert abs(sum(ops['by_pass'].values()) - 1) < 1e-6 and ops['by_pass']['backward'] > 0
