"""WaveGrad Base at 48 kHz, on HiFi-GAN-style 48 kHz mels with a 10 ms hop.

Frontend: HiFi-GAN's meldataset.py recipe at 48 kHz as 48 kHz HiFi-GAN / BigVGAN fine-tunes set it:
n_fft 2048, hop 480, win 2048, 128 Slaney bands over 0-24,000 Hz, ln(max(mel, 1e-5)).
Model: Base's channels and dilations with five UBlocks upsampling 5 x 4 x 4 x 3 x 2 = 480 and the
waveform path downsampling 2, 3, 4, 4 to meet them. Reads the embedded 22.05 kHz corpus resampled
unless --config.data.source/dir point at 48 kHz data.
"""
from experiments.configs import base_44k
from experiments.configs import common


def get_config():
  c = base_44k.get_config()   # the same recipe and widths; the rate, hop and factors differ.
  c.audio = common.audio_config_hifigan(sample_rate=48000, n_fft=2048, win_length=2048,
                                        hop_length=480, n_mels=128, fmin=0.0, fmax=24000.0)
  c.model.upsample_factors = (5, 4, 4, 3, 2)
  c.model.downsample_factors = (2, 3, 4, 4)
  c.data.segment_frames = 30    # 14,400 samples = 0.30 s, Base's crop duration.
  return c
