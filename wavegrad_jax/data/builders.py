"""TFDS builders for the vocoder's corpora, written as array_record without TensorFlow.

The corpus is picked by `config.data.source` from `registry.CORPORA` (each corpus lists its files
in its own module: 'fillets', the embedded default, in fillets.py; 'ljspeech'; 'folder'); every
corpus is then read, cut into splits and stored the same way, by this module.

Each example holds one utterance: 'audio' [T] float32 at audio.sample_rate, peak-normalised as
`audio.load_audio` does and trimmed to T = frames * hop_length samples; 'mel' [frames, n_mels]
float32, `audio.log_mel_spectrogram` of that whole trimmed utterance; 'speaker' and 'id' strings.
Examples are stored in utterance-id order (shuffling disabled), so record i of a split is the i-th
utterance id of that split and `info.metadata['frames'][split][i]` is its frame count. Read them
with `wavegrad_jax.data.pipeline`, or without this code through
`tfds.builder_from_directory(<dataset folder>).as_data_source()`.

Where the data go: `<config.data.tfds_dir>/<builder name>/<config name>/<version>/` (the corpus's
`builder_name`: fillets_speech, ljspeech_folder and audio_folder), e.g.
`~/tensorflow_datasets/fillets_speech/sr22050-hop256-...-1a2b3c4d5e/1.0.0/`. The config name spells
out the audio values that shape the stored arrays and ends in a hash of every value that affects
the stored data (the audio section's frontend values, the source, its folder, the split and subset
settings), so changing any of them builds a new dataset beside the old one instead of reusing stale
arrays. The dataset also records every source file's size and modification time
(`info.metadata['source_files']`); opening it lists the source again, and when a file was added,
removed or changed (fixed, re-encoded) the stale dataset is deleted and rebuilt, with a message
naming what changed. A source folder that has gone away leaves the prepared dataset usable.

Splits: 'train', 'heldout' (a deterministic `heldout_fraction` of the training speakers' files,
chosen by a hash of the utterance id, topped up to `min_heldout_utterances` for small corpora) and
'unseen' (speakers never trained on). A split with no
utterances is not written; `wavegrad_jax.data.pipeline` presents it as empty.

Unreadable files are logged by path, skipped and counted in a summary printed at the end of the
build (also kept in `info.metadata['summary']`); a build where no file could be read, or whose
folder is missing or empty, raises `DataSourceError` naming the folder and what was expected.
"""
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import types
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from absl import logging
from etils import epath
import jax
import ml_collections
import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import utils as tfds_utils

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.data import registry
from wavegrad_jax.data.corpus import DataSourceError, SourceFile
from wavegrad_jax.audio import conventions as mel_conventions

# Bump when the stored layout or its computation changes: it is part of every config's hash.
_FORMAT_VERSION = '1.0.0'

SPLITS = ('train', 'heldout', 'unseen')

@dataclasses.dataclass(frozen=True)
class Utterance:
  """A readable file assigned to a split, with its trimmed length in frames (x hop = samples)."""
  uid: str
  path: str
  speaker: str
  split: str
  frames: int
  mel_path: str = ''  # a stored mel (paired corpora), '' when computed from the audio.


# ----------------------------------------------------------------------------------- config values


def stored_audio_values(audio_cfg) -> Dict[str, Any]:
  """The `audio` config values that change the stored arrays, as plain JSON-able Python values.

  Args:
    audio_cfg: the `audio` config section.
  Returns:
    dict of sample_rate (Hz), n_fft, win_length, hop_length (samples), n_mels, fmin, fmax (Hz),
    window, power, log_floor, pad_mode and peak_normalize, plus the mel convention's fields that
    differ from the default's (`mel_conventions.stored_values`: none for the default frontend).
  """
  fmax = audio_cfg.fmax
  return mel_conventions.stored_values(audio_cfg) | {
      'sample_rate': int(audio_cfg.sample_rate),
      'n_fft': int(audio_cfg.n_fft),
      'win_length': int(audio_cfg.win_length),
      'hop_length': int(audio_cfg.hop_length),
      'n_mels': int(audio_cfg.n_mels),
      'fmin': float(audio_cfg.fmin),
      'fmax': None if fmax is None else float(fmax),
      'window': audio_cfg.window if isinstance(audio_cfg.window, str) else list(audio_cfg.window),
      'power': float(audio_cfg.power),
      'log_floor': float(audio_cfg.log_floor),
      'pad_mode': str(audio_cfg.pad_mode),
      'peak_normalize': float(audio_cfg.peak_normalize),
  }


