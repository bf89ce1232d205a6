"""The typed settings of the data package: `config.data` and what it reads of `config.audio`.

Every function of `wavegrad_jax.data` takes these (or explicit values), never a ConfigDict: each
class reads its config section once, in its own `from_config` classmethod, into fields of the same
names (the layout rule of issue 16). options.py re-exports them with the `*_from_config` adapters
that callers holding a config use.
"""
import dataclasses
from typing import Optional, Tuple

from wavegrad_jax.audio import conventions as mel_conventions

# The `data_config()` defaults (experiments/configs/common.py), for fields a config recorded before
# they existed lacks. min_heldout_utterances is not here: its absence is recorded (None).
_DATA_DEFAULTS = dict(
    source='fillets', dir='/usr/share/games/fillets-ng/sound', tfds_dir='~/tensorflow_datasets',
    segment_frames=24, heldout_fraction=0.02, shuffle_seed=0, max_files=0, unseen_speakers=(),
    speaker_level=1, extensions=('wav', 'flac', 'ogg'), build_threads=2,
    build_chunk_samples=2**24, mel_batch_samples=2**19, mel_window_frames=64,
    prefetch_batches=4, read_threads=4, paired_mel_layout='frames_first',
    paired_tolerance_frames=1.0)


@dataclasses.dataclass(frozen=True)
class DataOptions:
  """The `data` config section (experiments/configs/common.py `data_config`), typed.

  Attributes:
    source: the corpus name (`registry.CORPORA`): 'fillets', 'ljspeech', 'folder', 'paired'.
    dir: the source's folder, as written ('~' not expanded).
    tfds_dir: where prepared datasets go, as written.
    segment_frames: mel frames per training crop (x hop_length = samples).
    heldout_fraction: share (0..1) of the training speakers' files held out, by id hash.
    min_heldout_utterances: utterances the held-out split is topped up to; None when the config
      predates the field (no minimum, and the dataset's name hash leaves it out).
    shuffle_seed: seed of the epoch permutations and crop offsets.
    max_files: >0: at most this many files per speaker pool (0: all).
    unseen_speakers: speaker ids kept out of training.
    speaker_level: folder/paired: the speaker is the directory this many levels above a file.
    extensions: folder/paired: audio file endings searched for (no dot).
    build_threads: threads decoding files during a build.
    build_chunk_samples: samples loaded at once during a build.
    mel_batch_samples: samples per jitted mel call during a build.
    mel_window_frames: frames per mel window during a build.
    prefetch_batches: training batches read ahead.
    read_threads: threads reading one training batch's records.
    paired_mel_layout: paired: 'frames_first' ([frames, n_mels]) or 'mels_first'.
    paired_tolerance_frames: paired: allowed |frames * hop - samples|, in hops.
  """
  source: str = _DATA_DEFAULTS['source']
  dir: str = _DATA_DEFAULTS['dir']
  tfds_dir: str = _DATA_DEFAULTS['tfds_dir']
  segment_frames: int = _DATA_DEFAULTS['segment_frames']
  heldout_fraction: float = _DATA_DEFAULTS['heldout_fraction']
  min_heldout_utterances: Optional[int] = 2
  shuffle_seed: int = _DATA_DEFAULTS['shuffle_seed']
  max_files: int = _DATA_DEFAULTS['max_files']
  unseen_speakers: Tuple[str, ...] = ()
  speaker_level: int = _DATA_DEFAULTS['speaker_level']
  extensions: Tuple[str, ...] = _DATA_DEFAULTS['extensions']
  build_threads: int = _DATA_DEFAULTS['build_threads']
  build_chunk_samples: int = _DATA_DEFAULTS['build_chunk_samples']
  mel_batch_samples: int = _DATA_DEFAULTS['mel_batch_samples']
  mel_window_frames: int = _DATA_DEFAULTS['mel_window_frames']
  prefetch_batches: int = _DATA_DEFAULTS['prefetch_batches']
  read_threads: int = _DATA_DEFAULTS['read_threads']
  paired_mel_layout: str = _DATA_DEFAULTS['paired_mel_layout']
  paired_tolerance_frames: float = _DATA_DEFAULTS['paired_tolerance_frames']

  @classmethod
  def from_config(cls, data_cfg) -> 'DataOptions':
    """Reads a `data` section (a DataOptions is returned as is); absent fields take defaults."""
    if isinstance(data_cfg, cls):
      return data_cfg
    get = lambda name: data_cfg.get(name, _DATA_DEFAULTS[name])
    kinds = {f.name: f.type for f in dataclasses.fields(cls) if f.name in _DATA_DEFAULTS}
    values = {name: tuple(str(v) for v in get(name)) if kind == Tuple[str, ...] else kind(get(name))
              for name, kind in kinds.items()}
    minimum = data_cfg.get('min_heldout_utterances', None)
    return cls(min_heldout_utterances=None if minimum is None else int(minimum), **values)


@dataclasses.dataclass(frozen=True)
class AudioOptions:
  """What the data package reads of the `audio` section: the frontend and the loader's level.

  Attributes:
    frontend: `audio.conventions.Frontend` of the section (sample_rate Hz, hop_length samples,
      n_mels, ... and the mel convention).
    peak_normalize: loaded audio is scaled to this peak amplitude (0: left as read).
    fmax: `audio.fmax` as written in the config, Hz, or None (Nyquist). The mels use
      `frontend.fmax`; only the prepared dataset's name records this one, as it always has.
  """
  frontend: mel_conventions.Frontend
  peak_normalize: float = 0.9
  fmax: Optional[float] = None

  @classmethod
  def from_config(cls, audio_cfg) -> 'AudioOptions':
    """Reads an `audio` section (an AudioOptions is returned as is)."""
    if isinstance(audio_cfg, cls):
      return audio_cfg
    fmax = audio_cfg.fmax
    return cls(mel_conventions.Frontend.from_config(audio_cfg),
               float(audio_cfg.peak_normalize), None if fmax is None else float(fmax))

  @property
  def hop_length(self) -> int:
    """Samples per mel frame."""
    return self.frontend.hop_length

  @property
  def sample_rate(self) -> int:
    """Hz."""
    return self.frontend.sample_rate

  @property
  def n_mels(self) -> int:
    """Mel bands."""
    return self.frontend.n_mels


@dataclasses.dataclass(frozen=True)
class DegradeOptions:
  """A `degrade` section (experiments/configs/degrade.py): how real mels are made to look predicted.

  Attributes:
    time_sigma_frames: std of the smoothing along time, in frames (0: none).
    band_sigma: std of the smoothing across mel bands, in bands (0: none).
    noise_std: std of the added noise, in nats of the linear mel (0: none).
    seed: base of each utterance's noise seed.
    clean: True: the real mels are written unchanged.
  """
  time_sigma_frames: float = 0.0
  band_sigma: float = 0.0
  noise_std: float = 0.0
  seed: int = 0
  clean: bool = False

  @classmethod
  def from_config(cls, degrade_cfg) -> 'DegradeOptions':
    """Reads a `degrade` section."""
    return cls(float(degrade_cfg.time_sigma_frames), float(degrade_cfg.band_sigma),
               float(degrade_cfg.noise_std), int(degrade_cfg.get('seed', 0)),
               bool(degrade_cfg.get('clean', False)))
