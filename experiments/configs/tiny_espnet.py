"""The tiny WaveGrad for ParallelWaveGAN mels (log10, 80-7,600 Hz): one flag.

Its convention is recorded as 'espnet', the alias of 'parallel_wavegan' (kept so that the
commands, configs and messages that name it read as before); ESPnet2's TTS mels are tiny_espnet2.py.

Add --config.audio.normalize=meanvar --config.audio.stats_file=<stats.npy> for mean-variance
normalised mels (ParallelWaveGAN's stats.npy, or mel_conventions.save_meanvar_stats).
"""
from experiments.configs import common
from experiments.configs import tiny


def get_config():
  c = tiny.get_config()
  c.audio = common.audio_config_espnet()
  return c