def stored_data_values(data_cfg, audio_cfg) -> Dict[str, Any]:
  """Every config value that affects the stored dataset (and nothing that does not).

  Args:
    data_cfg: the `data` config section.
    audio_cfg: the `audio` config section.
  Returns:
    dict with the format version, the source, its folder (absolute), the split and subset settings,
    the corpus's own `stored_values` and `stored_audio_values`.
  """
  source = str(data_cfg.source)
  values = {
      'format': _FORMAT_VERSION,
      'source': source,
      'dir': os.path.abspath(os.path.expanduser(str(data_cfg.dir))),
      'heldout_fraction': float(data_cfg.heldout_fraction),
      'max_files': int(data_cfg.max_files),
      'audio': stored_audio_values(audio_cfg),
  }
  if 'min_heldout_utterances' in data_cfg:
    # Configs recorded before the field existed keep their hash, and so their prepared dataset.
    values['min_heldout_utterances'] = int(data_cfg.min_heldout_utterances)
  values.update(registry.get_corpus(source).stored_values(data_cfg))
  return values


def _name_part(value) -> str:
  text = f'{value:g}' if isinstance(value, float) else str(value)
  return re.sub(r'[^a-zA-Z0-9.+-]+', '', text)


def config_name(values: Dict[str, Any]) -> str:
  """A readable, unique TFDS config name for `stored_data_values` output.

  Args:
    values: the dict `stored_data_values` returns.
  Returns:
    e.g. 'sr22050-hop256-fft1024-win1024-hann-mel80-f0-11025-pow1-floor1e-05-<10 hex digits>'; the
    hash covers every value, including those not spelled out.
  """
  a = values['audio']
  digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]
  fmax = 'nyq' if a['fmax'] is None else _name_part(a['fmax'])
  parts = [f"sr{a['sample_rate']}", f"hop{a['hop_length']}", f"fft{a['n_fft']}",
           f"win{a['win_length']}", _name_part(a['window']), f"mel{a['n_mels']}",
           f"f{_name_part(a['fmin'])}", fmax, f"pow{_name_part(a['power'])}",
           f"floor{_name_part(a['log_floor'])}", digest]
  return '-'.join(parts)


# ------------------------------------------------------------------------------- files and splits


def list_source_files(data_cfg) -> Tuple[List[SourceFile], Dict[str, str]]:
  """Lists the files of the source `data_cfg.source` in `data_cfg.dir`.

  Args:
    data_cfg: the `data` config section.
  Returns:
    (files sorted by id, {path: reason} of files the layout rules leave out).
  Raises:
    DataSourceError: the folder is missing or empty, or the source is unknown.
  """
  corpus = registry.get_corpus(str(data_cfg.source))
  return corpus.list_files(os.path.expanduser(str(data_cfg.dir)), data_cfg)


def _unit_hash(salt: str, uid: str) -> float:
  """A stable pseudo-random number in [0, 1) for an id (Python's hash() varies per process)."""
  digest = hashlib.sha256(f'{salt}:{uid}'.encode()).digest()
  return int.from_bytes(digest[:8], 'big') / 2.0**64


def is_heldout(uid: str, heldout_fraction: float) -> bool:
  """Whether a training speaker's utterance `uid` belongs to 'heldout' (same on every machine)."""
  return _unit_hash('heldout', uid) < heldout_fraction


