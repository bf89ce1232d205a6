"""Stand-ins for a TTS model's predicted mels: real mels degraded as acoustic models degrade them.

An acoustic model (Tacotron 2, FastSpeech 2, ...) trained with an L1 / L2 loss predicts the
conditional mean of the mel: over-smoothed along time (blurred onsets and formant transitions)
and along frequency (harmonics washed out), with small frame-to-frame errors on top. A vocoder
trained on real mels has never seen such input and renders it buzzy or muffled; fine-tuning it on
(predicted mel, real audio) pairs is the usual fix. Without a TTS model at hand, `degrade_mel`
makes such mels from real ones, in every convention alike:

  1. the mel is turned into natural-log magnitudes, ln of the linear mel
     (`mel_conventions.decompress`);
  2. Gaussian smoothing along time (std `time_sigma_frames` frames) and along the mel bands (std
     `band_sigma` bands), with edges extended (scipy.ndimage.gaussian_filter1d, mode 'nearest');
  3. i.i.d. Gaussian noise of std `noise_std` nats per frame and band (0.1 nats = 0.87 dB);
  4. back to the convention's values (`mel_conventions.compress`, which applies its floor again).

The result keeps the frame count, so it stays aligned with the audio it came from.
"""
import hashlib
import json
import os

import numpy as np
import scipy.ndimage
import soundfile

from wavegrad_jax import jsonable
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.data.settings import AudioOptions, DataOptions, DegradeOptions


def degrade_mel(mel, fe: mel_conventions.Frontend, rng, *, time_sigma_frames, band_sigma,
                noise_std):
  """A real mel made to look predicted: smoothed in time and frequency, plus noise (module doc).

  Args:
    mel: [frames, n_mels] values in `fe`'s convention.
    fe: the frontend the mel was made with.
    rng: numpy Generator for the noise.
    time_sigma_frames: std of the temporal Gaussian smoothing, in frames (0: none).
    band_sigma: std of the smoothing across mel bands, in bands (0: none).
    noise_std: std of the added noise, in nats of the linear mel (0: none).
  Returns:
    [frames, n_mels] float32 in the same convention.
  """
  log_mel = np.log(np.maximum(mel_conventions.decompress(np.asarray(mel, np.float64), fe, xp=np),
                              1e-30))
  if time_sigma_frames > 0:
    log_mel = scipy.ndimage.gaussian_filter1d(log_mel, float(time_sigma_frames), axis=0,
                                              mode='nearest')
  if band_sigma > 0:
    log_mel = scipy.ndimage.gaussian_filter1d(log_mel, float(band_sigma), axis=1, mode='nearest')
  if noise_std > 0:
    log_mel = log_mel + float(noise_std) * rng.standard_normal(log_mel.shape)
  return np.asarray(mel_conventions.compress(np.exp(log_mel), fe, xp=np), np.float32)


def degrade_with(mel, fe: mel_conventions.Frontend, degrade: DegradeOptions, seed):
  """`degrade_mel` with the settings of a `degrade` section (experiments/configs/degrade.py).

  Args:
    mel: [frames, n_mels] in `fe`'s convention.
    fe: the frontend the mel was made with.
    degrade: time_sigma_frames, band_sigma, noise_std.
    seed: the noise seed, e.g. made from the utterance id so every file has its own noise.
  Returns:
    [frames, n_mels] float32.
  """
  return degrade_mel(mel, fe, np.random.default_rng(int(seed)),
                     time_sigma_frames=float(degrade.time_sigma_frames),
                     band_sigma=float(degrade.band_sigma), noise_std=float(degrade.noise_std))


def _spread(count, limit):
  """`limit` indices spread evenly over range(count) (all when limit is 0 or >= count)."""
  if not limit or limit >= count:
    return list(range(count))
  return sorted({int(i) for i in np.linspace(0, count - 1, limit)})


def _seed(base, uid):
  return int.from_bytes(hashlib.sha256(f'{base}:{uid}'.encode()).digest()[:8], 'big')


def write_pairs(data: DataOptions, audio: AudioOptions, degrade: DegradeOptions, output_dir,
                max_train, max_heldout, recorded):
  """Writes a paired folder (data/paired.py) of degraded mels beside their real audio.

  With a config, call `options.write_pairs_from_config`.

  Args:
    data: the corpus read (prepared on first use).
    audio: the audio options: the mel convention and the sample rate of the written audio.
    degrade: time_sigma_frames, band_sigma, noise_std, seed, and clean (True: real mels).
    output_dir: where <utterance id>.npy / .wav and pairs.json go.
    max_train: training utterances, spread evenly over the 'train' split (0: all).
    max_heldout: held-out utterances, the first in id order (0: all).
    recorded: JSON-able {'source': {'data': ..., 'audio': ...}, 'degrade': ...}: the settings as
      given, written to pairs.json.
  Returns:
    the summary written to pairs.json: source and degrade settings, the pair counts per split,
    and the mean absolute deviation of the degraded log mels from the real ones (nats, over the
    values above the floor).
  """
  from wavegrad_jax.data import pipeline as input_pipeline  # pylint: disable=g-import-not-at-top
  splits = input_pipeline.prepare_dataset(data, audio)
  fe = audio.frontend
  rate = int(audio.sample_rate)
  counts, deviations = {}, []
  for split, limit in (('train', max_train), ('heldout', max_heldout)):
    source = splits[split]
    indices = _spread(len(source), limit)
    for index in indices:
      example = source[index]
      uid = input_pipeline._decode_text(example['id'])  # pylint: disable=protected-access
      mel = np.asarray(example['mel'], np.float32)
      if degrade.clean:
        out = mel
      else:
        out = degrade_with(mel, fe, degrade, _seed(degrade.seed, uid))
        # Deviation in nats of the linear mel, where the real mel is above its floor.
        real = np.log(mel_conventions.decompress(mel.astype(np.float64), fe, xp=np))
        fake = np.log(mel_conventions.decompress(out.astype(np.float64), fe, xp=np))
        above = real > np.log(mel_conventions.effective_floor(fe)) + 1e-6
        deviations.append(np.abs(fake - real)[above])
      path = os.path.join(output_dir, uid)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      np.save(path + '.npy', out)
      soundfile.write(path + '.wav', np.clip(np.asarray(example['audio']), -1.0, 1.0), rate,
                      subtype='PCM_16')
    counts[split] = len(indices)
  summary = {
      'source': recorded['source'],
      'degrade': recorded['degrade'],
      'pairs': counts,
      'mean_abs_deviation_nats': (float(np.mean(np.concatenate(deviations)))
                                  if deviations else 0.0),
  }
  with open(os.path.join(output_dir, 'pairs.json'), 'w') as f:
    json.dump(jsonable.finite(summary), f, indent=2, sort_keys=True)
  return summary
