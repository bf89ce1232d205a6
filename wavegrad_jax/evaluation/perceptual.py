"""Offline perceptual quality measures: DNSMOS P.835 and ViSQOL v3 speech mode.

An optional extra of the evaluation (`pip install -r requirements-perceptual.txt`); the packages
ship their models and run on the CPU without network access.

- DNSMOS (Reddy et al., ICASSP 2022; Microsoft's ONNX models through the `speechmos` package and
  `onnxruntime`) is non-intrusive: it rates a waveform alone, on the 1-5 MOS scale of ITU-T P.835
  (SIG: speech distortion, BAK: background intrusiveness, OVRL: overall quality) and of P.808
  (one overall rating). Clips longer than the model's 9.01 s input are averaged over windows
  hopped by 1 s, as in the reference script. Shorter clips are zero-padded to 9.01 s by default;
  the reference script tiles them instead (short_clips='tile'), which on utterances cut to a few
  seconds makes the score jump (OVRL by up to 0.4 when the clip is 13 samples shorter, measured
  on the embedded corpus) where padding moves it by about 0.05.
- ViSQOL v3 speech mode (Chinen et al., QoMEX 2020; the `visqol-python` port of Google's C++
  v3.3.3 with its default deep-lattice mapper) compares a waveform against its reference:
  MOS-LQO on a 1-5 scale, where identical signals score about 4.5, not 5, and the mean NSIM
  (neurogram similarity of the gammatone spectrograms, 1 for identical signals) it is mapped from.
  Both compare magnitudes, so Griffin-Lim's phase artefacts barely move them: on the embedded
  corpus Griffin-Lim from the mel scores NSIM 0.98 and a MOS-LQO within about 0.05 of the
  reference itself (above it on 3 of 10 utterances of 4.6 s, on 8 of 10 cut to 2.3 s). Read
  them with DNSMOS, which does hear those artefacts.

Both models take 16 kHz audio; every function here resamples with soxr 'HQ' from the caller's
rate. Imports are lazy, so this module loads without the extra; a call without it raises
`MissingExtraError` naming the install command.
"""
import functools
import math

from absl import logging
import numpy as np
import soxr

REQUIREMENTS_FILE = 'requirements-perceptual.txt'
INSTALL_COMMAND = f'pip install -r {REQUIREMENTS_FILE}'
MODEL_SAMPLE_RATE = 16000          # Hz; both DNSMOS and ViSQOL speech mode are 16 kHz models.
MEASURES = ('dnsmos', 'visqol')
FIELDS = {
    'dnsmos': ('dnsmos_ovrl', 'dnsmos_sig', 'dnsmos_bak', 'dnsmos_p808'),
    'visqol': ('visqol_moslqo', 'visqol_nsim'),
}
ALL_FIELDS = FIELDS['dnsmos'] + FIELDS['visqol']
TITLES = {'dnsmos': 'DNSMOS', 'visqol': 'ViSQOL'}
# ViSQOL's gammatone spectrogram needs at least this many 16 kHz samples (80 ms).
VISQOL_MIN_SAMPLES = 1280
SETTINGS = ('auto', 'true', 'false')
DNSMOS_INPUT_SECONDS = 9.01        # the model's input length (speechmos.dnsmos.INPUT_LENGTH).
SHORT_CLIPS = ('pad', 'tile')


class MissingExtraError(ImportError):
  """A perceptual measure was asked for but its optional packages are not installed."""


def _import_dnsmos():
  try:
    import onnxruntime  # pylint: disable=g-import-not-at-top,unused-import
    from speechmos import dnsmos  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise MissingExtraError(
        f'DNSMOS needs the optional packages speechmos and onnxruntime ({e}); install them with: '
        f'{INSTALL_COMMAND}') from e
  return dnsmos


@functools.lru_cache(maxsize=None)
def _visqol_api():
  """One ViSQOL speech-mode instance per process (its lattice model loads once)."""
  try:
    import visqol  # pylint: disable=g-import-not-at-top
    api = visqol.VisqolApi()
    # The lattice mapper is the C++ default; never fall back silently to the polynomial one, which
    # scores 1-2 MOS higher.
    api.create(mode='speech', use_lattice_model=True)
  except ImportError as e:
    raise MissingExtraError(
        f'ViSQOL needs the optional packages visqol-python and ai-edge-litert ({e}); install '
        f'them with: {INSTALL_COMMAND}') from e
  return api


