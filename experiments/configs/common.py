"""Config sections shared by every experiment; each experiment file overrides fields.

Every hyper-parameter of the project lives here or in an experiment file, none in library code.
"""
import ml_collections


def audio_config(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80,
                 fmin=0.0, fmax=None):
  """The mel frontend: sample rate in Hz, window and hop in samples, band edges in Hz."""
  c = ml_collections.ConfigDict()
  c.sample_rate = sample_rate
  c.n_fft = n_fft
  c.win_length = win_length
  c.hop_length = hop_length
  c.n_mels = n_mels
  c.fmin = fmin
  c.fmax = fmax if fmax is not None else sample_rate / 2
  c.window = 'hann'
  c.power = 1.0            # 1: magnitude mel, 2: power mel.
  c.log_floor = 1e-5       # log(max(mel, log_floor)), natural log.
  c.pad_mode = 'reflect'   # centred frames, as librosa center=True.
  c.peak_normalize = 0.9   # loaded audio is scaled to this peak; 0 disables.
  return c


def base_model_config():
  """The paper's WaveGrad Base topology (hop 300 = 5*5*3*2*2)."""
  c = ml_collections.ConfigDict()
  c.mel_channels = 768
  c.upsample_factors = (5, 5, 3, 2, 2)
  c.upsample_channels = (512, 512, 256, 128, 128)
  c.upsample_dilations = ((1, 2, 1, 2), (1, 2, 1, 2), (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8))
  c.waveform_channels = 32
  c.downsample_factors = (2, 2, 3, 5)
  c.downsample_channels = (128, 128, 256, 512)
  c.downsample_dilations = (1, 2, 4)
  c.downsample_mode = 'interpolate'   # 'interpolate' or 'conv' (strided conv, as the paper).
  c.noise_encoding_scale = 5000.0
  c.leaky_relu_slope = 0.2
  c.dtype = 'float32'                 # compute dtype: 'float32' or 'bfloat16'; params stay float32.
  return c


def diffusion_config():
  """The training noise schedule (betas linear 1e-6 .. 0.01 over 1000 steps)."""
  c = ml_collections.ConfigDict()
  c.train_schedule = 'linear:1e-6:0.01:1000'
  c.loss = 'l1'
  return c


def sampling_config():
  """Reverse-diffusion options and the named inference schedules.

  A schedule spec is 'linear:start:end:steps', 'fibonacci:base:steps', 'list:b1,b2,...',
  a path to a JSON file, or one of the names in `named_schedules`.
  """
  c = ml_collections.ConfigDict()
  c.schedule = '6'
  c.noise_scale = 'posterior'   # 'posterior' (sigma~) or 'beta' (sqrt(beta_n)).
  c.clip = 0.0                  # >0 clips y_n to [-clip, clip] after every step.
  c.eta = 1.0                   # 1: ancestral sampler, 0: deterministic (DDIM-style).
  c.named_schedules = ml_collections.ConfigDict({
      '6': 'list:1e-6,1.893e-5,1.194e-4,1.005e-3,1.109e-2,0.06',
      '6_diffwave': 'list:1e-4,1e-3,1e-2,0.05,0.2,0.5',
      '25': 'fibonacci:1e-6:25',
      '50': 'linear:1e-4:0.05:50',
      '1000': 'linear:1e-6:0.01:1000',
  })
  return c


def data_config():
  """Where training audio comes from and how it is cut (owned by the input pipeline)."""
  c = ml_collections.ConfigDict()
  c.source = 'fillets'          # 'fillets' (embedded corpus), 'ljspeech', 'folder'.
  c.dir = '/usr/share/games/fillets-ng/sound'
  c.segment_frames = 24         # mel frames per training crop (x hop = samples).
  c.heldout_fraction = 0.02
  c.shuffle_seed = 0
  return c


def train_config():
  """Optimisation and run-length settings (owned by train.py)."""
  c = ml_collections.ConfigDict()
  c.batch_size = 256
  c.num_steps = 1_000_000
  c.learning_rate = 2e-4
  c.warmup_steps = 1000
  c.grad_clip_norm = 1.0
  c.ema_decay = 0.9999
  return c


def get_common_config():
  """A full config with every section; experiment files override fields."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.audio = audio_config()
  c.model = base_model_config()
  c.diffusion = diffusion_config()
  c.sampling = sampling_config()
  c.data = data_config()
  c.train = train_config()
  return c
