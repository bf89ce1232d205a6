"""Tests for the mel frontend (against librosa, on real speech) and for audio loading."""
import glob
import os
import re

import jax
import librosa
import numpy as np
import pytest
import soundfile

from experiments.configs.common import audio_config
from wavegrad_jax.audio import frontend as audio
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.audio import options as audio_options

ALSA_CLIP = '/usr/share/sounds/alsa/Front_Center.wav'  # Debian package alsa-utils, 48 kHz mono.
FILLETS_GLOB = '/usr/share/games/fillets-ng/sound/*/cs/*.ogg'  # package fillets-ng-data-cs.
FILLETS_NAME = re.compile(r'^[a-z0-9]+-[mv]-')

# (config, speech clip): the default frontend, and a hop-300 one whose n_fft is no multiple of the
# hop, whose window is shorter than n_fft, with band edges and the power mel.
MEL_CASES = {
    'sr22050_nfft1024_hop256_mel80_p1': (dict(), 'alsa'),
    'sr22050_nfft1024_hop256_mel80_p1_fillets': (dict(), 'fillets'),
    'sr24000_nfft2048_win1200_hop300_mel128_p2': (
        dict(sample_rate=24000, n_fft=2048, win_length=1200, hop_length=300, n_mels=128, fmin=20.0,
             fmax=12000.0, power=2.0), 'fillets'),
    'sr24000_nfft2048_win1200_hop300_mel128_p1_alsa': (
        dict(sample_rate=24000, n_fft=2048, win_length=1200, hop_length=300, n_mels=128, fmin=20.0,
             fmax=12000.0, power=1.0), 'alsa'),
}


def _cfg(sample_rate=22050, power=1.0, pad_mode='reflect', **kwargs):
  cfg = audio_config(sample_rate=sample_rate, **kwargs)
  cfg.power = power
  cfg.pad_mode = pad_mode
  return cfg


def _fillets_clip():
  """The first (sorted) Czech speech line longer than 1 s: a fixed file on every machine."""
  paths = sorted(p for p in glob.glob(FILLETS_GLOB) if FILLETS_NAME.match(os.path.basename(p)))
  for path in paths:
    if soundfile.info(path).duration > 1.0:
      return path
  pytest.fail(f'no speech clip matches {FILLETS_GLOB}: install Debian package fillets-ng-data-cs')


def _speech(name, sample_rate):
  if name == 'alsa':
    if not os.path.exists(ALSA_CLIP):
      pytest.fail(f'{ALSA_CLIP} missing: install Debian package alsa-utils')
    path = ALSA_CLIP
  else:
    path = _fillets_clip()
  return audio.load_audio(path, sample_rate)


