"""The tiny WaveGrad at 44.1 kHz (base_44k.py's frontend): a smoke test of the high-rate path.

Four UBlocks upsample 8 x 4 x 4 x 4 = 512; the waveform path downsamples 4, 4, 4 to meet them.
"""
from experiments.configs import base_44k
from experiments.configs import tiny


def get_config():
  c = tiny.get_config()
  c.audio = base_44k.get_config().audio
  c.model.upsample_factors = (8, 4, 4, 4)
  c.model.downsample_factors = (4, 4, 4)
  c.data.segment_frames = 16    # 8,192 samples = 0.19 s.
  return c
