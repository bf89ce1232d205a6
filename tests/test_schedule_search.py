"""The schedule search: known optima, cheaper methods, resumption, the sharded model scorer."""
import itertools
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import common
from tests import oracles
from wavegrad_jax import models as model_lib
from wavegrad_jax import sampling
from wavegrad_jax.evaluation import schedule_search
from wavegrad_jax.diffusion import schedules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cfg(method='grid', low=-6.0, high=-1.0, chunk_size=16, **overrides):
  c = common.search_config()
  c.method = method
  c.exponent_low, c.exponent_high = low, high
  c.exponent_moves = (0,)  # the mechanics below are counted on the unshifted grid
  c.chunk_size = chunk_size
  c.evolution_population = 16
  c.evolution_generations = 25
  for k, v in overrides.items():
    c[k] = v
  return c


class CountingScorer:
  """Wraps a scorer, counts the candidates it scores and can fail after `fail_after` of them."""

  def __init__(self, fn, fail_after=None):
    self.fn, self.fail_after = fn, fail_after
    self.seen = []

  def __call__(self, betas):
    betas = np.asarray(betas)
    if self.fail_after is not None and len(self.seen) + len(betas) > self.fail_after:
      raise RuntimeError('killed')
    self.seen.extend(tuple(b) for b in betas)
    return self.fn(betas)


def _planted(target_mantissas, exponents):
  """A convex, coupled quadratic in log10(beta) whose minimum (0) is the planted grid point."""
  target = np.log10(np.asarray(target_mantissas, float) * 10.0 ** np.asarray(exponents, float))
  weights = np.linspace(1.0, 2.0, target.size)

  def score(betas):
    d = np.log10(betas) - target
    return np.sum(weights * d ** 2, axis=-1) + 0.3 * np.sum(d, axis=-1) ** 2
  return score, target


def _random_params(model, config, seed=0):
  """Random weights of the right shapes, without the (slow on CPU) orthogonal initialisers."""
  shapes = jax.eval_shape(lambda: model_lib.init_params_from_config(model, config, jax.random.PRNGKey(seed)))
  rng = np.random.default_rng(seed)
  # numpy draws: one jitted jax.random call per distinct leaf shape would compile dozens of times.
  return jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape).astype(x.dtype)
                                            / max(1, np.prod(x.shape[:-1])) ** 0.5), shapes)


def _run(tmp_path, name, scorer, n, cfg, **kw):
  return schedule_search.search_schedule(scorer, n, cfg, str(tmp_path / name), progress=False,
                                         **kw)


def test_every_method_finds_the_planted_optimum_cheaper_ones_with_fewer_scorings(tmp_path):
  n = 4
  exps = schedule_search.base_exponents(n, -6, -1)
  np.testing.assert_array_equal(exps, [-6, -4, -3, -1])  # np.round: -4.33 -> -4, -2.67 -> -3
  score, target = _planted((7, 2, 5, 3), exps)
  results = {}
  for method in ('grid', 'coordinate', 'evolution'):
    counter = CountingScorer(score)
    results[method] = _run(tmp_path, method, counter, n, _cfg(method))
    np.testing.assert_allclose(np.log10(results[method]['best_betas']), target, atol=1e-12)
    assert results[method]['best_score'] == pytest.approx(0.0, abs=1e-20)
    assert results[method]['scorings'] == len(counter.seen) == len(set(counter.seen))
  assert results['grid']['scorings'] == 9 ** n
  assert results['coordinate']['scorings'] < 9 ** n / 20
  assert results['evolution']['scorings'] < 9 ** n / 10
  best = schedules.parse_schedule(results['coordinate']['paths']['best'])
  np.testing.assert_allclose(np.log10(best), target, atol=1e-12)


def _gaussian_output_variance(betas, s):
  """Output variance of the ancestral sampler with the exact Gaussian denoiser, in float64."""
  betas = np.asarray(betas, np.float64)
  ab = np.cumprod(1 - betas)
  ab_prev = np.concatenate([[1.0], ab[:-1]])
  v = 1.0
  for n in range(betas.size - 1, -1, -1):
    c = np.sqrt(1 - ab[n]) / (ab[n] * s * s + 1 - ab[n])
    a = (1 - betas[n] / np.sqrt(1 - ab[n]) * c) / np.sqrt(1 - betas[n])
    v = a * a * v + ((1 - ab_prev[n]) / (1 - ab[n]) * betas[n] if n > 0 else 0.0)
  return v


