"""A tiny frame-domain network under flow matching: the README's smoke run of the second process
and the second network family (trains in a minute on 2 CPU cores; frame_small_flow is the study's
size)."""
from experiments.configs import common
from experiments.configs import tiny


def get_config():
  c = tiny.get_config()
  c.model = common.frame_model_config()
  c.model.dim = 64
  c.model.intermediate_dim = 192
  c.model.num_layers = 3
  c.model.input_kernel_size = 3
  c.process.name = 'flow'
  c.sampling.schedule = '4'     # a flow time grid: 4 uniform Euler steps.
  c.train.sample_schedule = '4'
  c.data.segment_frames = 32
  return c
