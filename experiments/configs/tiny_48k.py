"""The tiny WaveGrad at 48 kHz (base_48k.py's frontend): a smoke test of the high-rate path.

Four UBlocks upsample 6 x 5 x 4 x 4 = 480; the waveform path downsamples 4, 4, 5 to meet them.
"""
from experiments.configs import base_48k
from experiments.configs import tiny


def get_config():
  c = tiny.get_config()
  c.audio = base_48k.get_config().audio
  c.model.upsample_factors = (6, 5, 4, 4)
  c.model.downsample_factors = (4, 4, 5)
  c.data.segment_frames = 16    # 7,680 samples = 0.16 s.
  return c
