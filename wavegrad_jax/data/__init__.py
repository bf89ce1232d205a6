"""Speech corpora and their prepared TFDS datasets.

settings.py (the typed `DataOptions`, `AudioOptions`, `DegradeOptions`, each read from its config
section by its `from_config`), options.py (those re-exported, and the `*_from_config` adapters
for the callers above), corpus.py (what a corpus provides), one module
per corpus (fillets.py: the embedded Fish Fillets corpus, ljspeech.py, folder.py, paired.py),
registry.py (the corpora by `config.data.source` name), and, shared by all: reading.py (audio and
log-mels of a build), splits.py (train / heldout / unseen and the build plan), fingerprint.py (the
prepared dataset's name hash and source-file listing) and builders.py (the array_record TFDS
datasets); pipeline.py (the batched, sharded training and evaluation input) and predicted_mels.py
(real mels degraded like a TTS model's). May import: numpy, tensorflow-datasets, grain,
`wavegrad_jax.audio` and the shared leaves (`errors`, `jsonable`); nothing of models, sampling,
processes or above.
"""
