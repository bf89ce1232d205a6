"""Teacher-forced pairs: a folder of stored mels, each beside the audio it describes.

A TTS model's mels predicted with the ground-truth durations (teacher forcing) line up frame for
frame with the recorded audio, so a vocoder fine-tuned on (predicted mel, real audio) pairs learns
to undo the acoustic model's errors. `config.data.source='paired'` reads `config.data.dir`,
searched recursively, for `<id>.npy` mels with `<id>.wav` / `<id>.flac` (any of
`config.data.extensions`) beside them:

- The mel is float [frames, n_mels] (`config.data.paired_mel_layout='frames_first'`) or
  [n_mels, frames] ('mels_first'), in the convention the `audio` section declares (e.g.
  `audio_config_hifigan()` for mels made for HiFi-GAN); values a little beyond the convention's
  floor or clip (a model's prediction is not clamped) are clipped into its range.
- The audio is read as the audio section says (resampled to sample_rate, scaled to
  peak_normalize), so it must be at the level the mels were made from: the conventions' presets
  carry their recipes' peak_normalize.
- Alignment: frames x hop_length must lie within `config.data.paired_tolerance_frames` hops of the
  audio length T (default 1 hop: that covers the framings in use, T // hop frames as ours and
  HiFi-GAN's, 1 + T // hop as librosa / torch center=True in ESPnet, lmnt and Tacotron 2, and
  ceil(T / hop)). The audio is then cut, or zero-padded at its end, to exactly frames x hop samples,
  so that frame k goes with samples [k * hop, (k + 1) * hop) as in every other corpus.

A pair whose mel is unreadable, of the wrong shape, NaN or infinite, far outside the convention's
range, or whose audio is unreadable or of another length, is logged by path with the reason, left
out and counted in the build summary (`splits.make_plan`); the other pairs still build. A mel
without audio beside it (or audio without a mel) is left out by the layout rules and listed in the
summary too. Speakers and the unseen split follow `config.data.speaker_level` and
`unseen_speakers`, as for a plain folder.
"""
import pathlib
import threading
from typing import Dict, List, Tuple

from absl import logging
import numpy as np

from wavegrad_jax.audio import frontend as audio_lib
from wavegrad_jax.audio import conventions as mel_conventions
from wavegrad_jax.data.corpus import Corpus, DataSourceError, SourceFile
from wavegrad_jax.data.settings import AudioOptions, DataOptions

LAYOUTS = ('frames_first', 'mels_first')
# Values up to this share of the convention's range beyond its floor or clip are a model's
# unclamped prediction (clipped); farther out, the mels follow another convention.
_RANGE_SLACK = 0.1


class BadPairError(audio_lib.AudioLoadError):
  """A pair the build skips and counts: the message names the file and what is wrong."""


def list_paired_files(folder: str, data: DataOptions) -> Tuple[List[SourceFile], Dict[str, str]]:
  """Lists the `<id>.npy` mels under `folder` that have `<id>.<extension>` audio beside them.

  Args:
    folder: the pairs folder (searched recursively).
    data: the data options (extensions, speaker_level, unseen_speakers, paired_mel_layout).
  Returns:
    (files sorted by id, with `path` the audio and `mel_path` the mel; {path: reason} of mels
    without audio, audio without a mel, and ids with two audio files). The id is the path of the
    pair relative to `folder`, without extension.
  Raises:
    DataSourceError: the folder is missing or holds no .npy file.
  """
  root = pathlib.Path(folder)
  extensions = sorted({'.' + e.lower().lstrip('.') for e in data.extensions})
  hint = (f'pass --config.data.dir=<a folder of <id>.npy mels, each beside <id>'
          f'{"/".join(extensions)} audio> (searched recursively)')
  if not root.is_dir():
    raise DataSourceError(f'Paired folder {folder} does not exist; {hint}')
  mels, audio = {}, {}
  for path in sorted(root.rglob('*')):
    if not path.is_file():
      continue
    suffix = path.suffix.lower()
    if suffix == '.npy':
      mels[path.with_suffix('')] = path
    elif suffix in extensions:
      audio.setdefault(path.with_suffix(''), []).append(path)
  if not mels:
    raise DataSourceError(f'Paired folder {folder} holds no .npy mels; {hint}')
  layout, level = str(data.paired_mel_layout), int(data.speaker_level)
  if layout not in LAYOUTS:
    raise DataSourceError(f'config.data.paired_mel_layout must be one of {LAYOUTS}, got '
                          f'{layout!r}')
  unseen = set(data.unseen_speakers)
  files, left_out = [], {}
  for key, mel in mels.items():
    partners = audio.get(key, [])
    if not partners:
      left_out[str(mel)] = f'no audio beside it ({key.name}{"/".join(extensions)})'
      continue
    if len(partners) > 1:
      left_out[str(mel)] = f'two audio files for one mel: {[p.name for p in partners]}'
      continue
    rel = key.relative_to(root)
    dirs = rel.parts[:-1]
    speaker = dirs[-level] if 0 < level <= len(dirs) else root.name
    files.append(SourceFile(rel.as_posix(), str(partners[0]), speaker, speaker in unseen,
                            mel_path=str(mel)))
  for key, paths in audio.items():
    if key not in mels:
      for path in paths:
        left_out[str(path)] = f'no {key.name}.npy mel beside it'
  return sorted(files, key=lambda f: f.uid), left_out


