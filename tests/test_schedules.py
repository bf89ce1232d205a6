"""Schedules: parsing, files, noise levels."""
import numpy as np
import pytest

from experiments.configs import common
from wavegrad_jax import schedules


def test_linear_and_fibonacci():
  np.testing.assert_allclose(schedules.linear_betas(1e-6, 0.01, 1000)[[0, -1]], [1e-6, 0.01])
  np.testing.assert_allclose(schedules.fibonacci_betas(1e-6, 6),
                             [1e-6, 2e-6, 3e-6, 5e-6, 8e-6, 13e-6])


def test_named_schedules_from_config():
  named = common.sampling_config().named_schedules
  lengths = {name: len(schedules.parse_schedule(name, named)) for name in named}
  assert lengths == {'6': 6, '6_diffwave': 6, '25': 25, '50': 50, '1000': 1000}
  np.testing.assert_allclose(schedules.parse_schedule('6', named)[-1], 0.06)


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
