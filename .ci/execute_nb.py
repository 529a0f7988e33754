"""Execute notebooks in place so the rendered docs keep their outputs, skipping cells that cannot run here.

    python .ci/execute_nb.py nbs/03_udf.ipynb [--skip gpu slow] [--outputs-from OLD.ipynb] [--keep CELL_ID ...] [--timeout 3600]

Cells flagged with one of the --skip words (default: gpu), `#| eval: false` cells and `nbdev_export()` cells are not run
and keep no output;
everything else (including `#| slow` cells unless skipped) runs in one kernel, in order, with the notebook's folder as
working directory. With --outputs-from, a skipped cell whose source is identical to a cell of OLD.ipynb keeps that
cell's outputs (e.g. a `#| slow` benchmark that was run before, when only other cells changed). Cells whose id is
given to --keep are not run and keep the outputs they have. If a cell fails, the notebook is still written (with the
outputs up to and including the error) and the script exits with status 1, so a long run is not lost.
Run `nbdev_clean` afterwards.
"""
import argparse, re, sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient

ap = argparse.ArgumentParser()
ap.add_argument('notebooks', nargs='+')
ap.add_argument('--skip', nargs='*', default=['gpu'])
ap.add_argument('--timeout', type=int, default=3600)
ap.add_argument('--outputs-from', default=None)
ap.add_argument('--keep', nargs='*', default=[])
a = ap.parse_args()
for path in map(Path, a.notebooks):
    nb = nbformat.read(path, as_version=4)
    skipped, kept = {}, {}
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code': continue
        if c.get('id') in a.keep:
            kept[i] = (c.source, c.get('outputs', []), c.get('execution_count')); c.source = ''; continue
        flags = {m.group(1) for m in re.finditer(r'^\s*#\s*\|\s*([\w-]+)', c.source, re.M)}
        if (flags & set(a.skip) or re.search(r'^\s*#\s*\|\s*eval:\s*false', c.source, re.M)
                or re.search(r'nbdev\.nbdev_export\(\)', c.source)):  # exporting is not documentation (and fails outside the project)
            skipped[i] = c.source; c.source = ''
    failed = None
    try:
        NotebookClient(nb, timeout=a.timeout, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    except Exception as e:  # keep what ran
        failed = e
    old = {}
    if a.outputs_from:
        old = {c.source: c.get('outputs', []) for c in nbformat.read(a.outputs_from, as_version=4).cells if c.cell_type == 'code'}
    for i, src in skipped.items():
        nb.cells[i].source = src; nb.cells[i].outputs = old.get(src, []); nb.cells[i].execution_count = None
    for i, (src, outs, n) in kept.items():
        nb.cells[i].source = src; nb.cells[i].outputs = outs; nb.cells[i].execution_count = n
    nbformat.write(nb, path)
    if failed is not None:
        print(f'{path}: FAILED, outputs so far written: {str(failed)[-2000:]}', file=sys.stderr); sys.exit(1)
    print(f'{path}: executed, {len(skipped)} cells skipped ({", ".join(a.skip)}, eval: false)')
