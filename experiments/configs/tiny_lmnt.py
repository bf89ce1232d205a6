"""The tiny WaveGrad for lmnt-style [0, 1] dB mels at hop 256 (lmnt DiffWave's frontend): one flag.

lmnt's WaveGrad frontend (hop 300, 128 bands) is common.audio_config_lmnt() with a hop-300 model.
"""
from experiments.configs import common
from experiments.configs import tiny


def get_config():
  c = tiny.get_config()
  c.audio = common.audio_config_lmnt(hop_length=256, n_mels=80)
  return c
