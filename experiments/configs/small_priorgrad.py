"""`small` with PriorGrad's mel-conditioned prior (Lee et al., ICLR 2022), for the learning curve.

Everything else is `small`'s, so the two runs' curves compare the prior alone. PriorGrad uses an L2
loss weighted by Sigma^-1; this keeps the paper's L1 (weighted the same way) so that only the prior
differs.

The README's learning-curve study ran before the energy cap existed, so this config keeps it off
(diffusion.prior_max_energy = 0) to reproduce that study; the common default, 4, is the official
code's cap (`--config.diffusion.prior_max_energy=4` here gives PriorGrad's std as published).
"""
from experiments.configs import small


def get_config():
  c = small.get_config()
  c.diffusion.prior = 'priorgrad'
  c.diffusion.prior_max_energy = 0.0
  return c
