"""Config sections shared by every experiment; each experiment file overrides fields.

Every hyper-parameter of the project lives here or in an experiment file, none in library code.
"""
import ml_collections


def audio_config(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80,
                 fmin=0.0, fmax=None):
  """The mel frontend: sample rate in Hz, window and hop in samples, band edges in Hz.

  This is our own convention, 'wavegrad'; audio_config_hifigan / _parallel_wavegan / _espnet2 /
  _lmnt give the other
  conventions in wide use. wavegrad_jax/audio/conventions/ documents every field.
  """
  c = ml_collections.ConfigDict()
  c.convention = 'wavegrad'  # the recipe the fields below follow, or 'custom' for your own mix.
  c.sample_rate = sample_rate
  c.n_fft = n_fft
  c.win_length = win_length
  c.hop_length = hop_length
  c.n_mels = n_mels
  c.fmin = fmin
  c.fmax = fmax if fmax is not None else sample_rate / 2
  c.window = 'hann'
  c.power = 1.0            # 1: magnitude mel, 2: power mel.
  c.framing = 'center'     # frame i centred on sample i * hop ('hop_center': on hop i's middle).
  c.pad_mode = 'reflect'   # how the n_fft // 2 samples beyond each end are made (librosa center).
  c.stft_norm = 'none'     # 'window': |STFT| / sqrt(sum(window^2)), as torchaudio normalized=True.
  c.magnitude_eps = 0.0    # |STFT| = sqrt(re^2 + im^2 + magnitude_eps).
  c.power_floor = 0.0      # |STFT| = sqrt(max(re^2 + im^2 + magnitude_eps, power_floor)).
  c.mel_scale = 'slaney'   # librosa.filters.mel htk=False ('htk': True).
  c.mel_norm = 'slaney'    # area-normalised triangles ('none': peak 1).
  c.log_scale = 'ln'       # 'ln', 'log10' or 'db' (20 / power * log10 - db_ref).
  c.log_floor = 1e-5       # the log of max(mel, log_floor).
  c.db_ref = 0.0           # 'db' only.
  c.normalize = 'none'     # 'none', 'meanvar' (per band, with stats_file) or 'range'.
  c.stats_file = ''        # 'meanvar': .npy [2, n_mels] mean and scale, or ESPnet GlobalMVN .npz.
  c.range_in = (-100.0, 0.0)  # 'range': this span of the log values ...
  c.range_out = (0.0, 1.0)    # ... maps linearly onto this one, clipped.
  c.peak_normalize = 0.9   # loaded audio is scaled to this peak; 0 disables.
  return c


def audio_config_hifigan(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256,
                         n_mels=80, fmin=0.0, fmax=8000.0):
  """HiFi-GAN's mels (meldataset.py), which Tacotron 2 / FastSpeech 2 models paired with it emit.

  (n_fft - hop) / 2 reflect padding at each end and no centring, |STFT| = sqrt(re^2 + im^2 + 1e-9),
  Slaney filterbank, ln(max(mel, 1e-5)); audio scaled to a 0.95 peak as its training data.
  """
  c = audio_config(sample_rate, n_fft, win_length, hop_length, n_mels, fmin, fmax)
  c.convention = 'hifigan'
  c.framing = 'hop_center'
  c.magnitude_eps = 1e-9
  c.peak_normalize = 0.95
  return c


def audio_config_parallel_wavegan(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256,
                                  n_mels=80, fmin=80.0, fmax=7600.0, stats_file='',
                                  convention='parallel_wavegan'):
  """ParallelWaveGAN's mels (preprocess.py logmelfilterbank; LJSpeech recipe sizes).

  Centred reflect-padded |STFT| with no floor, Slaney filterbank, log10(max(mel, 1e-10)); with a
  stats_file (ParallelWaveGAN's stats.npy or ESPnet's GlobalMVN .npz) also (v - mean) / scale per
  band. Audio keeps its level (no peak normalisation). `convention` is the name recorded:
  'parallel_wavegan', or its alias 'espnet' (audio_config_espnet).
  """
  c = audio_config(sample_rate, n_fft, win_length, hop_length, n_mels, fmin, fmax)
  c.convention = convention
  c.log_scale = 'log10'
  c.log_floor = 1e-10
  c.normalize = 'meanvar' if stats_file else 'none'
  c.stats_file = stats_file
  c.peak_normalize = 0.0
  return c


