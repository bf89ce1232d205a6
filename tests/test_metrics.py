"""Objective metrics against by-hand numpy / librosa computations and known extremes."""
import jax
import librosa
import ml_collections
import numpy as np
import pytest
import scipy.signal

from experiments.configs import common
from wavegrad_jax.evaluation import metrics

SR = 16000


def _speech_like(seconds=2.0, sr=SR, seed=0):
  """A voiced, syllable-modulated harmonic signal with a little noise: speech to PESQ / STOI."""
  t = np.arange(int(seconds * sr)) / sr
  f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
  phase = 2 * np.pi * np.cumsum(f0) / sr
  x = sum(np.sin(k * phase) / k for k in range(1, 30))
  x = x * np.clip(np.sin(2 * np.pi * 2.0 * t), 0, None) ** 0.5
  x = x + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
  return (0.9 * x / np.abs(x).max()).astype(np.float32)


def _audio_cfg(sr=SR, hop=64, n_mels=40):
  return common.audio_config(sample_rate=sr, n_fft=256, win_length=256, hop_length=hop,
                             n_mels=n_mels, fmin=0.0, fmax=sr / 2)


def _numpy_stft_mag(x, n_fft, hop, win, floor=None):
  window = np.zeros(n_fft)
  left = (n_fft - win) // 2
  window[left:left + win] = scipy.signal.get_window('hann', win, fftbins=True)
  padded = np.pad(x.astype(np.float64), n_fft // 2, mode='reflect')
  frames = x.size // hop
  stack = np.stack([padded[i * hop:i * hop + n_fft] * window for i in range(frames)])
  spec = np.fft.rfft(stack, axis=-1)
  power = np.abs(spec) ** 2
  return np.sqrt(np.maximum(power, floor)) if floor is not None else np.sqrt(power)


def test_ls_mse_matches_librosa_by_hand():
  cfg = _audio_cfg()
  ref = _speech_like(0.5)
  gen = ref + 0.05 * np.random.default_rng(1).standard_normal(ref.size).astype(np.float32)
  hop = cfg.hop_length // 2
  win = 4 * cfg.hop_length
  frames = ref.size // hop

  def log_mel(x):
    m = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=SR, n_fft=win, hop_length=hop,
                                       win_length=win, window='hann', center=True,
                                       pad_mode='reflect', power=1.0, n_mels=cfg.n_mels,
                                       fmin=0.0, fmax=SR / 2)
    return np.log(m[:, :frames] + 1e-5)

  expected = np.mean((log_mel(gen) - log_mel(ref)) ** 2)
  ls_cfg = metrics.ls_mse_audio_config(cfg)
  assert (ls_cfg.n_fft, ls_cfg.win_length, ls_cfg.hop_length) == (256, 256, 32)
  got = float(metrics.ls_mse(gen, ref, ls_cfg))
  np.testing.assert_allclose(got, expected, rtol=2e-3)
  assert float(metrics.ls_mse(ref, ref, ls_cfg)) == 0.0


def test_ls_mse_batched_and_jitted_equals_per_item():
  cfg = _audio_cfg()
  ls_cfg = metrics.ls_mse_audio_config(cfg)
  ref = _speech_like(0.25)
  rng = np.random.default_rng(2)
  noise_scale = np.array([0.01, 0.1, 0.3], np.float32)[:, None, None]
  gen = ref[None, None] + rng.standard_normal((3, 2, ref.size)).astype(np.float32) * noise_scale
  batched = jax.jit(lambda g, r: metrics.ls_mse(g, r, ls_cfg))(gen, ref[None, None])
  assert batched.shape == (3, 2)
  for k in range(3):
    for b in range(2):
      np.testing.assert_allclose(batched[k, b], metrics.ls_mse(gen[k, b], ref, ls_cfg), rtol=1e-5)
  assert batched[0, 0] < batched[1, 0] < batched[2, 0]  # more noise, larger distance


def test_mrstft_matches_numpy():
  ref = _speech_like(0.5)
  gen = ref + 0.05 * np.random.default_rng(3).standard_normal(ref.size).astype(np.float32)
  resolutions = ((256, 64, 256), (512, 128, 400))
  scs, logs = [], []
  for n_fft, hop, win in resolutions:
    r = _numpy_stft_mag(ref, n_fft, hop, win, 1e-7)
    g = _numpy_stft_mag(gen, n_fft, hop, win, 1e-7)
    scs.append(np.linalg.norm(r - g) / np.linalg.norm(r))
    logs.append(np.mean(np.abs(np.log(r) - np.log(g))))
  got = metrics.multi_resolution_stft_distance(gen[None], ref[None], resolutions)
  np.testing.assert_allclose(got['spectral_convergence'][0], np.mean(scs), rtol=1e-3)
  np.testing.assert_allclose(got['log_magnitude_l1'][0], np.mean(logs), rtol=1e-3)
  np.testing.assert_allclose(got['mrstft'][0], np.mean(scs) + np.mean(logs), rtol=1e-3)
  same = metrics.multi_resolution_stft_distance(ref, ref, resolutions)
  assert float(same['mrstft']) == 0.0


def test_mel_l1_and_spectral_metrics_fn():
  cfg = _audio_cfg()
  eval_cfg = common.eval_config()
  eval_cfg.mrstft_resolutions = ((256, 64, 256),)
  fn = metrics.make_spectral_metrics_fn(cfg, eval_cfg)
  ref = _speech_like(0.25)
  out = fn(ref, ref)
  assert set(out) == {'ls_mse', 'mrstft', 'spectral_convergence', 'log_magnitude_l1', 'mel_l1'}
  assert all(float(v) == 0.0 for v in out.values())
  noisy = fn(ref + 0.1 * np.random.default_rng(4).standard_normal(ref.size).astype(np.float32), ref)
  assert all(float(v) > 0.0 for v in noisy.values())


def test_pesq_and_stoi_identical_and_noisy():
  ref = _speech_like(2.0)
  noisy = ref + 0.05 * np.random.default_rng(5).standard_normal(ref.size).astype(np.float32)
  assert metrics.pesq_wb(ref, ref, SR) == pytest.approx(4.64, abs=0.01)
  assert metrics.stoi(ref, ref, SR) == pytest.approx(1.0, abs=1e-6)
  assert metrics.pesq_wb(noisy, ref, SR) < 3.0
  assert metrics.stoi(noisy, ref, SR) < 0.99
  # Batched inputs score each row; another rate is resampled to 16 kHz first.
  ref22 = _speech_like(2.0, sr=22050)
  both = metrics.pesq_wb(np.stack([ref22, ref22 * 0.5]), np.stack([ref22, ref22]), 22050)
  assert both.shape == (2,) and both[0] == pytest.approx(4.64, abs=0.01)
  assert np.isnan(metrics.pesq_wb(np.zeros(SR, np.float32), np.zeros(SR, np.float32), SR))


def test_real_time_factor():
  assert metrics.real_time_factor(0.5, 22050, 22050) == pytest.approx(0.5)
  assert metrics.real_time_factor(1.0, 0, 22050) == float('inf')


def test_metrics_refuse_mismatched_lengths():
  cfg = metrics.ls_mse_audio_config(_audio_cfg())
  with pytest.raises(ValueError, match='same number of samples'):
    metrics.ls_mse(np.zeros(1000), np.zeros(1024), cfg)
  assert isinstance(cfg, ml_collections.ConfigDict)
