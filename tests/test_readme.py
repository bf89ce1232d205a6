"""The README's commands exist and are wired to real launchers (.ci/run runs them verbatim)."""
import importlib.util
import os
import runpy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_readme = runpy.run_path(os.path.join(REPO, '.ci', 'run_readme.py'))


def test_readme_documents_the_main_run_and_the_research_loop():
  commands = _readme['experiment_commands']()
  assert commands[0] == ('python -m experiments.main --config=experiments/configs/tiny.py '
                         '--workdir=runs/tiny')
  modules = {c.split()[2] for c in commands}
  assert {'experiments.evaluate', 'experiments.synthesize',
          'experiments.search_schedules'} <= modules
  for module in modules:
    assert importlib.util.find_spec(module) is not None, module


def test_readme_flags_and_config_files_exist():
  for command in _readme['experiment_commands']():
    for arg in command.split()[3:]:
      if arg.startswith('--config='):
        assert os.path.isfile(os.path.join(REPO, arg.split('=', 1)[1])), arg
  with open(os.path.join(REPO, 'README.md')) as f:
    readme = f.read()
  assert 'python -m pytest -q tests' in readme
  assert '.ci/run' in readme
