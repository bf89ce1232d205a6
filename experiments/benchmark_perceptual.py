r"""Times DNSMOS and ViSQOL (the optional perceptual extra) per second of audio; writes JSON.

  python -m experiments.benchmark_perceptual --output=/tmp/perceptual_cpu.json

Clips of each --seconds length are cut from the embedded corpus's speech (joined end to end for
long ones) at 22.05 kHz, the default frontend's rate; every timing includes the resampling to
16 kHz. After one untimed call per measure (model loading, numba compilation), each clip length is
timed --repeats times (ViSQOL against the clip plus white noise at 20 dB SNR); the JSON has the
median seconds per call and per second of audio.
"""
import functools
import glob
import os
import platform
import time

from absl import app
from absl import flags
import numpy as np

from experiments import cli
from wavegrad_jax import errors
from wavegrad_jax.audio import frontend as audio
from wavegrad_jax.evaluation import perceptual
from wavegrad_jax import jsonable

_SECONDS = flags.DEFINE_list('seconds', ['2.8', '4.6', '10', '30'], 'Clip lengths in seconds.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls per (measure, clip length).')
_CORPUS = flags.DEFINE_string('corpus', '/usr/share/games/fillets-ng/sound/*/cs/*.ogg',
                              'Glob of the speech files clips are cut from.')
_RATE = flags.DEFINE_integer('sample_rate', 22050, 'Rate of the clips in Hz.')
_OUTPUT = flags.DEFINE_string('output', None, 'Where to write the JSON results.')
flags.mark_flag_as_required('output')


def speech(seconds, rate, pattern):
  """[seconds * rate] float32 speech: the corpus's files in sorted order, joined end to end."""
  need, parts = int(seconds * rate), []
  for path in sorted(glob.glob(pattern)):
    parts.append(audio.load_audio(path, rate))
    if sum(p.shape[0] for p in parts) >= need:
      return np.concatenate(parts)[:need]
  raise errors.UserError(f'{pattern} holds less than {seconds} s of audio: install Debian package '
                   'fillets-ng-data-cs or pass --corpus')


def _with_noise(wave, snr_db=20.0):
  """The degraded signal ViSQOL is timed on: `wave` plus white noise at `snr_db`."""
  noise = np.random.default_rng(0).standard_normal(wave.shape[0])
  power = np.mean(wave.astype(np.float64) ** 2)
  noise *= np.sqrt(power / np.mean(noise ** 2) / 10 ** (snr_db / 10))
  return (wave + noise).astype(np.float32)


def _median_seconds(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  errors.check_output_file(_OUTPUT.value, '--output')
  try:
    seconds_list = [float(s) for s in _SECONDS.value]
  except ValueError:
    seconds_list = []
  if not seconds_list or min(seconds_list) <= 0:
    raise app.UsageError(f'--seconds wants positive clip lengths, got {_SECONDS.value}')
  rate = _RATE.value
  calls = {
      'dnsmos_pad': lambda w: perceptual.dnsmos(w, rate, 'pad'),
      'dnsmos_tile': lambda w: perceptual.dnsmos(w, rate, 'tile'),
      'visqol': lambda w: perceptual.visqol(_with_noise(w), w, rate),
  }
  warm = speech(1.0, rate, _CORPUS.value)
  for fn in calls.values():
    fn(warm)
  rows = []
  for seconds in seconds_list:
    wave = speech(seconds, rate, _CORPUS.value)
    for name, fn in calls.items():
      per_call = _median_seconds(functools.partial(fn, wave), _REPEATS.value)
      rows.append({'measure': name, 'audio_seconds': seconds, 'seconds_per_call': per_call,
                   'seconds_per_audio_second': per_call / seconds})
      print(f'{name:<12} {seconds:6.1f} s of audio: {per_call:7.3f} s per call, '
            f'{per_call / seconds:.3f} s per audio second', flush=True)
  out = {'machine': platform.processor() or platform.machine(), 'cpu_count': os.cpu_count(),
         'load_average': os.getloadavg(), 'sample_rate': rate, 'repeats': _REPEATS.value,
         'rows': rows}
  jsonable.write(_OUTPUT.value, out)
  print(f'wrote {_OUTPUT.value}')


if __name__ == '__main__':
  cli.run(main)