def apply_min_heldout(utterances: Dict[str, List['Utterance']], data_cfg) -> int:
  """Moves training utterances into 'heldout' until it holds `data_cfg.min_heldout_utterances`.

  Only when `heldout_fraction` > 0 picked fewer: those with the lowest held-out hash move, so the
  held-out set is a superset of the fraction's pick and the same on every machine. A corpus whose
  fraction already picks enough (the embedded one) keeps its split.

  Args:
    utterances: per split, the readable utterances sorted by id (changed in place).
    data_cfg: the `data` config section (a config without the field has no minimum).
  Returns:
    how many utterances moved (0 when the fraction's pick was enough).
  Raises:
    DataSourceError: the training speakers' utterances cannot spare the minimum and leave one
      for training.
  """
  minimum = int(data_cfg.get('min_heldout_utterances', 0))
  fraction = float(data_cfg.heldout_fraction)
  missing = minimum - len(utterances['heldout'])
  if fraction <= 0 or missing <= 0:
    return 0
  if len(utterances['train']) <= missing:
    total = len(utterances['train']) + len(utterances['heldout'])
    raise DataSourceError(
        f"the {data_cfg.source} corpus in {os.path.expanduser(str(data_cfg.dir))} has "
        f'{total} readable training-speaker utterances: too few to hold out '
        f'data.min_heldout_utterances={minimum} and train on the rest; add files, lower '
        'config.data.min_heldout_utterances, or set config.data.heldout_fraction=0 to train '
        'without a held-out set (no evaluation, no samples, no best checkpoint)')
  moved = sorted(utterances['train'], key=lambda u: _unit_hash('heldout', u.uid))[:missing]
  moved_ids = {u.uid for u in moved}
  utterances['train'] = [u for u in utterances['train'] if u.uid not in moved_ids]
  utterances['heldout'] = sorted(utterances['heldout'] + [dataclasses.replace(u, split='heldout')
                                                          for u in moved], key=lambda u: u.uid)
  return len(moved)


def subset_files(files: Sequence[SourceFile], max_files: int) -> List[SourceFile]:
  """At most `max_files` of the training-speaker files and as many unseen ones (0: all).

  The subset is the files with the smallest hash of their id (salted apart from the held-out
  hash), so it spreads across levels and speakers instead of taking the first folder.

  Args:
    files: files sorted by id.
    max_files: cap per pool (training speakers, unseen speakers); 0 keeps everything.
  Returns:
    the kept files, sorted by id.
  """
  if max_files <= 0:
    return list(files)
  kept = []
  for unseen in (False, True):
    pool = [f for f in files if f.unseen == unseen]
    kept += sorted(pool, key=lambda f: _unit_hash('subset', f.uid))[:max_files]
  return sorted(kept, key=lambda f: f.uid)


# ----------------------------------------------------------------------------------- audio and mel


