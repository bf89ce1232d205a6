"""`small` with PriorGrad's mel-conditioned prior (Lee et al., ICLR 2022), for the learning curve.

Everything else is `small`'s, so the two runs' curves compare the prior alone. PriorGrad uses an L2
loss weighted by Sigma^-1; this keeps the paper's L1 (weighted the same way) so that only the prior
differs.
"""
from experiments.configs import small


def get_config():
  c = small.get_config()
  c.diffusion.prior = 'priorgrad'
  return c
