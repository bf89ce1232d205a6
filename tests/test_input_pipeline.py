"""Tests of the TFDS builders (wavegrad_jax/data) and the input pipeline; about 20 s on 2 cores."""
import logging
import os
import pathlib

import jax
import numpy as np
import pytest
import soundfile

from wavegrad_jax.data import builders
from experiments.configs import tiny
from wavegrad_jax.audio import frontend as audio
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.audio import options as audio_options
from wavegrad_jax.data import fingerprint
from wavegrad_jax.data import options as data_options
from wavegrad_jax.data import splits as data_splits

_FILLETS = '/usr/share/games/fillets-ng/sound'


def _builder(data_section, audio_section):
  """`builders.make_builder` of a config's data and audio sections."""
  return builders.make_builder(data_options.DataOptions.from_config(data_section),
                               data_options.AudioOptions.from_config(audio_section))


def _stored(data_section, audio_section):
  """`fingerprint.stored_data_values` of a config's data and audio sections."""
  return fingerprint.stored_data_values(data_options.DataOptions.from_config(data_section),
                                        data_options.AudioOptions.from_config(audio_section))


def _voice(seconds, rate, f0, seed):
  """A harmonic tone with a gliding pitch and a syllable-like envelope: [seconds * rate]."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * rate)) / rate
  phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))) / rate
  tone = sum(np.sin(k * phase) / k for k in range(1, 8))
  envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
  return (0.3 * tone * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _config(tfds_dir, source, folder, **data):
  c = tiny.get_config()
  c.data.source = source
  c.data.dir = str(folder)
  c.data.tfds_dir = str(tfds_dir)
  c.data.segment_frames = 16
  c.data.build_threads = 1
  c.data.read_threads = 2
  c.train.batch_size = 4
  for key, value in data.items():
    c.data[key] = value
  return c


@pytest.fixture(scope='module')
def folder_corpus(tmp_path_factory):
  """A recursive folder of wav/flac/ogg files: speakers spk_a and spk_b train, spk_c unseen."""
  root = tmp_path_factory.mktemp('corpus')
  lengths = {'spk_a': (0.7, 1.3, 0.9, 2.1, 0.05, 1.0), 'spk_b': (1.1, 0.6, 1.7, 0.8, 1.2, 0.4),
             'spk_c': (0.9, 1.4)}
  for s, (speaker, seconds) in enumerate(sorted(lengths.items())):
    (root / speaker).mkdir()
    for i, length in enumerate(seconds):
      rate = 16000 if i == 1 else 22050  # one resampled file per speaker.
      fmt = {2: 'flac', 3: 'ogg'}.get(i, 'wav')
      soundfile.write(str(root / speaker / f'utt{i}.{fmt}'), _voice(length, rate, 110 + 60 * s, i),
                      rate)
  # Shorter than one hop: can have no mel frame, so it is skipped and counted.
  soundfile.write(str(root / 'spk_a' / 'click.wav'), _voice(0.004, 22050, 200, 9), 22050)
  config = _config(tmp_path_factory.mktemp('tfds'), 'folder', root, heldout_fraction=0.3,
                   unseen_speakers=('spk_c',))
  splits = data_options.prepare_dataset_from_config(config)
  return config, splits


def test_shapes_dtypes_and_determinism(folder_corpus):
  config, splits = folder_corpus
  batches = data_options.train_batches_from_config(config, splits=splits)
  first = batches.batch(3)
  hop, frames = config.audio.hop_length, config.data.segment_frames
  assert set(first) == {'audio', 'mel'}
  assert first['audio'].shape == (4, frames * hop) and first['audio'].dtype == np.float32
  assert first['mel'].shape == (4, frames, config.audio.n_mels) and first['mel'].dtype == np.float32
  # A "resumed" run.
  again = data_options.train_batches_from_config(config, splits=splits).batch(3)
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
    np.testing.assert_array_equal(first[key], batches.batch(3)[key])
  assert not np.array_equal(first['audio'], batches.batch(4)['audio'])
  config.data.shuffle_seed = 1
  try:
    other_seed = data_options.train_batches_from_config(config, splits=splits).batch(3)
  finally:
    config.data.shuffle_seed = 0
  assert not np.array_equal(first['audio'], other_seed['audio'])


def test_host_shards_concatenate_to_global_batch(folder_corpus):
  config, splits = folder_corpus
  whole = data_options.train_batches_from_config(config, splits=splits)
  hosts = [data_options.train_batches_from_config(config, p, 2, splits=splits) for p in range(2)]
  assert hosts[0].local_batch == 2 and whole.local_batch == 4
  for step in (0, 2, 5):  # 5 x 4 examples crosses an epoch boundary of the ~9 utterances.
    shards = [h.batch(step) for h in hosts]
    expected = whole.batch(step)
    for key in expected:
      np.testing.assert_array_equal(np.concatenate([s[key] for s in shards]), expected[key])


def test_epochs_visit_every_utterance_once(folder_corpus):
  config, splits = folder_corpus
  batches = data_options.train_batches_from_config(config, splits=splits)
  n = batches.num_utterances
  steps = -(-2 * n // batches.global_batch)
  used = [u for step in range(steps) for u, _ in batches.plan(step)]
  assert sorted(used[:n]) == list(range(n)) and sorted(used[n:2 * n]) == list(range(n))


def test_crops_match_the_full_utterance_mel(folder_corpus):
  config, splits = folder_corpus
  batches = data_options.train_batches_from_config(config, splits=splits)
  hop, size = config.audio.hop_length, config.data.segment_frames
  fe = mel_conventions.Frontend.from_config(config.audio)
  whole = jax.jit(lambda x: audio.log_mel_spectrogram(x, fe))  # jit: fewer compiles.
  full_mels = {}  # one unbatched frontend call per utterance: each length compiles anew.
  padded = 0
  for step in range(4):
    batch = batches.batch(step)
    for j, (index, start) in enumerate(batches.plan(step)):
      example = splits['train'][index]
      if index not in full_mels:
        full_mels[index] = np.asarray(whole(example['audio']))
        np.testing.assert_allclose(example['mel'], full_mels[index], atol=2e-4)
      full = full_mels[index]
      frames = full.shape[0]
      assert example['audio'].shape[0] == frames * hop
      used = min(size, frames - start)
      np.testing.assert_allclose(batch['mel'][j, :used], full[start:start + used], atol=2e-4)
      np.testing.assert_array_equal(batch['audio'][j, :used * hop],
                                    example['audio'][start * hop:(start + used) * hop])
      if used < size:  # shorter than the segment: zero audio, log-floor mel after its end.
        padded += 1
        assert start == 0
        assert not batch['audio'][j, used * hop:].any()
        np.testing.assert_array_equal(batch['mel'][j, used:], np.log(np.float32(1e-5)))
  assert padded, 'spk_a/utt4.wav (0.05 s) should have been drawn and padded'


def test_stored_audio_is_loaded_normalised_and_trimmed(folder_corpus):
  config, splits = folder_corpus
  hop = config.audio.hop_length
  examples = {e['id'].decode(): e for k in data_splits.SPLITS for e in splits[k]}
  loaded = audio_options.load_audio_from_config(os.path.join(config.data.dir, 'spk_b/utt1.wav'),
                                       config.audio)  # the resampled 16 kHz file.
  stored = examples['spk_b/utt1.wav']['audio']
  assert stored.shape[0] == (loaded.shape[0] // hop) * hop
  np.testing.assert_array_equal(stored, loaded[:stored.shape[0]])
  assert 'spk_b/utt3.ogg' in examples and 'spk_a/utt2.flac' in examples


def test_splits_and_summary(folder_corpus):
  config, splits = folder_corpus
  ids = {k: [e['id'].decode() for e in splits[k]] for k in data_splits.SPLITS}
  speakers = {k: {e['speaker'].decode() for e in splits[k]} for k in data_splits.SPLITS}
  assert ids['train'] and ids['heldout'] and ids['unseen']
  assert not set(ids['train']) & set(ids['heldout'])
  assert speakers['unseen'] == {'spk_c'} and 'spk_c' not in speakers['train'] | speakers['heldout']
  assert all(v == sorted(v) for v in ids.values())  # stored in id order.
  assert all(data_splits.is_heldout(i, 0.3) for i in ids['heldout'])
  summary = splits.info.metadata['summary']
  assert summary['files_read'] == 15 and not summary['unreadable']
  assert summary['too_short'] == [os.path.join(config.data.dir, 'spk_a', 'click.wav')]
  assert sum(summary['utterances'].values()) == 14


def _small_folder(root, count):
  """`count` short wavs of one speaker in root/spk."""
  (root / 'spk').mkdir(parents=True)
  for i in range(count):
    soundfile.write(str(root / 'spk' / f'u{i:02d}.wav'), _voice(0.3, 22050, 120 + 5 * i, i), 22050)


def test_a_small_folder_corpus_keeps_a_minimum_held_out(tmp_path, capsys):
  _small_folder(tmp_path / 'corpus', 20)
  config = _config(tmp_path / 'tfds', 'folder', tmp_path / 'corpus')
  assert config.data.heldout_fraction == 0.02 and config.data.min_heldout_utterances == 2
  ids = ['spk/u%02d.wav' % i for i in range(20)]
  picked = [i for i in ids if data_splits.is_heldout(i, 0.02)]
  assert len(picked) < 2  # the defect: the fraction alone holds out (here) nothing
  splits = data_options.prepare_dataset_from_config(config)
  heldout = [e['id'].decode() for e in splits['heldout']]
  train = [e['id'].decode() for e in splits['train']]
  # The two with the lowest held-out hash: a superset of the fraction's pick, the same everywhere.
  lowest = sorted(ids, key=lambda i: data_splits._unit_hash('heldout', i))[:2]  # pylint: disable=protected-access
  assert heldout == sorted(lowest) and set(picked) <= set(heldout)
  assert sorted(train + heldout) == ids and not set(train) & set(heldout)
  assert 'heldout 2 utterances' in capsys.readouterr().out
  assert splits.info.metadata['summary']['heldout_topped_up'] == 2 - len(picked)

  # The minimum is part of the dataset's name: another minimum builds another dataset.
  other = config.data.copy_and_resolve_references()
  other.min_heldout_utterances = 3
  assert (_builder(other, config.audio).data_dir
          != _builder(config.data, config.audio).data_dir)
  # heldout_fraction=0 asks for no held-out set: none is made, whatever the minimum.
  config.data.heldout_fraction = 0.0
  splits = data_options.prepare_dataset_from_config(config)
  assert len(splits['heldout']) == 0 and len(splits['train']) == 20


def test_a_corpus_too_small_to_spare_the_held_out_minimum_is_refused(tmp_path):
  _small_folder(tmp_path / 'corpus', 2)
  config = _config(tmp_path / 'tfds', 'folder', tmp_path / 'corpus')
  with pytest.raises(builders.DataSourceError) as raised:
    data_options.prepare_dataset_from_config(config)
  message = str(raised.value)
  assert '\n' not in message
  assert ('has 2 readable training-speaker utterances: too few to hold out '
          'data.min_heldout_utterances=2 and train on the rest') in message
  assert 'config.data.heldout_fraction=0' in message
  assert not (tmp_path / 'tfds').exists()  # refused before TFDS wrote anything
  config.data.min_heldout_utterances = 1
  splits = data_options.prepare_dataset_from_config(config)
  assert (len(splits['train']), len(splits['heldout'])) == (1, 1)


def test_a_config_recorded_without_the_minimum_keeps_its_dataset_name(tmp_path):
  config = _config(tmp_path / 'tfds', 'folder', tmp_path)
  values = _stored(config.data, config.audio)
  del config.data['min_heldout_utterances']
  old = _stored(config.data, config.audio)
  assert 'min_heldout_utterances' not in old and values['min_heldout_utterances'] == 2
  assert {k: v for k, v in values.items() if k != 'min_heldout_utterances'} == old


@pytest.mark.skipif(not os.path.isdir(_FILLETS), reason='Debian fillets-ng-data-cs not installed')
def test_the_embedded_corpus_split_is_the_fraction_s_alone():
  config = tiny.get_config()  # the default data section: the full embedded corpus, 2% held out
  files, _ = data_splits.list_source_files(data_options.DataOptions.from_config(config.data))
  picked = [f.uid for f in files if not f.unseen and data_splits.is_heldout(f.uid, 0.02)]
  assert len(picked) == 27 >= config.data.min_heldout_utterances
  splits = data_options.prepare_dataset_from_config(config)
  assert [e['id'].decode() for e in splits['heldout']] == sorted(picked)
  assert splits.info.metadata['summary']['heldout_topped_up'] == 0


def test_heldout_utterances(folder_corpus):
  config, splits = folder_corpus
  hop = config.audio.hop_length
  everything = data_options.heldout_utterances_from_config(config, splits=splits)
  assert [u['id'] for u in everything] == [e['id'].decode() for e in splits['heldout']]
  first = data_options.heldout_utterances_from_config(config, max_count=1, max_seconds=0.2, splits=splits)
  assert len(first) == 1 and first[0]['id'] == everything[0]['id']
  frames = int(0.2 * config.audio.sample_rate) // hop
  assert first[0]['mel'].shape == (frames, config.audio.n_mels)
  assert first[0]['audio'].shape == (frames * hop,)
  np.testing.assert_array_equal(first[0]['mel'], everything[0]['mel'][:frames])
  unseen = data_options.heldout_utterances_from_config(config, 'unseen', splits=splits)
  assert {u['speaker'] for u in unseen} == {'spk_c'}
  with pytest.raises(ValueError, match='split'):
    data_options.heldout_utterances_from_config(config, 'test', splits=splits)


def test_iterate_prefetches_the_same_batches(folder_corpus):
  config, splits = folder_corpus
  batches = data_options.train_batches_from_config(config, splits=splits)
  stream = batches.iterate(start_step=5)
  for step in (5, 6, 7):
    got = next(stream)
    np.testing.assert_array_equal(got['mel'], batches.batch(step)['mel'])
  stream.close()


def test_batch_size_checks(folder_corpus):
  config, splits = folder_corpus
  assert data_options.global_batch_size_from_config(config, 2, num_data_devices=4) == 4
  with pytest.raises(ValueError, match=r'config.train.batch_size=4 .*process count \(3\)'):
    data_options.train_batches_from_config(config, 0, 3, splits=splits)
  with pytest.raises(ValueError, match=r'config.train.batch_size=4 .*data mesh axis \(8\)'):
    data_options.global_batch_size_from_config(config, 1, num_data_devices=8)
  with pytest.raises(ValueError, match='process_index'):
    data_options.train_batches_from_config(config, 2, 2, splits=splits)


def test_config_changes_name_a_new_dataset(folder_corpus):
  config, _ = folder_corpus
  names = set()
  for field, value in [('n_mels', 64), ('log_floor', 1e-4), ('hop_length', 128),
                       ('fmax', 8000.0), ('peak_normalize', 0.5), ('sample_rate', 16000)]:
    changed = config.audio.copy_and_resolve_references()
    changed[field] = value
    names.add(_builder(config.data, changed).data_dir)
  same = _builder(config.data, config.audio).data_dir
  names.add(same)
  assert len(names) == 7
  config.data.segment_frames = 24  # cut at read time: the stored data stay valid.
  try:
    assert _builder(config.data, config.audio).data_dir == same
  finally:
    config.data.segment_frames = 16
  assert 'sr22050-hop256-fft1024-win1024-hann-mel80' in same


def _write_ljspeech(root, corrupt):
  (root / 'wavs').mkdir(parents=True)
  lines = []
  for i in range(3):
    uid = f'LJ001-000{i + 1}'
    lines.append(f'{uid}|He said "hello", {i}.|He said "hello", {i}.')
    path = root / 'wavs' / f'{uid}.wav'
    if i == corrupt:
      path.write_bytes(b'RIFF\x24\x00\x00\x00WAVEjunk' + bytes(40))
    else:
      soundfile.write(str(path), _voice(0.8 + 0.2 * i, 22050, 150, i), 22050)
  (root / 'metadata.csv').write_text('\n'.join(lines) + '\n', encoding='utf-8')


def test_ljspeech_layout_reports_a_corrupt_file(tmp_path, caplog, capsys):
  root = tmp_path / 'LJSpeech-1.1'
  _write_ljspeech(root, corrupt=1)
  config = _config(tmp_path / 'tfds', 'ljspeech', root, heldout_fraction=0.0)
  with caplog.at_level(logging.WARNING):
    splits = data_options.prepare_dataset_from_config(config)
  bad = str(root / 'wavs' / 'LJ001-0002.wav')
  assert any(bad in r.getMessage() for r in caplog.records)
  printed = capsys.readouterr().out
  assert '2 files read, 1 skipped as unreadable' in printed and bad in printed
  assert list(splits.info.metadata['summary']['unreadable']) == [bad]
  assert [e['id'].decode() for e in splits['train']] == ['LJ001-0001', 'LJ001-0003']
  assert {e['speaker'].decode() for e in splits['train']} == {'ljspeech'}
  assert len(splits['heldout']) == 0 and len(splits['unseen']) == 0
  assert data_options.heldout_utterances_from_config(config, splits=splits) == []
  # Opening again reuses the prepared data without reading the folder.
  again = data_options.prepare_dataset_from_config(config)
  assert again.info.data_dir == splits.info.data_dir
  assert 'skipped' not in capsys.readouterr().out


def test_missing_and_empty_sources_raise(tmp_path):
  tfds_dir = tmp_path / 'tfds'
  missing = tmp_path / 'nowhere'
  cases = [
      ('ljspeech', missing, r'LJSpeech folder .*nowhere does not exist.*--config.data.dir'),
      ('folder', missing, r'Audio folder .*nowhere does not exist'),
      ('fillets', missing, r'Fillets sound folder .*nowhere does not exist.*fillets-ng-data-cs'),
  ]
  empty = tmp_path / 'empty'
  empty.mkdir()
  cases += [
      ('ljspeech', empty, r'LJSpeech folder .*empty has no metadata.csv; pass '
                          r'--config.data.dir=<path to LJSpeech-1.1>'),
      ('folder', empty, r'Audio folder .*empty holds no .flac/.ogg/.wav files'),
      ('fillets', empty, r'Fillets sound folder .*empty has no <level>/cs/\*.ogg'),
  ]
  broken = tmp_path / 'broken'
  broken.mkdir()
  (broken / 'a.wav').write_bytes(b'')
  (broken / 'b.flac').write_bytes(b'not audio at all')
  cases.append(('folder', broken, r'None of the 2 audio files .*broken could be read'))
  for source, folder, message in cases:
    with pytest.raises(builders.DataSourceError, match=message):
      data_options.prepare_dataset_from_config(_config(tfds_dir, source, folder))
  assert not list(pathlib.Path(tfds_dir).glob('*/*/*/*.array_record*'))


@pytest.mark.skipif(not os.path.isdir(_FILLETS), reason='Debian fillets-ng-data-cs not installed')
def test_fillets_source_with_max_files(tmp_path):
  config = _config(tmp_path, 'fillets', _FILLETS, max_files=3, heldout_fraction=0.0)
  splits = data_options.prepare_dataset_from_config(config)
  train = data_options.heldout_utterances_from_config(config, 'train', splits=splits)
  unseen = data_options.heldout_utterances_from_config(config, 'unseen', splits=splits)
  assert len(train) == 3 and len(unseen) == 3
  assert {u['speaker'] for u in train} <= {'fish_m', 'fish_v'}
  assert not {u['speaker'] for u in unseen} & {'fish_m', 'fish_v'}
  for u in train + unseen:
    assert u['audio'].shape[0] == u['mel'].shape[0] * config.audio.hop_length
    assert 0.5 < np.abs(u["audio"]).max() <= 0.9 + 1e-6
  summary = splits.info.metadata['summary']
  assert summary['files_listed'] > 1500 and summary['files_read'] == 6
  batch = data_options.train_batches_from_config(config, splits=splits).batch(0)
  assert batch['mel'].shape == (4, 16, config.audio.n_mels)


def test_a_corpus_is_one_module_and_one_registry_entry(folder_corpus, tmp_path, monkeypatch):
  """A corpus defined here (as a new module would define it) builds once it has an entry."""
  from wavegrad_jax.data import folder, registry  # pylint: disable=g-import-not-at-top
  from wavegrad_jax.data.corpus import Corpus  # pylint: disable=g-import-not-at-top
  config, _ = folder_corpus

  def list_wavs(path, data):  # the .wav files only, speaker spk_c unseen.
    del data  # the `DataOptions`
    return folder.list_folder_files(path, ['wav'], 1, ['spk_c']), {}

  corpus = Corpus(name='wavs_only', builder_name='wavs_only_corpus', description='wav files.',
                  list_files=list_wavs)
  monkeypatch.setitem(registry.CORPORA, 'wavs_only', corpus)
  splits = data_options.prepare_dataset_from_config(_config(tmp_path, 'wavs_only', config.data.dir))
  assert os.path.relpath(splits.info.data_dir, str(tmp_path)).startswith(
      'wavs_only_corpus' + os.sep)
  ids = [e['id'].decode() for k in data_splits.SPLITS for e in splits[k]]
  assert len(ids) > 4 and all(i.endswith('.wav') for i in ids)
  assert {e['speaker'].decode() for e in splits['unseen']} == {'spk_c'}
