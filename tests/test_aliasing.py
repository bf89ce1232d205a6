"""The aliasing measure: a clean tone has none, a pointwise nonlinearity at the sample rate shows
its fold-backs where they are predicted."""
import numpy as np

from wavegrad_jax.evaluation import aliasing

RATE = 22050


def test_a_clean_tone_has_no_interharmonic_or_foldback_energy():
  for f0 in (110.0, 230.0, 460.0, 730.0, 1030.0):
    tone = aliasing.harmonic_tone(f0, 1.0, RATE, max_frequency=8000.0)
    m = aliasing.tone_measures(tone, f0, RATE, 8000.0)
    assert m['interharmonic_db'] < -60 and m['num_foldbacks'] > 0
    assert m['foldback_db'] < -60


def test_a_sample_rate_nonlinearity_aliases_where_predicted():
  f0 = 1030.0  # 22050 / 1030 is not whole: fold-backs fall between the harmonics
  tone = aliasing.harmonic_tone(f0, 1.0, RATE, max_frequency=8000.0)
  distorted = aliasing.pointwise_nonlinearity(tone)
  m = aliasing.tone_measures(distorted, f0, RATE, 8000.0)
  assert m['foldback_db'] > -45 and m['interharmonic_db'] > -45
  assert m['foldback_excess_db'] > 10  # energy piles up where fold-backs are predicted
  # The same distortion computed at 8x the rate and band-limited before decimation (no
  # fold-back) puts far less energy at the predicted frequencies.
  up = 8
  t = np.arange(int(RATE * up)) / (RATE * up)
  ks = np.arange(1, int(8000 // f0) + 1)
  phases = np.random.default_rng(0).uniform(0, 2 * np.pi, ks.size)
  fine = np.sum(np.sin(2 * np.pi * f0 * ks[:, None] * t + phases[:, None]) / ks[:, None], 0)
  fine = 0.9 * fine / np.abs(fine).max()
  clean = aliasing.pointwise_nonlinearity(fine)
  spectrum = np.fft.rfft(clean)
  spectrum[int(RATE / 2):] = 0  # ideal low-pass at the target Nyquist frequency
  decimated = np.fft.irfft(spectrum, n=clean.size)[::up] * 1.0
  n = aliasing.tone_measures(decimated, f0, RATE, 8000.0)
  assert n['foldback_db'] < m['foldback_db'] - 20


def test_white_noise_has_no_foldback_excess():
  f0 = 1030.0
  tone = aliasing.harmonic_tone(f0, 1.0, RATE, max_frequency=8000.0)
  noisy = tone + 0.05 * np.random.default_rng(1).standard_normal(tone.size).astype(np.float32)
  m = aliasing.tone_measures(noisy, f0, RATE, 8000.0)
  assert m['interharmonic_db'] > -30 and abs(m['foldback_excess_db']) < 1.5
