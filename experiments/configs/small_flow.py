"""The `small` WaveGrad network under flow matching (x1 prediction): the process comparison's
flow arm on the same network, data and optimiser as small.py."""
from experiments.configs import small


def get_config():
  c = small.get_config()
  c.process.name = 'flow'
  c.sampling.schedule = '6'     # a flow time grid: 6 uniform Euler steps.
  c.train.sample_schedule = '6'
  return c
