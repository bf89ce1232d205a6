"""WaveGrad Large: Base with two extra same-rate UBlocks, about 22.8M parameters.

The paper gives only the size (about 23M); its exact topology is unpublished. Same-rate (factor 1)
UBlocks deepen the 60- and 4-sample resolutions, and the FiLM feeding them comes from the waveform
stage of the same resolution. Dilations follow model.dilation_order ('paper' by default: 1,2,4,8
on the five UBlocks with output strides 60, 60, 12, 4, 4 and 1,2,1,2 on the x2, x2 blocks).
"""
from experiments.configs import base


def get_config():
  c = base.get_config()
  c.model.upsample_factors = (5, 1, 5, 3, 1, 2, 2)
  c.model.upsample_channels = (512, 512, 512, 256, 256, 128, 128)
  c.data.segment_frames = 60    # 18,000 samples = 0.75 s.
  return c
