"""Mel conventions: the ways vocoder projects turn |STFT| into conditioning mels, and conversion.

A vocoder only understands mels made its own way, and TTS models emit the mels of the vocoder they
were paired with. The `audio` config section names its convention (`audio.convention`) and spells
out every choice as a field, so that a frontend is fully described by `Frontend.from_config`:

  convention        framing     |STFT| (X)                 filterbank      values
  wavegrad          center      |X|                        slaney, slaney  ln(max(mel, 1e-5))
  hifigan           hop_center  sqrt(|X|^2 + 1e-9)         slaney, slaney  ln(max(mel, 1e-5))
  parallel_wavegan  center      |X|                        slaney, slaney  log10(max(mel, 1e-10)),
                                                                           then optionally
                                                                           (v - mean) / scale
  espnet2           center      sqrt(max(|X|^2, 1e-10))    slaney, slaney  as parallel_wavegan
  lmnt              center      |X| / sqrt(sum(window^2))  htk, no norm    clip((20 log10(max(mel,
                                                                           1e-5)) - 20 + 100)
                                                                           / 100, 0, 1)
  custom            any combination of the fields below.

  parallel_wavegan is kan-bayashi/ParallelWaveGAN's preprocess.py `logmelfilterbank`: no floor
  on the STFT, only on the mel. `espnet` is an alias of it (the name it had here first, which
  configs, checkpoints and commands keep using; `canonical` resolves it). espnet2 is ESPnet2's TTS
  feature extractor (espnet2/tts/feats_extract/log_mel_fbank.py `LogMelFbank`, log_base=10 by
  default there; espnet2/layers/stft.py is torch.stft with center=True): it floors the power
  spectrum before the square root, so a digitally silent frame is sqrt(1e-10) = 1e-5 in every bin
  and its mel is 1e-5 times the band's filter sum (log10 of it -6.35 to -6.30 for the recipe's 80
  Slaney bands over 80-7,600 Hz at 22,050 Hz, n_fft 1024), not the mel floor's -10 of
  parallel_wavegan; audio well above the floor is the same under both. (ESPnet2's ASR
  frontend, espnet2/asr/frontend/default.py, is another recipe again: power mel and a natural log,
  LogMel's log_base=None; no vocoder here uses it.)

Fields (beyond the STFT sizes, band edges and `power`):
  framing: 'center' pads n_fft // 2 samples at each end, so frame i is centred on sample i * hop
    (librosa / torch center=True); 'hop_center' pads (n_fft - hop) // 2, so frame i is centred on
    the middle of hop i (HiFi-GAN's meldataset.py: reflect pad, then torch.stft(center=False)).
    Either way a [T] waveform gives the first T // hop frames. pad_mode is the padding's np.pad mode.
  stft_norm: 'none', or 'window' to divide |X| by sqrt(sum(window^2)) (torchaudio normalized=True).
  magnitude_eps: |X| = sqrt(re^2 + im^2 + magnitude_eps) (HiFi-GAN adds 1e-9).
  power_floor: |X| = sqrt(max(re^2 + im^2 + magnitude_eps, power_floor)) (ESPnet2: 1e-10); 0 off.
  mel_scale / mel_norm: librosa.filters.mel(htk=mel_scale == 'htk', norm='slaney' or None).
  log_scale: 'ln', 'log10', or 'db' = (20 / power) log10(.) - db_ref; all of max(mel, log_floor).
  normalize: 'none'; 'meanvar', (v - mean) / scale per band with the statistics in stats_file
    (ParallelWaveGAN's .npy [2, n_mels] of mean and scale, or ESPnet's GlobalMVN .npz of count,
    sum, sum_square); or 'range', range_out[0] + (range_out[1] - range_out[0]) *
    clip((v - range_in[0]) / (range_in[1] - range_in[0]), 0, 1).

The maths is here and pure: `compress` (linear mel -> the convention's values) and `decompress`
(its inverse) work on numpy and JAX arrays; `adapt` converts a mel between two frontends where the
difference is invertible and refuses, naming the fields, where it is not; `resemblance_warning`
says which convention a mel's values look like.
"""
import dataclasses
import functools
import hashlib
import math
import os

import jax.numpy as jnp
import librosa
import numpy as np
import scipy.signal

FRAMINGS = ('center', 'hop_center')
STFT_NORMS = ('none', 'window')
MEL_SCALES = ('slaney', 'htk')
MEL_NORMS = ('slaney', 'none')
LOG_SCALES = ('ln', 'log10', 'db')
NORMALIZATIONS = ('none', 'meanvar', 'range')

