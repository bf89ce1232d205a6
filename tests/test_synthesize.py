"""Synthesis from wavs and .npy mels with a random tiny model: lengths, chunking, input errors."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile

from experiments.configs import common
from wavegrad_jax.evaluation import evaluate
from wavegrad_jax import models as model_lib
from wavegrad_jax import sampling
from wavegrad_jax.diffusion import schedules
from wavegrad_jax.inference import synthesize

SR, HOP, N_MELS = 8000, 64, 16


def _config():
  config = common.get_common_config()
  config.audio = common.audio_config(sample_rate=SR, n_fft=256, win_length=256, hop_length=HOP,
                                     n_mels=N_MELS, fmax=SR / 2)
  m = config.model
  m.mel_channels, m.upsample_factors = 16, (4, 4, 4)
  m.upsample_channels, m.upsample_dilations = (16, 8, 8), ((1, 2, 1, 2),) * 3
  m.waveform_channels, m.downsample_factors, m.downsample_channels = 8, (4, 4), (8, 16)
  config.eval.chunk_frames = 16
  config.eval.overlap_frames = 4
  config.eval.batch_size = 2
  config.eval.mrstft_resolutions = ((256, 64, 256), (512, 128, 512))
  config.eval.dnsmos = config.eval.visqol = 'false'  # tests/test_perceptual.py covers them.
  return config


_random_params = model_lib.random_params_from_config  # other test files import it from here


@pytest.fixture(scope='module')
def setup():
  config = _config()
  model = model_lib.build_model_from_config(config)
  params = _random_params(model, config)
  vocode = synthesize.chunked_vocoder_from_config(sampling.sampler_from_config(model, config),
                                                  config)
  betas = schedules.parse_schedule('list:1e-4,1e-2,0.2')
  return config, model, params, vocode, betas


def _speech_like(samples, seed=0, silence=0):
  t = np.arange(samples) / SR
  x = sum(np.sin(2 * np.pi * k * 150 * t) / k for k in range(1, 12))
  x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
  x = x + 0.02 * np.random.default_rng(seed).standard_normal(samples)
  x[:silence] = 0.0
  return (0.9 * x / np.abs(x).max()).astype(np.float32)


def _write_wav(path, samples, **kw):
  soundfile.write(path, _speech_like(samples, **kw), SR, subtype='FLOAT')
  return str(path)


def _log_mel(config, samples, silence=0):
  return np.asarray(synthesize.make_log_mel_fn(config.audio)(jnp.asarray(
      _speech_like(samples, silence=silence))))


def _synth(setup, tmp_path, paths, **kw):
  """synthesize_files into tmp_path/out; a bad input raises (fail_fast) unless kw says otherwise."""
  config, _, params, vocode, betas = setup
  inputs = []
  for p in paths:
    inputs.extend(synthesize.collect_inputs(p))
  kw.setdefault('fail_fast', True)
  return synthesize.synthesize_files(vocode, params, betas, config, inputs, str(tmp_path / 'out'),
                                     jax.random.PRNGKey(0), progress=False, **kw)


def test_wav_and_npy_round_trip_exact_length(setup, tmp_path):
  config = setup[0]
  wav = _write_wav(tmp_path / 'speech.wav', 3000)           # 46 frames + 56 spare samples
  mel = _log_mel(config, 1600)                               # 25 frames
  np.save(tmp_path / 'tts.npy', mel)
  out = _synth(setup, tmp_path, [wav, str(tmp_path / 'tts.npy')])
  assert out['frames'] == [46, 25]
  for path, frames in zip(out['outputs'], out['frames']):
    audio, rate = soundfile.read(path)
    assert rate == SR and audio.shape == (frames * HOP,)
  assert out['rtf'] > 0


def test_long_input_is_chunked_to_the_same_length(setup, tmp_path):
  config = setup[0]
  mel = _log_mel(config, 150 * HOP + 10)                     # 150 frames: 12 chunks of 16
  np.save(tmp_path / 'long.npy', mel)
  np.save(tmp_path / 'short.npy', mel[:3])
  out = _synth(setup, tmp_path, [str(tmp_path)])
  assert sorted(os.path.basename(p) for p in out['outputs']) == ['long.wav', 'short.wav']
  lengths = {os.path.basename(p): soundfile.info(p).frames for p in out['outputs']}
  assert lengths == {'long.wav': 150 * HOP, 'short.wav': 3 * HOP}


def test_chunk_stitching_reproduces_an_unchunked_signal():
  rng = np.random.default_rng(0)
  mels = [rng.standard_normal((f, 3)).astype(np.float32) for f in (1, 7, 16, 40)]
  chunks, plan = synthesize.chunk_mels(mels, chunk_frames=8, overlap_frames=3, pad_value=-11.5)
  assert chunks.shape[1:] == (8, 3)
  # A 'vocoder' whose output depends only on the frame: stitching must give back the same signal.
  chunk_audio = np.repeat(chunks[..., 0], 5, axis=1)
  for mel, wave in zip(mels, synthesize.stitch_chunks(chunk_audio, plan, hop_length=5)):
    np.testing.assert_allclose(wave, np.repeat(mel[:, 0], 5), rtol=1e-6, atol=1e-6)


def test_vocoder_compiles_once_per_schedule_length(setup):
  _, _, params, vocode, betas = setup
  mels = [np.full((f, N_MELS), -5.0, np.float32) for f in (20, 33)]
  _, first = vocode(params, betas, mels, jax.random.PRNGKey(0))
  _, second = vocode(params, betas, [np.full((70, N_MELS), -5.0, np.float32)] * 2,
                     jax.random.PRNGKey(1))
  assert second['compile_seconds'] == 0.0  # other lengths, same chunk shape: no new compilation
  del first


@pytest.mark.parametrize('case, match', [
    ('n_mels', 'has 20 mel bands'),
    ('transposed', 'looks transposed'),
    ('db', 'dB'),
    ('log10', 'log10 mel'),
    ('linear', 'linear'),
    ('nan', 'NaN'),
])
def test_bad_npy_mels_are_refused_with_a_fix(setup, tmp_path, case, match):
  config = setup[0]
  mel = _log_mel(config, 40 * HOP, silence=10 * HOP)         # natural log with floor frames
  bad = {
      'n_mels': np.zeros((40, 20), np.float32) - 5,
      'transposed': mel.T,
      'db': mel * 20 / np.log(10),
      'log10': mel / np.log(10),
      'linear': np.exp(mel),
      'nan': np.where(np.arange(mel.size).reshape(mel.shape) == 3, np.nan, mel),
  }[case]
  np.save(tmp_path / 'bad.npy', bad)
  with pytest.raises(synthesize.SynthesisInputError, match=match) as e:
    _synth(setup, tmp_path, [str(tmp_path / 'bad.npy')])
  assert 'n_mels=16' in str(e.value) and 'bad.npy' in str(e.value)
  np.save(tmp_path / 'good.npy', mel)  # the same mel, correctly scaled, passes.
  assert _synth(setup, tmp_path, [str(tmp_path / 'good.npy')])['frames'] == [40]


def test_frame_rate_mismatch_is_refused(setup, tmp_path):
  config = setup[0]
  np.save(tmp_path / 'm.npy', _log_mel(config, 20 * HOP))
  with pytest.raises(synthesize.SynthesisInputError, match='frame rate mismatch.*hop_length=64'):
    _synth(setup, tmp_path, [str(tmp_path / 'm.npy')], mel_hop=80)
  with pytest.raises(synthesize.SynthesisInputError, match='frame rate mismatch'):
    _synth(setup, tmp_path, [str(tmp_path / 'm.npy')], mel_sample_rate=16000)
  assert _synth(setup, tmp_path, [str(tmp_path / 'm.npy')], mel_hop=HOP,
                mel_sample_rate=SR)['frames'] == [20]


def test_missing_and_colliding_inputs(setup, tmp_path):
  config = setup[0]
  with pytest.raises(synthesize.SynthesisInputError, match='no such file'):
    synthesize.collect_inputs(str(tmp_path / 'nope.wav'))
  with pytest.raises(synthesize.SynthesisInputError, match='no such file'):
    synthesize.load_mel(str(tmp_path / 'nope.npy'), config.audio)
  with pytest.raises(synthesize.SynthesisInputError, match='no such file'):
    synthesize.mel_from_audio_file(str(tmp_path / 'nope.wav'), config.audio)
  (tmp_path / 'd').mkdir()
  _write_wav(tmp_path / 'd' / 'a.wav', 1000)
  np.save(tmp_path / 'd' / 'a.npy', _log_mel(config, 1000))
  with pytest.raises(synthesize.SynthesisInputError, match='would both be written'):
    synthesize.collect_inputs(str(tmp_path / 'd'))


def test_evaluate_writes_metrics_wavs_and_tensorboard(setup, tmp_path):
  config, model, params, _, _ = setup
  config = config.copy_and_resolve_references()
  config.sampling.clip = 1.0  # random weights diverge at 6 steps; clipping keeps metrics finite.
  fn = synthesize.make_log_mel_fn(config.audio)
  utterances = []
  for i, samples in enumerate((int(1.2 * SR), int(0.9 * SR))):
    wave = _speech_like(samples, seed=i)
    utterances.append({'id': f'spk/utt{i}', 'speaker': 'spk', 'audio': wave,
                       'mel': np.asarray(fn(jnp.asarray(wave)))})
  schedules.save_schedule_json(str(tmp_path / 'my3.json'), [1e-4, 1e-2, 0.2])
  schedule_list = evaluate.parse_schedule_list(f'{tmp_path / "my3.json"},6',
                                               config.sampling.named_schedules)
  assert [n for n, _ in schedule_list] == ['my3', '6']
  out_dir = tmp_path / 'eval'
  results = evaluate.evaluate_utterances(sampling.model_eps_fn(model), params, config, utterances,
                                         schedule_list, jax.random.PRNGKey(0),
                                         output_dir=str(out_dir), step=7, progress=False)
  for name in ('my3', '6'):
    r = results['schedules'][name]
    for metric in ('ls_mse', 'mrstft', 'mel_l1', 'pesq', 'stoi', 'rtf'):
      assert r[metric] is not None and np.isfinite(r[metric]), (name, metric)
    assert soundfile.info(str(out_dir / 'wavs' / name / 'spk_utt0.wav')).frames == (
        utterances[0]['mel'].shape[0] * HOP)
  with open(out_dir / 'metrics.json') as f:
    saved = json.load(f)
  assert saved['step'] == 7 and saved['schedules']['6']['num_steps'] == 6
  assert saved['schedules']['6']['nonfinite_utterances'] == 0
  with open(out_dir / 'per_utterance.jsonl') as f:
    assert len(f.read().splitlines()) == 4
  assert any(n.startswith('events') for n in os.listdir(out_dir / 'tb'))
  assert os.path.exists(out_dir / 'wavs' / 'reference' / 'spk_utt1.wav')
  assert 'ls_mse' in evaluate.format_table(results)


# ------------------------------------------------------------- GLA-Grad with the true magnitude


def _given_config(config, **gla):
  """GLA-Grad pulling every step towards the reference |STFT| (magnitude='given'), cheaply."""
  config = config.copy_and_resolve_references()
  config.sampling.clip = 1.0  # random weights diverge at 6 steps; clipping keeps metrics finite.
  g = config.sampling.gla
  g.enabled, g.magnitude, g.steps, g.iterations = True, 'given', 'all', 2
  for k, v in gla.items():
    g[k] = v
  return config


def test_target_magnitudes_are_chunked_like_the_mels():
  """A 'vocoder' that plays back its target's first bin: stitching must give the input's back."""
  def sampler(params, betas, mel, rng, target_magnitude=None):
    del params, betas, rng
    assert target_magnitude.shape[:2] == mel.shape[:2]
    return jnp.repeat(target_magnitude[..., 0], 5, axis=1)

  vocode = synthesize.make_chunked_vocoder(sampler, hop_length=5, chunk_frames=8,
                                           overlap_frames=3, batch_size=3, pad_value=-11.5)
  rng = np.random.default_rng(0)
  frames = (1, 7, 16, 40)
  mels = [np.full((f, 2), -5.0, np.float32) for f in frames]
  targets = [rng.random((f, 4)).astype(np.float32) for f in frames]
  waves, stats = vocode(None, [0.1], mels, jax.random.PRNGKey(0), target_magnitudes=targets)
  assert stats['num_chunks'] == 1 + 1 + 3 + 8
  for target, wave in zip(targets, waves):
    np.testing.assert_allclose(wave, np.repeat(target[:, 0], 5), rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match='one .STFT. frame per mel frame'):
    vocode(None, [0.1], mels, jax.random.PRNGKey(0),
           target_magnitudes=[t[:-1] for t in targets])
  with pytest.raises(ValueError, match='one per mel'):
    vocode(None, [0.1], mels, jax.random.PRNGKey(0), target_magnitudes=targets[:2])


def test_given_magnitude_through_evaluate_and_wav_synthesis(setup, tmp_path):
  config, model, params, _, betas = setup
  config = _given_config(config)
  config.eval.pesq = config.eval.stoi = False  # host-side metrics add nothing to this test.
  utterances = []
  for i, samples in enumerate((int(0.7 * SR) + 17, 40 * HOP)):   # 87 frames (+ spare), 40
    wave = _speech_like(samples, seed=i)
    utterances.append({'id': f'u{i}', 'audio': wave,
                       'mel': _log_mel(config, samples)[:samples // HOP]})
  config.eval.write_references = False
  results = evaluate.evaluate_utterances(
      sampling.model_eps_fn(model), params, config, utterances, [('my3', betas)],
      jax.random.PRNGKey(0), output_dir=str(tmp_path / 'eval'), progress=False)
  r = results['schedules']['my3']
  assert r['nonfinite_utterances'] == 0 and np.isfinite(r['ls_mse'])
  for i, frames in enumerate((87, 40)):
    assert soundfile.info(str(tmp_path / 'eval' / 'wavs' / 'my3' / f'u{i}.wav')).frames == (
        frames * HOP)

  vocode = synthesize.chunked_vocoder_from_config(sampling.sampler_from_config(model, config),
                                                  config)
  wav = _write_wav(tmp_path / 'speech.wav', 3000)           # 46 frames + 56 spare samples
  out = _synth((config, model, params, vocode, betas), tmp_path, [wav])
  assert out['frames'] == [46]
  audio, rate = soundfile.read(out['outputs'][0])
  assert rate == SR and audio.shape == (46 * HOP,) and np.all(np.isfinite(audio))
  # The magnitude reaches the sampler: without it, 'given' refuses to run.
  with pytest.raises(ValueError, match="magnitude='given' needs target_magnitude"):
    vocode(params, betas, [np.full((20, N_MELS), -5.0, np.float32)], jax.random.PRNGKey(0))


def test_given_magnitude_refuses_npy_mels_and_another_hop(setup, tmp_path):
  config, model, params, vocode, betas = setup
  given = _given_config(config)
  np.save(tmp_path / 'tts.npy', _log_mel(config, 20 * HOP))
  with pytest.raises(synthesize.SynthesisInputError,
                     match=r"tts\.npy.*no true magnitude.*magnitude=.mel_pinv."):
    _synth((given, model, params, vocode, betas), tmp_path, [str(tmp_path / 'tts.npy')])
  assert synthesize.make_target_magnitude_fn(config) is None   # GLA off: nothing to compute
  with pytest.raises(ValueError, match='gla.hop_length=32 differs from config.audio.hop_length=64'):
    synthesize.make_target_magnitude_fn(_given_config(config, hop_length=32))