def audio_config_espnet(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256,
                        n_mels=80, fmin=80.0, fmax=7600.0, stats_file=''):
  """ParallelWaveGAN's mels under their first name here, 'espnet' (an alias, kept for the configs,
  checkpoints and commands that use it): audio_config_parallel_wavegan, recorded as 'espnet'.
  ESPnet2's own TTS features are audio_config_espnet2.
  """
  return audio_config_parallel_wavegan(sample_rate, n_fft, win_length, hop_length, n_mels, fmin,
                                       fmax, stats_file, convention='espnet')


def audio_config_espnet2(sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256,
                         n_mels=80, fmin=80.0, fmax=7600.0, stats_file=''):
  """ESPnet2's TTS mels (espnet2/tts/feats_extract/log_mel_fbank.py LogMelFbank, log_base 10).

  As audio_config_parallel_wavegan but the power spectrum is floored before the root:
  |X| = sqrt(max(re^2 + im^2, 1e-10)), so silence is 1e-5 per bin, not 0. LJSpeech recipe sizes;
  a stats_file is ESPnet's GlobalMVN .npz (feats_stats.npz) for (v - mean) / scale.
  """
  c = audio_config_parallel_wavegan(sample_rate, n_fft, win_length, hop_length, n_mels, fmin,
                                    fmax, stats_file, convention='espnet2')
  c.power_floor = 1e-10
  return c


def audio_config_lmnt(sample_rate=22050, n_fft=None, win_length=None, hop_length=300, n_mels=128,
                      fmin=20.0, fmax=None):
  """lmnt-com wavegrad / diffwave's mels (preprocess.py): dB normalised to [0, 1].

  torchaudio MelSpectrogram (centred reflect, |STFT| / sqrt(sum(window^2)), HTK filterbank without
  norm), 20 log10(max(mel, 1e-5)) - 20, then clip((dB + 100) / 100, 0, 1). Its sizes follow the
  hop: win = 4 * hop, n_fft the next power of two. The defaults are lmnt WaveGrad's; DiffWave's are
  hop_length=256, n_mels=80. Audio keeps its level.
  """
  win_length = win_length or 4 * hop_length
  n_fft = n_fft or 2 ** (win_length - 1).bit_length()
  c = audio_config(sample_rate, n_fft, win_length, hop_length, n_mels, fmin, fmax)
  c.convention = 'lmnt'
  c.stft_norm = 'window'
  c.mel_scale = 'htk'
  c.mel_norm = 'none'
  c.log_scale = 'db'
  c.log_floor = 1e-5
  c.db_ref = 20.0
  c.normalize = 'range'
  c.range_in = (-100.0, 0.0)
  c.range_out = (0.0, 1.0)
  c.peak_normalize = 0.0
  return c


def base_model_config():
  """The paper's WaveGrad Base topology (hop 300 = 5*5*3*2*2)."""
  c = ml_collections.ConfigDict()
  c.name = 'wavegrad'                 # the variant in wavegrad_jax.models.MODELS; its fields follow.
  c.mel_channels = 768
  c.upsample_factors = (5, 5, 3, 2, 2)
  c.upsample_channels = (512, 512, 256, 128, 128)
  # () derives one 4-tuple per UBlock from dilation_order (below); explicit tuples are used as
  # given ('custom'). A run records both, resolved.
  c.upsample_dilations = ()
  c.waveform_channels = 32
  c.downsample_factors = (2, 2, 3, 5)
  c.downsample_channels = (128, 128, 256, 512)
  c.downsample_dilations = (1, 2, 4)
  c.downsample_mode = 'interpolate'   # 'interpolate' or 'conv' (strided conv, as the paper).
  c.noise_encoding_scale = 5000.0
  c.leaky_relu_slope = 0.2
  c.dtype = 'float32'                 # compute dtype: 'float32' or 'bfloat16'; params stay float32.
  # UBlock dilations by name (wavegrad_jax.models.upsample_dilations_for): 'paper' (Appendix A:
  # 1,2,4,8 on the UBlocks whose output stride is >= 4 samples, nearest the mel; 1,2,1,2 on the
  # finer ones), 'reimplementations' (lmnt-com/wavegrad and ivanvovk/WaveGrad: the paper's list in
  # reverse block order), or 'custom' (upsample_dilations as given).
  c.dilation_order = 'paper'
  return c


