"""Networks beside the paper's WaveGrad (which is still `wavegrad_jax.model`, with the registry
`model.MODELS` that `config.model.name` chooses from).

Owns: Flax modules of the other network families, each one file registered by one entry in
`model.MODELS` (`frame.py`: the frame-domain ConvNeXt denoiser). May import: jax, flax, numpy
and `wavegrad_jax.audio` (the STFT); nothing of processes, sampling, training or inference.
Every network has the one signature net(x [B, T], mel [B, F, n_mels], c [B]) -> [B, T], so
every process, sampler and launcher runs it unchanged.
"""
