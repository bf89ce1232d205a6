"""Speech corpora and their prepared TFDS datasets.

corpus.py (what a corpus provides), one module per corpus (fillets.py: the embedded Fish Fillets
corpus, ljspeech.py, folder.py), registry.py (the corpora by `config.data.source` name) and
builders.py (reading, log-mels, splits and the array_record TFDS datasets, shared by all).
"""