def frame_model_config():
  """The frame-domain ConvNeXt denoiser (wavegrad_jax/models/frame.py), Vocos-sized defaults.

  Replaces the whole `model` section: model.name='frame_convnext' and its own fields.
  """
  c = ml_collections.ConfigDict()
  c.name = 'frame_convnext'
  c.n_fft = 1024                # STFT size = Hann window, samples (at least twice the STFT hop).
  c.hop_divisor = 1             # STFT hop = audio.hop_length / hop_divisor.
  c.dim = 512
  c.intermediate_dim = 1536
  c.num_layers = 8
  c.kernel_size = 7             # depthwise kernel of each block, frames.
  c.input_kernel_size = 7       # the input convolution's kernel, frames.
  c.cond_dim = 128              # width of the noise-level / time embedding.
  c.noise_encoding_scale = 1000.0
  c.output = 'real_imag'        # 'real_imag' or 'mag_phase' (Vocos) complex STFT head.
  c.framing = 'hop_center'      # STFT framing of the network ('hop_center' or 'center').
  c.dtype = 'float32'
  # Output spectrum += g(noise level or t) * input spectrum, a learned per-bin gain: lets targets
  # that carry the input's noise (eps, velocity) through the narrow stack.
  c.input_skip = True
  # The skip gain's initial value (0: the input is left out at first; 1 with zero_head: the
  # network starts as the identity on its input, e.g. a Griffin-Lim source it refines).
  c.input_skip_init = 0.0
  c.zero_head = False           # start the head's weights at 0 (the output is the skip path).
  return c


def diffusion_config():
  """The training noise schedule (betas linear 1e-6 .. 0.01 over 1000 steps)."""
  c = ml_collections.ConfigDict()
  c.train_schedule = 'linear:1e-6:0.01:1000'
  c.loss = 'l1'
  # 'standard': the paper's N(0, I) noise. 'priorgrad': PriorGrad's mel-dependent prior (Lee et
  # al., ICLR 2022; wavegrad_jax/diffusion/priors.py): each frame's noise std is its normalised energy, in
  # training and sampling alike.
  c.prior = 'standard'
  c.prior_std_min = 0.1         # PriorGrad: the smallest frame std.
  # PriorGrad: (min, max) frame energy of the training data; () measures it when training starts
  # and records it in the run's config.json, which inference then reads.
  c.prior_energy_range = ()
  # PriorGrad: frame energies above this are clamped to it, and it replaces the measured maximum,
  # so the std stays <= 1 (the official code's max_energy_override = 4; linear-mel units); 0 no
  # cap. A run saved without this field (from before it) has no cap when restored.
  c.prior_max_energy = 4.0
  return c


def process_config():
  """The generative process (wavegrad_jax/processes): what the network learns and how it samples.

  'wavegrad' (the paper's noise-level process; its schedule and loss are in the diffusion section)
  or 'flow' (flow matching on the straight path; options below). The source distribution is
  chosen for both by diffusion.prior ('standard' N(0, I), or PriorGrad's mel-shaped prior).
  """
  c = ml_collections.ConfigDict()
  c.name = 'wavegrad'
  c.flow = ml_collections.ConfigDict()
  # 'x1': the network predicts the clean endpoint (WaveFM, Flow2GAN); 'velocity': x1 - x0.
  c.flow.prediction = 'x1'
  c.flow.loss = 'l1'            # 'l1' or 'l2' on the prediction's error.
  # 'wavefm': the x1 error weighted by 1 / max(0.1, 1 - t) (WaveFM); 'none': unweighted.
  c.flow.weighting = 'none'
  c.flow.sigma = 1.0            # source N(0, sigma^2 I) (times the prior's std); Flow2GAN: 0.1.
  # The source's mean: 'noise' (0) or 'griffin_lim' (fast Griffin-Lim from the mel's pseudo-inverse
  # magnitude, source_iterations projections with momentum source_momentum, from a random phase).
  c.flow.source = 'noise'
  c.flow.source_iterations = 32
  c.flow.source_momentum = 0.99
  # Spectral losses on the one-step estimate of the clean waveform (x1_hat; for 'wavegrad' the
  # clean estimate from eps, weighted by the noise level squared), for either process.
  c.spectral = ml_collections.ConfigDict()
  c.spectral.mrstft_weight = 0.0   # multi-resolution STFT (spectral convergence + log |S|).
  c.spectral.energy_weight = 0.0   # Flow2GAN's energy-scaled STFT loss.
  c.spectral.resolutions = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
  return c