# The choices that define each named convention. Any value of the fields not listed (STFT sizes,
# band edges, log_floor, magnitude_eps, db_ref, ranges) is allowed under the name; the presets in
# experiments/configs/common.py set the recipes' own values of those as well.
CONVENTIONS = {
    'wavegrad': dict(framing='center', stft_norm='none', mel_scale='slaney', mel_norm='slaney',
                     log_scale='ln', normalize=('none',)),
    'hifigan': dict(framing='hop_center', stft_norm='none', mel_scale='slaney', mel_norm='slaney',
                    log_scale='ln', normalize=('none',)),
    'parallel_wavegan': dict(framing='center', stft_norm='none', mel_scale='slaney',
                             mel_norm='slaney', log_scale='log10', normalize=('none', 'meanvar'),
                             power_floor=0.0),
    # The power floor is what tells ESPnet2's recipe from ParallelWaveGAN's.
    'espnet2': dict(framing='center', stft_norm='none', mel_scale='slaney', mel_norm='slaney',
                    log_scale='log10', normalize=('none', 'meanvar'), power_floor=1e-10),
    'lmnt': dict(framing='center', stft_norm='window', mel_scale='htk', mel_norm='none',
                 log_scale='db', normalize=('range',)),
}
# The recipes' values of the numeric fields; `preset_call` names a preset only where these match.
RECIPE_VALUES = {
    'wavegrad': dict(magnitude_eps=0.0, log_floor=1e-5),
    'hifigan': dict(magnitude_eps=1e-9, log_floor=1e-5),
    'parallel_wavegan': dict(magnitude_eps=0.0, log_floor=1e-10),
    'espnet2': dict(magnitude_eps=0.0, log_floor=1e-10),
    'lmnt': dict(magnitude_eps=0.0, log_floor=1e-5, db_ref=20.0, range_in=(-100.0, 0.0),
                 range_out=(0.0, 1.0)),
}
CUSTOM = 'custom'
# Other names of a convention, kept so that configs, checkpoints and commands that use them keep
# working: 'espnet' was this module's name for ParallelWaveGAN's recipe before espnet2 was added.
ALIASES = {'espnet': 'parallel_wavegan'}
# An experiment config built on each convention's preset (the one-flag configs).
EXAMPLE_CONFIGS = {'hifigan': 'tiny_hifigan', 'parallel_wavegan': 'tiny_espnet',
                   'espnet2': 'tiny_espnet2', 'lmnt': 'tiny_lmnt'}


def canonical(name):
  """The convention a name stands for: an alias's target ('espnet' -> 'parallel_wavegan'), else
  the name itself."""
  return ALIASES.get(name, name)

# Fields whose difference changes which |STFT| bins or bands a mel value sums: no conversion of
# the mel undoes them.
_FIXED_FIELDS = ('sample_rate', 'hop_length', 'n_fft', 'win_length', 'window', 'n_mels', 'fmin',
                 'fmax', 'power', 'framing', 'pad_mode', 'mel_scale')


class MelConventionError(ValueError):
  """A mel frontend setting is invalid, or a mel cannot be converted; the message says the fix."""


class MelConventionWarning(UserWarning):
  """A mel's values look like another convention than the one declared."""


# ------------------------------------------------------------------------------------- frontend


