"""DNSMOS and ViSQOL (the optional perceptual extra): rankings on real speech, the evaluation's
output with and without the extra, and errors for bad settings.

Tests that run the models skip, naming the install command, when the extra is not installed (the
main install stays lean); .ci/run installs it, so CI runs them. The missing-extra paths run always.
"""
import glob
import json
import os
import re
import sys

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import soxr

from experiments.configs import tiny
from wavegrad_jax.audio import frontend as audio
from wavegrad_jax.evaluation import evaluate
from wavegrad_jax.evaluation import perceptual
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.inference import synthesize

FILLETS_GLOB = '/usr/share/games/fillets-ng/sound/*/cs/*.ogg'  # package fillets-ng-data-cs.
NUM_UTTERANCES = 4
# Clips shorter than DNSMOS's 9.01 s window cost one model run (about 1 s on a busy 2-core machine).
CLIP_SECONDS = 4.6
GRIFFIN_LIM_ITERATIONS = 32
NOISE_SNR_DB = 0.0

INSTALLED = all(perceptual.available(m) for m in perceptual.MEASURES)
needs_extra = pytest.mark.skipif(
    not INSTALLED, reason=f'perceptual extra not installed: {perceptual.INSTALL_COMMAND}')


def _fish_clips(count, seconds, sample_rate):
  """The first `count` clips (sorted paths) of the two main voices lasting >= `seconds`."""
  paths = sorted(p for p in glob.glob(FILLETS_GLOB)
                 if re.match(r'^[a-z0-9]+-[mv]-', os.path.basename(p)))
  clips = []
  for path in paths:
    wave = audio.load_audio(path, sample_rate)
    if wave.shape[0] >= seconds * sample_rate:
      clips.append(wave[:int(seconds * sample_rate)])
    if len(clips) == count:
      return clips
  pytest.fail(f'fewer than {count} speech clips of {seconds} s match {FILLETS_GLOB}: install '
              'Debian package fillets-ng-data-cs')


def _griffin_lim(wave, audio_cfg):
  """librosa's mel inversion (NNLS magnitude, then Griffin-Lim from a seeded random phase)."""
  kw = dict(sr=int(audio_cfg.sample_rate), n_fft=int(audio_cfg.n_fft))
  mel = librosa.feature.melspectrogram(
      y=wave, hop_length=int(audio_cfg.hop_length), win_length=int(audio_cfg.win_length),
      n_mels=int(audio_cfg.n_mels), fmin=float(audio_cfg.fmin), fmax=float(audio_cfg.fmax),
      power=float(audio_cfg.power), **kw)
  magnitude = librosa.feature.inverse.mel_to_stft(
      mel, power=float(audio_cfg.power), fmin=float(audio_cfg.fmin), fmax=float(audio_cfg.fmax),
      **kw)
  return librosa.griffinlim(magnitude, n_iter=GRIFFIN_LIM_ITERATIONS,
                            hop_length=int(audio_cfg.hop_length),
                            win_length=int(audio_cfg.win_length), length=wave.shape[0],
                            random_state=0).astype(np.float32)


def _with_white_noise(wave, snr_db, seed):
  noise = np.random.default_rng(seed).standard_normal(wave.shape[0])
  power = np.mean(wave.astype(np.float64) ** 2)
  noise *= np.sqrt(power / np.mean(noise ** 2) / 10 ** (snr_db / 10))
  return (wave + noise).astype(np.float32)


@pytest.fixture(scope='module')
def scores():
  """Mean DNSMOS / ViSQOL fields of clean, Griffin-Lim and noisy versions of real utterances."""
  audio_cfg = tiny.get_config().audio   # the project's frontend: 22.05 kHz, hop 256, 80 mels.
  rate = int(audio_cfg.sample_rate)
  clips = _fish_clips(NUM_UTTERANCES, CLIP_SECONDS, rate)
  rows = {'clean': [], 'griffin_lim': [], 'noisy': []}
  for i, clean in enumerate(clips):
    versions = {'clean': clean, 'griffin_lim': _griffin_lim(clean, audio_cfg),
                'noisy': _with_white_noise(clean, NOISE_SNR_DB, seed=i)}
    for name, wave in versions.items():
      rows[name].append(perceptual.score(wave, clean, rate, perceptual.MEASURES))
  return {name: {k: float(np.mean([r[k] for r in rs])) for k in perceptual.ALL_FIELDS}
          for name, rs in rows.items()}


