"""The paired corpus (teacher-forced mels beside their audio): bad pairs reported, the rest built,
stored mels kept and aligned with their audio in training crops."""
import glob
import os
import re

import numpy as np
import pytest
import soundfile

from experiments.configs import tiny
from wavegrad_jax.audio import frontend as audio
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.audio import options as audio_options
from wavegrad_jax.data import pipeline as input_pipeline
from wavegrad_jax.data import options as data_options
from wavegrad_jax.data import paired

FILLETS = sorted(p for p in glob.glob('/usr/share/games/fillets-ng/sound/*/cs/*.ogg')
                 if re.match(r'^[a-z0-9]+-[mv]-', os.path.basename(p)))


def _config(folder, tfds_dir):
  config = tiny.get_config()
  config.data.source, config.data.dir = 'paired', str(folder)
  config.data.tfds_dir, config.data.build_threads = str(tfds_dir), 1
  config.data.heldout_fraction = 0.0
  config.data.segment_frames, config.train.batch_size = 16, 4
  return config


def _clips(cfg, count):
  """`count` fish lines between 1 and 3 s at the config's rate, with their mels."""
  out = []
  for path in FILLETS:
    if 1.0 < soundfile.info(path).duration < 3.0:
      wave = audio_options.load_audio_from_config(path, cfg)
      fe = mel_conventions.Frontend.from_config(cfg)
      out.append((wave, np.asarray(audio.log_mel_spectrogram(wave, fe))))
      if len(out) == count:
        return out
  pytest.fail('too few fillets speech clips: install fillets-ng-data-cs')


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  """A folder of 2 good pairs among every kind of bad one, built once."""
  root = tmp_path_factory.mktemp('pairs')
  folder = root / 'tts'
  os.makedirs(folder / 'spk')
  cfg = tiny.get_config().audio
  hop, rate = cfg.hop_length, cfg.sample_rate
  (a_wave, a_mel), (b_wave, b_mel), (c_wave, _) = _clips(cfg, 3)
  write = lambda name, wave: soundfile.write(str(folder / name), wave, rate, subtype='FLOAT')
  # a: the frontend's own T // hop frames; b (flac, in a speaker folder): 1 + T // hop frames as
  # librosa / torch center=True make them, so its audio is padded by less than a hop.
  write('a.wav', a_wave)
  np.save(folder / 'a.npy', a_mel)
  b_wave = b_wave[:len(b_wave) - 100]  # not a whole number of hops
  soundfile.write(str(folder / 'spk' / 'b.flac'), b_wave, rate, subtype='PCM_24')
  b_full = np.concatenate([b_mel[:len(b_wave) // hop], b_mel[len(b_wave) // hop - 1:][:1]])
  np.save(folder / 'spk' / 'b.npy', b_full)
  bad = {
      'c': 'frames x hop',         # another utterance's mel: lengths disagree
      'd': 'NaN or infinite',
      'e': 'not a readable .npy',
      'f': 'not a readable audio file',
      'g': "paired_mel_layout='mels_first'",  # transposed: the other layout
      'j': 'far outside',          # dB values in a natural-log corpus
  }
  write('c.wav', c_wave[:len(c_wave) // 2])
  np.save(folder / 'c.npy', a_mel)
  write('d.wav', a_wave)
  np.save(folder / 'd.npy', np.where(np.arange(a_mel.size).reshape(a_mel.shape) == 7, np.nan,
                                     a_mel))
  write('e.wav', a_wave)
  (folder / 'e.npy').write_bytes(b'\x93NUMPY truncated')
  (folder / 'f.wav').write_bytes(b'RIFF\x10\x00\x00\x00WAVEjunk')
  np.save(folder / 'f.npy', a_mel)
  write('g.wav', a_wave)
  np.save(folder / 'g.npy', a_mel.T)
  write('j.wav', a_wave)
  np.save(folder / 'j.npy', a_mel * 20 / np.log(10))
  np.save(folder / 'h.npy', a_mel)   # no audio beside it
  write('i.wav', a_wave)             # no mel beside it
  config = _config(folder, root / 'tfds')
  splits = data_options.prepare_dataset_from_config(config)
  return config, splits, folder, bad, (a_wave, a_mel), (b_wave, b_full)


def test_bad_pairs_are_reported_by_path_and_the_rest_builds(built, capsys):
  config, splits, folder, bad, _, _ = built
  summary = splits.info.metadata['summary']
  assert summary['files_read'] == 2 and summary['utterances']['train'] == 2
  assert len(summary['unreadable']) == len(bad)
  reasons = list(summary['unreadable'].values())
  for name, words in bad.items():
    hits = [r for r in reasons if f'{folder}/{name}.' in r]
    assert len(hits) == 1 and words in hits[0], (name, hits)
  assert set(summary['left_out']) == {str(folder / 'h.npy'), str(folder / 'i.wav')}
  assert 'no audio beside it' in summary['left_out'][str(folder / 'h.npy')]
  assert 'no i.npy mel beside it' in summary['left_out'][str(folder / 'i.wav')]
  del config, capsys


def test_stored_mels_are_kept_and_the_audio_aligned_to_them(built):
  config, splits, _, _, (a_wave, a_mel), (b_wave, b_mel) = built
  hop = config.audio.hop_length
  train = {input_pipeline._decode_text(splits['train'][i]['id']): splits['train'][i]
           for i in range(2)}
  assert sorted(train) == ['a', 'spk/b']
  np.testing.assert_array_equal(train['a']['mel'], a_mel)
  # (read back and scaled to the peak again: float rounding only)
  np.testing.assert_allclose(train['a']['audio'], a_wave[:len(a_mel) * hop], atol=1e-6)
  b = train['spk/b']
  np.testing.assert_array_equal(b['mel'], b_mel)
  assert b['audio'].shape == (len(b_mel) * hop,)
  np.testing.assert_allclose(b['audio'][:len(b_wave)], b_wave, atol=1e-6)  # 24-bit flac
  assert not np.any(b['audio'][len(b_wave):])  # padded with silence to frames x hop
  # Training crops take the stored mel with the audio under it: the frontend on a crop's audio
  # gives the crop's mel back, away from the crop's edges (where its padding differs).
  batches = data_options.train_batches_from_config(config, splits=splits)
  fe = mel_conventions.Frontend.from_config(config.audio)
  for step in range(3):
    batch = batches.batch(step)
    for wave, mel in zip(batch['audio'], batch['mel']):
      ours = np.asarray(audio.log_mel_spectrogram(wave, fe))
      np.testing.assert_allclose(ours[2:-3], mel[2:-3], atol=2e-3)


def test_the_other_layout_and_the_tolerance(tmp_path):
  cfg = tiny.get_config().audio
  (wave, mel), = _clips(cfg, 1)
  os.makedirs(tmp_path / 'p')
  soundfile.write(str(tmp_path / 'p' / 'x.wav'), wave, cfg.sample_rate, subtype='FLOAT')
  np.save(tmp_path / 'p' / 'x.npy', mel.T)  # [n_mels, frames]
  config = _config(tmp_path / 'p', tmp_path / 'tfds')
  config.data.paired_mel_layout = 'mels_first'
  data, audio_opts = data_options.options_from_config(config)
  item = paired.list_paired_files(str(tmp_path / 'p'), data)[0][0]
  out_wave, out_mel = paired.read_pair(item, data, audio_opts)
  np.testing.assert_array_equal(out_mel, mel)
  # Two frames more than the audio holds: beyond the default tolerance of one hop, within two.
  np.save(tmp_path / 'p' / 'x.npy', np.concatenate([mel, mel[-2:]]).T)
  with pytest.raises(paired.BadPairError, match='paired_tolerance_frames=1 hops apart'):
    paired.read_pair(item, data, audio_opts)
  config.data.paired_tolerance_frames = 2.0
  data = data_options.DataOptions.from_config(config.data)
  assert paired.read_pair(item, data, audio_opts)[1].shape[0] == len(mel) + 2
  del out_wave