def _tuple(value):
  return tuple(_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclasses.dataclass(frozen=True)
class Frontend:
  """Every value of an `audio` config section that shapes its mels (hashable; see module doc).

  Attributes:
    sample_rate: Hz.
    n_fft, hop_length, win_length: STFT sizes in samples.
    window: `scipy.signal.get_window` spec (a name or a tuple).
    n_mels: mel bands.
    fmin, fmax: band edges in Hz.
    power: exponent of |X| before the filterbank (1 magnitude, 2 power).
    convention: the name the remaining fields follow, or 'custom'.
    framing, pad_mode, stft_norm, magnitude_eps, power_floor, mel_scale, mel_norm, log_scale,
      log_floor, db_ref, normalize, stats_file, range_in, range_out: see the module docstring.
      convention may be an alias (`ALIASES`); it is kept as given, and `canonical` names it.
  """
  sample_rate: int
  n_fft: int
  hop_length: int
  win_length: int
  window: object
  n_mels: int
  fmin: float
  fmax: float
  power: float
  convention: str = 'wavegrad'
  framing: str = 'center'
  pad_mode: str = 'reflect'
  stft_norm: str = 'none'
  magnitude_eps: float = 0.0
  power_floor: float = 0.0
  mel_scale: str = 'slaney'
  mel_norm: str = 'slaney'
  log_scale: str = 'ln'
  log_floor: float = 1e-5
  db_ref: float = 0.0
  normalize: str = 'none'
  stats_file: str = ''
  range_in: tuple = (-100.0, 0.0)
  range_out: tuple = (0.0, 1.0)

  def __post_init__(self):
    for name in ('window', 'range_in', 'range_out'):
      object.__setattr__(self, name, _tuple(getattr(self, name)))
    _validate(self)

  @classmethod
  def from_config(cls, audio_cfg):
    """Reads an `audio` config section; fields it lacks (a run older than them) take defaults.

    Args:
      audio_cfg: ConfigDict (or any object with the attributes), or a Frontend (returned as is).
    Returns:
      a validated Frontend.
    Raises:
      MelConventionError: a value is invalid or contradicts audio.convention.
    """
    if isinstance(audio_cfg, cls):
      return audio_cfg
    defaults = {f.name: f.default for f in dataclasses.fields(cls)
                if f.default is not dataclasses.MISSING}
    defaults.update(win_length=None, window='hann', fmin=0.0, fmax=None, power=1.0)
    get = lambda name: getattr(audio_cfg, name, defaults[name])
    sample_rate = int(audio_cfg.sample_rate)
    fmax, win_length = get('fmax'), get('win_length')
    return cls(
        sample_rate=sample_rate, n_fft=int(audio_cfg.n_fft),
        hop_length=int(audio_cfg.hop_length),
        win_length=int(win_length if win_length is not None else audio_cfg.n_fft),
        window=get('window'), n_mels=int(audio_cfg.n_mels), fmin=float(get('fmin')),
        fmax=float(fmax) if fmax is not None else sample_rate / 2, power=float(get('power')),
        convention=str(get('convention')), framing=str(get('framing')),
        pad_mode=str(get('pad_mode')), stft_norm=str(get('stft_norm')),
        magnitude_eps=float(get('magnitude_eps')), power_floor=float(get('power_floor')),
        mel_scale=str(get('mel_scale')),
        mel_norm=str(get('mel_norm')), log_scale=str(get('log_scale')),
        log_floor=float(get('log_floor')), db_ref=float(get('db_ref')),
        normalize=str(get('normalize')), stats_file=str(get('stats_file') or ''),
        range_in=tuple(float(v) for v in get('range_in')),
        range_out=tuple(float(v) for v in get('range_out')))


def with_default_fields(audio_dict):
  """An `audio` section as a dict, the frontend fields it lacks (a run older than them) filled in.

  Runs recorded before a field existed made their mels the way its default does, so comparing
  an old run's frontend with a new config must not see a difference there.

  Args:
    audio_dict: a plain dict of an `audio` config section.
  Returns:
    a new dict: `audio_dict` plus each missing `Frontend` field at its default.
  """
  out = dict(audio_dict)
  for f in dataclasses.fields(Frontend):
    if f.default is not dataclasses.MISSING:
      out.setdefault(f.name, f.default)
  return out


def frontend(audio_cfg):
  """`Frontend.from_config`: the validated, hashable frontend of an `audio` section."""
  return Frontend.from_config(audio_cfg)


def _choice(name, value, allowed):
  if value not in allowed:
    raise MelConventionError(f'audio.{name} must be one of {allowed}, got {value!r}')


def _validate(fe):
  _choice('framing', fe.framing, FRAMINGS)
  _choice('stft_norm', fe.stft_norm, STFT_NORMS)
  _choice('mel_scale', fe.mel_scale, MEL_SCALES)
  _choice('mel_norm', fe.mel_norm, MEL_NORMS)
  _choice('log_scale', fe.log_scale, LOG_SCALES)
  _choice('normalize', fe.normalize, NORMALIZATIONS)
  _choice('convention', fe.convention, tuple(CONVENTIONS) + tuple(ALIASES) + (CUSTOM,))
  if not fe.log_floor > 0.0:
    raise MelConventionError(f'audio.log_floor must be > 0 (the log of 0 is -inf), got '
                             f'{fe.log_floor}')
  if not fe.magnitude_eps >= 0.0:
    raise MelConventionError(f'audio.magnitude_eps must be >= 0, got {fe.magnitude_eps}')
  if not fe.power_floor >= 0.0:
    raise MelConventionError(f'audio.power_floor must be >= 0 (0: no floor), got '
                             f'{fe.power_floor}')
  if not fe.power > 0.0:
    raise MelConventionError(f'audio.power must be > 0 (1 magnitude, 2 power), got {fe.power}')
  if fe.normalize == 'meanvar' and not fe.stats_file:
    raise MelConventionError(
        "audio.normalize='meanvar' needs audio.stats_file: a .npy [2, n_mels] of per-band mean "
        'and scale (ParallelWaveGAN compute_statistics.py, or mel_conventions.save_meanvar_stats) '
        "or an ESPnet GlobalMVN .npz; or set audio.normalize='none'")
  if fe.normalize == 'range':
    if len(fe.range_in) != 2 or not fe.range_in[1] > fe.range_in[0]:
      raise MelConventionError(f'audio.range_in must be (low, high) with high > low, got '
                               f'{fe.range_in}')
    if len(fe.range_out) != 2 or fe.range_out[0] == fe.range_out[1]:
      raise MelConventionError(f'audio.range_out must be two different values, got '
                               f'{fe.range_out}')
  name = canonical(fe.convention)
  if name in CONVENTIONS:
    wrong = []
    for field, want in CONVENTIONS[name].items():
      allowed = want if isinstance(want, tuple) else (want,)
      if getattr(fe, field) not in allowed:
        wrong.append(f"{field}={getattr(fe, field)!r} ({fe.convention}: "
                     f"{' or '.join(repr(a) for a in allowed)})")
    if wrong:
      example = (f', e.g. experiments/configs/{EXAMPLE_CONFIGS[name]}.py'
                 if name in EXAMPLE_CONFIGS else '')
      raise MelConventionError(
          f"audio.convention={fe.convention!r} contradicts {', '.join(wrong)}. Take the whole "
          f'audio section from experiments/configs/common.py audio_config_{name}() (or a '
          f"config built on it{example}), or set "
          "audio.convention='custom' for a mix of your own")


# ------------------------------------------------------------------------- STFT scale, filterbank


@functools.lru_cache(maxsize=None)
def _window(window, win_length):
  return scipy.signal.get_window(window, win_length, fftbins=True).astype(np.float64)


def stft_gain(fe):
  """The factor |X| is multiplied by before the filterbank: 1, or 1 / sqrt(sum(window^2))."""
  if fe.stft_norm == 'none':
    return 1.0
  return float(1.0 / np.sqrt(np.sum(np.square(_window(fe.window, fe.win_length)))))


@functools.lru_cache(maxsize=None)
def _filterbank_cached(sample_rate, n_fft, n_mels, fmin, fmax, mel_scale, mel_norm):
  fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                           htk=mel_scale == 'htk', norm='slaney' if mel_norm == 'slaney' else None)
  fb = np.ascontiguousarray(fb.T, dtype=np.float32)
  fb.setflags(write=False)  # shared by every caller through the cache
  return fb