def adversarial_config():
  """Adversarial fine-tuning of a trained run's k-step sampler (experiments.finetune_adversarial).

  Not part of the common config: a fine-tune's config adds this section to its teacher's config.
  Weights and Adam settings are HiFi-GAN's (jik876/hifi-gan config_v1.json, train.py); the
  discriminators' sizes are fields of their sections (wavegrad_jax/models/discriminators.py).
  """
  c = ml_collections.ConfigDict()
  c.teacher = ''                # the trained run's workdir (the launcher's --teacher sets it).
  c.steps = 1                   # k: network evaluations of the unrolled sampler, 1 .. 8.
  c.schedule = ''               # its grid ('': k, uniform times for flow, named 'k' for wavegrad).
  c.discriminators = ('mpd', 'mrd')  # names in wavegrad_jax.models.DISCRIMINATORS.
  c.mpd = ml_collections.ConfigDict()
  c.mpd.periods = (2, 3, 5, 7, 11)
  c.mpd.channels = (32, 128, 512, 1024, 1024)
  c.mrd = ml_collections.ConfigDict()
  c.mrd.resolutions = ((1024, 256, 1024), (2048, 512, 2048), (512, 128, 512))
  c.mrd.channels = 32
  c.loss = 'lsgan'              # 'lsgan' (HiFi-GAN) or 'hinge' (Vocos).
  c.adversarial_weight = 1.0
  c.feature_weight = 2.0        # feature matching (HiFi-GAN: 2).
  c.mel_weight = 45.0           # mel L1 in the run's frontend (HiFi-GAN: 45).
  c.disc_learning_rate = 2e-4
  c.disc_adam_b1 = 0.8
  c.disc_adam_b2 = 0.99
  c.remat = False               # recompute each network call in the backward pass (k > 1).
  return c


def gla_config():
  """GLA-Grad phase correction inside the reverse steps (Liu et al., ICASSP 2024); off by default.

  Chosen steps pull the waveform towards a target |STFT| with Griffin-Lim projections. STFT sizes
  are in samples; 0 (or '' for strings) inherits the `audio` section's value. The defaults are
  GLA-Grad's as the authors' code runs it (the sampler preset 'gla_grad'), which also clamps y to
  [-1, 1] after every step: enabled=True needs sampling.clip=1 too (refused otherwise, naming it).
  The presets 'gla_grad', 'gla_grad_fast' (the textbook fast Griffin-Lim) and
  'gla_clean_estimate' (our variant) set every field.
  """
  c = ml_collections.ConfigDict()
  c.enabled = False
  # 'all', 'none', 'first:K' (the K noisiest steps, run first; GLA-Grad uses 'first:3'),
  # 'last:K', or 'list:i,j,...' of schedule indices (0 = the last step run, N - 1 the first).
  c.steps = 'first:3'
  c.iterations = 32             # Griffin-Lim projections per corrected step (GLA-Grad: 32).
  # 'authors': the GLA-Grad code's Griffin-Lim loop, quirks included (wavegrad_jax/audio/phase.py);
  # 'fast': the textbook fast Griffin-Lim (Perraudin et al.).
  c.variant = 'authors'
  # The acceleration. 'authors': their m, t = c_k - m c_{k-1} (GLA-Grad: 0.1). 'fast': Perraudin's
  # a, t = c_k + a (c_k - c_{k-1}); 0 is plain GLA, whose spectral error never increases; the
  # GLA-Grad momentum 0.1 is a = 0.1 / 0.9 there.
  c.momentum = 0.1
  # Target |STFT|: 'mel_pinv' (conditioning log-mel through the filterbank pseudo-inverse; needs
  # the GLA STFT to be the audio frontend's) or 'given' (the caller passes target_magnitude,
  # e.g. the reference audio's |STFT| in copy synthesis).
  c.magnitude = 'mel_pinv'
  # 'mean': project the step's deterministic update before its noise, as the GLA-Grad code;
  # 'clean_estimate': project y0_hat and re-derive eps at the step's noise level (our variant).
  c.placement = 'mean'
  c.mean_peak = 0.95            # 'mean' only: rescale the projection to this peak; 0 keeps scale.
  c.n_fft = 0
  c.hop_length = 0
  c.win_length = 0
  c.window = ''
  c.pad_mode = ''
  return c