def available(measure):
  """Whether `measure` ('dnsmos' or 'visqol') can run, i.e. its optional packages import."""
  loaders = {'dnsmos': _import_dnsmos, 'visqol': _visqol_api}
  if measure not in loaders:
    raise ValueError(f'unknown perceptual measure {measure!r}; choose from {MEASURES}')
  try:
    loaders[measure]()
  except MissingExtraError:
    return False
  return True


def _mono(wave, name):
  wave = np.asarray(wave)
  if wave.ndim != 1 or wave.shape[0] == 0:
    raise ValueError(f'{name} must be a non-empty 1-D waveform [T], got shape {wave.shape}')
  return wave.astype(np.float32)


def _to_model_rate(wave, sample_rate):
  if int(sample_rate) != sample_rate or sample_rate <= 0:
    raise ValueError(f'sample_rate must be a positive integer in Hz, got {sample_rate}')
  if int(sample_rate) == MODEL_SAMPLE_RATE:
    return wave
  return soxr.resample(wave, int(sample_rate), MODEL_SAMPLE_RATE, quality='HQ')


def check_short_clips(value):
  """Refuses a DNSMOS short_clips value other than 'pad' or 'tile'."""
  if value not in SHORT_CLIPS:
    raise ValueError(f"DNSMOS short_clips (config.eval.dnsmos_short_clips) must be 'pad' or "
                     f"'tile', got {value!r}")


def dnsmos(wave, sample_rate, short_clips='pad'):
  """DNSMOS P.835 and P.808 ratings of one waveform (non-intrusive: no reference).

  Args:
    wave: [T] float waveform in [-1, 1] (samples beyond are clipped, as a PCM file would be).
    sample_rate: its rate in Hz; resampled to 16 kHz.
    short_clips: how a clip shorter than 9.01 s fills the model's input: 'pad' with zeros (one
      window, stable) or 'tile' copies of itself (the reference script).
  Returns:
    {'dnsmos_ovrl', 'dnsmos_sig', 'dnsmos_bak', 'dnsmos_p808': float MOS, about 1 to 5};
    NaN for a waveform that is not finite (a diverged sample).
  Raises:
    MissingExtraError: speechmos / onnxruntime are not installed.
    ValueError: not a non-empty [T] array, a bad sample rate or short_clips value.
  """
  check_short_clips(short_clips)
  model = _import_dnsmos()
  wave = _mono(wave, 'wave')
  if not np.all(np.isfinite(wave)):
    return {k: math.nan for k in FIELDS['dnsmos']}
  wave = np.clip(_to_model_rate(wave, sample_rate), -1.0, 1.0)
  input_samples = int(DNSMOS_INPUT_SECONDS * MODEL_SAMPLE_RATE)
  if short_clips == 'pad' and wave.shape[0] < input_samples:
    wave = np.pad(wave, (0, input_samples - wave.shape[0]))
  out = model.run(wave, MODEL_SAMPLE_RATE)
  return {'dnsmos_ovrl': float(out['ovrl_mos']), 'dnsmos_sig': float(out['sig_mos']),
          'dnsmos_bak': float(out['bak_mos']), 'dnsmos_p808': float(out['p808_mos'])}


