"""Mel conventions: each against an independent reference recipe on real speech, their inverses,
conversion between them, the mismatch errors and the 'resembles another convention' warning.

The reference recipes are written out here in numpy float64 from the projects' own code, not from
ours: HiFi-GAN's meldataset.py `mel_spectrogram`, ParallelWaveGAN's preprocess.py
`logmelfilterbank` (+ compute_statistics.py / normalize.py's StandardScaler), and lmnt-com
wavegrad / diffwave preprocess.py (torchaudio MelSpectrogram, whose HTK filterbank is spelt out).
"""
import dataclasses
import functools
import glob
import os
import re
import warnings

import jax
import jax.numpy as jnp
import librosa
import ml_collections
import numpy as np
import pytest
import sklearn.preprocessing
import soundfile
import soxr

from wavegrad_jax.data import builders
from wavegrad_jax.data import fingerprint
from wavegrad_jax.data import reading
from experiments.configs import common
from experiments.configs import tiny
from experiments.configs import tiny_espnet
from experiments.configs import tiny_espnet2
from experiments.configs import tiny_hifigan
from experiments.configs import tiny_lmnt
from tests import oracles
from wavegrad_jax.audio import frontend as audio
from wavegrad_jax.data import options as data_options
from wavegrad_jax.audio import conventions as mc
from wavegrad_jax import models as model_lib
from wavegrad_jax.audio import phase
from wavegrad_jax.audio import options as audio_options
from wavegrad_jax import sampling
from wavegrad_jax.inference import synthesize

ALSA_CLIP = '/usr/share/sounds/alsa/Front_Center.wav'  # Debian alsa-utils, 48 kHz speech.
FILLETS_GLOB = '/usr/share/games/fillets-ng/sound/*/cs/*.ogg'  # Debian fillets-ng-data-cs.
FILLETS_NAME = re.compile(r'^[a-z0-9]+-[mv]-')


@functools.lru_cache(maxsize=None)
def _fillets_paths():
  """The first 20 (sorted) fish lines longer than 1 s: fixed files on every machine."""
  paths = sorted(p for p in glob.glob(FILLETS_GLOB) if FILLETS_NAME.match(os.path.basename(p)))
  long_enough = []
  for p in paths:
    if soundfile.info(p).duration > 1.0:
      long_enough.append(p)
      if len(long_enough) == 20:
        return tuple(long_enough)
  pytest.fail(f'too few speech clips match {FILLETS_GLOB}: install fillets-ng-data-cs')


def _raw(path, sample_rate):
  """A file as the recipes read it: float in [-1, 1], mono, at `sample_rate` (soxr if needed)."""
  if path == 'alsa':
    path = ALSA_CLIP
  elif path == 'fillets':
    path = _fillets_paths()[0]
  data, rate = soundfile.read(path, dtype='float64', always_2d=True)
  y = data.mean(axis=1)
  if rate != sample_rate:
    y = soxr.resample(y, rate, sample_rate, quality='HQ')
  return y


def _rel_err(ours, ref):
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


# ------------------------------------------------------------------------- the reference recipes


def _hann(win_length, n_fft):
  """torch.hann_window(win_length) (periodic), zero-padded centred to n_fft as torch.stft does."""
  w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
  left = (n_fft - win_length) // 2
  return np.pad(w, (left, n_fft - win_length - left)), w


def _frames(y, n_fft, hop, pad, mode='reflect'):
  """torch.stft(center=False) framing of y padded by `pad` at both ends: [frames, n_fft]."""
  y = np.pad(y, (pad, pad), mode=mode)
  count = 1 + (len(y) - n_fft) // hop
  return y[np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]]


def hifigan_reference(y, sr=22050, n_fft=1024, num_mels=80, hop_size=256, win_size=1024, fmin=0,
                      fmax=8000):
  """jik876/hifi-gan meldataset.py mel_spectrogram (center=False), on a normalised waveform."""
  y = librosa.util.normalize(y) * 0.95  # meldataset.py: audio = normalize(audio) * 0.95
  pad = int((n_fft - hop_size) / 2)
  window, _ = _hann(win_size, n_fft)
  spec = np.fft.rfft(_frames(y, n_fft, hop_size, pad) * window, axis=-1)
  spec = np.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
  mel_basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax)
  return np.log(np.clip(spec @ mel_basis.T, 1e-5, None))


def espnet_reference(y, sr=22050, fft_size=1024, hop_size=256, num_mels=80, fmin=80, fmax=7600):
  """kan-bayashi/ParallelWaveGAN preprocess.py logmelfilterbank (log_base=10, eps=1e-10)."""
  x_stft = librosa.stft(y, n_fft=fft_size, hop_length=hop_size, win_length=None, window='hann',
                        pad_mode='reflect')
  spc = np.abs(x_stft).T
  mel_basis = librosa.filters.mel(sr=sr, n_fft=fft_size, n_mels=num_mels, fmin=fmin, fmax=fmax)
  mel = np.maximum(1e-10, np.dot(spc, mel_basis.T))
  return np.log10(mel)[:len(y) // hop_size]  # our frontend keeps the first T // hop frames


def _torchaudio_htk_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate):
  """torchaudio.functional.melscale_fbanks(norm=None, mel_scale='htk'): [n_freqs, n_mels]."""
  all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
  m_min, m_max = (2595.0 * np.log10(1.0 + f / 700.0) for f in (f_min, f_max))
  f_pts = 700.0 * (10 ** (np.linspace(m_min, m_max, n_mels + 2) / 2595.0) - 1.0)
  f_diff = f_pts[1:] - f_pts[:-1]
  slopes = f_pts[None, :] - all_freqs[:, None]
  down = -slopes[:, :-2] / f_diff[:-1]
  up = slopes[:, 2:] / f_diff[1:]
  return np.maximum(0.0, np.minimum(down, up))


