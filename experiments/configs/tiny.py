"""A tiny WaveGrad that trains visibly on 2 CPU cores in minutes, on the embedded corpus."""
from experiments.configs import common


def get_config():
  c = common.get_common_config()
  c.audio = common.audio_config(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256,
                                n_mels=80, fmin=0.0, fmax=11025.0)
  c.model.mel_channels = 64
  c.model.upsample_factors = (4, 4, 4, 4)
  c.model.upsample_channels = (64, 48, 32, 32)
  c.model.waveform_channels = 16
  c.model.downsample_factors = (4, 4, 4)
  c.model.downsample_channels = (32, 32, 48)
  c.data.segment_frames = 16    # 4,096 samples = 0.19 s.
  # Sized for the README's main command: a few minutes on 2 CPU cores (plus a one-off ~20 s
  # dataset build), with four evaluations that each write held-out loss, wavs and mel images.
  c.train.batch_size = 8
  c.train.num_steps = 2000
  c.train.learning_rate = 1e-3
  c.train.warmup_steps = 100
  c.train.ema_decay = 0.999
  c.train.log_every_steps = 50
  c.train.eval_every_steps = 500
  c.train.checkpoint_every_steps = 500
  c.train.keep_checkpoints = 2
  c.train.heldout_loss_batches = 4
  c.train.num_audio_examples = 3
  c.train.audio_example_seconds = 2.0
  # 50 steps show more of what a few minutes of training have learnt than 6 (about 5 s per
  # evaluation here).
  c.train.sample_schedule = '50'
  return c
