"""Audio: the mel frontend, wav input and output, mel conventions, Griffin-Lim and phase.

Owns: `frontend.py` (STFT, log-mel spectrogram, wav reading), the `conventions/` package
(other toolkits' mel recipes: HiFi-GAN, ESPnet, Parallel WaveGAN, LMNT, converted to and from
ours, and the typed `Frontend` every function here takes), `phase.py` (Griffin-Lim, the mel
pseudo-inverse and the consistency projections that GLA-Grad applies), `options.py` (the edge:
`Frontend`, and `load_audio_from_config` for callers holding an `audio` config section).
Pure functions of jax and numpy (librosa only to build filter banks). May import: jax, numpy,
librosa, the shared leaves (`errors`, `jsonable`); nothing else of wavegrad_jax: every other
package may import this one.
"""