def sampling_config():
  """Reverse-diffusion options and the named inference schedules.

  A schedule spec is 'linear:start:end:steps', 'fibonacci:base:steps', 'list:b1,b2,...',
  a path to a JSON file (e.g. the schedule search's best_N6.json), or one of the names in
  `named_schedules`.
  """
  c = ml_collections.ConfigDict()
  c.schedule = '6'              # a schedule that starts from noise (see named_schedules).
  c.noise_scale = 'posterior'   # 'posterior' (sigma~) or 'beta' (sqrt(beta_n)).
  c.clip = 0.0                  # >0 clamps y_n to [-clip, clip] after every step (lmnt: 1).
  # The sampler: 1 is the paper's ancestral step; 0 the deterministic DDIM-style step on the same
  # continuous noise levels (fewer steps, same output for the same y_N); in between, DDIM with
  # eta * sigma_posterior noise. Below 1 needs noise_scale='posterior'.
  c.eta = 1.0
  c.gla = gla_config()
  # Process 'flow' only: the ODE solver over the time grid ('euler', 'midpoint' or 'heun'); a
  # flow run reads sampling.schedule and eval.schedules as time grids ('N' = N uniform steps).
  c.solver = 'euler'
  # Process 'flow' only: Griffin-Lim projections of the final sample onto the mel's
  # pseudo-inverse magnitude (GLA-Grad's correction, once, after the last step; fast Griffin-Lim
  # with this momentum); 0 off. They cost FFT pairs, not network evaluations.
  c.final_projection = 0
  c.final_projection_momentum = 0.99
  # The plain names start from noise: their last level sqrt(alpha_bar_N) leaves the speech at
  # most start_max_snr_db above the noise (levels 0.15, 0.081, 0.068, 0.081). The published
  # originals keep their source's name; they end far from noise, so using one warns.
  c.named_schedules = ml_collections.ConfigDict({
      # Ours: DiffWave's fast schedule (6_diffwave below) with its last two betas raised from
      # 0.2, 0.5 to 0.5, 0.95, so that y_N is noise.
      '6': 'list:1e-4,1e-3,1e-2,0.05,0.5,0.95',
      # Ours, for comparisons at 1, 2 and 4 network evaluations, ending like '6' (levels 0.17,
      # 0.16, 0.15). One ancestral step from y_1 is the clean estimate y0_hat itself.
      '1': 'list:0.97',
      '2': 'list:0.5,0.95',
      '4': 'list:1e-3,0.05,0.5,0.95',
      # Ours: linear from 1e-4 like DiffWave's and WaveGrad's 50-step schedules, to ends where y_N
      # is about as noisy as the training schedule's noisiest sample (level 0.081).
      '25': 'linear:1e-4:0.35:25',
      '50': 'linear:1e-4:0.2:50',
      # The training schedule (the paper, lmnt-com/wavegrad, ivanvovk/WaveGrad).
      '1000': 'linear:1e-6:0.01:1000',
      # ivanvovk/WaveGrad schedules/pretrained/6iters.pt (grid search on its LJSpeech model, run
      # with the clean estimate clipped): ends at level 0.96.
      '6_ivanvovk': 'list:1e-6,1.893e-5,1.194e-4,1.005e-3,1.109e-2,0.06',
      # GLA-Grad/GLA-Grad noise_schedule.npy, the schedule of the published GLA-Grad: level 0.95.
      '6_glagrad': 'list:9.2e-6,9.3e-5,6.6e-5,6.6e-3,6.9e-3,9.2e-2',
      # lmnt-com/diffwave inference_noise_schedule (DiffWave's fast sampling): level 0.61.
      '6_diffwave': 'list:1e-4,1e-3,1e-2,0.05,0.2,0.5',
      # ivanvovk/WaveGrad 25iters.pt: 1e-6 times the Fibonacci numbers: level 0.85.
      '25_fibonacci': 'fibonacci:1e-6:25',
      # lmnt-com/diffwave's training schedule, the 50-step schedule attributed to WaveGrad: 0.53.
      '50_diffwave': 'linear:1e-4:0.05:50',
  })
  # >0 clamps the clean estimate y0_hat to [-clip_x0, clip_x0] inside every step, the step then
  # taken from it (ivanvovk/WaveGrad: 1).
  c.clip_x0 = 0.0
  # 'diffusion' (the model's reverse diffusion), or 'griffin_lim': no model, the gla section's
  # Griffin-Lim (iterations, momentum, magnitude) run from the starting noise, a baseline.
  c.algorithm = 'diffusion'
  # Starting from noise (wavegrad_jax.diffusion.schedules.start_snr_db): the sampler draws y_N ~ N(0, I),
  # so a schedule is consistent only if its y_N = l_N y_0 + sqrt(1 - l_N^2) eps holds the speech
  # at most this many dB above its noise; the sampler, the search and evaluation warn once with
  # the numbers otherwise. -30 dB is l_N <= 0.27 for speech of RMS 0.11.
  c.start_max_snr_db = -30.0
  # Speech's peak-to-RMS ratio (dB), which estimates its RMS from audio.peak_normalize where no
  # audio is at hand (the embedded corpus: 16.5 dB held-out, 18.8 dB unseen speakers).
  c.speech_crest_db = 18.0
  return c


