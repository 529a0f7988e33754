"""The nbval glue in conftest.py skips exactly the cells nbdev_test skips."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location('root_conftest', Path(__file__).parent.parent / 'conftest.py')
glue = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(glue)


def test_skips_eval_false_and_flags():
    assert glue._skip_reason('#| eval: false\nx = 1')
    assert glue._skip_reason('#| slow\ntrain()')
    assert glue._skip_reason('#| gpu\ntrain()')
    assert glue._skip_reason('#| hide\nimport nbdev; nbdev.nbdev_export()')


def test_runs_ordinary_cells():
    assert glue._skip_reason('#| export\ndef f(): pass') is None
    assert glue._skip_reason('#| hide\nfrom fastcore.test import *') is None
    assert glue._skip_reason('x = 1  # slow') is None