@needs_extra
@pytest.mark.parametrize('field', ['dnsmos_ovrl', 'dnsmos_p808', 'visqol_nsim'])
def test_ranks_clean_above_griffin_lim_above_noisy(scores, field):
  clean, gl, noisy = (scores[n][field] for n in ('clean', 'griffin_lim', 'noisy'))
  assert clean > gl > noisy, scores


@needs_extra
def test_scores_lie_on_their_scales(scores):
  for name, row in scores.items():
    for field, value in row.items():
      low, high = (0.0, 1.0) if field == 'visqol_nsim' else (1.0, 5.0)
      assert low <= value <= high, (name, field, value)
  # ViSQOL of a signal against itself: NSIM 1 and the MOS-LQO ceiling (about 4.5 with the lattice
  # mapper). It compares gammatone magnitudes, so Griffin-Lim from the mel (same magnitudes, other
  # phase) scores near that ceiling too, and 0 dB white noise at the bottom of the scale.
  assert scores['clean']['visqol_nsim'] == pytest.approx(1.0, abs=1e-6)
  assert scores['clean']['visqol_moslqo'] > 4.3 and scores['griffin_lim']['visqol_moslqo'] > 4.0
  assert scores['noisy']['visqol_moslqo'] < 1.5
  # DNSMOS BAK rates background noise: white noise at 0 dB is about as bad as it gets.
  assert scores['noisy']['dnsmos_bak'] < 2.0 < scores['clean']['dnsmos_bak']


