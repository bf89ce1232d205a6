"""WaveGrad Base for the TTS world: the mels HiFi-GAN, Tacotron 2 and FastSpeech 2 emit.

HiFi-GAN's frontend (common.audio_config_hifigan: 22,050 Hz, n_fft = window = 1024, hop 256,
80 bands over 0-8,000 Hz, ln(max(mel, 1e-5))) under Base's widths and the paper's dilation order.
The hop of 256 is upsampled x4, x4, x4, x2, x2 (UBlock outputs every 64, 16, 4, 2, 1 samples, so
the paper's rule puts 1,2,4,8 on the three x4 blocks and 1,2,1,2 on the x2 ones), and the waveform
path downsamples x2, x2, x4, x4, whose running strides 2, 4, 16, 64 hold every UBlock resolution
for its FiLM. About 15.8M parameters, like Base at 80 mels. Reads the embedded corpus (already at
22,050 Hz) unless --config.data.source / dir point at yours (LJSpeech: source=ljspeech).
"""
from experiments.configs import base
from experiments.configs import common


def get_config():
  c = base.get_config()
  c.audio = common.audio_config_hifigan()
  c.model.upsample_factors = (4, 4, 4, 2, 2)
  c.model.downsample_factors = (2, 2, 4, 4)
  c.data.segment_frames = 28    # 7,168 samples = 0.33 s, Base's 0.3 s in whole frames.
  return c
