"""frame_small under flow matching (x1 prediction, N(0, I) source): see processes/flow.py."""
from experiments.configs import frame_small


def get_config():
  c = frame_small.get_config()
  c.process.name = 'flow'
  c.sampling.schedule = '4'     # a flow time grid: 4 uniform Euler steps.
  c.train.sample_schedule = '4'
  return c
