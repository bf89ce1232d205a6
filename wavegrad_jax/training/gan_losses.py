"""The adversarial fine-tune's losses, as pure functions of discriminator outputs and waveforms.

Least squares (LSGAN, Mao et al. 2017; HiFi-GAN's choice, jik876/hifi-gan models.py
discriminator_loss / generator_loss) or hinge (Vocos, gemelo-ai/vocos loss.py), summed over
sub-discriminators as both codes do; feature matching is HiFi-GAN's feature_loss (mean |D_l(x) -
D_l(G(z))| over every layer of every sub-discriminator, summed); the mel loss is the L1 distance
of log-mels in the run's frontend (HiFi-GAN: weight 45, feature matching 2).

Discriminator outputs are (logits, features) as `models.discriminators` returns them: lists over
sub-discriminators of [B, ...] logits and of lists of per-layer feature maps.
"""
import jax
import jax.numpy as jnp

from wavegrad_jax.audio import frontend as audio

GAN_LOSSES = ('lsgan', 'hinge')


def discriminator_loss(real_logits, fake_logits, kind):
  """The discriminators' loss (a scalar): real towards 1 and generated towards 0 (lsgan), or the
  hinge margins; summed over sub-discriminators."""
  total = 0.0
  for real, fake in zip(real_logits, fake_logits):
    if kind == 'lsgan':
      total = total + jnp.mean(jnp.square(1.0 - real)) + jnp.mean(jnp.square(fake))
    else:
      total = total + jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
  return total


def generator_adversarial_loss(fake_logits, kind):
  """The generator's adversarial loss (a scalar), summed over sub-discriminators."""
  total = 0.0
  for fake in fake_logits:
    # Vocos's GeneratorLoss: mean(relu(1 - D(G))) (the hinge's generator side).
    total = total + (jnp.mean(jnp.square(1.0 - fake)) if kind == 'lsgan'
                     else jnp.mean(jax.nn.relu(1.0 - fake)))
  return total


def feature_matching_loss(real_features, fake_features):
  """HiFi-GAN's feature loss: sum over sub-discriminators and layers of mean |real - fake|; the
  real features are constants (no gradient reaches the discriminator through them)."""
  total = 0.0
  for real_layers, fake_layers in zip(real_features, fake_features):
    for real, fake in zip(real_layers, fake_layers):
      total = total + jnp.mean(jnp.abs(jax.lax.stop_gradient(real) - fake))
  return total


def mel_l1_loss(estimate, target, frontend):
  """Mean |log-mel(estimate) - log-mel(target)| in `frontend`'s convention ([B, T] waveforms)."""
  return jnp.mean(jnp.abs(audio.log_mel_spectrogram(estimate, frontend)
                          - audio.log_mel_spectrogram(target, frontend)))