def data_config():
  """Where training audio comes from and how it is cut (owned by the input pipeline)."""
  c = ml_collections.ConfigDict()
  c.source = 'fillets'          # 'fillets' (embedded corpus), 'ljspeech', 'folder'.
  c.dir = '/usr/share/games/fillets-ng/sound'  # the source's folder (fillets: its sound/ folder).
  # Prepared datasets go to <tfds_dir>/<source builder>/<config name>/<version>/; the config name
  # encodes every value that changes the stored data, so edits build anew instead of reusing.
  c.tfds_dir = '~/tensorflow_datasets'
  c.segment_frames = 24         # mel frames per training crop (x hop = samples).
  c.heldout_fraction = 0.02     # share of the training speakers' files held out, by id hash.
  # A fraction that picks fewer held-out files than this (a small folder corpus) holds out this
  # many instead (the lowest id hashes, a superset of the fraction's pick); without held-out files
  # a run has no evaluation, no samples and no best checkpoint. 0: no minimum. Ignored when
  # heldout_fraction is 0, which asks for no held-out set.
  c.min_heldout_utterances = 2
  c.shuffle_seed = 0            # epoch permutations and crop offsets of the training batches.
  c.max_files = 0               # >0: build from at most this many files per speaker pool (tests).
  c.unseen_speakers = ()        # ljspeech/folder: speaker ids kept out of training ('unseen').
  c.speaker_level = 1           # folder: speaker id = the directory this many levels above a file.
  c.extensions = ('wav', 'flac', 'ogg')  # folder: audio file endings searched for.
  # Build and read speed only; they never change the stored data.
  c.build_threads = 2           # threads decoding and resampling files during a build.
  c.build_chunk_samples = 2**24  # samples loaded at once during a build, grouped into mel batches.
  c.mel_batch_samples = 2**19   # samples per jitted mel call during a build (windows x length).
  c.mel_window_frames = 64      # build: mels are computed on windows of this many frames.
  c.prefetch_batches = 4        # training batches read ahead by TrainBatches.iterate's thread.
  c.read_threads = 4            # threads reading one training batch's records.
  # source='paired' (wavegrad_jax/data/paired.py): <id>.npy mels, in the audio section's
  # convention, beside <id>.<one of extensions> audio, e.g. a TTS model's teacher-forced mels.
  c.paired_mel_layout = 'frames_first'  # [frames, n_mels]; 'mels_first': [n_mels, frames].
  c.paired_tolerance_frames = 1.0  # frames * hop may differ from the audio length by this many hops

  return c


def train_config():
  """Optimisation, run-length, evaluation and checkpoint cadence (owned by train.py).

  Steps count optimiser updates; batch sizes are global (summed over every device and host).
  """
  c = ml_collections.ConfigDict()
  c.batch_size = 256            # global batch; must divide evenly over the mesh's batch axes.
  c.num_steps = 1_000_000
  c.learning_rate = 2e-4        # peak Adam learning rate, reached after warm-up.
  c.lr_schedule = 'constant'    # after the linear warm-up: 'constant' or 'cosine'.
  c.warmup_steps = 1000
  c.end_lr_factor = 0.0         # 'cosine': final learning rate / peak.
  c.adam_b1 = 0.9
  c.adam_b2 = 0.999
  c.adam_eps = 1e-8
  c.grad_clip_norm = 1.0        # global-norm clipping; 0 disables.
  c.ema_decay = 0.9999
  # Ramps the EMA decay as min(ema_decay, (1 + step) / (10 + step)) so that short runs do not
  # evaluate an average dominated by the random initialisation.
  c.ema_warmup = True
  c.log_every_steps = 100       # train scalars (means over the interval) to TensorBoard + JSONL.
  c.eval_every_steps = 10_000   # held-out loss, audio samples and the best checkpoint; 0 disables.
  c.checkpoint_every_steps = 5_000
  c.keep_checkpoints = 3        # latest K periodic checkpoints; the best one is kept separately.
  c.eval_batch_size = 0         # held-out loss batch size; 0: train.batch_size.
  c.heldout_loss_batches = 8    # fixed held-out crops = heldout_loss_batches * eval_batch_size.
  c.eval_seed = 1234            # noise of the held-out loss, fixed so evaluations are comparable.
  c.num_audio_examples = 4      # held-out utterances vocoded (EMA params) at each evaluation.
  c.audio_example_seconds = 3.0 # ... each cut to at most this many seconds.
  c.sample_seed = 4321          # reverse-diffusion noise of those examples, fixed across evals.
  c.sample_schedule = ''        # their inference schedule; '': sampling.schedule.
  c.heldout_loss_utterances = 64  # held-out utterances the crops come from; 0: all.
  # Fine-tuning: a new run starts from another run's weights with a fresh optimiser (and this
  # config's learning rate). A workdir (its latest checkpoint), <workdir>/checkpoints/<step> or
  # <workdir>/checkpoints_best; its model and frontend must match this config's. Used only while
  # this run's workdir has no checkpoint of its own (a resumed fine-tune continues from those).
  c.init_from = ''
  c.init_from_ema = True        # start from the EMA weights; False: the raw trained weights.
  return c


