"""The named mel conventions, their defining fields, and the typed `Frontend` audio code takes.

One job: say what a frontend is. `CONVENTIONS` / `RECIPE_VALUES` are the recipes' own choices
(the table in the package docstring, after HiFi-GAN's meldataset.py, ParallelWaveGAN's
preprocess.py, ESPnet2's LogMelFbank and LMNT's WaveGrad); `Frontend` is the frozen, hashable
record of every value of an `audio` config section that shapes a mel, read once at the edge with
`Frontend.from_config(config.audio)` and then passed down (a jit static argument or a closure
constant). The recipes are tables, not code, so they share this module rather than one module
each: the code that acts on them (values.py, conversion.py, resemblance.py) is the same for all.
"""
import dataclasses

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


def require_frontend(fe, where):
  """`fe` itself when it is a `Frontend`; else a TypeError that names the fix.

  Args:
    fe: what a caller passed as the frontend.
    where: the function's name, for the message.
  Returns:
    fe.
  Raises:
    TypeError: fe is a config section (or anything else) rather than a `Frontend`.
  """
  if not isinstance(fe, Frontend):
    raise TypeError(f'{where} takes a mel_conventions.Frontend, got {type(fe).__name__}: build '
                    'it once at the edge with mel_conventions.Frontend.from_config(config.audio) '
                    'and pass it down')
  return fe
