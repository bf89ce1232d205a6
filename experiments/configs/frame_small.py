"""The frame-domain ConvNeXt denoiser sized for 2 CPU cores, under the paper's process.

tiny's frontend (22.05 kHz, hop 256, 80 mels) and data; the network works on 86 STFT frames per
second of audio instead of 22,050 samples, so crops can be longer and batches larger at the same
CPU time. `python -m experiments.model_size --config=experiments/configs/frame_small.py` prints
its parameters and multiply-accumulates per second of audio. Override the process with
--config.process.name=flow (or use frame_small_flow.py).
"""
from experiments.configs import common
from experiments.configs import small


def get_config():
  c = small.get_config()
  c.model = common.frame_model_config()
  c.model.n_fft = 1024
  c.model.dim = 192
  c.model.intermediate_dim = 576
  c.model.num_layers = 6
  c.model.input_kernel_size = 3  # the input conv on 2 * 513 + 80 channels is a third of the MACs at 7
  c.data.segment_frames = 32    # 8,192 samples = 0.37 s.
  c.train.batch_size = 16
  c.train.num_steps = 100_000
  c.train.learning_rate = 1e-3
  c.train.warmup_steps = 500
  c.train.eval_every_steps = 2500
  c.train.checkpoint_every_steps = 2500
  return c
