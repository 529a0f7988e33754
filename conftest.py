"""pytest glue so that `pytest --nbval-lax nbs/` runs nbdev notebooks the way `nbdev_test` does.

nbval knows nothing of nbdev directives, and it rejects cleaned notebooks (nbdev_clean drops execution counts but
keeps outputs, and nbval calls such a cell "Unrun reference cell has outputs"). This hook:
- skips cells nbdev_test skips: `#| eval: false`, cells flagged with a word of `tst_flags` in settings.ini
  (`#| slow`, `#| gpu`, `#| notest`), and `nbdev_export()` cells (they would rewrite the library);
- drops the stored outputs of cells whose execution count is null (outputs are never compared under --nbval-lax
  unless a cell asks with `# NBVAL_CHECK_OUTPUT`).
"""
import configparser, re
from pathlib import Path

_root = Path(__file__).parent
_cfg = configparser.ConfigParser(delimiters=['='])
_cfg.read(_root / 'settings.ini', encoding='utf-8')
_flags = set(_cfg['DEFAULT'].get('tst_flags', 'notest').split())
_directive = re.compile(r'^\s*#\s*\|\s*(.+?)\s*$')


def _directives(source):
    "nbdev directives (`#| ...`) at the top of a cell, as lists of words"
    out = []
    for line in source.splitlines():
        m = _directive.match(line)
        if m: out.append(m.group(1).replace(':', ' ').split())
        elif line.strip() and not line.strip().startswith('#'): break
    return out


def _skip_reason(source):
    for words in _directives(source):
        if words[:1] == ['eval'] and words[1:2] == ['false']: return 'nbdev `eval: false` cell'
        if words and words[0] in _flags: return f'nbdev test flag `{words[0]}` (run with nbdev_test --flags {words[0]})'
    if re.search(r'^\s*(import nbdev;\s*)?nbdev\.?(nbdev_)?export\(\)', source, re.M) or 'nbdev_export()' in source:
        return 'nbdev_export() cell'
    return None


def pytest_collection_modifyitems(session, config, items):
    import pytest
    for item in items:
        cell = getattr(item, 'cell', None)
        if cell is None or not hasattr(item, 'options'): continue
        reason = _skip_reason(cell.source)
        if reason: item.add_marker(pytest.mark.skip(reason=reason))
        if cell.get('execution_count') is None: cell.outputs = []