@needs_extra
def test_resampling_and_edge_cases():
  rate = 22050
  clean = _fish_clips(1, CLIP_SECONDS, rate)[0]
  # The caller's rate goes through soxr 'HQ' to the models' 16 kHz: the same as scoring the
  # resampled clip with the packages' own entry points. (DNSMOS moves by about 0.1 when a clip
  # is one sample longer or shorter, so this comparison must resample identically.)
  from speechmos import dnsmos as dnsmos_ref  # pylint: disable=g-import-not-at-top
  at_16k = soxr.resample(clean, rate, perceptual.MODEL_SAMPLE_RATE, quality='HQ')
  # 'tile' is the reference script as it is; 'pad' zero-pads to its 9.01 s input first.
  padded = np.pad(at_16k, (0, int(9.01 * perceptual.MODEL_SAMPLE_RATE) - at_16k.shape[0]))
  for short_clips, wave_16k in (('tile', at_16k), ('pad', padded)):
    ref = dnsmos_ref.run(wave_16k, perceptual.MODEL_SAMPLE_RATE)
    ours = perceptual.dnsmos(clean, rate, short_clips)
    assert ours == pytest.approx({'dnsmos_ovrl': ref['ovrl_mos'], 'dnsmos_sig': ref['sig_mos'],
                                  'dnsmos_bak': ref['bak_mos'], 'dnsmos_p808': ref['p808_mos']})
  noisy_16k = _with_white_noise(at_16k, NOISE_SNR_DB, seed=0)
  expected = perceptual._visqol_api().measure_from_arrays(
      at_16k.astype(np.float64), noisy_16k.astype(np.float64), perceptual.MODEL_SAMPLE_RATE)
  assert perceptual.visqol(noisy_16k, at_16k, perceptual.MODEL_SAMPLE_RATE) == pytest.approx(
      {'visqol_moslqo': expected.moslqo, 'visqol_nsim': expected.vnsim})
  # A diverged sample, a silent reference or too few samples give NaN rather than an exception.
  bad = clean.copy()
  bad[100] = np.nan
  assert np.isnan(perceptual.dnsmos(bad, rate)['dnsmos_ovrl'])
  assert np.isnan(perceptual.visqol(bad, clean, rate)['visqol_moslqo'])
  assert np.isnan(perceptual.visqol(clean, np.zeros_like(clean), rate)['visqol_moslqo'])
  assert np.isnan(perceptual.visqol(clean[:1000], clean[:1000], rate)['visqol_moslqo'])
  half_second = clean[:rate // 2]    # too short for one of ViSQOL's speech patches
  assert np.isnan(perceptual.visqol(half_second, half_second, rate)['visqol_nsim'])
  # Samples beyond [-1, 1] are clipped as a PCM file would clip them, not rejected.
  assert np.isfinite(perceptual.dnsmos(3.0 * clean, rate)['dnsmos_ovrl'])
  with pytest.raises(ValueError, match=r'1-D waveform \[T\]'):
    perceptual.dnsmos(np.stack([clean, clean]), rate)
  with pytest.raises(ValueError, match='positive integer in Hz'):
    perceptual.visqol(clean, clean, 0)
  with pytest.raises(ValueError, match=r"dnsmos_short_clips\) must be 'pad' or 'tile'"):
    perceptual.dnsmos(clean, rate, 'repeat')


# ------------------------------------------------------------------ settings and the missing extra


@pytest.fixture
def extra_missing(monkeypatch):
  """Makes the extra's packages fail to import, as in an install without it."""
  for name in list(sys.modules):
    if name.split('.')[0] in ('speechmos', 'onnxruntime', 'visqol', 'ai_edge_litert'):
      monkeypatch.delitem(sys.modules, name)
  for name in ('speechmos', 'onnxruntime', 'visqol'):
    monkeypatch.setitem(sys.modules, name, None)   # None in sys.modules: import raises.
  perceptual._visqol_api.cache_clear()
  monkeypatch.setattr(perceptual, '_LOGGED_HINTS', set())
  yield
  perceptual._visqol_api.cache_clear()


def test_missing_extra_errors_name_the_fix(extra_missing):
  assert not perceptual.available('dnsmos') and not perceptual.available('visqol')
  wave = np.zeros(16000, np.float32)
  with pytest.raises(perceptual.MissingExtraError, match='pip install -r requirements-perceptual'):
    perceptual.dnsmos(wave, 16000)
  with pytest.raises(ImportError, match='pip install -r requirements-perceptual'):
    perceptual.visqol(wave, wave, 16000)
  measures, hint = perceptual.resolve({'dnsmos': 'auto', 'visqol': 'auto'})
  assert measures == ()
  assert hint.startswith('DNSMOS and ViSQOL not installed') and '\n' not in hint
  assert 'pip install -r requirements-perceptual.txt' in hint
  assert perceptual.resolve({'dnsmos': 'false', 'visqol': False}) == ((), '')
  for setting in ('true', 'True', True):
    with pytest.raises(perceptual.MissingExtraError,
                       match=r"config.eval.visqol='true' but ViSQOL is not installed: run "
                             r'pip install -r requirements-perceptual.txt'):
      perceptual.resolve({'dnsmos': 'false', 'visqol': setting})


def test_bad_settings_are_refused():
  for bad in ('yes', '', 'dnsmos', 1):
    with pytest.raises(ValueError, match=r"config.eval.dnsmos must be 'auto' .* got"):
      perceptual.resolve({'dnsmos': bad})
  with pytest.raises(ValueError, match='unknown perceptual measures'):
    perceptual.resolve({'pesq': 'auto'})
  with pytest.raises(ValueError, match='unknown perceptual measure'):
    perceptual.available('mos')


# ------------------------------------------------------------------------------ in the evaluation


def _tensorboard_tags(folder):
  """Every scalar tag in the event files of `folder` (TFRecord framing of Event protos)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  tags = set()
  for path in glob.glob(os.path.join(folder, 'events*')):
    with open(path, 'rb') as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      length = int.from_bytes(data[pos:pos + 8], 'little')
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      tags.update(v.tag for v in event.summary.value)
      pos += 12 + length + 4
  return tags


def _zero_eps(params, noisy, mel, noise_level):
  del params, mel, noise_level
  return jnp.zeros_like(noisy)


def _evaluate(tmp_path, eps_fn=_zero_eps, **eval_settings):
  """Evaluates a denoiser that predicts no noise on one real 2.3 s utterance (one DNSMOS window)."""
  config = tiny.get_config()
  config.sampling.clip = 1.0
  e = config.eval
  e.pesq = e.stoi = e.write_wavs = False
  for k, v in eval_settings.items():
    e[k] = v
  rate = int(config.audio.sample_rate)
  wave = _fish_clips(1, CLIP_SECONDS, rate)[0][:int(CLIP_SECONDS / 2 * rate)]
  mel = np.asarray(synthesize.make_log_mel_fn(config.audio)(jnp.asarray(wave)))
  utterances = [{'id': 'u0', 'speaker': 'm', 'audio': wave, 'mel': mel}]
  schedule_list = [('my3', schedules.parse_schedule('list:1e-4,1e-2,0.2'))]
  results = evaluate.evaluate_utterances(eps_fn, {}, config, utterances, schedule_list,
                                         jax.random.PRNGKey(0), output_dir=str(tmp_path),
                                         step=3, progress=False)
  return results


@needs_extra
def test_evaluation_reports_dnsmos_and_visqol_when_installed(tmp_path):
  results = _evaluate(tmp_path)
  with open(tmp_path / 'metrics.json') as f:
    saved = json.load(f)
  sched, ref = saved['schedules']['my3'], saved['reference']
  for field in perceptual.ALL_FIELDS:
    low, high = (0.0, 1.0) if field == 'visqol_nsim' else (1.0, 5.0)
    assert low <= sched[field] <= high and low <= ref[field] <= high, field
  # Noise from a denoiser that predicts nothing is far below the speech it should have been.
  assert ref['visqol_moslqo'] > 4.0 > 2.0 > sched['visqol_moslqo']
  assert ref['visqol_nsim'] > 0.99 > 0.5 > sched['visqol_nsim']
  assert ref['dnsmos_ovrl'] > sched['dnsmos_ovrl'] + 0.3
  with open(tmp_path / 'per_utterance.jsonl') as f:
    row = json.loads(f.readline())
  assert set(perceptual.ALL_FIELDS) <= set(row)
  table = evaluate.format_table(results)
  assert 'dnsmos_ovrl' in table and 'visqol_moslqo' in table
  assert any(line.startswith('reference') for line in table.splitlines())
  assert {'eval_heldout/my3/dnsmos_ovrl', 'eval_heldout/my3/visqol_moslqo',
          'eval_heldout/reference/dnsmos_ovrl'} <= _tensorboard_tags(tmp_path / 'tb')


def test_evaluation_without_the_extra(tmp_path, extra_missing, caplog):
  caplog.set_level('INFO')
  results = _evaluate(tmp_path / 'auto')
  fields = set(results['schedules']['my3']) | set(results['per_utterance'][0])
  assert not fields & set(perceptual.ALL_FIELDS) and 'reference' not in results
  assert 'dnsmos' not in evaluate.format_table(results)
  hints = [r.getMessage() for r in caplog.records if 'requirements-perceptual' in r.getMessage()]
  assert len(hints) == 1 and 'DNSMOS and ViSQOL not installed' in hints[0], hints

  def must_not_run(*args):
    raise AssertionError('synthesis ran before the missing extra was reported')

  with pytest.raises(perceptual.MissingExtraError, match=r"config.eval.dnsmos='true' but DNSMOS "
                     r'is not installed: run pip install -r requirements-perceptual.txt'):
    _evaluate(tmp_path / 'required', eps_fn=must_not_run, dnsmos='true')
  with pytest.raises(ValueError, match=r"config.eval.visqol must be 'auto'"):
    _evaluate(tmp_path / 'bad', eps_fn=must_not_run, visqol='sometimes')
  with pytest.raises(ValueError, match=r"config.eval.dnsmos_short_clips\) must be 'pad' or"):
    _evaluate(tmp_path / 'bad', eps_fn=must_not_run, dnsmos_short_clips='loop')
