"""Adversarial fine-tune of frame_small_gl's one-step sampler (experiments.finetune_adversarial).

frame_small_gl's model, frontend and process (the teacher's: a fine-tune refuses another), with
HiFi-GAN's losses and optimiser settings, and discriminators narrowed for 2 CPU cores: the
multi-period one at an eighth of HiFi-GAN's widths, the multi-resolution one at 8 channels
(a quarter), batch 8. At the teacher's widths (a quarter and 16 channels, batch 16) a step took
10 s here, the discriminators' sample-rate convolutions costing about 50 times the generator.
"""
from experiments.configs import common
from experiments.configs import frame_small_gl


def get_config():
  c = frame_small_gl.get_config()
  c.adversarial = common.adversarial_config()
  c.adversarial.steps = 1
  c.adversarial.mpd.channels = (4, 16, 64, 128, 128)
  c.adversarial.mrd.channels = 8
  c.train.batch_size = 8
  c.train.learning_rate = 2e-4
  c.train.warmup_steps = 0
  c.train.adam_b1 = 0.8
  c.train.adam_b2 = 0.99
  c.train.ema_decay = 0.999
  c.train.num_steps = 100_000
  c.train.eval_every_steps = 500
  c.train.checkpoint_every_steps = 250
  return c