def mesh_config():
  """The device mesh of `jax.jit` training; adding an axis here is all data/FSDP parallelism needs.

  `shape` lists one size per axis; one entry may be -1 (all remaining devices). The batch is split
  over `batch_axes` (their product must divide the global batch size). Parameters, optimiser state
  and EMA are replicated unless `fsdp_axis` names a mesh axis, in which case each array's largest
  dimension divisible by that axis's size is sharded over it (ZeRO-3 style).
  """
  c = ml_collections.ConfigDict()
  c.axis_names = ('data',)
  c.shape = (-1,)
  c.batch_axes = ('data',)
  c.fsdp_axis = ''
  # Multi-process runs: 'auto' calls jax.distributed.initialize() when the environment shows more
  # than one process (JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES, SLURM_NTASKS > 1,
  # OMPI_COMM_WORLD_SIZE > 1, TPU_WORKER_HOSTNAMES with several hosts); 'always' / 'never' force it.
  c.distributed = 'auto'
  # jax.distributed coordination: how long processes wait for each other to start, after how many
  # seconds without a heartbeat a process counts as dead (its peers then stop instead of waiting),
  # and how long a finishing process waits for the others at shut-down.
  c.initialization_timeout_seconds = 300
  c.heartbeat_timeout_seconds = 100
  c.shutdown_timeout_seconds = 300
  return c


def checkpoint_config():
  """Orbax checkpointing (owned by checkpoints.py); directories are relative to the workdir."""
  c = ml_collections.ConfigDict()
  c.directory = 'checkpoints'       # periodic checkpoints, the latest train.keep_checkpoints kept.
  c.best_directory = 'checkpoints_best'  # the single best by held-out loss (written at evals).
  c.keep_best = True
  c.async_save = True               # write in a background thread while training continues.
  return c


def logging_config():
  """Where and how a run reports (owned by train.py); paths are relative to the workdir."""
  c = ml_collections.ConfigDict()
  c.tensorboard_dir = 'tensorboard'
  c.metrics_file = 'metrics.jsonl'  # one JSON object per log/eval step, for scripts and tests.
  c.samples_dir = 'samples'         # samples/step_<N>/<utterance id>.wav
  c.progress_bar = True             # tqdm on the console (process 0 only).
  # Every process appends, per step, the examples it read (global indices, record ids, crops) to
  # examples_read/process_<k>.jsonl: an audit of the data order and of its split over hosts.
  c.record_examples = False
  return c


def eval_config():
  """Evaluation and synthesis settings (owned by evaluate.py and synthesize.py)."""
  c = ml_collections.ConfigDict()
  c.schedules = '6,25,50,1000'  # comma-separated schedule specs, names or .json paths.
  c.split = 'heldout'           # 'heldout' (seen speakers) or 'unseen' (held-out speakers).
  c.max_utterances = 0          # 0: every utterance of the split.
  c.max_seconds = 0.0           # >0: cut each utterance to at most this many seconds.
  c.ema = True                  # vocode with the EMA weights.
  c.seed = 0                    # noise of the reverse diffusion.
  # Long inputs are vocoded as equal chunks so a sampler compiles once per (steps, chunk shape).
  c.chunk_frames = 128          # mel frames per chunk (x hop = samples).
  c.overlap_frames = 8          # frames shared by neighbouring chunks, cross-faded.
  c.batch_size = 16             # chunks per sampler call.
  c.files_per_group = 64        # synthesis: files whose chunks are batched together.
  # LS-MSE frontend: n_fft = win = window_hops * hop, hop / hop_divisor, log(mel + eps).
  c.ls_mse_window_hops = 4
  c.ls_mse_hop_divisor = 2
  c.ls_mse_eps = 1e-5
  c.mrstft_resolutions = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))  # (n_fft, hop, win)
  c.pesq = True                 # wideband PESQ at 16 kHz (slow-ish: host C code).
  c.stoi = True
  # Offline perceptual measures, an optional extra (pip install -r requirements-perceptual.txt):
  # DNSMOS P.835 / P.808 (no reference needed) and ViSQOL v3 speech-mode MOS-LQO (against the
  # reference). 'auto': measured when installed, else left out with a one-line hint; 'true':
  # required (an error naming the install command when missing); 'false': off.
  c.dnsmos = 'auto'
  c.visqol = 'auto'
  # DNSMOS rates 9.01 s windows: 'pad' shorter clips with zeros (stable), or 'tile' them with
  # copies of themselves as Microsoft's script does (a cut clip's score jumps with its length).
  c.dnsmos_short_clips = 'pad'
  c.write_wavs = True
  c.write_references = True     # also write the reference audio, for listening side by side.
  c.wav_subtype = 'PCM_16'      # soundfile subtype of written wavs.
  c.check_mel_range = True      # synthesis: reject .npy mels that do not look like natural-log mels.
  return c