def test_gaussian_oracle_through_the_vmapped_sampler_finds_the_analytic_best(tmp_path):
  s, n = 0.5, 2
  cfg = _cfg('grid', low=-2.0, high=-1.0, chunk_size=32)
  exps = schedule_search.base_exponents(n, -2, -1)
  # The known best: the output variance closest to the data's s^2, computed in closed form.
  grid = [np.array(m, float) * 10.0 ** exps for m in itertools.product(range(1, 10), repeat=n)]
  analytic = [(_gaussian_output_variance(b, s) / s**2 - 1) ** 2 for b in grid]
  known_best = grid[int(np.argmin(analytic))]
  mel = jnp.zeros((4, 128, 1))

  def score_fn(generated):  # [K, B, T] -> [K]
    return jnp.square(jnp.mean(jnp.square(generated), axis=(1, 2)) / s**2 - 1.0)

  scorer = schedule_search.make_batched_scorer(oracles.gaussian_eps, jnp.float32(s), mel, score_fn,
                                               jax.random.PRNGKey(0), hop_length=64)
  for method in ('grid', 'coordinate'):
    counter = CountingScorer(scorer)
    out = _run(tmp_path, method, counter, n, _cfg(method, low=-2.0, high=-1.0, chunk_size=32))
    np.testing.assert_allclose(out['best_betas'], known_best, rtol=1e-6)
  assert out['scorings'] < 81
  del cfg


@pytest.mark.parametrize('method', ['grid', 'coordinate', 'evolution'])
def test_killed_search_resumes_without_rescoring(tmp_path, method):
  n = 3
  score, _ = _planted((4, 6, 2), schedule_search.base_exponents(n, -6, -1))
  cfg = _cfg(method, chunk_size=10)
  full = _run(tmp_path, 'full', CountingScorer(score), n, cfg)

  first = CountingScorer(score, fail_after=45)
  with pytest.raises(RuntimeError, match='killed'):
    _run(tmp_path, 'killed', first, n, cfg)
  killed_at = len(first.seen)   # whole scorer batches that returned before the kill
  assert 30 <= killed_at <= 45
  with open(tmp_path / 'killed' / f'candidates_N{n}.jsonl') as f:
    assert len(f.read().splitlines()) == 1 + killed_at   # header + one line per score

  second = CountingScorer(score)
  resumed = _run(tmp_path, 'killed', second, n, cfg)
  assert not set(first.seen) & set(second.seen)          # nothing scored twice
  assert len(first.seen) + len(second.seen) == full['scorings']
  assert resumed['reused'] >= killed_at
  assert resumed['best_betas'] == full['best_betas']
  assert resumed['best_score'] == full['best_score']

  third = CountingScorer(score)                           # a finished search costs nothing
  again = _run(tmp_path, 'killed', third, n, cfg)
  assert not third.seen and again['best_betas'] == full['best_betas']


def test_results_file_of_another_scorer_is_refused(tmp_path):
  score, _ = _planted((1, 1), schedule_search.base_exponents(2, -6, -1))
  cfg = _cfg('coordinate')
  _run(tmp_path, 'a', score, 2, cfg, fingerprint={'step': 100})
  with pytest.raises(schedule_search.SearchResumeError, match='different search setup'):
    _run(tmp_path, 'a', score, 2, cfg, fingerprint={'step': 200})


def test_budgets_tables_plot_and_named_reference(tmp_path):
  def score(betas):  # prefers a total noise close to the published 6-step schedule's.
    total = np.log(np.sum(betas, axis=-1))
    return (total - np.log(0.0733)) ** 2

  named = common.sampling_config().named_schedules.to_dict()
  out = schedule_search.search_budgets(score, [3, 6], _cfg('coordinate'), str(tmp_path),
                                       named=named, progress=False)
  assert os.path.getsize(out['plot']) > 1000
  by_n = {r['num_steps']: r for r in out['budgets']}
  assert set(by_n[6]['named_scores']) == {'6', '6_ivanvovk', '6_glagrad', '6_diffwave'}
  assert set(by_n[3]['named_scores']) == set()
  with open(by_n[6]['paths']['ranked_json']) as f:
    table = json.load(f)
  assert [r['rank'] for r in table[:3]] == [1, 2, 3]
  assert table[0]['score'] <= table[1]['score'] <= table[-1]['score']
  with open(by_n[6]['paths']['ranked']) as f:
    assert f.readline().startswith('rank,score,beta_1')
  with open(tmp_path / 'summary.json') as f:
    assert len(json.load(f)['budgets']) == 2