def filterbank(fe):
  """librosa's mel filterbank for the frontend's scale and norm, cached.

  Args:
    fe: a `Frontend` (sample_rate, n_fft, n_mels, fmin, fmax in Hz, mel_scale, mel_norm).
  Returns:
    [n_fft // 2 + 1, n_mels] float32, read-only; right-multiplies a [..., frames, bins] spectrum.
  """
  return _filterbank_cached(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax, fe.mel_scale,
                            fe.mel_norm)


def max_linear_mel(fe):
  """[n_mels] upper bound of each band's linear mel for a waveform within [-1, 1].

  An STFT bin is at most sum(window) in magnitude for |x| <= 1; a band sums its filter weights.
  """
  window_sum = float(np.sum(_window(fe.window, fe.win_length)))
  peak = math.sqrt(max(window_sum ** 2 + fe.magnitude_eps, fe.power_floor)) * stft_gain(fe)
  return peak ** fe.power * np.sum(filterbank(fe).astype(np.float64), axis=0)


# ---------------------------------------------------------------------------- mean-variance stats


def _stats_cache_key(path):
  path = os.path.abspath(os.path.expanduser(path))
  try:
    st = os.stat(path)
  except OSError as e:
    raise MelConventionError(
        f"{path}: cannot read audio.stats_file ({e.strerror or e}); it holds the per-band mean "
        "and scale of audio.normalize='meanvar' (mel_conventions.save_meanvar_stats writes "
        'one)') from e
  return path, st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=16)
def _load_stats_cached(path, mtime_ns, size):
  del mtime_ns, size  # cache key only: a rewritten file is read again
  fail = lambda problem: MelConventionError(f'{path}: {problem}')
  lower = path.lower()
  if lower.endswith(('.h5', '.hdf5')):
    raise fail('HDF5 statistics need h5py, which this project does not use; convert them once: '
               "python -c \"import h5py, numpy as np; f = h5py.File('stats.h5', 'r'); "
               "np.save('stats.npy', np.stack([f['mean'][()], f['scale'][()]]))\"")
  try:
    with open(path, 'rb') as f:
      magic = f.read(6)
  except OSError as e:
    raise fail(f'cannot read the statistics file ({e.strerror or e})') from e
  if not (magic.startswith(b'\x93NUMPY') or magic.startswith(b'PK')):
    # np.load would take it for pickled data and say so, which misleads.
    raise fail('not a .npy / .npz statistics file (no NumPy or zip header: a text file or '
               "another format); give ParallelWaveGAN's stats.npy [2, n_mels] or ESPnet's "
               'GlobalMVN .npz')
  try:
    data = np.load(path, allow_pickle=False)
  except (ValueError, OSError) as e:
    raise fail(f'not a readable .npy / .npz file ({e})') from e
  if isinstance(data, np.lib.npyio.NpzFile):
    with data:
      keys = set(data.files)
      if {'mean', 'scale'} <= keys:
        mean, scale = data['mean'], data['scale']
      elif {'count', 'sum', 'sum_square'} <= keys:  # ESPnet GlobalMVN
        count = float(np.asarray(data['count']).reshape(-1)[0])
        mean = np.asarray(data['sum'], np.float64) / count
        var = np.asarray(data['sum_square'], np.float64) / count - mean * mean
        scale = np.sqrt(np.maximum(var, 1e-20))
      else:
        raise fail(f"an .npz of statistics needs arrays 'mean' and 'scale', or ESPnet's 'count', "
                   f"'sum' and 'sum_square'; it has {sorted(keys)}")
  else:
    if data.ndim != 2 or data.shape[0] != 2:
      raise fail(f'a .npy of statistics must be [2, n_mels] (row 0 the mean, row 1 the scale, as '
                 f'ParallelWaveGAN saves them), got shape {data.shape}')
    mean, scale = data[0], data[1]
  mean = np.asarray(mean, np.float64).reshape(-1)
  scale = np.asarray(scale, np.float64).reshape(-1)
  if mean.shape != scale.shape:
    raise fail(f'mean {mean.shape} and scale {scale.shape} differ in shape')
  if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
    raise fail('statistics must be finite with every scale > 0')
  mean.setflags(write=False)
  scale.setflags(write=False)
  return mean, scale


def load_meanvar_stats(path, n_mels=None):
  """Per-band mean and scale of a statistics file (see the module docstring for the formats).

  Args:
    path: .npy [2, n_mels] or .npz.
    n_mels: if given, the band count the statistics must have.
  Returns:
    (mean [n_mels], scale [n_mels]) float64, read-only, in the convention's log units.
  Raises:
    MelConventionError: missing or unreadable file, bad shapes or values.
  """
  mean, scale = _load_stats_cached(*_stats_cache_key(path))
  if n_mels is not None and mean.shape[0] != n_mels:
    raise MelConventionError(f'{path}: statistics for {mean.shape[0]} mel bands, but the frontend '
                             f'has n_mels={n_mels}')
  return mean, scale


