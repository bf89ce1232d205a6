"""The tiny WaveGrad for ESPnet2 TTS mels (LogMelFbank: power floored at 1e-10, log10, 80-7,600 Hz).

Add --config.audio.normalize=meanvar --config.audio.stats_file=<feats_stats.npz> for mels
normalised with ESPnet's GlobalMVN statistics.
"""
from experiments.configs import common
from experiments.configs import tiny


def get_config():
  c = tiny.get_config()
  c.audio = common.audio_config_espnet2()
  return c
