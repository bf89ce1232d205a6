"""Fine-tuning the tiny WaveGrad on teacher-forced pairs (wavegrad_jax/data/paired.py).

  python -m experiments.make_paired_mels --output_dir=runs/pairs
  python -m experiments.main --config=experiments/configs/tiny_paired.py --workdir=runs/tiny_ft \
      --config.train.init_from=runs/tiny

The tiny model and frontend (so the README's runs/tiny can start it), reading <id>.npy mels beside
<id>.wav audio from data.dir, with a fine-tuning learning rate: a fifth of tiny's, after a short
warm-up of the fresh optimiser.
"""
from experiments.configs import tiny


def get_config():
  c = tiny.get_config()
  c.data.source = 'paired'
  c.data.dir = 'runs/pairs'
  c.train.learning_rate = 2e-4
  c.train.warmup_steps = 20
  c.train.num_steps = 300
  c.train.eval_every_steps = 100
  c.train.checkpoint_every_steps = 100
  return c