def load_stored_mel(path: str, layout: str, fe: mel_conventions.Frontend) -> np.ndarray:
  """A stored mel as [frames, n_mels] float32, checked against the frontend.

  Args:
    path: .npy file.
    layout: `DataOptions.paired_mel_layout`, 'frames_first' or 'mels_first'.
    fe: the frontend (n_mels and the convention's value range).
  Returns:
    [frames, n_mels] float32, clipped into the convention's range.
  Raises:
    BadPairError: unreadable, wrong shape or dtype, non-finite, or far outside the range.
  """
  n_mels = int(fe.n_mels)
  fail = lambda problem: BadPairError(f'{path}: {problem}')
  try:
    mel = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise fail(f'not a readable .npy array ({e})') from e
  if not isinstance(mel, np.ndarray) or mel.ndim != 2:
    raise fail(f'expected a 2-D mel, got shape {getattr(mel, "shape", None)}')
  if not np.issubdtype(mel.dtype, np.floating):
    raise fail(f'expected floating-point values, got dtype {mel.dtype}')
  layout = str(layout)
  axis = 1 if layout == 'frames_first' else 0
  if mel.shape[axis] != n_mels:
    other = 'mels_first' if layout == 'frames_first' else 'frames_first'
    hint = (f"; it looks like the other layout: set config.data.paired_mel_layout='{other}'"
            if mel.shape[1 - axis] == n_mels else '')
    raise fail(f'shape {mel.shape} has no axis of n_mels={n_mels} where '
               f"paired_mel_layout='{layout}' puts it{hint}")
  if axis == 0:
    mel = mel.T
  if mel.shape[0] < 1:
    raise fail('has 0 frames')
  bad = int(np.count_nonzero(~np.isfinite(mel)))
  if bad:
    raise fail(f'{bad} of {mel.size} values are NaN or infinite')
  low, high = mel_conventions.value_bounds(fe)
  slack = _RANGE_SLACK * (high - low)
  lo, hi = float(mel.min()), float(mel.max())
  if lo < low - slack or hi > high + slack:
    raise fail(f'values from {lo:.3g} to {hi:.3g} lie far outside [{low:.3g}, {high:.3g}], the '
               f'range of {mel_conventions.describe(fe)}: declare the convention the mels were '
               f'made with in the audio section (e.g. {mel_conventions.preset_call(fe)} is what '
               'is declared now)')
  return np.ascontiguousarray(np.clip(mel, low, high), dtype=np.float32)


_warned = set()
_warned_lock = threading.Lock()


def _warn_once_if_other_convention(mel, fe, path, folder):
  with _warned_lock:
    if folder in _warned:
      return
    _warned.add(folder)
  warning = mel_conventions.resemblance_warning(mel, fe, source=path)
  if warning:
    logging.warning('%s (checked on the first pair of %s only)', warning, folder)


def read_pair(item, data: DataOptions, audio: AudioOptions) -> Tuple[np.ndarray, np.ndarray]:
  """The aligned audio and stored mel of one pair (see the module docstring).

  Args:
    item: a `SourceFile` (or anything with its path = the audio and mel_path = the mel).
    data: the data options (paired_mel_layout, paired_tolerance_frames).
    audio: the audio options (frontend, peak_normalize).
  Returns:
    (audio [frames * hop] float32, mel [frames, n_mels] float32).
  Raises:
    BadPairError / audio.AudioLoadError: the message names the file and the problem.
  """
  fe = audio.frontend
  mel = load_stored_mel(item.mel_path, data.paired_mel_layout, fe)
  _warn_once_if_other_convention(mel, fe, item.mel_path, str(pathlib.Path(item.mel_path).parent))
  wave = audio_lib.load_audio(item.path, int(fe.sample_rate), float(audio.peak_normalize))
  hop, rate = int(fe.hop_length), int(fe.sample_rate)
  frames, samples = mel.shape[0], wave.shape[0]
  tolerance = float(data.paired_tolerance_frames)
  if abs(frames * hop - samples) > tolerance * hop:
    raise BadPairError(
        f'{item.mel_path}: {frames} frames x hop {hop} = {frames * hop} samples, but '
        f'{item.path} has {samples} samples at {rate} Hz ({samples / hop:.1f} hops), more than '
        f'config.data.paired_tolerance_frames={tolerance:g} hops apart: the mel was made with '
        'another hop or sample rate, or from other audio')
  out = np.zeros(frames * hop, np.float32)
  out[:min(samples, frames * hop)] = wave[:frames * hop]
  return out, mel


def _stored_values(data):
  return {'unseen_speakers': sorted(str(s) for s in data.unseen_speakers),
          'speaker_level': int(data.speaker_level),
          'extensions': sorted(e.lower().lstrip('.') for e in data.extensions),
          'paired_mel_layout': str(data.paired_mel_layout),
          'paired_tolerance_frames': float(data.paired_tolerance_frames)}


CORPUS = Corpus(
    name='paired', builder_name='paired_mels',
    description='A folder of stored <id>.npy mels beside their <id>.wav/.flac audio.',
    list_files=list_paired_files, stored_values=_stored_values, read=read_pair)