def lmnt_reference(y, sr=22050, hop=300, n_mels=128):
  """lmnt-com wavegrad (hop 300, 128 mels) / diffwave (hop 256, 80) preprocess.py transform."""
  y = np.clip(y, -1.0, 1.0)
  win = hop * 4
  n_fft = 2 ** ((win - 1).bit_length())
  window, short = _hann(win, n_fft)
  # torchaudio Spectrogram: center=True, pad_mode='reflect', normalized=True, power=1.
  spec = np.abs(np.fft.rfft(_frames(y, n_fft, hop, n_fft // 2) * window, axis=-1))
  spec /= np.sqrt(np.sum(short ** 2))
  mel = spec @ _torchaudio_htk_fbanks(n_fft // 2 + 1, 20.0, sr / 2.0, n_mels, sr)
  db = 20 * np.log10(np.maximum(mel, 1e-5)) - 20
  return np.clip((db + 100) / 100, 0.0, 1.0)[:len(y) // hop]


def wavegrad_reference(y, cfg):
  """Ours, from librosa: ln(max(melspectrogram(center=True), 1e-5)) of a 0.9-peak waveform."""
  y = y * (0.9 / np.max(np.abs(y)))
  mel = librosa.feature.melspectrogram(y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft,
                                       hop_length=cfg.hop_length, win_length=cfg.win_length,
                                       window='hann', center=True, pad_mode='reflect', power=1.0,
                                       n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
  return np.log(np.maximum(mel, 1e-5)).T[:len(y) // cfg.hop_length]


@pytest.fixture(scope='module')
def espnet_stats(tmp_path_factory):
  """ParallelWaveGAN compute_statistics.py on 10 other fillets lines: stats.npy [mean, scale]."""
  scaler = sklearn.preprocessing.StandardScaler()
  for path in _fillets_paths()[2:12]:
    scaler.partial_fit(espnet_reference(_raw(path, 22050)))
  path = str(tmp_path_factory.mktemp('stats') / 'stats.npy')
  np.save(path, np.stack([scaler.mean_, scaler.scale_], axis=0))
  return path, scaler


# ------------------------------------------------------------------- each convention vs its recipe

# (name, config, clip): the clips are a Czech line at its native 22,050 Hz and an English one
# resampled from 48 kHz. The 'ours' frontend goes through audio.load_audio + log_mel_spectrogram,
# exactly as the training data and copy synthesis do.
RECIPE_CASES = [
    ('wavegrad', 'fillets'), ('wavegrad', 'alsa'),
    ('hifigan', 'fillets'), ('hifigan', 'alsa'),
    ('espnet', 'fillets'), ('espnet', 'alsa'),
    ('espnet_meanvar', 'fillets'), ('espnet_meanvar', 'alsa'),
    ('lmnt_wavegrad', 'fillets'), ('lmnt_wavegrad', 'alsa'),
    ('lmnt_diffwave', 'fillets'),
]


def _case_config(name, stats_path=''):
  return {
      'wavegrad': common.audio_config,
      'hifigan': common.audio_config_hifigan,
      'espnet': common.audio_config_espnet,
      'espnet_meanvar': lambda: common.audio_config_espnet(stats_file=stats_path),
      'lmnt_wavegrad': common.audio_config_lmnt,
      'lmnt_diffwave': lambda: common.audio_config_lmnt(hop_length=256, n_mels=80),
  }[name]()


def _reference(name, y, cfg, scaler=None):
  if name == 'wavegrad':
    return wavegrad_reference(y, cfg)
  if name == 'hifigan':
    return hifigan_reference(y)
  if name == 'espnet':
    return espnet_reference(y)
  if name == 'espnet_meanvar':
    return scaler.transform(espnet_reference(y))  # ParallelWaveGAN normalize.py
  if name == 'lmnt_wavegrad':
    return lmnt_reference(y)
  return lmnt_reference(y, hop=256, n_mels=80)


@pytest.mark.parametrize('name, clip', RECIPE_CASES)
def test_convention_matches_its_reference_recipe_on_speech(name, clip, espnet_stats):
  stats_path, scaler = espnet_stats
  cfg = _case_config(name, stats_path)
  path = ALSA_CLIP if clip == 'alsa' else _fillets_paths()[0]
  ours = np.asarray(audio.log_mel_spectrogram(audio_options.load_audio_from_config(path, cfg),
                                              mc.Frontend.from_config(cfg)))
  ref = _reference(name, _raw(path, cfg.sample_rate), cfg, scaler)
  assert ours.dtype == np.float32 and ours.shape[1] == cfg.n_mels
  err = _rel_err(ours, ref)
  print(f'{name} {clip}: relative error {err:.2e}')
  assert err < 1e-4
  # Not trivially so: the values use their whole range (floor, clip) only in part.
  assert np.std(ref) > 0.05


# ------------------------------------------- each recipe's formula at the extremes: silence, clipping

def _np_stft(y, n_fft, hop, win, pad):
  """float64 |STFT| pieces: [T // hop, n_fft // 2 + 1] complex, torch.stft framing of y padded."""
  window, short = _hann(win, n_fft)
  return np.fft.rfft(_frames(y, n_fft, hop, pad) * window, axis=-1)[:len(y) // hop], short


def _slaney(sr, n_fft, n_mels, fmin, fmax):
  return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                             dtype=np.float64).T


def formula_wavegrad(y):
  """Ours: ln(max(|X| @ slaney, 1e-5)), centred reflect STFT, 22,050 Hz / 1024 / 256 / 80."""
  spec, _ = _np_stft(y, 1024, 256, 1024, 512)
  return np.log(np.maximum(np.abs(spec) @ _slaney(22050, 1024, 80, 0.0, 11025.0), 1e-5))


def formula_hifigan(y):
  """meldataset.py: sqrt(re^2 + im^2 + 1e-9) @ slaney(0-8 kHz), ln(max(., 1e-5)), hop-centred."""
  spec, _ = _np_stft(y, 1024, 256, 1024, (1024 - 256) // 2)
  mag = np.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
  return np.log(np.maximum(mag @ _slaney(22050, 1024, 80, 0.0, 8000.0), 1e-5))


def formula_parallel_wavegan(y):
  """ParallelWaveGAN logmelfilterbank: log10(max(1e-10, |X| @ slaney(80-7,600 Hz)))."""
  spec, _ = _np_stft(y, 1024, 256, 1024, 512)
  return np.log10(np.maximum(1e-10, np.abs(spec) @ _slaney(22050, 1024, 80, 80.0, 7600.0)))


def formula_espnet2(y):
  """ESPnet2 LogMelFbank: amp = sqrt(clamp(re^2 + im^2, 1e-10)); log10(clamp(amp @ fb, 1e-10))."""
  spec, _ = _np_stft(y, 1024, 256, 1024, 512)
  amp = np.sqrt(np.maximum(spec.real ** 2 + spec.imag ** 2, 1e-10))
  return np.log10(np.maximum(amp @ _slaney(22050, 1024, 80, 80.0, 7600.0), 1e-10))


def formula_lmnt(y):
  """lmnt wavegrad preprocess.py: torchaudio normalized |X| @ HTK, dB - 20, clip((+100) / 100)."""
  spec, short = _np_stft(y, 2048, 300, 1200, 1024)
  mel = (np.abs(spec) / np.sqrt(np.sum(short ** 2))) @ _torchaudio_htk_fbanks(
      1025, 20.0, 11025.0, 128, 22050)
  return np.clip((20 * np.log10(np.maximum(mel, 1e-5)) - 20 + 100) / 100, 0.0, 1.0)


EXTREME_CASES = {
    'wavegrad': (common.audio_config, formula_wavegrad),
    'hifigan': (common.audio_config_hifigan, formula_hifigan),
    'parallel_wavegan': (common.audio_config_parallel_wavegan, formula_parallel_wavegan),
    'espnet': (common.audio_config_espnet, formula_parallel_wavegan),  # the alias
    'espnet2': (common.audio_config_espnet2, formula_espnet2),
    'lmnt': (common.audio_config_lmnt, formula_lmnt),
}


def _extreme_signal(kind):
  """1 s at 22,050 Hz: digital silence, or a full-scale 110 Hz square wave (every sample +-1)."""
  t = np.arange(22050) / 22050.0
  if kind == 'silence':
    return np.zeros_like(t)
  return np.where(np.sin(2 * np.pi * 110.0 * t + 0.1) >= 0, 1.0, -1.0)


@pytest.mark.parametrize('kind', ['silence', 'square'])
@pytest.mark.parametrize('name', list(EXTREME_CASES))
def test_each_convention_is_its_recipes_formula_on_silence_and_clipping(name, kind):
  """The frontend (float32, JAX) against the recipe's formula in float64 on the waveform as given
  (the peak normalisation of loading is not part of it: a silent file has no peak to scale)."""
  make, formula = EXTREME_CASES[name]
  cfg = make()
  y = _extreme_signal(kind)
  ours = np.asarray(audio.log_mel_spectrogram(jnp.asarray(y, jnp.float32),
                                              mc.Frontend.from_config(cfg)), np.float64)
  ref = formula(y)
  assert ours.shape == ref.shape == (len(y) // cfg.hop_length, cfg.n_mels)
  err = float(np.max(np.abs(ours - ref)))
  print(f'{name} {kind}: max |ours - formula| = {err:.2e} (values {ref.min():.3f} .. '
        f'{ref.max():.3f})')
  # float32 STFT and filterbank: about 1e-6 relative on the mel, a few 1e-6 in log units.
  assert err < (2e-5 if kind == 'square' else 1e-6)
  if kind == 'square':
    assert np.std(ref) > 0.05  # the square wave's harmonics shape the bands: not a flat answer


def test_silence_tells_espnet2_from_parallel_wavegan():
  """What the power floor changes, and only there: silence is log10(1e-5 * the band's filter sum)
  under ESPnet2, the mel floor -10 under ParallelWaveGAN; loud audio is the same under both."""
  silence, square = _extreme_signal('silence'), _extreme_signal('square')
  pwg, espnet2 = common.audio_config_parallel_wavegan(), common.audio_config_espnet2()
  mel = lambda y, cfg: np.asarray(audio.log_mel_spectrogram(jnp.asarray(y, jnp.float32),
                                                            mc.Frontend.from_config(cfg)))
  np.testing.assert_allclose(mel(silence, pwg), -10.0, atol=1e-6)
  band_sums = _slaney(22050, 1024, 80, 80.0, 7600.0).sum(axis=0)
  np.testing.assert_allclose(mel(silence, espnet2)[0], np.log10(1e-5 * band_sums), atol=1e-5)
  assert np.all(mel(silence, espnet2) > -6.5)  # -6.35 .. -6.30: 3.7 decades above the mel floor
  # A mutation check of the formulas themselves: each recipe's formula fails the other's silence.
  assert np.max(np.abs(formula_espnet2(silence) - formula_parallel_wavegan(silence))) > 3.0
  np.testing.assert_allclose(mel(square, espnet2), mel(square, pwg), atol=1e-5)


def test_the_default_frontend_is_unchanged_and_old_configs_read_as_it():
  """A run saved before the convention fields existed restores to the same frontend."""
  cfg = tiny.get_config().audio
  old = ml_collections.ConfigDict({k: cfg[k] for k in (
      'sample_rate', 'n_fft', 'win_length', 'hop_length', 'n_mels', 'fmin', 'fmax', 'window',
      'power', 'log_floor', 'pad_mode', 'peak_normalize')})
  y = audio_options.load_audio_from_config(ALSA_CLIP, cfg)
  fe, old_fe = mc.Frontend.from_config(cfg), mc.Frontend.from_config(old)
  new_mel = np.asarray(audio.log_mel_spectrogram(y, fe))
  np.testing.assert_array_equal(new_mel, np.asarray(audio.log_mel_spectrogram(y, old_fe)))
  # The pre-convention formula, to the bit.
  np.testing.assert_array_equal(
      new_mel, np.asarray(jnp.log(jnp.maximum(audio.mel_spectrogram(y, fe), 1e-5))))
  assert mc.Frontend.from_config(old) == mc.Frontend.from_config(cfg)
  # The prepared-data key: the same fields as before, so existing datasets stay valid.
  assert set(fingerprint.stored_audio_values(data_options.AudioOptions.from_config(cfg))) == set(old)


def test_presets_follow_the_convention_table():
  for name, make in [('wavegrad', common.audio_config), ('hifigan', common.audio_config_hifigan),
                     ('parallel_wavegan', common.audio_config_parallel_wavegan),
                     ('espnet', common.audio_config_espnet),
                     ('espnet2', common.audio_config_espnet2), ('lmnt', common.audio_config_lmnt)]:
    fe = mc.Frontend.from_config(make())
    canonical = mc.canonical(name)
    assert fe.convention == name and mc.matching_convention(fe) == canonical
    for field, value in {**mc.CONVENTIONS[canonical], **mc.RECIPE_VALUES[canonical]}.items():
      assert getattr(fe, field) in (value if isinstance(value, tuple) and field not in (
          'range_in', 'range_out') else (value,)), (name, field)
    assert mc.preset_call(fe).startswith('audio_config' if name == 'wavegrad'
                                         else f'audio_config_{canonical}(')
  # The alias is the same recipe under its old name; espnet2 differs from it by the power floor.
  assert mc.canonical('espnet') == 'parallel_wavegan'
  assert (dataclasses.replace(mc.Frontend.from_config(common.audio_config_espnet()),
                              convention='custom')
          == dataclasses.replace(mc.Frontend.from_config(common.audio_config_parallel_wavegan()),
                                 convention='custom'))
  fields = lambda make: dict(mc.effective_fields(mc.Frontend.from_config(make())).items())
  assert set(fields(common.audio_config_espnet2).items()) - set(
      fields(common.audio_config_espnet).items()) == {('power_floor', 1e-10)}
  lmnt = common.audio_config_lmnt()
  assert (lmnt.hop_length, lmnt.win_length, lmnt.n_fft, lmnt.n_mels) == (300, 1200, 2048, 128)


@pytest.mark.parametrize('module, convention', [(tiny_hifigan, 'hifigan'),
                                                (tiny_espnet, 'espnet'), (tiny_espnet2, 'espnet2'),
                                                (tiny_lmnt, 'lmnt')])
def test_one_flag_configs_validate(module, convention):
  config = module.get_config()
  assert mc.Frontend.from_config(config.audio).convention == convention
  model_lib.validate_topology(model_lib.build_model_from_config(config), int(config.audio.hop_length))


def test_a_convention_name_contradicted_by_its_fields_is_refused():
  cfg = common.audio_config()
  cfg.convention = 'hifigan'  # the name alone changes nothing: it must come with its fields.
  with pytest.raises(mc.MelConventionError,
                     match=r"convention='hifigan' contradicts framing='center'.*"
                           r"audio_config_hifigan\(\).*tiny_hifigan.py.*'custom'"):
    audio.log_mel_spectrogram(np.zeros(1024, np.float32), mc.Frontend.from_config(cfg))
  cfg.convention = 'custom'
  audio.log_mel_spectrogram(np.zeros(1024, np.float32), mc.Frontend.from_config(cfg))
  for field, value, match in [('framing', 'centre', 'framing must be one of'),
                              ('log_scale', 'log2', 'log_scale must be one of'),
                              ('log_floor', 0.0, 'log_floor must be > 0'),
                              ('normalize', 'meanvar', 'needs audio.stats_file')]:
    bad = common.audio_config()
    bad.convention = 'custom'
    bad[field] = value
    with pytest.raises(mc.MelConventionError, match=match):
      mc.Frontend.from_config(bad)


# ------------------------------------------------------------------------- hop-centred framing


@pytest.mark.parametrize('n_fft, hop', [(1024, 256), (2048, 300), (1024, 300)])
def test_hop_center_stft_is_centred_on_hop_middles_and_inverts(n_fft, hop):
  y = _raw('fillets', 22050)[:hop * 40].astype(np.float32)
  spec = np.asarray(audio.stft(y, n_fft, hop, framing='hop_center'))
  window, _ = _hann(n_fft, n_fft)
  ref = np.fft.rfft(_frames(y.astype(np.float64), n_fft, hop, (n_fft - hop) // 2) * window)
  assert spec.shape == (40, n_fft // 2 + 1)
  assert _rel_err(np.abs(spec), np.abs(ref[:40])) < 1e-5
  back = np.asarray(audio.istft(spec, len(y), n_fft, hop, framing='hop_center'))
  np.testing.assert_allclose(back[:-n_fft], y[:-n_fft], atol=1e-4)


def test_gla_follows_the_frontend_framing_and_converges():
  config = tiny_hifigan.get_config()
  config.sampling.gla.enabled = True
  # The textbook variant follows the frontend's framing (the authors' is torch.stft's, centred).
  config.sampling.gla.variant, config.sampling.gla.momentum = 'fast', 0.1 / 0.9
  gla = sampling.gla_options_from_config(config)
  assert gla.griffin_lim.framing == 'hop_center' and gla.mel_frontend.framing == 'hop_center'
  opts = gla.griffin_lim
  y = audio_options.load_audio_from_config(_fillets_paths()[0], config.audio)[:256 * 48]
  target = audio.stft_magnitude(y, opts.n_fft, opts.hop_length, opts.win_length,
                                framing='hop_center')
  noisy = y + 0.05 * np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
  before = float(phase.spectral_convergence(noisy, target, opts))
  after = float(phase.spectral_convergence(phase.griffin_lim(noisy, target, opts), target, opts))
  assert after < 0.7 * before


@pytest.mark.parametrize('module', [tiny_hifigan, tiny_lmnt])
def test_gla_grad_sampler_runs_on_a_convention_mel(module):
  """GLA-Grad's mel_pinv target comes from the convention's mel inside the jitted sampler."""
  config = module.get_config()
  config.sampling.gla.enabled, config.sampling.gla.iterations = True, 4
  gla = sampling.gla_options_from_config(config)
  y = audio_options.load_audio_from_config(_fillets_paths()[0], config.audio)[None, :256 * 16]
  mel = audio.log_mel_spectrogram(y, mc.Frontend.from_config(config.audio))
  sampler = sampling.make_sampler(oracles.gaussian_eps, hop_length=256, gla=gla)
  out = sampler(0.1, np.array([1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5], np.float32), mel,
                jax.random.key(0))
  assert out.shape == y.shape and bool(jnp.all(jnp.isfinite(out)))


# -------------------------------------------------------------------------------- pseudo-inverse


@pytest.mark.parametrize('name', ['wavegrad', 'hifigan', 'espnet', 'espnet_meanvar',
                                  'lmnt_wavegrad'])
def test_mel_pinv_magnitude_inverts_each_convention(name, espnet_stats):
  cfg = _case_config(name, espnet_stats[0])
  fe = mc.Frontend.from_config(cfg)
  y = audio_options.load_audio_from_config(_fillets_paths()[1], cfg)
  values = audio.log_mel_spectrogram(y, fe)
  magnitude = phase.mel_pinv_magnitude(values, fe)
  true = audio.stft_magnitude(y, fe.n_fft, fe.hop_length, fe.win_length, fe.window, fe.pad_mode,
                              fe.framing)
  assert magnitude.shape == true.shape
  # Near the true |STFT| in audio.stft's units (a wrong log base, gain or normalisation would be
  # off by orders of magnitude); the pseudo-inverse spreads each band's energy, so only near.
  err = _rel_err(magnitude, true)
  print(f'{name}: pinv magnitude vs true |STFT| relative error {err:.3f}')
  assert err < 0.6
  # And consistent: its mel, in the convention's values, is the mel it came from.
  mag = jnp.sqrt(jnp.square(magnitude) + fe.magnitude_eps) * mc.stft_gain(fe)
  again = mc.compress(jnp.matmul(mag ** fe.power, jnp.asarray(audio.mel_filterbank(fe)),
                                 precision=jax.lax.Precision.HIGHEST), fe)
  span = float(jnp.max(values) - jnp.min(values))
  assert float(jnp.median(jnp.abs(again - values))) < 1e-3 * span


# ------------------------------------------------------------------------- data builds, training


@pytest.mark.parametrize('name', ['hifigan', 'espnet_meanvar', 'lmnt_diffwave'])
def test_build_windows_equal_the_whole_utterance_frontend(name, espnet_stats):
  cfg = _case_config(name, espnet_stats[0])
  waves = [audio_options.load_audio_from_config(p, cfg) for p in _fillets_paths()[:3]]
  hop = cfg.hop_length
  waves = [w[:(len(w) // hop) * hop] for w in waves]
  opts = data_options.AudioOptions.from_config(cfg)
  mels = reading.batched_log_mels(waves, opts, reading.make_mel_fn(opts), 2 ** 16, 32)
  fe = mc.Frontend.from_config(cfg)
  for w, m in zip(waves, mels):
    np.testing.assert_allclose(m, np.asarray(audio.log_mel_spectrogram(w, fe)), rtol=1e-5,
                               atol=1e-5)


def test_every_convention_keys_its_own_dataset(espnet_stats, tmp_path):
  data = tiny.get_config().data
  configs = [_case_config(n, espnet_stats[0]) for n in ('wavegrad', 'hifigan', 'espnet',
                                                        'espnet_meanvar', 'lmnt_diffwave')]
  custom = common.audio_config_hifigan()
  custom.convention, custom.magnitude_eps = 'custom', 0.0  # one field apart from hifigan
  configs.append(custom)
  data = data_options.DataOptions.from_config(data)
  make = lambda audio_cfg: builders.make_builder(data, data_options.AudioOptions.from_config(audio_cfg))
  names = {make(c).data_dir for c in configs}
  assert len(names) == len(configs)
  # The statistics file's content is part of the key, not just its path.
  other = tmp_path / 'stats.npy'
  stats = np.load(espnet_stats[0])
  np.save(other, stats)
  same = make(common.audio_config_espnet(stats_file=str(other))).data_dir
  np.save(other, stats + 0.1)
  moved = make(common.audio_config_espnet(stats_file=str(other))).data_dir
  assert same != moved


def test_training_data_of_a_convention_and_its_silence_padding(espnet_stats, tmp_path):
  """A one-flag config's prepared data hold its mels; short crops are padded with its silence."""
  config = tiny_espnet.get_config()
  config.audio.normalize, config.audio.stats_file = 'meanvar', espnet_stats[0]
  config.data.tfds_dir, config.data.max_files = str(tmp_path / 'tfds'), 2
  config.data.heldout_fraction, config.data.build_threads = 0.0, 1
  config.data.segment_frames, config.train.batch_size = 4000, 2  # longer than any utterance
  splits = data_options.prepare_dataset_from_config(config)
  example = splits['train'][0]
  ref = espnet_stats[1].transform(espnet_reference(np.asarray(example['audio'], np.float64)))
  assert _rel_err(example['mel'], ref) < 1e-4
  batches = data_options.train_batches_from_config(config, splits=splits)
  batch = batches.batch(0)
  silence = mc.silence_value(mc.Frontend.from_config(config.audio))
  assert silence.shape == (80,)  # per band under mean-variance normalisation
  np.testing.assert_allclose(batch['mel'][:, -1], np.broadcast_to(silence, (2, 80)), rtol=1e-6)
  np.testing.assert_allclose(
      mc.decompress(silence, mc.Frontend.from_config(config.audio), xp=np), 1e-10, rtol=1e-4)


# ------------------------------------------------------------------------------------ conversion


def _speech_mel(cfg, index=0):
  return np.asarray(audio.log_mel_spectrogram(
      audio.load_audio(_fillets_paths()[index], cfg.sample_rate, 0.9),
      mc.Frontend.from_config(cfg)))


def _custom(base=None, **fields):
  cfg = (base or tiny.get_config().audio).copy_and_resolve_references()
  cfg.convention = 'custom'
  for k, v in fields.items():
    cfg[k] = v
  return cfg


REFUSED = [
    ('sample_rate', dict(sample_rate=24000)), ('hop_length', dict(hop_length=300)),
    ('n_fft', dict(n_fft=2048)), ('win_length', dict(win_length=800)),
    ('window', dict(window='hamming')), ('n_mels', dict(n_mels=128)), ('fmin', dict(fmin=20.0)),
    ('fmax', dict(fmax=8000.0)), ('power', dict(power=2.0)),
    ('framing', dict(framing='hop_center')), ('pad_mode', dict(pad_mode='constant')),
    ('mel_scale', dict(mel_scale='htk')),
]


@pytest.mark.parametrize('field, change', REFUSED, ids=[f for f, _ in REFUSED])
def test_every_non_invertible_difference_is_refused_naming_fields_and_configs(field, change):
  checkpoint = tiny.get_config().audio
  declared = _custom(**change)
  mel = np.zeros((10, int(declared.n_mels)), np.float32) - 5.0
  with pytest.raises(mc.MelConventionError) as e:
    mc.adapt(mel, mc.Frontend.from_config(declared),
             mc.Frontend.from_config(checkpoint), source='tts.npy')
  text = str(e.value)
  assert text.startswith('tts.npy: ')
  assert f'{field}: {declared[field]!r} (mel) vs {checkpoint[field]!r} (checkpoint)' in text
  assert 'mels made with audio_config(sample_rate=22050, n_fft=1024' in text  # the checkpoint's
  # The mel's: our preset with the field changed, or the convention it then follows.
  mels = r'audio_config_hifigan\(' if field == 'framing' else rf'audio_config\(.*\b{field}='
  assert re.search(f'checkpoint trained on {mels}', text)


def test_refusal_between_named_conventions_lists_every_field_and_names_both_presets():
  with pytest.raises(mc.MelConventionError) as e:
    mc.adapt(np.zeros((5, 80), np.float32), mc.Frontend.from_config(common.audio_config_hifigan()),
             mc.Frontend.from_config(tiny.get_config().audio))
  text = str(e.value)
  assert "fmax: 8000.0 (mel) vs 11025.0 (checkpoint)" in text
  assert "framing: 'hop_center' (mel) vs 'center' (checkpoint)" in text
  assert 'checkpoint trained on audio_config_hifigan(sample_rate=22050' in text
  assert 'magnitude_eps' in text  # the invertible difference is mentioned as such


def _invertible_cases(stats_path):
  return [
      ('log_scale', dict(log_scale='log10', log_floor=1e-10)),
      ('log_scale', dict(log_scale='db', db_ref=20.0)),
      ('log_floor', dict(log_floor=1e-7)),
      ('normalize', dict(log_scale='log10', log_floor=1e-10, normalize='meanvar',
                         stats_file=stats_path)),
      ('normalize', dict(log_scale='db', db_ref=20.0, normalize='range')),
      ('normalize', dict(log_scale='db', normalize='range', range_out=(-1.0, 1.0))),
      ('normalize', dict(log_scale='db', normalize='range', range_in=(-80.0, 20.0),
                         range_out=(-4.0, 4.0))),
      ('stft_norm', dict(stft_norm='window')),
      ('mel_norm', dict(mel_norm='none')),
      ('magnitude_eps', dict(magnitude_eps=1e-9)),
      ('stft_norm', dict(stft_norm='window', mel_norm='none', log_scale='db', db_ref=20.0,
                         normalize='range')),  # lmnt's values at the checkpoint's filterbank
  ]


def _inside(values, cfg):
  """Where a mel's values lie strictly inside the convention's floor and clip: a bool mask."""
  fe = mc.Frontend.from_config(cfg)
  lin = mc.decompress(np.asarray(values, np.float64), fe, xp=np)
  inside = lin > 1.5 * mc.effective_floor(fe)
  if fe.normalize == 'range':
    top = mc.decompress(np.full(fe.n_mels, max(fe.range_out), np.float64), fe, xp=np)
    inside &= lin < top / 1.5
  return inside


@pytest.mark.parametrize('case', range(11))
@pytest.mark.parametrize('direction', ['to_checkpoint', 'from_checkpoint'])
def test_every_invertible_difference_is_converted(case, direction, espnet_stats):
  field, change = _invertible_cases(espnet_stats[0])[case]
  ours = _custom(tiny.get_config().audio)
  other = _custom(**change)
  declared, checkpoint = (other, ours) if direction == 'to_checkpoint' else (ours, other)
  mel = _speech_mel(declared)
  converted, messages = mc.adapt(mel, mc.Frontend.from_config(declared),
                                 mc.Frontend.from_config(checkpoint), source='tts.npy')
  want = _speech_mel(checkpoint)
  assert converted.dtype == np.float32 and converted.shape == want.shape
  assert messages and messages[0].startswith('tts.npy: converted from')
  assert f'{field}: ' in messages[0]
  # Exact wherever the mel was inside both conventions' ranges (below a floor or beyond a clip
  # the declared convention has already thrown the value away).
  kept = _inside(mel, declared) & _inside(want, checkpoint)
  if field == 'magnitude_eps':
    # eps is not undone: it adds at most 1.5e-6 to a band, negligible only well above that.
    kept &= mc.decompress(want, mc.Frontend.from_config(checkpoint), xp=np) > 0.01
  assert kept.mean() > 0.2
  span = float(want.max() - want.min())
  assert float(np.max(np.abs(converted - want)[kept])) < 1e-4 * span
  if field in ('log_floor', 'log_scale') and direction == 'to_checkpoint':
    np.testing.assert_allclose(converted, want, atol=1e-4 * span)  # lower floor: exact everywhere


def test_identical_frontends_pass_the_mel_through():
  mel = np.full((4, 80), -3.0, np.float32)
  out, messages = mc.adapt(mel, mc.Frontend.from_config(common.audio_config()),
                           mc.Frontend.from_config(tiny.get_config().audio))
  assert messages == [] and np.array_equal(out, mel)


def test_converting_away_from_a_floor_says_what_is_lost():
  declared = _custom(log_floor=1e-3)
  _, messages = mc.adapt(_speech_mel(declared), mc.Frontend.from_config(declared),
                         mc.Frontend.from_config(tiny.get_config().audio))
  assert any('stay at it, above the checkpoint' in m for m in messages)


# ------------------------------------------------------------------------------- statistics files


def test_statistics_files(tmp_path, espnet_stats):
  stats_path, scaler = espnet_stats
  mean, scale = mc.load_meanvar_stats(stats_path, 80)
  np.testing.assert_allclose(mean, scaler.mean_)
  np.testing.assert_allclose(scale, scaler.scale_)
  # Our own: the same numbers as StandardScaler's.
  mels = [espnet_reference(_raw(p, 22050)) for p in _fillets_paths()[2:12]]
  np.testing.assert_allclose(mc.meanvar_stats(mels), np.stack([scaler.mean_, scaler.scale_]),
                             rtol=1e-9)
  # ESPnet GlobalMVN's count / sum / sum_square, and a plain mean / scale .npz.
  frames = np.concatenate(mels)
  np.savez(tmp_path / 'espnet.npz', count=np.array(frames.shape[0]), sum=frames.sum(0),
           sum_square=np.square(frames).sum(0))
  np.testing.assert_allclose(mc.load_meanvar_stats(str(tmp_path / 'espnet.npz'))[1],
                             scaler.scale_, rtol=1e-6)
  np.savez(tmp_path / 'plain.npz', mean=scaler.mean_, scale=scaler.scale_)
  np.testing.assert_allclose(mc.load_meanvar_stats(str(tmp_path / 'plain.npz'))[0], scaler.mean_)
  for name, write, match in [
      ('missing.npy', None, 'cannot read audio.stats_file'),
      ('stats.h5', lambda p: p.write_bytes(b'\x89HDF'), 'h5py'),
      ('flat.npy', lambda p: np.save(p, scaler.mean_), r'must be \[2, n_mels\]'),
      ('zero.npy', lambda p: np.save(p, np.stack([scaler.mean_, 0 * scaler.mean_])), 'scale > 0'),
      ('keys.npz', lambda p: np.savez(p, mu=scaler.mean_), "needs arrays 'mean' and 'scale'"),
  ]:
    path = tmp_path / name
    if write:
      write(path)
    with pytest.raises(mc.MelConventionError, match=match):
      mc.load_meanvar_stats(str(path))
  with pytest.raises(mc.MelConventionError, match='statistics for 80 mel bands.*n_mels=128'):
    mc.load_meanvar_stats(stats_path, 128)


# ------------------------------------------------------------------------------------- resemblance


def _forms_on_speech(stats_path):
  """The mels of six fillets lines in each value form, with the config that declares them."""
  tiny_audio = tiny.get_config().audio
  espnet = common.audio_config_espnet(fmin=0.0, fmax=11025.0)
  meanvar = common.audio_config_espnet(fmin=80.0, fmax=7600.0, stats_file=stats_path)
  symmetric = _custom(common.audio_config_lmnt(hop_length=256, n_mels=80), range_out=(-1.0, 1.0))
  return {
      'ln': tiny_audio, 'hifigan': common.audio_config_hifigan(), 'log10': espnet,
      'meanvar': meanvar, 'unit': common.audio_config_lmnt(hop_length=256, n_mels=80),
      'symmetric': symmetric,
  }


@pytest.mark.parametrize('form', ['hifigan', 'log10', 'meanvar', 'unit', 'symmetric'])
def test_a_mel_of_another_convention_is_named_when_declared_ours(form, espnet_stats):
  configs = _forms_on_speech(espnet_stats[0])
  expected = {'hifigan': None, 'log10': 'log10 of the mel (parallel_wavegan alias espnet, espnet2',
              'meanvar': 'mean-variance normalised', 'unit': 'normalised to [0, 1] (lmnt',
              'symmetric': 'symmetric range such as [-1, 1]'}[form]
  for index in (3, 6, 9, 12, 15, 18):
    mel = _speech_mel(configs[form], index)
    declared = mc.Frontend.from_config(configs[form])
    assert mc.resemblance_warning(mel, declared) is None  # declared right: silent
    warning = mc.resemblance_warning(mel, mc.Frontend.from_config(configs['ln']), source='tts.npy')
    if expected is None:
      assert warning is None  # hifigan's values are natural-log mels too: no false alarm
    else:
      assert warning is not None and expected in warning and warning.startswith('tts.npy:')
      assert 'declared as wavegrad: ln(max(mel, 1e-05))' in warning


def test_synthesis_warns_about_the_cases_the_range_check_missed(espnet_stats):
  """ESPnet log10 mels (1e-10 floor), mean-variance and [-1, 1] mels pass every range check of a
  natural-log checkpoint; each now gets a warning naming what it resembles."""
  configs = _forms_on_speech(espnet_stats[0])
  checkpoint = tiny.get_config().audio
  for form, words in [('log10', 'log10 of the mel'), ('meanvar', 'mean-variance'),
                      ('symmetric', '[-1, 1]')]:
    mel = _speech_mel(configs[form], 4)
    low, high = synthesize.log_mel_bounds(checkpoint)
    assert low <= mel.min() and mel.max() <= high  # the old check let it through
    with pytest.warns(mc.MelConventionWarning, match=re.escape(words)):
      out = synthesize.check_mel(mel, checkpoint, 'tts.npy')
    assert out.shape == mel.shape
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    synthesize.check_mel(_speech_mel(checkpoint, 4), checkpoint, 'good.npy')


def test_synthesis_range_check_follows_the_checkpoint_convention(espnet_stats):
  lmnt = tiny_lmnt.get_config().audio
  assert synthesize.log_mel_bounds(lmnt) == (0.0, 1.0)
  synthesize.check_mel(_speech_mel(lmnt, 4), lmnt, 'good.npy')
  with pytest.raises(synthesize.SynthesisInputError,
                     match=r'outside \[0, 1\].*look like a natural log.*audio_config_lmnt\('):
    synthesize.check_mel(_speech_mel(tiny.get_config().audio, 4), lmnt, 'ln.npy')
  low, high = synthesize.log_mel_bounds(common.audio_config_espnet())
  assert low == pytest.approx(-10.0) and 0.0 < high < 3.0


def test_a_text_file_given_as_statistics_is_named_as_such(tmp_path):
  path = tmp_path / 'stats.txt'
  path.write_text('mean 0.1 0.2\nscale 1.0 1.0\n')
  with pytest.raises(mc.MelConventionError,
                     match=r'stats.txt: not a .npy / .npz statistics file \(no NumPy or zip '
                           r'header') as raised:
    mc.load_meanvar_stats(str(path), 80)
  assert 'pickle' not in str(raised.value)
