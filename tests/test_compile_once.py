"""Compile once: evaluation metrics per length bucket, compare's samplers across splits."""
import jax
import numpy as np
import pytest

from experiments.configs import common
from tests.test_synthesize import SR, _config, _random_params, _speech_like
from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.evaluation import compare
from wavegrad_jax.evaluation import evaluate
from wavegrad_jax.evaluation import metrics
from wavegrad_jax import models as model_lib
from wavegrad_jax import sampling

def _pair(samples, seed):
  ref = _speech_like(samples, seed=seed)
  noise = 0.05 * np.random.default_rng(seed + 100).standard_normal(samples).astype(np.float32)
  return ref + noise, ref


@pytest.mark.parametrize('audio,lengths', [
    # samples at 8 kHz: two buckets of two lengths each.
    (common.audio_config(sample_rate=SR, n_fft=256, win_length=256, hop_length=64, n_mels=16,
                         fmax=SR / 2), (1100, 1500, 2600, 3001)),
    # HiFi-GAN framing with an odd n_fft - hop: the last frame reads one sample past the padding.
    (common.audio_config_hifigan(sample_rate=SR, n_fft=256, win_length=256, hop_length=63,
                                 n_mels=16, fmax=SR / 2), (2600, 3001)),
], ids=['wavegrad', 'hifigan_odd'])
def test_bucketed_metrics_equal_exact_length_metrics_and_compile_per_bucket(audio, lengths):
  eval_cfg = common.eval_config()
  eval_cfg.mrstft_resolutions = ((256, 64, 256),)
  exact = metrics.make_spectral_metrics_fn(audio, eval_cfg)
  bucketed = metrics.BucketedSpectralMetrics(audio, eval_cfg)
  for i, length in enumerate(lengths):
    generated, reference = _pair(length, i)
    want, got = exact(generated, reference), bucketed(generated, reference)
    assert set(got) == set(want)
    for k in want:
      np.testing.assert_allclose(float(got[k]), float(want[k]), rtol=2e-6, err_msg=(length, k))
  buckets = {metrics.bucket_samples(n, int(audio.hop_length)) for n in lengths}
  assert len(buckets) < len(lengths)
  assert bucketed.num_compilations() == len(buckets)


def test_too_short_pairs_are_scored_at_their_own_length():
  audio = _config().audio
  eval_cfg = _config().eval
  bucketed = metrics.BucketedSpectralMetrics(audio, eval_cfg)
  exact = metrics.make_spectral_metrics_fn(audio, eval_cfg)
  generated, reference = _pair(200, 0)  # shorter than the 512-point STFT's 256-sample padding
  got, want = bucketed(generated, reference), exact(generated, reference)
  for k in want:
    np.testing.assert_allclose(float(got[k]), float(want[k]), rtol=1e-6)
  with pytest.raises(ValueError, match='one'):
    bucketed(generated[None], reference[None])


def test_compare_reuses_each_samplers_programs_across_splits():
  config = _config()
  config.sampling.clip = 1.0
  config.sampling.gla.iterations = 2
  config.eval.pesq = config.eval.stoi = False
  model = model_lib.build_model_from_config(config)
  params = _random_params(model, config)
  fe = mel_conventions.Frontend.from_config(config.audio)
  mel_fn = jax.jit(lambda w: audio_lib.log_mel_spectrogram(w, fe))
  utterances = {}
  for split, lengths in (('heldout', (1280, 1600)), ('unseen', (1408, 1024))):
    utterances[split] = [{'id': f'{split}{i}', 'speaker': split, 'audio': w,
                          'mel': np.asarray(mel_fn(w))}
                         for i, w in enumerate(_speech_like(n, seed=n) for n in lengths)]
  schedule_list = evaluate.parse_schedule_list(['list:1e-4,1e-2,0.2'], None)
  results = compare.compare(sampling.model_eps_fn(model), params, config, utterances,
                            schedule_list, ('ancestral_clip_y', 'ancestral_clip_x0'),
                            jax.random.PRNGKey(0), progress=False)
  rows = {(r['split'], r['sampler']): r for r in results['rows']}
  # Random weights diverge unbounded: both presets bound y or y0 (the plain ones no longer clip).
  for sampler in ('ancestral_clip_y', 'ancestral_clip_x0'):
    assert rows[('heldout', sampler)]['compile_seconds'] > 0
    # Same chunk batch shape on the second split: the compiled sampler is reused.
    assert rows[('unseen', sampler)]['compile_seconds'] == 0
    assert np.isfinite(rows[('unseen', sampler)]['ls_mse'])