def _tiny_config():
  config = common.get_common_config()
  config.audio = common.audio_config(sample_rate=8000, n_fft=256, win_length=256, hop_length=64,
                                     n_mels=16, fmax=4000.0)
  m = config.model
  m.mel_channels, m.upsample_factors = 16, (4, 4, 4)
  m.upsample_channels, m.upsample_dilations = (16, 8, 8), ((1, 2, 1, 2),) * 3
  m.waveform_channels, m.downsample_factors, m.downsample_channels = 8, (4, 4), (8, 16)
  config.sampling.clip = 1.0  # random weights diverge without it
  return config


@pytest.mark.parametrize('gla_magnitude', [None, 'given'])
def test_ls_mse_scorer_with_a_random_tiny_model(gla_magnitude):
  config = _tiny_config()
  if gla_magnitude:  # the references' |STFT| is the target: the scorer must pass it on.
    g = config.sampling.gla
    g.enabled, g.magnitude, g.steps, g.iterations = True, gla_magnitude, 'all', 2
  model = model_lib.build_model_from_config(config)
  params = _random_params(model, config)
  rng = np.random.default_rng(0)
  utterances = [{'id': f'u{i}', 'mel': rng.standard_normal((40, 16)).astype(np.float32) - 4,
                 'audio': 0.1 * rng.standard_normal(40 * 64).astype(np.float32)} for i in range(2)]
  mels, refs, ids = schedule_search.search_segments(utterances, 2, 8, 64, np.log(1e-5))
  assert mels.shape == (2, 8, 16) and refs.shape == (2, 512) and ids == ['u0', 'u1']
  scorer = schedule_search.make_ls_mse_scorer(sampling.model_eps_fn(model), params, mels, refs,
                                              jax.random.PRNGKey(1), config)
  betas = np.array([[1e-4, 1e-2, 0.1], [1e-6, 1e-3, 0.5], [1e-4, 1e-2, 0.1]])
  scores = scorer(betas)
  assert scores.shape == (3,) and np.all(np.isfinite(scores)) and np.all(scores > 0)
  assert scores[0] == pytest.approx(scores[2], rel=1e-5)  # same noise for every candidate


_SHARDED_SCRIPT = r'''
import jax, jax.numpy as jnp, numpy as np
from tests import oracles
from wavegrad_jax.evaluation import schedule_search
assert jax.device_count() == 2, jax.devices()
mel = jnp.zeros((2, 32, 1))
fn = lambda g: jnp.mean(jnp.square(g), axis=(1, 2))
make = lambda devs: schedule_search.make_batched_scorer(
    oracles.gaussian_eps, jnp.float32(0.5), mel, fn, jax.random.PRNGKey(0), hop_length=16,
    mesh=schedule_search.candidate_mesh(devs))
betas = np.array([[1e-4, 1e-2, 0.1], [1e-6, 1e-3, 0.5], [2e-4, 3e-2, 0.2]])
one, two = make(jax.devices()[:1])(betas), make(jax.devices())(betas)
np.testing.assert_allclose(one, two, rtol=1e-5)
print('OK', one)
'''


def test_scorer_shards_candidates_over_devices():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2',
             JAX_PLATFORMS='cpu', PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, '-c', _SHARDED_SCRIPT], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.startswith('OK')


def test_capped_grid_scores_a_deterministic_random_subset(tmp_path):
  score, _ = _planted((4, 6, 2), schedule_search.base_exponents(3, -6, -1))
  cfg = _cfg('grid', max_candidates=50)
  runs = [CountingScorer(score), CountingScorer(score)]
  for i, counter in enumerate(runs):
    assert _run(tmp_path, f'r{i}', counter, 3, cfg)['scorings'] == 50
  assert runs[0].seen == runs[1].seen and len(set(runs[0].seen)) == 50
  first_steps = {b[0] for b in runs[0].seen}
  assert len(first_steps) > 1  # not a prefix of the product order, which fixes the first step