def _load_trimmed(path: str, audio_cfg) -> np.ndarray:
  """`load_audio_for_config`, cut to whole frames: [frames * hop_length] float32."""
  samples = audio_lib.load_audio_for_config(path, audio_cfg)
  hop = int(audio_cfg.hop_length)
  return samples[:(samples.shape[0] // hop) * hop]


def _read(item, data_cfg, audio_cfg) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """(audio [frames * hop], stored mel [frames, n_mels] or None to compute) of a file."""
  read = registry.get_corpus(str(data_cfg.source)).read
  if read is None:
    return _load_trimmed(item.path, audio_cfg), None
  return read(item, data_cfg, audio_cfg)


def make_mel_fn(audio_cfg):
  """The jitted frontend for builds: [rows, L] float32 -> [rows, L // hop, n_mels] float32.

  Args:
    audio_cfg: the `audio` config section; frozen here so later edits cannot reach the trace.
  Returns:
    a jitted function; it compiles once per input shape.
  """
  frozen = ml_collections.FrozenConfigDict(audio_cfg)
  return jax.jit(functools.partial(audio_lib.log_mel_spectrogram, audio_cfg=frozen))


def batched_log_mels(waveforms: Sequence[np.ndarray], audio_cfg, mel_fn, batch_samples: int,
                     window_frames: int) -> List[np.ndarray]:
  """`audio.log_mel_spectrogram` of each whole waveform, computed as batches of equal windows.

  Every waveform is padded at both ends as the STFT's centring pad does (`audio_cfg.pad_mode`), by
  c = ceil(n_fft / 2 / hop) frames, and cut into windows of window_frames + 2c frames that step by
  window_frames. Frames c .. c + window_frames - 1 of a window's log-mel read only samples inside
  the window, the same samples the frame reads in the whole-utterance STFT, so they are that STFT's
  frames; the context frames and the frames past each waveform's end are dropped. All windows have
  one shape, so a build compiles the frontend once whatever the utterance lengths.

  Args:
    waveforms: [T_i] float32 arrays with T_i a positive multiple of hop_length.
    audio_cfg: the `audio` config section.
    mel_fn: `make_mel_fn(audio_cfg)`.
    batch_samples: samples per jitted call (windows x window length); bounds memory.
    window_frames: output frames per window (x hop_length = samples).
  Returns:
    [T_i // hop_length, n_mels] float32 per waveform, in input order.
  """
  hop = int(audio_cfg.hop_length)
  context = -(-(int(audio_cfg.n_fft) // 2) // hop)
  length = (window_frames + 2 * context) * hop
  windows, owners = [], []
  for i, w in enumerate(waveforms):
    frames = w.shape[0] // hop
    count = -(-frames // window_frames)
    padded = np.pad(w, (context * hop,) * 2, mode=audio_cfg.pad_mode)
    # Zeros past the end pad fill the last window; only frames past the waveform's end read them.
    padded = np.pad(padded, (0, count * window_frames * hop + 2 * context * hop - padded.shape[0]))
    for j in range(count):
      windows.append(padded[j * window_frames * hop:j * window_frames * hop + length])
      owners.append(i)
  rows = max(1, batch_samples // length)
  pieces = [[] for _ in waveforms]
  for start in range(0, len(windows), rows):
    batch = np.zeros((rows, length), np.float32)  # a fixed row count: one compiled shape.
    chunk = windows[start:start + rows]
    batch[:len(chunk)] = chunk
    out = np.asarray(mel_fn(batch))[:len(chunk), context:context + window_frames]
    for r in range(len(chunk)):
      pieces[owners[start + r]].append(out[r])
  return [np.concatenate(p)[:w.shape[0] // hop] for p, w in zip(pieces, waveforms)]


# -------------------------------------------------------------------------------------- the plan


def source_listing(folder: str, files: Sequence[SourceFile]) -> Dict[str, List[int]]:
  """{path relative to `folder`: [size in bytes, modification time in ns]} of listed files.

  A listed file that cannot be stat'ed (LJSpeech ids without a wav) is [-1, 0]. Cheap: one stat
  per file, about 0.1 s for LJSpeech's 13,100 files.
  """
  out = {}
  for f in files:
    try:
      st = os.stat(f.path)
      out[os.path.relpath(f.path, folder)] = [int(st.st_size), int(st.st_mtime_ns)]
    except OSError:
      out[os.path.relpath(f.path, folder)] = [-1, 0]
  return out


def listing_changes(recorded: Dict[str, Any], current: Dict[str, Any], examples: int = 3
                    ) -> Optional[str]:
  """What differs between two `source_listing`s, e.g. '1 added (a.wav), 2 changed (b.wav, c.wav)'.

  Returns:
    None when they are equal.
  """
  added = sorted(set(current) - set(recorded))
  removed = sorted(set(recorded) - set(current))
  changed = sorted(k for k in set(current) & set(recorded) if list(current[k]) != list(recorded[k]))
  parts = []
  for names, label in ((added, 'added'), (removed, 'removed'), (changed, 'changed')):
    if names:
      more = ', ...' if len(names) > examples else ''
      parts.append(f'{len(names)} {label} ({", ".join(names[:examples])}{more})')
  return ', '.join(parts) or None


@dataclasses.dataclass
class BuildPlan:
  """What a build will write, decided by reading every listed file once.

  Attributes:
    folder: the source folder.
    utterances: per split, the readable utterances sorted by id.
    summary: JSON-able counts and the paths of skipped files.
    source_files: `source_listing` of every listed file, taken before any was read.
  """
  folder: str
  utterances: Dict[str, List[Utterance]]
  summary: Dict[str, Any]
  source_files: Dict[str, List[int]] = dataclasses.field(default_factory=dict)

  def summary_text(self) -> str:
    """One paragraph for people: files read, skipped (with paths), and what each split holds."""
    s = self.summary
    unreadable, short, left_out = s['unreadable'], s['too_short'], s['left_out']
    text = (f"{s['source']} corpus {self.folder}: {s['files_read']} files read, "
            f'{len(unreadable)} skipped as unreadable')
    text += f': {sorted(unreadable)}' if unreadable else ''
    if short:
      text += f", {len(short)} skipped as shorter than one hop ({s['hop_length']} samples): {short}"
    if left_out:
      examples = sorted(left_out)[:3]
      text += (f', {len(left_out)} left out by the layout rules (e.g. {examples}: '
               f'{left_out[examples[0]]})')
    splits = ', '.join(f"{k} {s['utterances'][k]} utterances ({s['seconds'][k] / 60:.1f} min)"
                       for k in SPLITS)
    if s.get('heldout_topped_up'):
      splits += (f" ({s['heldout_topped_up']} of the held-out utterances are there because "
                 'data.heldout_fraction picked fewer than data.min_heldout_utterances)')
    return f'{text}. {splits}.'


def make_plan(data_cfg, audio_cfg) -> BuildPlan:
  """Lists the source, reads every file once, and assigns the readable ones to splits.

  Unreadable files are logged (absl warning, by path) and counted, never fatal on their own.

  Args:
    data_cfg: the `data` config section.
    audio_cfg: the `audio` config section.
  Returns:
    the plan.
  Raises:
    DataSourceError: the folder is missing or empty, no file could be read, or no readable file
      is left for 'train'.
  """
  folder = os.path.expanduser(str(data_cfg.dir))
  listed, left_out = list_source_files(data_cfg)
  listing = source_listing(folder, listed)  # before reading: a file changed meanwhile rebuilds
  files = subset_files(listed, int(data_cfg.max_files))
  hop = int(audio_cfg.hop_length)
  unreadable, too_short = {}, []
  utterances = {k: [] for k in SPLITS}

  def frames_of(f):
    try:
      return _read(f, data_cfg, audio_cfg)[0].shape[0] // hop
    except audio_lib.AudioLoadError as e:
      return e
    except Exception as e:  # pylint: disable=broad-except
      # A decoder failing some other way is still one bad file, not a reason to stop the build.
      return audio_lib.AudioLoadError(f'{f.path}: {type(e).__name__}: {e}')

  with concurrent.futures.ThreadPoolExecutor(max(1, int(data_cfg.build_threads))) as pool:
    for f, frames in zip(files, pool.map(frames_of, files)):
      if isinstance(frames, Exception):
        logging.warning('Skipping unreadable audio file %s: %s', f.path, frames)
        unreadable[f.path] = str(frames)
      elif frames < 1:
        logging.warning('Skipping %s: shorter than one hop (%d samples)', f.path, hop)
        too_short.append(f.path)
      else:
        split = ('unseen' if f.unseen else
                 'heldout' if is_heldout(f.uid, float(data_cfg.heldout_fraction)) else 'train')
        utterances[split].append(Utterance(f.uid, f.path, f.speaker, split, frames, f.mel_path))

  read = len(files) - len(unreadable)
  moved = apply_min_heldout(utterances, data_cfg) if read else 0
  if read == 0:
    raise DataSourceError(
        f'None of the {len(files)} audio files of the {data_cfg.source} corpus in {folder} could '
        f'be read (e.g. {next(iter(unreadable.values()))}); expected readable '
        'wav/flac/ogg audio files: check config.data.dir and config.data.source')
  if not utterances['train']:
    raise DataSourceError(
        f'The {data_cfg.source} corpus in {folder} leaves no utterance for training '
        f'({read} files read, {len(too_short)} too short, heldout_fraction '
        f'{data_cfg.heldout_fraction}, unseen speakers {list(data_cfg.unseen_speakers)}); '
        'lower config.data.heldout_fraction or list fewer config.data.unseen_speakers')
  sample_rate = int(audio_cfg.sample_rate)
  summary = {
      'source': str(data_cfg.source),
      'folder': folder,
      'hop_length': hop,
      'files_listed': len(listed),
      'files_selected': len(files),
      'files_read': read,
      'unreadable': unreadable,
      'too_short': too_short,
      'left_out': left_out,
      'heldout_topped_up': moved,
      'utterances': {k: len(v) for k, v in utterances.items()},
      'seconds': {k: sum(u.frames for u in v) * hop / sample_rate for k, v in utterances.items()},
  }
  return BuildPlan(folder, utterances, summary, listing)


# ---------------------------------------------------------------------------------------- builders


@dataclasses.dataclass(eq=False)
class SpeechBuilderConfig(tfds.core.BuilderConfig):
  """A builder config whose name encodes `values` (from `stored_data_values`)."""
  values: Dict[str, Any] = dataclasses.field(default_factory=dict)


class _SpeechBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """The builder of every corpus; one subclass per corpus sets its name (see `_builder_class`)."""

  VERSION = tfds.core.Version(_FORMAT_VERSION)
  RELEASE_NOTES = {'1.0.0': 'audio, log-mel, speaker and id per utterance, in id order.'}

  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup probes the `importlib_resources` backport, which is not installed.
    return epath.Path(__file__)

  def __init__(self, *, data_cfg, audio_cfg, plan: Optional[BuildPlan] = None, **kwargs):
    """Opens (or gets ready to build) the dataset of `data_cfg` and `audio_cfg`.

    Args:
      data_cfg: the `data` config section.
      audio_cfg: the `audio` config section.
      plan: a `make_plan` result to build from; made on demand when None.
      **kwargs: passed to `tfds.core.GeneratorBasedBuilder` (data_dir, file_format).
    """
    self._data_cfg = data_cfg
    self._audio_cfg = audio_cfg
    self._plan = plan
    values = stored_data_values(data_cfg, audio_cfg)
    config = SpeechBuilderConfig(name=config_name(values), version=_FORMAT_VERSION,
                                 description=json.dumps(values, sort_keys=True), values=values)
    super().__init__(config=config, **kwargs)

  def _create_builder_config(self, builder_config, version):
    # Every config here is made from the run's config, never from a registered list; TFDS would
    # log a warning with the whole config on each open for such "custom" configs.
    if isinstance(builder_config, SpeechBuilderConfig):
      return builder_config
    return super()._create_builder_config(builder_config, version)

  def is_built(self) -> bool:
    """Whether the dataset is fully written (TFDS renames it into place only when complete)."""
    return os.path.isfile(os.path.join(self.data_dir, 'dataset_info.json'))

  @property
  def plan(self) -> BuildPlan:
    """The build plan (reads every source file the first time)."""
    if self._plan is None:
      self._plan = make_plan(self._data_cfg, self._audio_cfg)
    return self._plan

  def _info(self) -> tfds.core.DatasetInfo:
    n_mels = int(self._audio_cfg.n_mels)
    raw = tfds.features.Encoding.BYTES  # raw float32 bytes: fastest to write and to read back.
    return tfds.core.DatasetInfo(
        builder=self,
        description=(__doc__ or '').split('\n', 1)[0],
        features=tfds.features.FeaturesDict({
            'id': tfds.features.Text(),
            'speaker': tfds.features.Text(),
            'audio': tfds.features.Tensor(shape=(None,), dtype=np.float32, encoding=raw),
            'mel': tfds.features.Tensor(shape=(None, n_mels), dtype=np.float32, encoding=raw),
        }),
        metadata=tfds.core.MetadataDict(),
        # Id order makes record i predictable (metadata frames, fixed held-out examples).
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the source is a local folder.
    plan = self.plan
    self.info.metadata['summary'] = plan.summary
    self.info.metadata['source_files'] = plan.source_files
    self.info.metadata['frames'] = {k: [u.frames for u in v] for k, v in plan.utterances.items()}
    # TFDS cannot write an empty split; readers treat an absent split as empty.
    return {k: self._generate_examples(v) for k, v in plan.utterances.items() if v}

  def _generate_examples(self, utterances: Sequence[Utterance]) -> Iterator[Tuple[str, dict]]:
    cfg, audio_cfg = self._data_cfg, self._audio_cfg
    hop = int(audio_cfg.hop_length)
    mel_fn = make_mel_fn(audio_cfg)
    chunk_samples = int(cfg.build_chunk_samples)
    with concurrent.futures.ThreadPoolExecutor(max(1, int(cfg.build_threads))) as pool:
      start = 0
      while start < len(utterances):
        # Loading a chunk of files at once fills the mel batches with many windows.
        stop, total = start, 0
        while stop < len(utterances) and (stop == start or total < chunk_samples):
          total += utterances[stop].frames * hop
          stop += 1
        chunk = utterances[start:stop]
        reads = list(pool.map(lambda u: _read(u, cfg, audio_cfg), chunk))
        waves = [w for w, _ in reads]
        for u, w in zip(chunk, waves):
          if w.shape[0] != u.frames * hop:
            raise DataSourceError(f'{u.path} changed while the dataset was being built '
                                  f'({u.frames * hop} samples, now {w.shape[0]}); build again')
        # Stored mels (paired corpora) are kept; the others are computed from their audio.
        computed = iter(batched_log_mels([w for w, m in reads if m is None], audio_cfg, mel_fn,
                                         int(cfg.mel_batch_samples), int(cfg.mel_window_frames)))
        mels = [m if m is not None else next(computed) for _, m in reads]
        for u, w, m in zip(chunk, waves, mels):
          yield u.uid, {'id': u.uid, 'speaker': u.speaker, 'audio': w, 'mel': m}
        start = stop


@functools.cache
def _builder_class(builder_name, description):
  """The TFDS builder class named `builder_name` (the name of its data folder), made once."""
  class_name = ''.join(part.title() for part in builder_name.split('_'))
  return types.new_class(class_name, (_SpeechBuilder,), {'skip_registration': True},
                         lambda ns: ns.update(name=builder_name, __doc__=description,
                                              __module__=__name__))


def make_builder(data_cfg, audio_cfg) -> _SpeechBuilder:
  """The builder for `data_cfg.source`, rooted at `data_cfg.tfds_dir`; builds nothing.

  Args:
    data_cfg: the `data` config section.
    audio_cfg: the `audio` config section.
  Returns:
    a builder whose `is_built()` says whether the data are already there.
  Raises:
    DataSourceError: the source is unknown.
  """
  corpus = registry.get_corpus(str(data_cfg.source))
  builder_class = _builder_class(corpus.builder_name, corpus.description)
  return builder_class(data_cfg=data_cfg, audio_cfg=audio_cfg,
                       data_dir=os.path.expanduser(str(data_cfg.tfds_dir)),
                       file_format='array_record')


def stale_reason(builder, data_cfg) -> Optional[str]:
  """Why a built dataset no longer matches its source folder, or None when it does.

  Compares the file listing recorded at build time with the folder now. A build that recorded no
  listing (made before listings were recorded) and a source folder that cannot be listed any more
  are trusted, with a log line.
  """
  recorded = builder.info.metadata.get('source_files', None)
  folder = os.path.expanduser(str(data_cfg.dir))
  if recorded is None:
    logging.info('%s records no source listing (built by an older version), so changes to %s '
                 'cannot be detected; delete it to rebuild', builder.data_dir, folder)
    return None
  try:
    files, _ = list_source_files(data_cfg)
  except DataSourceError as e:
    logging.warning('%s; using the dataset prepared from it earlier, in %s', e, builder.data_dir)
    return None
  return listing_changes(recorded, source_listing(folder, files))


def prepare(data_cfg, audio_cfg) -> _SpeechBuilder:
  """Builds the dataset if it is not there yet or its source changed; prints the summary then.

  Args:
    data_cfg: the `data` config section.
    audio_cfg: the `audio` config section.
  Returns:
    a prepared builder (`builder.as_data_source()` opens its splits).
  Raises:
    DataSourceError: the source folder is missing or empty, or none of its files can be read.
  """
  builder = make_builder(data_cfg, audio_cfg)
  if builder.is_built():
    reason = stale_reason(builder, data_cfg)
    if reason is None:
      return builder
    text = (f'{os.path.expanduser(str(data_cfg.dir))} changed since its dataset was built '
            f'({reason}): deleting the stale {builder.data_dir} and building it again')
    print(text, flush=True)  # once: a log record of it too showed it twice on the console
    shutil.rmtree(builder.data_dir)
    builder = make_builder(data_cfg, audio_cfg)
  # Listing and reading first raises folder errors before TFDS creates any directory.
  plan = builder.plan
  logging.info('Building %s into %s', builder.name, builder.data_dir)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  text = plan.summary_text()
  logging.info('%s', text)
  print(text, flush=True)
  # A fresh builder reads the info (splits, metadata) back from what was written.
  return make_builder(data_cfg, audio_cfg)
