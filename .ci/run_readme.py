"""Runs every command the README documents, verbatim, from the repository root.

Each ```bash block line that starts with `python -m experiments.` or `python -c ` runs in order (the
main run first, then evaluate / synthesize / search / compare_samplers on its workdir), then each
```python block. Every input the commands read exists after the set-up (the README's own lines make
the rest). Install and test lines are skipped: .ci/run has just run them.
"""
import os
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_blocks(language):
  """The README's fenced code blocks of one language, as strings."""
  with open(os.path.join(ROOT, 'README.md')) as f:
    text = f.read()
  return re.findall(rf'```{language}\n(.*?)```', text, flags=re.S)


def readme_commands():
  """Every `python -m experiments.*` and `python -c` line of the README's bash blocks, in order."""
  return [line.strip() for block in readme_blocks('bash') for line in block.splitlines()
          if line.strip().startswith(('python -m experiments.', 'python -c '))]


def experiment_commands():
  """The `python -m experiments.*` lines of `readme_commands()`, in order."""
  return [c for c in readme_commands() if c.startswith('python -m experiments.')]


def run(args, label):
  start = time.time()
  print(f'\n=== README: {label}', flush=True)
  subprocess.run(args, cwd=ROOT, check=True)
  print(f'=== ok in {time.time() - start:.0f} s', flush=True)


def main():
  commands = readme_commands()
  if not commands or 'experiments.main' not in commands[0]:
    sys.exit('README: expected the main run as the first `python -m experiments.` command')
  for command in commands:
    run(shlex.split(command.replace('python ', sys.executable + ' ', 1)), command)
  for i, block in enumerate(readme_blocks('python')):
    run([sys.executable, '-c', block], f'python block {i + 1}')


if __name__ == '__main__':
  main()
