"""Schedules: parsing, files, noise levels."""
import numpy as np
import pytest

from experiments.configs import common
from wavegrad_jax.diffusion import schedules


def test_linear_and_fibonacci():
  np.testing.assert_allclose(schedules.linear_betas(1e-6, 0.01, 1000)[[0, -1]], [1e-6, 0.01])
  np.testing.assert_allclose(schedules.fibonacci_betas(1e-6, 6),
                             [1e-6, 2e-6, 3e-6, 5e-6, 8e-6, 13e-6])


# The published schedules, as their sources ship them (read from the files named in
# experiments/configs/common.py), and the final noise levels sqrt(alpha_bar_N) they reach.
PUBLISHED = {
    '6_ivanvovk': ([1e-6, 1.893e-5, 1.194e-4, 1.005e-3, 1.109e-2, 0.06], 0.9636),
    '6_glagrad': ([9.2e-6, 9.3e-5, 6.6e-5, 6.6e-3, 6.9e-3, 9.2e-2], 0.9464),
    '6_diffwave': ([1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5], 0.6130),
    '25_fibonacci': (1e-6 * np.array([1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987,
                                      1597, 2584, 4181, 6765, 10946, 17711, 28657, 46368, 75025,
                                      121393]), 0.8476),
    '50_diffwave': (np.linspace(1e-4, 0.05, 50), 0.5288),
}


def test_named_schedules_from_config():
  named = common.sampling_config().named_schedules
  lengths = {name: len(schedules.parse_schedule(name, named)) for name in named}
  assert lengths == {'1': 1, '2': 2, '4': 4, '6': 6, '25': 25, '50': 50, '1000': 1000,
                     '6_ivanvovk': 6, '6_glagrad': 6, '6_diffwave': 6, '25_fibonacci': 25,
                     '50_diffwave': 50}
  for name, (betas, level) in PUBLISHED.items():
    np.testing.assert_allclose(schedules.parse_schedule(name, named), betas, rtol=1e-12)
    np.testing.assert_allclose(schedules.noise_levels(betas)[-1], level, atol=5e-5)


def test_plain_named_schedules_start_from_noise_and_published_ones_do_not():
  """The criterion at the data's level: speech peak-normalised to 0.9 with an 18 dB crest
  factor (RMS 0.113), y_N's speech at most -30 dB below its noise."""
  config = common.get_common_config()
  named = config.sampling.named_schedules
  rms = 0.9 / 10 ** (18 / 20)
  levels = {}
  for name in named:
    check = schedules.start_check(schedules.parse_schedule(name, named), rms, -30.0)
    levels[name] = round(check['level'], 4)
    assert check['starts_from_noise'] == (name in ('1', '2', '4', '6', '25', '50', '1000')), (
        name, check)
  assert levels['6'] == 0.1533 and levels['25'] == 0.0814 and levels['50'] == 0.0679
  assert levels['1'] == 0.1732 and levels['2'] == 0.1581 and levels['4'] == 0.154
  assert levels['1000'] == 0.0814
  assert config.sampling.schedule == '6' and config.train.sample_schedule == ''


def test_start_snr_is_the_speech_to_noise_ratio_of_y_n():
  rng = np.random.default_rng(0)
  speech = 0.12 * rng.standard_normal(200_000)
  for level in (0.96, 0.5, 0.08):
    noise = np.sqrt(1 - level**2) * rng.standard_normal(speech.size)
    measured = 10 * np.log10(np.mean((level * speech)**2) / np.mean(noise**2))
    assert abs(schedules.start_snr_db(level, 0.12) - measured) < 0.05
  assert schedules.start_snr_db(0.0, 0.12) == -np.inf
  limit = schedules.max_start_level(0.12, -30.0)
  np.testing.assert_allclose(schedules.start_snr_db(limit, 0.12), -30.0, atol=1e-9)


def test_noise_levels_match_float64_product():
  betas = schedules.parse_schedule('linear:1e-4:0.05:50')
  levels = schedules.noise_levels(betas)
  expected = [1.0] + [np.sqrt(np.prod(1 - betas[:n])) for n in range(1, 51)]
  np.testing.assert_allclose(levels, expected, rtol=1e-12)
  assert np.all(np.diff(levels) < 0)


def test_json_round_trip(tmp_path):
  path = str(tmp_path / 'best.json')
  betas = [1e-6, 1e-4, 1e-2]
  schedules.save_schedule_json(path, betas, score=0.5)
  np.testing.assert_allclose(schedules.parse_schedule(path), betas)
  plain = tmp_path / 'plain.json'
  plain.write_text('[0.001, 0.5]')
  np.testing.assert_allclose(schedules.parse_schedule(str(plain)), [0.001, 0.5])


@pytest.mark.parametrize('spec, message', [
    ('list:0.1,1.5', r'beta\[1\] = 1.5 is outside \(0, 1\)'),
    ('list:0,0.1', r'beta\[0\] = 0.0 is outside'),
    ('linear:a:b:3', 'cannot parse numbers'),
    ('cosine:3', "unknown schedule 'cosine:3'"),
    ('missing.json', 'schedule file not found'),
])
def test_bad_schedules(spec, message):
  with pytest.raises(schedules.ScheduleError, match=message):
    schedules.parse_schedule(spec)


def test_bad_json(tmp_path):
  bad = tmp_path / 'bad.json'
  bad.write_text('{"steps": [1]}')
  with pytest.raises(schedules.ScheduleError, match='needs a "betas" list'):
    schedules.parse_schedule(str(bad))
  bad.write_text('[0.1,')
  with pytest.raises(schedules.ScheduleError, match='not valid JSON'):
    schedules.parse_schedule(str(bad))
