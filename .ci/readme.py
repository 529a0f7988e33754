"""Write README.md from nbs/index.ipynb without Quarto (Quarto is not installable here; see tooling.md).

Drops `#| hide` cells and nbdev directive lines, keeps markdown, code and plain-text outputs (no HTML/Plotly), and
writes the result. `python .ci/readme.py --check` exits 1 if README.md is out of date.

Relative links to notebooks (`[00_frames](00_frames.ipynb)`) are relative to nbs/, which is right for the Quarto site;
README.md sits at the repository root, so in the README only they become `nbs/00_frames.ipynb`.
"""
import posixpath, re, sys
from pathlib import Path
import nbformat

root = Path(__file__).resolve().parent.parent
nb = nbformat.read(root / 'nbs' / 'index.ipynb', as_version=4)
directive = re.compile(r'^\s*#\s*\|')
# a markdown link or image target, or a reference definition, that is a relative path to a notebook (no scheme, not
# absolute, not an anchor), with an optional #fragment
nb_link = re.compile(r'(\]\(\s*<?|^\s*\[[^\]]+\]:\s*<?)(?![a-zA-Z][\w+.-]*:|/|#)([^\s)>]+?\.ipynb(?:#[^\s)>]*)?)(?=[\s)>]|$)', re.M)

def readme_links(md:str)->str:
    "Markdown written from nbs/ with its relative notebook links rewritten to be relative to the repository root"
    def sub(m):
        path, hash_, frag = m.group(2).partition('#')
        return m.group(1) + posixpath.normpath('nbs/' + path) + hash_ + frag
    return nb_link.sub(sub, md)

out = ['<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file -->', '']
for cell in nb.cells:
    src = cell.source
    if cell.cell_type == 'markdown':
        out += [readme_links(src), '']
        continue
    if cell.cell_type != 'code' or re.search(r'^\s*#\s*\|\s*hide', src, re.M): continue
    code = '\n'.join(l for l in src.splitlines() if not directive.match(l)).strip()
    if code: out += ['```python', code, '```', '']
    for o in cell.get('outputs', []):
        text = o.get('text') if o.get('output_type') == 'stream' else o.get('data', {}).get('text/plain')
        if text and not ('data' in o and 'application/vnd.plotly.v1+json' in o['data']):
            out += ['    ' + l for l in ''.join(text).rstrip().splitlines()] + ['']
txt = '\n'.join(out).rstrip() + '\n'
readme = root / 'README.md'
if '--check' in sys.argv:
    if not readme.exists() or readme.read_text() != txt:
        sys.exit('README.md is out of date: run `python .ci/readme.py` and commit.')
else: readme.write_text(txt)
