"""Mel conventions: the ways vocoder projects turn |STFT| into conditioning mels, and conversion.

A vocoder only understands mels made its own way, and TTS models emit the mels of the vocoder they
were paired with. The `audio` config section names its convention (`audio.convention`) and spells
out every choice as a field, so that a frontend is fully described by `Frontend.from_config`:

  convention        framing     |STFT| (X)                 filterbank      values
  wavegrad          center      |X|                        slaney, slaney  ln(max(mel, 1e-5))
  hifigan           hop_center  sqrt(|X|^2 + 1e-9)         slaney, slaney  ln(max(mel, 1e-5))
  parallel_wavegan  center      |X|                        slaney, slaney  log10(max(mel, 1e-10)),
                                                                           then optionally
                                                                           (v - mean) / scale
  espnet2           center      sqrt(max(|X|^2, 1e-10))    slaney, slaney  as parallel_wavegan
  lmnt              center      |X| / sqrt(sum(window^2))  htk, no norm    clip((20 log10(max(mel,
                                                                           1e-5)) - 20 + 100)
                                                                           / 100, 0, 1)
  custom            any combination of the fields below.

  parallel_wavegan is kan-bayashi/ParallelWaveGAN's preprocess.py `logmelfilterbank`: no floor
  on the STFT, only on the mel. `espnet` is an alias of it (the name it had here first, which
  configs, checkpoints and commands keep using; `canonical` resolves it). espnet2 is ESPnet2's TTS
  feature extractor (espnet2/tts/feats_extract/log_mel_fbank.py `LogMelFbank`, log_base=10 by
  default there; espnet2/layers/stft.py is torch.stft with center=True): it floors the power
  spectrum before the square root, so a digitally silent frame is sqrt(1e-10) = 1e-5 in every bin
  and its mel is 1e-5 times the band's filter sum (log10 of it -6.35 to -6.30 for the recipe's 80
  Slaney bands over 80-7,600 Hz at 22,050 Hz, n_fft 1024), not the mel floor's -10 of
  parallel_wavegan; audio well above the floor is the same under both. (ESPnet2's ASR
  frontend, espnet2/asr/frontend/default.py, is another recipe again: power mel and a natural log,
  LogMel's log_base=None; no vocoder here uses it.)

Fields (beyond the STFT sizes, band edges and `power`):
  framing: 'center' pads n_fft // 2 samples at each end, so frame i is centred on sample i * hop
    (librosa / torch center=True); 'hop_center' pads (n_fft - hop) // 2, so frame i is centred on
    the middle of hop i (HiFi-GAN's meldataset.py: reflect pad, then torch.stft(center=False)).
    Either way a [T] waveform gives the first T // hop frames. pad_mode is the padding's np.pad mode.
  stft_norm: 'none', or 'window' to divide |X| by sqrt(sum(window^2)) (torchaudio normalized=True).
  magnitude_eps: |X| = sqrt(re^2 + im^2 + magnitude_eps) (HiFi-GAN adds 1e-9).
  power_floor: |X| = sqrt(max(re^2 + im^2 + magnitude_eps, power_floor)) (ESPnet2: 1e-10); 0 off.
  mel_scale / mel_norm: librosa.filters.mel(htk=mel_scale == 'htk', norm='slaney' or None).
  log_scale: 'ln', 'log10', or 'db' = (20 / power) log10(.) - db_ref; all of max(mel, log_floor).
  normalize: 'none'; 'meanvar', (v - mean) / scale per band with the statistics in stats_file
    (ParallelWaveGAN's .npy [2, n_mels] of mean and scale, or ESPnet's GlobalMVN .npz of count,
    sum, sum_square); or 'range', range_out[0] + (range_out[1] - range_out[0]) *
    clip((v - range_in[0]) / (range_in[1] - range_in[0]), 0, 1).

The maths is pure: `compress` (linear mel -> the convention's values) and `decompress` (its
inverse) work on numpy and JAX arrays; `adapt` converts a mel between two frontends where the
difference is invertible and refuses, naming the fields, where it is not; `resemblance_warning`
says which convention a mel's values look like. Every function takes a `Frontend` (built once at
the edge with `Frontend.from_config(config.audio)`), never a config section.

Modules, one job each (this package re-exports their public names, so
`from wavegrad_jax.audio import conventions as mel_conventions` reaches them all):
  recipes.py      the named conventions' fields (`CONVENTIONS`, `RECIPE_VALUES`, `ALIASES`), the
                  typed `Frontend` and its validation, the errors.
  stats.py        'meanvar' statistics files (ParallelWaveGAN .npy, ESPnet GlobalMVN .npz).
  values.py       filterbank and STFT scale, compress / decompress, silence and bounds,
                  descriptions and the JSON fields a prepared dataset is keyed on.
  conversion.py   `differences` and `adapt` between two frontends.
  resemblance.py  which value form a mel looks like, and the wrong-convention warning.
The recipes are tables of field values rather than code, so they share recipes.py instead of a
module each: all the code that acts on them is common to every recipe.
"""
from wavegrad_jax.audio.conventions.conversion import adapt
from wavegrad_jax.audio.conventions.conversion import differences
from wavegrad_jax.audio.conventions.recipes import ALIASES
from wavegrad_jax.audio.conventions.recipes import CONVENTIONS
from wavegrad_jax.audio.conventions.recipes import CUSTOM
from wavegrad_jax.audio.conventions.recipes import EXAMPLE_CONFIGS
from wavegrad_jax.audio.conventions.recipes import FRAMINGS
from wavegrad_jax.audio.conventions.recipes import Frontend
from wavegrad_jax.audio.conventions.recipes import LOG_SCALES
from wavegrad_jax.audio.conventions.recipes import MEL_NORMS
from wavegrad_jax.audio.conventions.recipes import MEL_SCALES
from wavegrad_jax.audio.conventions.recipes import MelConventionError
from wavegrad_jax.audio.conventions.recipes import MelConventionWarning
from wavegrad_jax.audio.conventions.recipes import NORMALIZATIONS
from wavegrad_jax.audio.conventions.recipes import RECIPE_VALUES
from wavegrad_jax.audio.conventions.recipes import STFT_NORMS
from wavegrad_jax.audio.conventions.recipes import canonical
from wavegrad_jax.audio.conventions.recipes import require_frontend
from wavegrad_jax.audio.conventions.recipes import with_default_fields
from wavegrad_jax.audio.conventions.resemblance import FORMS
from wavegrad_jax.audio.conventions.resemblance import other_form
from wavegrad_jax.audio.conventions.resemblance import resemblance_warning
from wavegrad_jax.audio.conventions.resemblance import resembles
from wavegrad_jax.audio.conventions.resemblance import value_stats
from wavegrad_jax.audio.conventions.stats import load_meanvar_stats
from wavegrad_jax.audio.conventions.stats import meanvar_stats
from wavegrad_jax.audio.conventions.stats import save_meanvar_stats
from wavegrad_jax.audio.conventions.stats import stats_digest
from wavegrad_jax.audio.conventions.values import compress
from wavegrad_jax.audio.conventions.values import decompress
from wavegrad_jax.audio.conventions.values import describe
from wavegrad_jax.audio.conventions.values import effective_fields
from wavegrad_jax.audio.conventions.values import effective_floor
from wavegrad_jax.audio.conventions.values import filterbank
from wavegrad_jax.audio.conventions.values import matching_convention
from wavegrad_jax.audio.conventions.values import max_linear_mel
from wavegrad_jax.audio.conventions.values import preset_call
from wavegrad_jax.audio.conventions.values import silence_value
from wavegrad_jax.audio.conventions.values import stft_gain
from wavegrad_jax.audio.conventions.values import stored_values
from wavegrad_jax.audio.conventions.values import value_bounds


__all__ = [
    'adapt',
    'differences',
    'ALIASES',
    'CONVENTIONS',
    'CUSTOM',
    'EXAMPLE_CONFIGS',
    'FRAMINGS',
    'Frontend',
    'LOG_SCALES',
    'MEL_NORMS',
    'MEL_SCALES',
    'MelConventionError',
    'MelConventionWarning',
    'NORMALIZATIONS',
    'RECIPE_VALUES',
    'STFT_NORMS',
    'canonical',
    'require_frontend',
    'with_default_fields',
    'FORMS',
    'other_form',
    'resemblance_warning',
    'resembles',
    'value_stats',
    'load_meanvar_stats',
    'meanvar_stats',
    'save_meanvar_stats',
    'stats_digest',
    'compress',
    'decompress',
    'describe',
    'effective_fields',
    'effective_floor',
    'filterbank',
    'matching_convention',
    'max_linear_mel',
    'preset_call',
    'silence_value',
    'stft_gain',
    'stored_values',
    'value_bounds',
]
