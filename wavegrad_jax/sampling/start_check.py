"""Whether a schedule starts from noise for the data: a warning before sampling, not after.

The criterion is `schedules.start_snr_db` (the first step's SNR for speech of the data's RMS);
`ScheduleStartOptions` holds its threshold and the RMS estimate, read once from the config, and
`ScheduleCheckedSampler` applies it to every concrete schedule a sampler is called with.
"""
import dataclasses

import jax
import numpy as np

from wavegrad_jax.diffusion import schedules


@dataclasses.dataclass(frozen=True)
class ScheduleStartOptions:
  """The start-from-noise check's settings (hashable).

  Attributes:
    start_max_snr_db: dB; a schedule whose first step leaves speech above this SNR warns.
    speech_crest_db: dB, speech's peak-to-RMS ratio, to estimate its RMS from the peak.
    peak_normalize: full-scale peak loaded audio is scaled to (audio.peak_normalize); 0 (audio
      kept at its level) counts as 1.
  """
  start_max_snr_db: float
  speech_crest_db: float
  peak_normalize: float = 0.0

  @classmethod
  def from_config(cls, config):
    """The check of config.sampling and config.audio, or None where it does not apply.

    Not checked (None): configs from before these fields existed, a process other than
    'wavegrad' (a flow time grid always starts from the source), and samplers without a schedule
    (algorithm 'griffin_lim').
    """
    s = config.sampling
    if 'start_max_snr_db' not in s or 'speech_crest_db' not in s:
      return None
    process = config.get('process', None)
    if (process.get('name', 'wavegrad') if process is not None else 'wavegrad') != 'wavegrad':
      return None
    if s.get('algorithm', 'diffusion') != 'diffusion':
      return None
    return cls(start_max_snr_db=float(s.start_max_snr_db),
               speech_crest_db=float(s.speech_crest_db),
               peak_normalize=float(config.audio.get('peak_normalize', 0.0) or 0.0))

  def speech_rms_estimate(self):
    """The RMS (full scale 1) of the speech the frontend reads, for `check_schedule_start`.

    Loaded audio is scaled to peak_normalize (taken as 1 when 0, audio kept at its level);
    speech's peak-to-RMS ratio speech_crest_db then gives its RMS,
    peak / 10^(crest_db / 20): 0.9 / 10^(18 / 20) = 0.11 for the defaults (the embedded corpus
    measures 0.10 to 0.14).
    """
    return (self.peak_normalize or 1.0) / 10.0 ** (self.speech_crest_db / 20.0)


def check_schedule_start(betas, options, name, speech_rms=None, where=''):
  """Warns once (with the numbers) when a schedule does not start from noise for this data.

  Args:
    betas: [N] concrete schedule.
    options: `ScheduleStartOptions`, or None (not checked).
    name: the schedule's name or spec, for the message.
    speech_rms: the data's measured RMS (full scale 1) when at hand (evaluation, search), else
      `options.speech_rms_estimate()`.
    where: the caller, for the message.
  Returns:
    `schedules.start_check`'s dict, or None when not checked.
  """
  if options is None:
    return None
  rms = float(speech_rms) if speech_rms else options.speech_rms_estimate()
  return schedules.warn_unless_starts_from_noise(betas, name, rms, options.start_max_snr_db,
                                                 where)


class ScheduleCheckedSampler:
  """A jitted sampler that checks each concrete schedule it is called with, once, before running.

  Calls with traced betas (inside another jit) are not checked; every other attribute (`lower`,
  ...) is the jitted function's. `start` is a `ScheduleStartOptions` (None: never checked).
  """

  def __init__(self, jitted, start):
    self._jitted = jitted
    self._start = start

  def __call__(self, params, betas, *args, **kwargs):
    if not isinstance(betas, jax.core.Tracer):
      values = np.asarray(betas, np.float64)
      check_schedule_start(values, self._start, _schedule_label(values), where='sampler')
    return self._jitted(params, betas, *args, **kwargs)

  def __getattr__(self, name):
    return getattr(self._jitted, name)


def _schedule_label(betas):
  shown = ', '.join(f'{b:.3g}' for b in betas[:8]) + (', ...' if len(betas) > 8 else '')
  return f'of {len(betas)} steps [{shown}]'
