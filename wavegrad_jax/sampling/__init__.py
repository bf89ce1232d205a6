"""Reverse diffusion: one jitted scan over a schedule of any length (6 to 1000 steps).

The denoiser is any function eps_fn(params, noisy [B, T], mel [B, F, M], noise_level [B]) -> [B, T],
so the trained model and analytic oracles in tests plug in alike. Schedules are traced arrays, so a
sampler compiles once per (schedule length, batch shape), never per step or per schedule.
May import: jax, numpy, `wavegrad_jax.audio` (the STFT, Griffin-Lim), `wavegrad_jax.diffusion`
(noise levels, schedules, the prior) and the shared leaves; never a Flax module, processes,
training, inference or evaluation code.

Owns: `scan.py` (the jitted scan, `make_sampler` / `make_multi_schedule_sampler`, the step rules),
`sampler_options.py` (`SamplerOptions`), `gla.py` (`GLAOptions`, GLA step masks and the
correction), `presets.py` (`SAMPLER_PRESETS`, the process each samples), `start_check.py` (the
start-from-noise warning, `ScheduleStartOptions`, `ScheduleCheckedSampler`) and `options.py` (the
edge: `*_from_config` adapters, the preset config copies). This module re-exports their public
names, so `sampling.X` works for all of them.

Options of the one sampler travel as one frozen `SamplerOptions`, built once from
`config.sampling` (`SamplerOptions.from_config`) or by hand; named presets (`SAMPLER_PRESETS`)
set config fields on top of a config. The options:
  eta: 1 is the paper's ancestral step, 0 the deterministic DDIM-style step (Song et al., 2021) on
    the same continuous noise levels, in between DDIM with eta times the posterior noise.
  noise_scale: the ancestral step's noise ('posterior' or 'beta').
  clip: y clamped to [-clip, clip] after each step, as lmnt-com/wavegrad does with 1.
  clip_x0: the clean estimate y0_hat clamped to [-clip_x0, clip_x0] inside each step, the step
    then taken from the clamped estimate, as ivanvovk/WaveGrad does with 1.
  gla: GLA-Grad phase correction (Liu et al., ICASSP 2024) inside chosen reverse steps: Griffin-Lim
    projections that pull the waveform towards a target |STFT|, from the conditioning mel's
    pseudo-inverse or given by the caller (copy synthesis). Which steps use it is a traced [N] mask,
    so changing the selection never recompiles.
  algorithm: 'diffusion' (the above), or 'griffin_lim': no model at all, the gla section's
    Griffin-Lim run from the same starting noise y_N, the baseline that shows what the diffusion
    model adds.

Where the correction enters a step (`GLAOptions.placement`):
  'mean' (GLA-Grad, presets 'gla_grad' and 'gla_grad_fast'): as the authors' code
    (github.com/GLA-Grad/GLA-Grad, gla_extension.py `gla_update`, called in lmnt-com/wavegrad's
    loop after the mean and before the noise): the step's deterministic part (the ancestral
    posterior mean, or DDIM's sqrt(abar_{n-1}) y0 + direction term) is replaced by its
    projection, rescaled to a `mean_peak` of 0.95, before the step's noise is added; y is then
    clamped to [-1, 1] (`clip`). The authors correct the first (noisiest) 3 steps with 32
    Griffin-Lim iterations of momentum 0.1. Two presets run it:
      'gla_grad': exactly the authors' code (`phase.GriffinLimOptions.variant = 'authors'`): their
        loop with its in-place quirks (its first iteration projects zero, its second the
        sign-flipped input scaled by about 1e12; see `phase`), torch.stft framing and
        normalisation, and the unclamped target pinv(fb) exp(mel) (`phase.mel_pinv_magnitude`
        with clamp=False); momentum 0.1 as theirs.
      'gla_grad_fast': the textbook fast Griffin-Lim the paper describes (variant 'fast'), all 32
        iterations, momentum 0.1 in their parameterisation t = c_k - 0.1 c_{k-1}, 1/9 in
        Perraudin's; the target clamped at 0. (Before both existed, 'gla_grad' was this one: the
        results measured then are this preset's.)
  'clean_estimate' (a variant, preset 'gla_clean_estimate'): the clean estimate
    y0_hat = (y_n - sqrt(1 - abar_n) eps) / sqrt(abar_n) is projected, y0' = GLA(y0_hat); the
    noise is re-derived at this step's level as eps' = (y_n - sqrt(abar_n) y0') / sqrt(1 - abar_n),
    and the usual step (ancestral or DDIM) runs with eps'. Only the clean-signal part of the update
    changes and no rescaling is needed, whatever the step's noise level. GLA's target is a clean
    magnitude, so it is applied to the clean estimate, which is also where GLA-Grad++ (Baoueb et
    al., arXiv 2511.22293) moved it.
"""

# The public API, re-exported from the modules that own it.
from wavegrad_jax.sampling.gla import GLA_MAGNITUDES
from wavegrad_jax.sampling.gla import GLA_PLACEMENTS
from wavegrad_jax.sampling.gla import GLAOptions
from wavegrad_jax.sampling.gla import check_gla_steps
from wavegrad_jax.sampling.gla import gla_corrected_eps
from wavegrad_jax.sampling.gla import gla_step_mask
from wavegrad_jax.sampling.options import check_schedule_start_from_config
from wavegrad_jax.sampling.options import gla_options_from_config
from wavegrad_jax.sampling.options import multi_schedule_sampler_from_config
from wavegrad_jax.sampling.options import preset_from_config
from wavegrad_jax.sampling.options import sampler_from_config
from wavegrad_jax.sampling.options import sampler_options_from_config
from wavegrad_jax.sampling.options import speech_rms_estimate_from_config
from wavegrad_jax.sampling.options import with_sampling_fields_from_config
from wavegrad_jax.sampling.presets import GLA_GRAD_AUTHORS_GRIFFIN_LIM
from wavegrad_jax.sampling.presets import GLA_GRAD_GRIFFIN_LIM
from wavegrad_jax.sampling.presets import PRESET_PROCESS
from wavegrad_jax.sampling.presets import SAMPLER_PRESETS
from wavegrad_jax.sampling.presets import check_preset
from wavegrad_jax.sampling.presets import preset_process
from wavegrad_jax.sampling.presets import presets_for
from wavegrad_jax.sampling.sampler_options import ALGORITHMS
from wavegrad_jax.sampling.sampler_options import NOISE_SCALES
from wavegrad_jax.sampling.sampler_options import SamplerOptions
from wavegrad_jax.sampling.scan import clipped_clean_estimate_eps
from wavegrad_jax.sampling.scan import make_multi_schedule_sampler
from wavegrad_jax.sampling.scan import make_sampler
from wavegrad_jax.sampling.scan import model_eps_fn
from wavegrad_jax.sampling.scan import reverse_diffusion
from wavegrad_jax.sampling.scan import reverse_step
from wavegrad_jax.sampling.scan import schedule_terms
from wavegrad_jax.sampling.start_check import ScheduleCheckedSampler
from wavegrad_jax.sampling.start_check import ScheduleStartOptions
from wavegrad_jax.sampling.start_check import check_schedule_start
