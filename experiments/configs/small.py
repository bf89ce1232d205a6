"""A CPU-sized WaveGrad for learning curves: the tiny topology with the paper's dilation order,
trained for tens of thousands of steps on the embedded corpus (one to two hours on 2 CPU cores).

Width is kept at tiny's: on 2 cores learning is step-bound (a 4x wider model learns at the same
rate per step but runs 2.5x slower), so CPU time goes into steps. Every checkpoint is kept so that
`experiments.learning_curve` can score the whole curve afterwards.
"""
from experiments.configs import tiny


def get_config():
  c = tiny.get_config()
  # tiny's model.dilation_order is the paper's (Appendix A): long dilations on the low-rate
  # UBlocks nearest the mel, short ones on the finest (here: strides 64, 16, 4 long; 1 short).
  c.train.num_steps = 50_000
  c.train.learning_rate = 1e-3
  c.train.lr_schedule = 'cosine'
  c.train.end_lr_factor = 0.05
  c.train.warmup_steps = 200
  c.train.ema_decay = 0.9995
  c.train.log_every_steps = 100
  c.train.eval_every_steps = 2500
  c.train.checkpoint_every_steps = 2500
  c.train.keep_checkpoints = 25
  return c
