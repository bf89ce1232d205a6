"""The README's commands exist and are wired to real launchers (.ci/run runs them verbatim)."""
import importlib.util
import os
import re
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


def test_readme_commands_parse(tmp_path):
  """Every README launcher command's flags and config fields parse (absl --only_check_args)."""
  from tests import launcher_driver  # pylint: disable=g-import-not-at-top
  commands = _readme['experiment_commands']()
  cases = [{'module': c.split()[2], 'args': c.split()[3:] + ['--only_check_args'], 'cwd': REPO}
           for c in commands]
  # The check bites: a misspelt flag and an unknown config field fail the same way.
  bad = [commands[0] + ' --workdr=x', commands[0] + ' --config.train.nonexistent=1']
  cases += [{'module': c.split()[2], 'args': c.split()[3:] + ['--only_check_args'], 'cwd': REPO}
            for c in bad]
  results = launcher_driver.drive(cases)
  for command, result in zip(commands + bad, results):
    if command in bad:
      assert result['status'] == 2 and 'error:' in result['stderr'], command
    else:
      assert result['status'] == 0, f'{command}:\n{result["stderr"][-2000:]}'


def test_readme_inputs_exist_or_are_made_by_the_readme():
  """Every file a README command reads exists after the set-up, or an earlier line makes it."""
  made = set()
  for command in _readme['readme_commands']():
    for arg in command.split():
      if arg.startswith('--input='):
        path = arg.split('=', 1)[1]
        assert os.path.exists(path) or path in made, command
    made.update(re.findall(r"np.save\('([^']+)'", command))
  assert made, 'the README no longer shows how to save a mel'
