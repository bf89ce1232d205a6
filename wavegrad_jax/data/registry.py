"""The corpora by name (`config.data.source`): adding a corpus is its module plus one entry here."""
from wavegrad_jax.data import fillets, folder, ljspeech, paired
from wavegrad_jax.data.corpus import DataSourceError

CORPORA = {corpus.name: corpus for corpus in (
    fillets.CORPUS,
    ljspeech.CORPUS,
    folder.CORPUS,
    paired.CORPUS,
)}


def get_corpus(name):
  """The `corpus.Corpus` registered as `name`; raises DataSourceError naming the choices."""
  if name not in CORPORA:
    raise DataSourceError(f'config.data.source must be one of {sorted(CORPORA)}, got {name!r}')
  return CORPORA[name]