def visqol(generated, reference, sample_rate):
  """ViSQOL v3 speech-mode MOS-LQO and mean NSIM of `generated` against `reference`.

  Args:
    generated: [T] float waveform.
    reference: [T'] float waveform at the same rate (ViSQOL aligns the two; lengths may differ).
    sample_rate: their rate in Hz; both are resampled to 16 kHz.
  Returns:
    {'visqol_moslqo': float, about 1 to 4.6, 'visqol_nsim': float, at most 1}; NaN (with a
    warning) when the generated audio is not finite or the reference holds no speech patch for
    ViSQOL to compare: silence, or shorter than about 1 s.
  Raises:
    MissingExtraError: visqol-python / ai-edge-litert are not installed.
    ValueError: not non-empty [T] arrays, or a bad sample rate.
  """
  api = _visqol_api()
  generated, reference = _mono(generated, 'generated'), _mono(reference, 'reference')
  generated = _to_model_rate(generated, sample_rate)
  reference = _to_model_rate(reference, sample_rate)
  if (not np.all(np.isfinite(generated)) or not np.any(reference)
      or min(generated.shape[0], reference.shape[0]) < VISQOL_MIN_SAMPLES):
    return {k: math.nan for k in FIELDS['visqol']}
  try:
    result = api.measure_from_arrays(reference.astype(np.float64),
                                     generated.astype(np.float64), MODEL_SAMPLE_RATE)
  except (ValueError, IndexError) as e:
    # Its voice-activity detector found no speech patch in the reference (IndexError in 3.8.0).
    logging.warning('ViSQOL cannot score this utterance (%s: %s); recorded as NaN',
                    type(e).__name__, e)
    return {k: math.nan for k in FIELDS['visqol']}
  return {'visqol_moslqo': float(result.moslqo), 'visqol_nsim': float(result.vnsim)}


def parse_setting(value, name):
  """An eval.dnsmos / eval.visqol setting: 'auto', 'true' or 'false' (any case), or a bool.

  Args:
    value: the config value.
    name: its config name, for the error message.
  Returns:
    'auto', True or False.
  Raises:
    ValueError: anything else.
  """
  if isinstance(value, bool):
    return value
  text = str(value).strip().lower()
  if text not in SETTINGS:
    raise ValueError(f"{name} must be 'auto' (measure when installed), 'true' (required) or "
                     f"'false' (off), got {value!r}")
  return 'auto' if text == 'auto' else text == 'true'


def resolve(settings):
  """Which perceptual measures to run, from their settings.

  Args:
    settings: {measure: setting} for measures in MEASURES (see `parse_setting`); a missing
      measure counts as 'auto'. Keys are reported as config.eval.<measure>.
  Returns:
    (measures, hint): the tuple of measures to run, in MEASURES order, and a one-line hint naming
    the install command when an 'auto' measure is left out because it is not installed, else ''.
  Raises:
    MissingExtraError: a measure set to 'true' is not installed.
    ValueError: an unknown measure or a bad setting.
  """
  unknown = sorted(set(settings) - set(MEASURES))
  if unknown:
    raise ValueError(f'unknown perceptual measures {unknown}; choose from {MEASURES}')
  measures, missing = [], []
  for measure in MEASURES:
    setting = parse_setting(settings.get(measure, 'auto'), f'config.eval.{measure}')
    if setting is False:
      continue
    if available(measure):
      measures.append(measure)
    elif setting is True:
      raise MissingExtraError(
          f"config.eval.{measure}='true' but {TITLES[measure]} is not installed: run "
          f"{INSTALL_COMMAND}, or set --config.eval.{measure}=auto to skip it when missing")
    else:
      missing.append(measure)
  hint = ''
  if missing:
    names = ' and '.join(TITLES[m] for m in missing)
    off = ' / '.join(f'--config.eval.{m}=false' for m in missing)
    hint = (f'{names} not installed, so left out of the evaluation: {INSTALL_COMMAND} adds '
            f'{"them" if len(missing) > 1 else "it"} ({off} silences this)')
  return tuple(measures), hint


_LOGGED_HINTS = set()


def log_hint_once(hint):
  """Logs a `resolve` hint once per process (an evaluation loop would otherwise repeat it)."""
  if hint and hint not in _LOGGED_HINTS:
    _LOGGED_HINTS.add(hint)
    logging.info('%s', hint)


def score(generated, reference, sample_rate, measures, dnsmos_short_clips='pad'):
  """Every requested perceptual measure of one utterance.

  Args:
    generated: [T] float waveform.
    reference: [T'] reference waveform (used by ViSQOL only).
    sample_rate: Hz.
    measures: names from MEASURES (`resolve`'s first result).
    dnsmos_short_clips: `dnsmos`'s short_clips.
  Returns:
    {field: float} with the FIELDS of each measure.
  """
  row = {}
  if 'dnsmos' in measures:
    row.update(dnsmos(generated, sample_rate, dnsmos_short_clips))
  if 'visqol' in measures:
    row.update(visqol(generated, reference, sample_rate))
  return row
