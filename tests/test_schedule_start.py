"""Schedules must start from noise: the once-per-schedule warning of the sampler, the evaluation and
the search, with the numbers; and the search space's reach."""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import common, tiny
from tests import oracles
from tests.test_synthesize import _config, _speech_like
from wavegrad_jax import sampling
from wavegrad_jax.evaluation import evaluate
from wavegrad_jax.evaluation import schedule_search
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.inference import synthesize

NAMED = common.sampling_config().named_schedules


@pytest.fixture(autouse=True)
def fresh_warnings():
  schedules._WARNED.clear()  # pylint: disable=protected-access
  yield
  schedules._WARNED.clear()  # pylint: disable=protected-access


def _start_warnings(caplog):
  return [r.getMessage() for r in caplog.records
          if r.levelno == logging.WARNING and 'sqrt(alpha_bar_N)' in r.getMessage()
          or 'starts from noise' in r.getMessage()]


class _OracleModel:
  def apply(self, variables, noisy, mel, noise_level):
    return oracles.gaussian_eps(variables['params'], noisy, mel, noise_level)


def test_sampler_warns_once_per_schedule_with_the_numbers(caplog):
  config = tiny.get_config()
  sampler = sampling.sampler_from_config(_OracleModel(), config)
  mel, rng = jnp.zeros((1, 2, config.audio.n_mels)), jax.random.key(0)
  old = schedules.parse_schedule('6_ivanvovk', NAMED)
  with caplog.at_level(logging.WARNING):
    for _ in range(3):
      sampler(0.1, old, mel, rng)
    sampler(0.1, jnp.asarray(old, jnp.float32), mel, rng)  # a device array: the same schedule
    sampler(0.1, schedules.parse_schedule('6', NAMED), mel, rng)
    sampler(0.1, schedules.parse_schedule('1000', NAMED), mel, rng)
  messages = _start_warnings(caplog)
  assert len(messages) == 1, messages
  # Level 0.964; speech at a 0.9 peak and an 18 dB crest factor (RMS 0.113) is then at -7.8 dB
  # SNR in y_N, against the -30 dB (level 0.269) that counts as noise.
  for number in ('sampler: ', '= 0.964', 'RMS 0.113', '-7.8 dB SNR', '<= -30 dB',
                 'level <= 0.269'):
    assert number in messages[0], (number, messages[0])
  # Inside another jit the schedule is traced: nothing to check, no warning, same output.
  traced = jax.jit(lambda b: sampler(0.1, b, mel, rng))(schedules.parse_schedule('25_fibonacci',
                                                                                 NAMED))
  assert traced.shape == (1, 2 * config.audio.hop_length)
  assert len(_start_warnings(caplog)) == 1
  assert sampler.lower(0.1, old, mel, rng) is not None  # the jitted function's attributes remain


def test_threshold_follows_the_data_level(caplog):
  config = tiny.get_config()
  betas = schedules.parse_schedule('6_diffwave', NAMED)   # level 0.613
  with caplog.at_level(logging.WARNING):
    quiet = sampling.check_schedule_start_from_config(betas, config, '6_diffwave', speech_rms=0.001)
    loud = sampling.check_schedule_start_from_config(betas, config, '6_diffwave')
  assert quiet['starts_from_noise'] and not loud['starts_from_noise']
  assert loud['snr_db'] == pytest.approx(-21.1, abs=0.05)
  config.sampling.start_max_snr_db = -20.0
  assert sampling.check_schedule_start_from_config(betas, config, '6_diffwave')['starts_from_noise']
  config.sampling.algorithm = 'griffin_lim'  # uses no schedule: not checked
  assert sampling.check_schedule_start_from_config(betas, config, '6_diffwave') is None
  assert len(_start_warnings(caplog)) == 1


def test_evaluation_warns_with_the_measured_speech_level(caplog):
  config = _config()
  config.eval.pesq = config.eval.stoi = False
  mel_fn = synthesize.make_log_mel_fn(config.audio)
  wave = 0.5 * _speech_like(8 * 64)   # peak 0.45
  utterances = [{'id': 'u0', 'audio': wave, 'mel': np.asarray(mel_fn(jnp.asarray(wave)))}]
  schedule_list = evaluate.parse_schedule_list('6_ivanvovk,6', NAMED)
  with caplog.at_level(logging.WARNING):
    evaluate.evaluate_utterances(oracles.gaussian_eps, jnp.float32(0.2), config, utterances,
                                 schedule_list, jax.random.PRNGKey(0), progress=False)
  messages = _start_warnings(caplog)
  assert len(messages) == 1 and messages[0].startswith("evaluation: schedule '6_ivanvovk'")
  rms = float(np.sqrt(np.mean(np.square(wave.astype(np.float64)))))
  assert f'RMS {rms:.3g}' in messages[0]


def test_search_space_reaches_noise_and_the_best_is_checked(tmp_path, caplog):
  cfg = common.search_config()
  cfg.method, cfg.chunk_size = 'coordinate', 64
  rms, limit_db = 0.113, -30.0
  limit = schedules.max_start_level(rms, limit_db)
  # The default space reaches noise (its lowest final level is below the limit); without the
  # exponent shift it does not (0.30 > 0.269).
  assert schedule_search._Space(6, cfg).lowest_level() < limit  # pylint: disable=protected-access
  narrow = cfg.copy_and_resolve_references()
  narrow.exponent_moves = (0,)
  lowest = schedule_search._Space(6, narrow).lowest_level()  # pylint: disable=protected-access
  assert lowest == pytest.approx(0.3002, abs=1e-4) and lowest > limit

  def prefers_small_betas(betas):
    return np.sum(np.log(betas), axis=-1)

  def prefers_noise(betas):
    return np.log(np.prod(1.0 - betas, axis=-1))

  with caplog.at_level(logging.WARNING):
    out = schedule_search.search_schedule(prefers_small_betas, 6, narrow, str(tmp_path / 'a'),
                                          progress=False, speech_rms=rms,
                                          max_start_snr_db=limit_db)
  messages = _start_warnings(caplog)
  assert len(messages) == 2, messages
  assert 'no 6-step candidate starts from noise' in messages[0]
  assert 'exponent_moves' in messages[0] and 'noise level 0.3 at best' in messages[0]
  assert messages[1].startswith("schedule search: schedule 'best_N6'")
  assert not out['best_start']['starts_from_noise']
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    out = schedule_search.search_schedule(prefers_noise, 6, cfg, str(tmp_path / 'b'),
                                          progress=False, speech_rms=rms,
                                          max_start_snr_db=limit_db)
  assert out['best_start']['starts_from_noise'] and out['best_start']['level'] < limit
  assert not _start_warnings(caplog)
  # The plain named 6-step schedule starts from noise and the default space holds one as good:
  assert schedules.noise_levels(schedules.parse_schedule('6', NAMED))[-1] < limit