def _librosa_mel(y, cfg):
  """librosa's mel on float64 input (the reference), cut to our T // hop frames, frames-major."""
  mel = librosa.feature.melspectrogram(
      y=np.asarray(y, np.float64), sr=cfg.sample_rate, n_fft=cfg.n_fft,
      hop_length=cfg.hop_length, win_length=cfg.win_length, window=cfg.window, center=True,
      pad_mode=cfg.pad_mode, power=cfg.power, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
  return mel[:, :len(y) // cfg.hop_length].T


def _rel_err(x, ref):
  return float(np.linalg.norm(np.asarray(x, np.float64) - ref) / np.linalg.norm(ref))


# ------------------------------------------------------------------------------------- frontend


@pytest.mark.parametrize('case', sorted(MEL_CASES))
def test_mel_matches_librosa_on_speech(case):
  overrides, clip = MEL_CASES[case]
  cfg = _cfg(**overrides)
  y = _speech(clip, cfg.sample_rate)
  ours = np.asarray(audio.mel_spectrogram(y, mel_conventions.Frontend.from_config(cfg)))
  ref = _librosa_mel(y, cfg)
  assert ours.shape == ref.shape == (len(y) // cfg.hop_length, cfg.n_mels)
  assert ours.dtype == np.float32
  assert _rel_err(ours, ref) < 1e-4


@pytest.mark.parametrize('pad_mode', ['reflect', 'constant'])
def test_mel_edges_follow_pad_mode(pad_mode):
  # Noise is loud at both ends, so the padded edge frames differ between pad modes.
  cfg = _cfg(24000, 2.0, pad_mode, n_fft=2048, win_length=1200, hop_length=300, n_mels=128,
             fmin=20.0, fmax=12000.0)
  y = 0.1 * np.random.default_rng(0).standard_normal(4000).astype(np.float32)
  ours = np.asarray(audio.mel_spectrogram(y, mel_conventions.Frontend.from_config(cfg)))
  ref = _librosa_mel(y, cfg)
  assert _rel_err(ours[:2], ref[:2]) < 1e-4
  assert _rel_err(ours, ref) < 1e-4


def test_log_mel_is_floored_natural_log():
  cfg = _cfg()
  # A tone in the first hop only: the last frames see nothing but zeros and hit the floor.
  y = np.zeros(8 * cfg.hop_length, np.float32)
  y[:cfg.hop_length] = np.sin(np.arange(cfg.hop_length) * 0.3)
  mel = np.asarray(audio.mel_spectrogram(y, mel_conventions.Frontend.from_config(cfg)))
  log_mel = np.asarray(audio.log_mel_spectrogram(y, mel_conventions.Frontend.from_config(cfg)))
  np.testing.assert_allclose(log_mel, np.log(np.maximum(mel, cfg.log_floor)), rtol=1e-6, atol=1e-6)
  assert log_mel.min() == pytest.approx(np.log(cfg.log_floor))


def test_batched_shapes_and_jit():
  cfg = _cfg()
  rng = np.random.default_rng(1)
  length = 10 * cfg.hop_length + 77  # not a whole number of hops: the tail is dropped
  batch = (0.3 * rng.standard_normal((3, length))).astype(np.float32)
  fe = mel_conventions.Frontend.from_config(cfg)
  log_mel = jax.jit(lambda x: audio.log_mel_spectrogram(x, fe))
  out = np.asarray(log_mel(batch))
  assert out.shape == (3, length // cfg.hop_length, cfg.n_mels)
  assert out.dtype == np.float32
  eager = np.asarray(audio.log_mel_spectrogram(batch, fe))
  np.testing.assert_allclose(out, eager, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out[1], np.asarray(audio.log_mel_spectrogram(batch[1], fe)),
                             rtol=1e-5, atol=1e-5)
  assert np.asarray(log_mel(batch[:, None])).shape == (3, 1, 10, cfg.n_mels)  # any leading dims


def test_mel_filterbank_shape_and_cache():
  cfg = _cfg(24000, n_fft=2048, n_mels=128, fmin=20.0, fmax=12000.0)
  fb = audio.mel_filterbank(mel_conventions.Frontend.from_config(cfg))
  assert fb.shape == (2048 // 2 + 1, 128) and fb.dtype == np.float32
  np.testing.assert_array_equal(fb, librosa.filters.mel(sr=24000, n_fft=2048, n_mels=128,
                                                        fmin=20.0, fmax=12000.0).T)
  same = _cfg(24000, n_fft=2048, n_mels=128, fmin=20.0, fmax=12000.0)
  assert audio.mel_filterbank(mel_conventions.Frontend.from_config(same)) is fb


@pytest.mark.parametrize('n_fft,win_length,hop_length', [(1024, 1024, 256), (2048, 1200, 300)])
def test_istft_inverts_stft(n_fft, win_length, hop_length):
  rng = np.random.default_rng(2)
  length = 40 * hop_length + 123
  x = np.stack([_speech('alsa', 22050)[:length],
                0.3 * rng.standard_normal(length)]).astype(np.float32)
  spec = audio.stft(x, n_fft, hop_length, win_length)
  assert spec.shape == (2, length // hop_length, n_fft // 2 + 1)
  np.testing.assert_allclose(np.abs(np.asarray(spec)),
                             np.asarray(audio.stft_magnitude(x, n_fft, hop_length, win_length)),
                             rtol=1e-6, atol=1e-6)
  inverse = jax.jit(lambda s: audio.istft(s, length, n_fft, hop_length, win_length))
  y = np.asarray(inverse(spec))
  assert y.shape == x.shape and y.dtype == np.float32
  for row in range(2):
    assert _rel_err(y[row], x[row]) < 1e-4


# -------------------------------------------------------------------------------------- loading


def test_load_stereo_int16_is_channel_mean(tmp_path):
  rng = np.random.default_rng(3)
  stereo = rng.integers(-20000, 20000, (2205, 2), dtype=np.int16)
  path = tmp_path / 'stereo.wav'
  soundfile.write(path, stereo, 22050, subtype='PCM_16')
  y = audio.load_audio(path, 22050, peak_normalize=0)
  assert y.dtype == np.float32 and y.shape == (2205,)
  np.testing.assert_allclose(y, stereo.astype(np.float64).mean(axis=1) / 32768, atol=1e-6)


def test_load_int16_and_float_agree(tmp_path):
  t = np.arange(8000) / 16000
  x = 0.5 * np.sin(2 * np.pi * 300 * t)
  soundfile.write(tmp_path / 'a.wav', x, 16000, subtype='PCM_16')
  soundfile.write(tmp_path / 'b.wav', x, 16000, subtype='FLOAT')
  soundfile.write(tmp_path / 'c.flac', x, 16000, subtype='PCM_24')
  loaded = [audio.load_audio(tmp_path / n, 16000, 0) for n in ('a.wav', 'b.wav', 'c.flac')]
  for y in loaded:
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x, atol=1 / 32768)


def test_resample_keeps_length_and_pitch(tmp_path):
  t = np.arange(48000) / 48000
  path = tmp_path / 'sine.wav'
  soundfile.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), 48000, subtype='FLOAT')
  y = audio.load_audio(path, 22050, peak_normalize=0)
  assert y.dtype == np.float32
  assert abs(len(y) - round(48000 * 22050 / 48000)) <= 1
  spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
  peak_hz = np.argmax(spectrum) * 22050 / len(y)
  assert abs(peak_hz - 440) <= 1.0
  assert np.max(np.abs(y)) == pytest.approx(0.5, abs=0.01)  # resampling keeps the level


def test_peak_normalisation(tmp_path):
  path = tmp_path / 'quiet.wav'
  x = 0.1 * np.sin(np.arange(4000) * 0.05)
  soundfile.write(path, x, 22050, subtype='FLOAT')
  assert np.max(np.abs(audio.load_audio(path, 22050))) == pytest.approx(0.9, rel=1e-6)
  assert np.max(np.abs(audio.load_audio(path, 22050, 0.5))) == pytest.approx(0.5, rel=1e-6)
  cfg = _cfg()
  np.testing.assert_array_equal(audio_options.load_audio_from_config(path, cfg),
                                audio.load_audio(path, 22050, cfg.peak_normalize))
  silent = tmp_path / 'silent.wav'
  soundfile.write(silent, np.zeros(1000), 22050)
  np.testing.assert_array_equal(audio.load_audio(silent, 22050), np.zeros(1000, np.float32))


def _write_missing(path):
  del path


def _write_zero_bytes(path):
  path.write_bytes(b'')


def _write_zero_frames(path):
  soundfile.write(path, np.zeros((0, 1)), 22050)


def _write_truncated_wav(path):
  soundfile.write(path, 0.5 * np.sin(np.arange(22050) * 0.1), 22050, subtype='PCM_16')
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])


def _write_truncated_flac(path):
  soundfile.write(path, np.random.default_rng(4).uniform(-0.5, 0.5, 48000), 48000,
                  subtype='PCM_16')
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])


def _write_random_bytes(path):
  path.write_bytes(np.random.default_rng(5).integers(0, 256, 5000, dtype=np.uint8).tobytes())


def _write_nan(path):
  soundfile.write(path, np.full(1000, np.nan), 22050, subtype='FLOAT')


@pytest.mark.parametrize('name,write,problem', [
    ('missing.wav', _write_missing, 'no such file'),
    ('zero_bytes.wav', _write_zero_bytes, r'empty \(0 bytes\)'),
    ('zero_frames.wav', _write_zero_frames, r'empty \(0 samples\)'),
    ('truncated.wav', _write_truncated_wav, 'truncated'),
    ('truncated.flac', _write_truncated_flac, 'corrupt'),
    ('noise.wav', _write_random_bytes, 'not a readable audio file'),
    ('nan.wav', _write_nan, 'NaN or infinite'),
])
def test_bad_files_raise_naming_the_path(tmp_path, name, write, problem):
  path = tmp_path / name
  write(path)
  with pytest.raises(audio.AudioLoadError, match=re.escape(str(path)) + '.*' + problem):
    audio.load_audio(path, 22050)