def _fingerprint(config=None, step=100, params_seed=0, mel_shift=0.0, **search):
  config = (config or _tiny_config()).copy_and_resolve_references()
  for k, v in search.items():
    config.search[k] = v
  rng = np.random.default_rng(0)
  mels = rng.standard_normal((2, 8, 16)).astype(np.float32) - 4 + mel_shift
  refs = 0.1 * rng.standard_normal((2, 8 * 64)).astype(np.float32)
  params = {'conv': {'kernel': np.random.default_rng(params_seed).standard_normal((3, 4))}}
  return schedule_search.search_fingerprint(config, step=step, params=params, mels=mels,
                                            references=refs, segment_ids=['u0', 'u1'])


def _gla_config(**gla):
  config = _tiny_config()
  config.sampling.gla.enabled = True
  for k, v in gla.items():
    config.sampling.gla[k] = v
  return config


@pytest.mark.parametrize('changed, message', [
    (dict(config=_gla_config(iterations=8)),
     'scorer.sampling.gla.iterations: 32 in the file vs 8 now'),
    (dict(config=_gla_config(magnitude='given')),
     'scorer.sampling.gla.magnitude: "mel_pinv" in the file vs "given" now'),
    (dict(config=_tiny_config()), 'scorer.sampling.gla.enabled: true in the file vs false now'),
    (dict(config=_gla_config(), step=200), 'scorer.checkpoint.step: 100 in the file vs 200 now'),
    (dict(config=_gla_config(), params_seed=1), 'scorer.checkpoint.params_sha256: '),
    (dict(config=_gla_config(), mel_shift=0.5), 'scorer.segments.sha256: '),
    (dict(config=_gla_config(), segment_frames=16),
     'scorer.segments.segment_frames: 32 in the file vs 16 now'),
    (dict(config=_gla_config(), seed=3), 'scorer.seed: 0 in the file vs 3 now'),
])
def test_resuming_under_other_settings_names_what_differs(tmp_path, changed, message):
  score, _ = _planted((1, 1), schedule_search.base_exponents(2, -6, -1))
  cfg = _cfg('coordinate')
  first = _fingerprint(_gla_config())
  _run(tmp_path, 'a', score, 2, cfg, fingerprint=first)
  with pytest.raises(schedule_search.SearchResumeError, match='different search setup') as e:
    _run(tmp_path, 'a', score, 2, cfg, fingerprint=_fingerprint(**changed))
  assert re.search(message, str(e.value)), str(e.value)
  # Only what differs is named, not the whole header.
  assert 'ls_mse' not in str(e.value) and 'n_mels' not in str(e.value)
  # The same settings, fingerprinted afresh, resume without scoring anything.
  counter = CountingScorer(score)
  again = _run(tmp_path, 'a', counter, 2, cfg, fingerprint=_fingerprint(_gla_config()))
  assert not counter.seen and again['reused'] > 0


def test_disabled_gla_options_do_not_block_a_resume(tmp_path):
  score, _ = _planted((1, 1), schedule_search.base_exponents(2, -6, -1))
  cfg = _cfg('coordinate')
  _run(tmp_path, 'a', score, 2, cfg, fingerprint=_fingerprint())
  config = _tiny_config()
  config.sampling.gla.iterations = 8   # GLA is off: this changes no score.
  counter = CountingScorer(score)
  _run(tmp_path, 'a', counter, 2, cfg, fingerprint=_fingerprint(config))
  assert not counter.seen


def test_batched_scorer_compiles_once_per_power_of_two_and_passes_score_args():
  """Any number of candidates per call compiles at most log2(K) + 1 programs; score_args arrive."""
  mel = jnp.zeros((2, 4, 1))

  def score_fn(generated, offset):
    return jnp.mean(jnp.square(generated), axis=(1, 2)) + offset

  scorer = schedule_search.make_batched_scorer(
      oracles.gaussian_eps, jnp.float32(0.5), mel, score_fn, jax.random.PRNGKey(0), hop_length=4,
      score_args=(jnp.float32(100.0),))
  base = np.array([1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5])
  scores = {}
  for k in (1, 2, 3, 5, 7, 8, 9):
    betas = np.stack([base * (1 + 0.1 * i) for i in range(k)])
    out = scorer(betas)
    assert out.shape == (k,) and np.all(out > 100.0)
    scores[k] = out
  # Padding never changes a candidate's score.
  np.testing.assert_allclose(scores[9][:7], scores[7], rtol=1e-6)
  assert scorer.num_compilations() == 5  # K padded to 1, 2, 4, 8, 16
