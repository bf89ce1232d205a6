"""The tiny frame network from a Griffin-Lim source, and its adversarial fine-tune: the smoke form
of frame_small_gl / frame_small_gl_gan (trains as a teacher with experiments.main, and fine-tunes
with experiments.finetune_adversarial, each in a minute on 2 CPU cores)."""
from experiments.configs import common
from experiments.configs import frame_tiny_flow


def get_config():
  c = frame_tiny_flow.get_config()
  c.process.flow.source = 'griffin_lim'
  c.process.flow.source_iterations = 4
  c.process.flow.sigma = 0.01
  c.process.spectral.mrstft_weight = 1.0
  c.sampling.schedule = '1'
  c.train.sample_schedule = '1'
  c.eval.schedules = '1,2'
  c.adversarial = common.adversarial_config()
  c.adversarial.mpd.periods = (2, 3)
  c.adversarial.mpd.channels = (4, 8, 8)
  c.adversarial.mrd.resolutions = ((512, 128, 512),)
  c.adversarial.mrd.channels = 4
  return c