def search_config():
  """Noise-schedule search settings (owned by schedule_search.py).

  Candidates are beta_n = m_n * 10^(e_n): exponents spread from exponent_low to exponent_high over
  the N steps, mantissas from `mantissas`; each is scored by LS-MSE on held-out mel segments.
  """
  c = ml_collections.ConfigDict()
  c.steps = '6'                 # comma-separated step budgets N.
  c.method = 'coordinate'       # 'grid' (every candidate), 'coordinate' or 'evolution'.
  c.mantissas = (1, 2, 3, 4, 5, 6, 7, 8, 9)
  c.exponent_low = -6.0
  c.exponent_high = -1.0
  c.round_exponents = True      # integer exponents (10^-3.5 is not on anyone's grid).
  # Shifts of e_n the search may also try. (0, 1) lets the last steps reach betas of 0.1 to 0.9,
  # which schedules that start from noise need (without it the lowest final noise level is 0.30,
  # where speech at a 0.9 peak is still at -29 dB SNR); (-1, 0, 1) widens further.
  c.exponent_moves = (0, 1)
  c.max_candidates = 0          # grid: score a seeded random subset this large; 0 = all.
  c.chunk_size = 32             # candidates per vmapped sampler call (padded to the device count).
  c.split = 'heldout'
  c.num_utterances = 2          # held-out utterances scored per candidate.
  c.segment_frames = 32         # mel frames cut from each (the loudest segment).
  c.seed = 0                    # noise shared by every candidate, and the evolution's draws.
  c.init_mantissa = 1           # coordinate/evolution start: every m_n = this.
  c.coordinate_max_sweeps = 4
  c.evolution_population = 16
  c.evolution_generations = 10
  c.evolution_elite = 4
  c.evolution_mutation_rate = 0.3
  c.table_size = 100            # rows in the ranked table; 0 = every scored candidate.
  c.compare_named = True        # also score the named schedules of each budget, for reference.
  # 'grid' without max_candidates is refused above this many candidates (9^6 = 531,441 at six
  # steps: about 12 h for tiny on 2 CPU cores); 0 lifts the cap.
  c.max_grid_candidates = 10_000
  # Process 'flow' (wavegrad_jax/evaluation/time_grid_search.py): the power family t_i = (i/N)^p the time-grid
  # search starts from; coordinate_max_sweeps above refines its best grid.
  c.flow_powers = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0)
  return c


def compile_config():
  """JAX's persistent compilation cache, used by every launcher (wavegrad_jax/training/compilation.py)."""
  c = ml_collections.ConfigDict()
  # Compiled programs are stored here and read back by later starts; '' turns the cache off.
  c.cache_dir = '~/.cache/wavegrad_jax/jax_cache'
  c.min_compile_seconds = 1.0   # programs that compile faster than this are not stored.
  return c


def get_common_config():
  """A full config with every section; experiment files override fields."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.audio = audio_config()
  c.model = base_model_config()
  c.diffusion = diffusion_config()
  c.process = process_config()
  c.sampling = sampling_config()
  c.data = data_config()
  c.train = train_config()
  c.mesh = mesh_config()
  c.checkpoint = checkpoint_config()
  c.logging = logging_config()
  c.eval = eval_config()
  c.search = search_config()
  c.compile = compile_config()
  return c


def get_config():
  """The defaults alone. Inference launchers read it when no --config is given, so that their
  `--config.<section>.<field>=value` overrides can be applied on top of a checkpoint's config."""
  return get_common_config()
