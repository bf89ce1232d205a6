"""Installs the wavegrad_jax library and the experiments launchers (pip install -e .)."""
import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent
_REQUIREMENTS = [l.strip() for l in (_HERE / 'requirements.txt').read_text().splitlines()
                 if l.strip() and not l.startswith('#')]

setuptools.setup(
    name='wavegrad-jax',
    version='0.1.0',
    description='WaveGrad diffusion vocoder in JAX/Flax',
    long_description=(_HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=setuptools.find_packages(include=['wavegrad_jax*', 'experiments*']),
    python_requires='>=3.11',
    install_requires=[],  # exact pins live in requirements.txt: pip install -r requirements.txt
)
