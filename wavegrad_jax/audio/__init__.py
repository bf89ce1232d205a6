"""Audio: the mel frontend, wav input and output, mel conventions, Griffin-Lim and phase.

Owns: `frontend.py` (STFT, log-mel spectrogram and its pseudo-inverse, wav reading and writing,
the frontend's config checks), `conventions.py` (other toolkits' mel recipes: HiFi-GAN,
ESPnet, Parallel WaveGAN, LMNT, converted to and from ours), `phase.py` (Griffin-Lim and the
consistency projections that GLA-Grad applies). Pure functions of jax and numpy (librosa only to
build filter banks). May import: jax, numpy, librosa, the shared leaves (`errors`, `jsonable`);
nothing else of wavegrad_jax: every other package may import this one.
"""
