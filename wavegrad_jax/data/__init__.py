"""Speech corpora and their prepared TFDS datasets.

corpus.py (what a corpus provides), one module per corpus (fillets.py: the embedded Fish Fillets
corpus, ljspeech.py, folder.py), registry.py (the corpora by `config.data.source` name) and
builders.py (reading, log-mels, splits and the array_record TFDS datasets, shared by all),
pipeline.py (the batched, sharded training and evaluation input) and predicted_mels.py (real mels
degraded like a TTS model's). May import: numpy, tensorflow-datasets, grain, `wavegrad_jax.audio`
and the shared leaves (`errors`, `jsonable`); nothing of models, sampling, processes or above.
"""