def stats_digest(path):
  """sha256 of a statistics file's bytes (part of a prepared dataset's key)."""
  with open(_stats_cache_key(path)[0], 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def meanvar_stats(mels):
  """Per-band mean and scale over every frame, as ParallelWaveGAN's StandardScaler computes them.

  Args:
    mels: iterable of [frames, n_mels] unnormalised mels (the convention's log values).
  Returns:
    [2, n_mels] float64: row 0 the mean, row 1 the population standard deviation (1 where 0).
  """
  count, total, squares = 0, 0.0, 0.0
  for mel in mels:
    mel = np.asarray(mel, np.float64)
    count += mel.shape[0]
    total = total + mel.sum(axis=0)
    squares = squares + np.square(mel).sum(axis=0)
  if not count:
    raise ValueError('no frames to compute statistics from')
  mean = total / count
  std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
  return np.stack([mean, np.where(std > 0, std, 1.0)])


def save_meanvar_stats(path, stats):
  """Writes [2, n_mels] statistics as ParallelWaveGAN's stats.npy (row 0 mean, row 1 scale)."""
  stats = np.asarray(stats, np.float64)
  if stats.ndim != 2 or stats.shape[0] != 2:
    raise ValueError(f'statistics must be [2, n_mels], got {stats.shape}')
  np.save(path, stats)


# ---------------------------------------------------------------------------- values <-> linear


def _stats_for(fe, xp):
  """The frontend's mean and scale: float32 constants for JAX, float64 for numpy."""
  mean, scale = load_meanvar_stats(fe.stats_file, fe.n_mels)
  if xp is np:
    return mean, scale
  return mean.astype(np.float32), scale.astype(np.float32)


def compress(mel, fe, xp=jnp):
  """A linear mel to the convention's values: floor, log / dB, normalisation.

  Args:
    mel: [..., frames, n_mels] linear mel (|X| ** power through the filterbank), >= 0.
    fe: `Frontend`.
    xp: jax.numpy (jittable) or numpy.
  Returns:
    [..., frames, n_mels] in the convention's units, the dtype of `mel`.
  """
  x = xp.maximum(mel, fe.log_floor)
  if fe.log_scale == 'ln':
    y = xp.log(x)
  elif fe.log_scale == 'log10':
    y = xp.log10(x)
  else:
    y = (20.0 / fe.power) * xp.log10(x) - fe.db_ref
  if fe.normalize == 'meanvar':
    mean, scale = _stats_for(fe, xp)
    y = (y - mean) / scale
  elif fe.normalize == 'range':
    (a, b), (lo, hi) = fe.range_in, fe.range_out
    y = lo + (hi - lo) * xp.clip((y - a) / (b - a), 0.0, 1.0)
  return y


def decompress(values, fe, xp=jnp):
  """Inverse of `compress`: the convention's values back to a linear mel.

  Floored and clipped values come back as the floor / clip bound, not as what was there.

  Args:
    values: [..., frames, n_mels] in the convention's units.
    fe: `Frontend`.
    xp: jax.numpy or numpy.
  Returns:
    [..., frames, n_mels] linear mel.
  """
  y = values
  if fe.normalize == 'meanvar':
    mean, scale = _stats_for(fe, xp)
    y = y * scale + mean
  elif fe.normalize == 'range':
    (a, b), (lo, hi) = fe.range_in, fe.range_out
    y = a + (b - a) * ((y - lo) / (hi - lo))
  if fe.log_scale == 'ln':
    return xp.exp(y)
  if fe.log_scale == 'log10':
    return xp.power(10.0, y)
  return xp.power(10.0, (y + fe.db_ref) * (fe.power / 20.0))


def silence_value(audio_cfg):
  """The convention's value of a silent band (what padding frames hold).

  Args:
    audio_cfg: `audio` config section or `Frontend`.
  Returns:
    a float, or [n_mels] float32 under 'meanvar' normalisation (silence differs per band).
  """
  fe = frontend(audio_cfg)
  value = compress(np.zeros(fe.n_mels), fe, xp=np)
  if fe.normalize == 'meanvar':
    return value.astype(np.float32)
  return float(value[0])


def value_bounds(audio_cfg):
  """The range the convention's values of [-1, 1] audio can take (the loudest is reached by no
  real signal).

  Args:
    audio_cfg: `audio` config section or `Frontend`.
  Returns:
    (low, high) floats: the smallest and largest value over all bands.
  """
  fe = frontend(audio_cfg)
  ends = compress(np.stack([np.zeros(fe.n_mels), max_linear_mel(fe)]), fe, xp=np)
  return float(np.min(ends)), float(np.max(ends))


def effective_floor(fe):
  """The smallest linear mel the convention tells apart from silence: [n_mels] float64."""
  return decompress(compress(np.zeros(fe.n_mels), fe, xp=np), fe, xp=np)


# ------------------------------------------------------------------------- descriptions, presets


def describe(fe):
  """A one-line formula of what the frontend's values are, e.g. 'ln(max(mel, 1e-05))'."""
  floor = f'max(mel, {fe.log_floor:g})'
  if fe.log_scale == 'ln':
    text = f'ln({floor})'
  elif fe.log_scale == 'log10':
    text = f'log10({floor})'
  else:
    text = f'{20.0 / fe.power:g}*log10({floor})' + (f' - {fe.db_ref:g}' if fe.db_ref else '')
  if fe.normalize == 'meanvar':
    text = f'({text} - mean) / scale'
  elif fe.normalize == 'range':
    (a, b), (lo, hi) = fe.range_in, fe.range_out
    text = f'{text} from [{a:g}, {b:g}] clipped into [{lo:g}, {hi:g}]'
  return f'{fe.convention}: {text}'


def effective_fields(fe):
  """The convention fields that affect the values, as plain JSON-able values.

  Fields that a setting makes irrelevant (db_ref without dB, the ranges without 'range') are left
  out; 'meanvar' adds the statistics file's sha256 as 'stats_sha256'.
  """
  out = {k: getattr(fe, k) for k in ('framing', 'pad_mode', 'stft_norm', 'magnitude_eps',
                                     'mel_scale', 'mel_norm', 'log_scale', 'log_floor',
                                     'normalize')}
  if fe.power_floor:  # only where set, so that every earlier frontend keeps its fields
    out['power_floor'] = fe.power_floor
  if fe.log_scale == 'db':
    out['db_ref'] = fe.db_ref
  if fe.normalize == 'meanvar':
    out['stats_sha256'] = stats_digest(fe.stats_file)
  if fe.normalize == 'range':
    out['range_in'] = list(fe.range_in)
    out['range_out'] = list(fe.range_out)
  return out


@functools.lru_cache(maxsize=None)
def _default_fields():
  return effective_fields(Frontend(22050, 1024, 256, 1024, 'hann', 80, 0.0, 11025.0, 1.0))


def stored_values(audio_cfg):
  """The convention fields that differ from the 'wavegrad' defaults, for a prepared dataset's key.

  Only values beyond the fields the key always held (pad_mode, log_floor) and only non-default
  ones, so the default frontend keeps its dataset key.

  Args:
    audio_cfg: `audio` config section.
  Returns:
    dict, empty for the default frontend.
  """
  defaults = _default_fields()
  return {k: v for k, v in effective_fields(frontend(audio_cfg)).items()
          if k not in ('pad_mode', 'log_floor') and defaults.get(k) != v}


def matching_convention(fe):
  """The named convention whose defining choices the frontend's fields follow, or None."""
  if canonical(fe.convention) in CONVENTIONS:
    return canonical(fe.convention)
  for name, choices in CONVENTIONS.items():
    if all(getattr(fe, k) in (v if isinstance(v, tuple) else (v,)) for k, v in choices.items()):
      return name
  return None


def preset_call(fe):
  """The config that gives this frontend, e.g. "audio_config_hifigan(sample_rate=22050, ...)".

  Names the preset function of experiments/configs/common.py with the frontend's sizes, plus any
  field it sets differently from the preset's recipe; for a mix no convention has, lists the fields.
  """
  name = matching_convention(fe)
  sizes = (f'sample_rate={fe.sample_rate}, n_fft={fe.n_fft}, win_length={fe.win_length}, '
           f'hop_length={fe.hop_length}, n_mels={fe.n_mels}, fmin={fe.fmin:g}, fmax={fe.fmax:g}')
  extra = [f'power={fe.power:g}'] if fe.power != 1.0 else []
  extra += [] if fe.window == 'hann' else [f'window={fe.window!r}']
  extra += [] if fe.pad_mode == 'reflect' else [f'pad_mode={fe.pad_mode!r}']
  if name is None:
    fields = effective_fields(fe)
    fields.pop('stats_sha256', None)
    if fe.normalize == 'meanvar':
      fields['stats_file'] = fe.stats_file
    extra += [f'{k}={v!r}' for k, v in fields.items() if k != 'pad_mode']
    return (f"audio_config({sizes}) with convention='custom', " + ', '.join(extra))
  for k, v in RECIPE_VALUES[name].items():
    if getattr(fe, k) != (tuple(v) if isinstance(v, tuple) else v):
      extra.append(f'{k}={getattr(fe, k)!r}')
  if fe.normalize == 'meanvar':
    sizes += f', stats_file={fe.stats_file!r}'
  call = f"audio_config_{name}({sizes})" if name != 'wavegrad' else f'audio_config({sizes})'
  return call + (f" with audio.{', audio.'.join(extra)}" if extra else '')


# ------------------------------------------------------------------------------------- conversion


def _same(a, b):
  if isinstance(a, float) or isinstance(b, float):
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
  return a == b


def differences(declared, checkpoint):
  """What differs between the frontend a mel was made with and a checkpoint's.

  Args:
    declared, checkpoint: `audio` config sections or `Frontend`s.
  Returns:
    (refused, converted): lists of (field, declared value, checkpoint value). `refused` holds the
    differences no conversion of the mel undoes (sizes, rate, band edges, power, framing, padding,
    mel scale); `converted` those `adapt` converts (STFT scaling, filterbank norm, log base, dB,
    floor, normalisation, magnitude_eps, whose effect stays below 1e-5 of a bin, power_floor,
    which changes only bins quieter than sqrt(power_floor)).
  """
  d, c = frontend(declared), frontend(checkpoint)
  refused = [(k, getattr(d, k), getattr(c, k)) for k in _FIXED_FIELDS
             if not _same(getattr(d, k), getattr(c, k))]
  fd, fc = effective_fields(d), effective_fields(c)
  converted = []
  for k in ('stft_norm', 'magnitude_eps', 'power_floor', 'mel_norm', 'log_scale', 'log_floor', 'db_ref',
            'normalize', 'stats_sha256', 'range_in', 'range_out'):
    a, b = fd.get(k), fc.get(k)
    if a is None and b is None:
      continue
    if isinstance(a, list) or isinstance(b, list):
      differ = a != b
    else:
      differ = a is None or b is None or not _same(a, b)
    if not differ:
      continue
    if k == 'stats_sha256':
      if d.normalize == c.normalize:  # else 'normalize' already says it
        converted.append(('stats_file', d.stats_file, c.stats_file))
    elif k == 'power_floor':
      converted.append((k, d.power_floor, c.power_floor))
    elif k in ('db_ref', 'range_in', 'range_out') and (a is None or b is None):
      continue  # only one side uses the field: 'log_scale' / 'normalize' already say it
    else:
      converted.append((k, getattr(d, k), getattr(c, k)))
  return refused, converted


def _format_fields(fields):
  return '; '.join(f'{k}: {a!r} (mel) vs {b!r} (checkpoint)' for k, a, b in fields)


def adapt(mel, declared, checkpoint, source='mel'):
  """Converts a mel made with frontend `declared` into the checkpoint's values, where possible.

  Invertible differences (log base, dB, floor, normalisation with known statistics, STFT scaling,
  filterbank norm) are undone through the linear mel: decompress, rescale, compress.

  Args:
    mel: [..., frames, n_mels] values in the declared convention.
    declared: the `audio` section (or `Frontend`) the mel was made with.
    checkpoint: the checkpoint's `audio` section (or `Frontend`).
    source: name of the mel in messages (e.g. its path).
  Returns:
    (mel [..., frames, n_mels] float32 in the checkpoint's values, list of message strings saying
    what was converted; empty when the frontends agree and the mel is returned unchanged).
  Raises:
    MelConventionError: a difference no conversion undoes; the message lists the fields and names
      the config each side needs.
  """
  d, c = frontend(declared), frontend(checkpoint)
  refused, converted = differences(d, c)
  if refused:
    note = (f' (besides, {_format_fields(converted)} would be converted)' if converted else '')
    raise MelConventionError(
        f"{source}: cannot be converted to the checkpoint's mel frontend; these fields differ "
        f'and no conversion of a mel undoes them: {_format_fields(refused)}{note}. '
        f'The checkpoint takes mels made with {preset_call(c)}: configure the TTS model to '
        f'predict those; or vocode these mels with a checkpoint trained on {preset_call(d)}')
  mel = np.asarray(mel)
  if not converted:
    return mel.astype(np.float32), []
  linear = decompress(mel.astype(np.float64), d, xp=np)
  ratio = (stft_gain(c) / stft_gain(d)) ** c.power
  if d.mel_norm != c.mel_norm:
    # Same triangles under either norm: the filterbanks differ by one factor per band.
    sum_d = np.sum(filterbank(d).astype(np.float64), axis=0)
    sum_c = np.sum(filterbank(c).astype(np.float64), axis=0)
    ratio = ratio * np.where(sum_d > 0, sum_c / np.where(sum_d > 0, sum_d, 1.0), 1.0)
  out = compress(linear * ratio, c, xp=np).astype(np.float32)
  messages = [f'{source}: converted from {describe(d)} to {describe(c)} '
              f'({_format_fields(converted)})']
  lost = effective_floor(d) * ratio > effective_floor(c) * (1 + 1e-6)
  if np.any(lost):
    messages.append(
        f'{source}: bands at or below the mel\'s floor ({float(np.max(effective_floor(d))):.3g} '
        f'linear) stay at it, above the checkpoint\'s floor '
        f'({float(np.min(effective_floor(c))):.3g}): the conversion cannot restore what the floor '
        'removed')
  if any(k == 'power_floor' for k, _, _ in converted):
    messages.append(f'{source}: power_floor {d.power_floor:g} vs {c.power_floor:g} left as is (it '
                    f'changes only |STFT| bins below {math.sqrt(max(d.power_floor, c.power_floor)):.3g}'
                    ', digital silence and the like)')
  if any(k == 'magnitude_eps' for k, _, _ in converted):
    messages.append(f'{source}: magnitude_eps {d.magnitude_eps:g} vs {c.magnitude_eps:g} left as '
                    'is (it moves a band by under 1e-5 of a bin magnitude)')
  return out, messages


# ------------------------------------------------------------------------------------ resemblance

# The forms mel values take under the conventions in use, with the conventions that produce each.
FORMS = {
    'ln': 'natural log of the mel (wavegrad, hifigan / Tacotron 2: ln(max(mel, 1e-5)))',
    'log10': 'log10 of the mel (parallel_wavegan alias espnet, espnet2: log10(max(mel, 1e-10)))',
    'meanvar': 'mean-variance normalised log mel (parallel_wavegan or espnet2 with a statistics '
               'file)',
    'unit': 'dB mel normalised to [0, 1] (lmnt WaveGrad / DiffWave)',
    'symmetric': 'dB mel normalised to a symmetric range such as [-1, 1] or [-4, 4] '
                 '(Tacotron-1-style)',
    'db': 'dB mel, not normalised (20*log10 or 10*log10)',
    'linear': 'linear mel, no log applied',
}


def _form_of(fe):
  """The value form the frontend produces (a FORMS key)."""
  if fe.normalize == 'meanvar':
    return 'meanvar'
  if fe.normalize == 'range':
    lo, hi = sorted(fe.range_out)
    return 'unit' if lo >= 0 else 'symmetric'
  return {'ln': 'ln', 'log10': 'log10', 'db': 'db'}[fe.log_scale]


# Values a floor or clip leaves many of, and the form that puts them there.
_FLOOR_SIGNATURES = ((math.log(1e-5), 'ln'), (math.log(1e-10), 'ln'), (-10.0, 'log10'),
                     (-5.0, 'log10'), (-100.0, 'db'), (-80.0, 'db'), (0.0, 'unit'),
                     (-1.0, 'symmetric'), (-4.0, 'symmetric'))


def value_stats(mel):
  """Summary statistics of a mel's values, as `resembles` reads them.

  Args:
    mel: [frames, n_mels] values.
  Returns:
    dict of floats: lo, hi, mean, std over all values; at_lo, the share of values at the minimum
    (a floor or clip); spread, the std of the values above it; bands, the range of the per-band
    means of those values (log units: about 5-8 for a natural log of speech, 2-3 for log10).
  """
  m = np.asarray(mel, np.float64).reshape(-1, np.asarray(mel).shape[-1])
  v = m.reshape(-1)
  lo, hi = float(v.min()), float(v.max())
  above = m > lo + 1e-4 * max(hi - lo, 1e-12)
  spread = float(m[above].std()) if above.any() else 0.0
  counts = above.sum(axis=0)
  means = np.where(counts > 0, np.where(above, m, 0.0).sum(axis=0) / np.maximum(counts, 1), lo)
  return dict(lo=lo, hi=hi, mean=float(v.mean()), std=float(v.std()),
              at_lo=float(1.0 - above.mean()), spread=spread,
              bands=float(means.max() - means.min()))


def _floor_form(s):
  """The form whose floor or clip sits at the minimum, when at least 0.5% of values sit there."""
  if s['at_lo'] < 0.005:
    return None
  for value, form in _FLOOR_SIGNATURES:
    if abs(s['lo'] - value) <= 1e-3 * max(1.0, abs(value)):
      return form
  return None


def _fits(form, s):
  """Whether statistics `s` (from `value_stats`) are those of real speech in value form `form`.

  Thresholds come from 60 Fish Fillets lines and the ALSA clips, loud and quiet, and temporally
  smoothed as predicted mels are: a natural-log mel of speech has a spread above the floor of
  1.6-2.5 and band means 3.6-8 apart; log10 0.7-1.0 and 1.6-2.9; the ambiguous middle fits both.
  """
  lo, hi, mean = s['lo'], s['hi'], s['mean']
  floor = _floor_form(s)
  if form == 'linear':
    return lo >= 0.0 and hi > 1.0
  if form == 'unit':
    return lo >= 0.0 and hi <= 1.0
  if form == 'symmetric':
    return (lo < 0.0 < hi and max(-lo, hi) <= 4.0 + 1e-6 and
            (floor == 'symmetric' or (lo >= -1.0 - 1e-6 and hi <= 1.0 + 1e-6)))
  if form == 'db':
    return lo < -20.0 or hi > 15.0
  if floor is not None and floor != form:
    return False
  if form == 'meanvar':
    return abs(mean) <= 1.2 and lo < -1.0 and hi > 0.5 and s['std'] <= 3.0
  if form == 'ln':
    return (-24.0 <= lo and hi <= 8.0 and mean <= -1.0 and
            (floor == 'ln' or s['spread'] >= 1.15 or s['bands'] >= 3.2))
  if form == 'log10':
    return (-10.0 - 1e-3 <= lo and hi <= 3.5 and mean <= -0.7 and
            (floor == 'log10' or (s['spread'] < 1.3 and s['bands'] < 3.6)))
  raise ValueError(f'unknown value form {form!r}; known: {sorted(FORMS)}')


def resembles(mel):
  """The value forms (FORMS keys) a mel's statistics fit, most specific first.

  Args:
    mel: [frames, n_mels] values of some convention (a second or more of real speech).
  Returns:
    list of FORMS keys; empty if it fits none.
  """
  s = value_stats(mel)
  forms = [f for f in ('unit', 'symmetric', 'linear', 'db', 'meanvar', 'log10', 'ln')
           if _fits(f, s)]
  floor = _floor_form(s)
  return sorted(forms, key=lambda f: f != floor)


def other_form(mel, audio_cfg):
  """The value form (a FORMS key) a mel looks like when it does not look like its declared one.

  Args:
    mel: [frames, n_mels] values, declared to be in `audio_cfg`'s convention.
    audio_cfg: the declared `audio` section (or `Frontend`).
  Returns:
    the most likely other form, or None when the values fit the declared convention's form (or
    no form at all): exactly when `resemblance_warning` has nothing to say.
  """
  fe = frontend(audio_cfg)
  declared = _form_of(fe)
  s = value_stats(mel)
  if declared in ('unit', 'symmetric'):
    lo, hi = sorted(fe.range_out)
    fits_declared = lo - 1e-6 <= s['lo'] and s['hi'] <= hi + 1e-6
  else:
    fits_declared = _fits(declared, s)
  if fits_declared:
    return None
  others = [f for f in resembles(mel) if f != declared]
  return others[0] if others else None


def resemblance_warning(mel, audio_cfg, source='mel'):
  """A warning when a mel's values look like another convention than the one declared.

  Args:
    mel: [frames, n_mels] values, declared to be in `audio_cfg`'s convention.
    audio_cfg: the declared `audio` section (or `Frontend`).
    source: name of the mel in the message.
  Returns:
    the warning text, or None when the values fit the declared convention's form (or no form).
  """
  form = other_form(mel, audio_cfg)
  if form is None:
    return None
  fe = frontend(audio_cfg)
  s = value_stats(mel)
  return (f"{source}: declared as {describe(fe)}, but its values (from {s['lo']:.3g} to "
          f"{s['hi']:.3g}, mean {s['mean']:.3g}, std {s['std']:.3g}) look like a "
          f'{FORMS[form]}. If it is one, give that convention so the mel is converted '
          f"(mel_conventions.adapt), or make the mels with the checkpoint's frontend, "
          f'{preset_call(fe)}: a mel of the wrong convention vocodes to muffled or noisy audio '
          'without an error')
