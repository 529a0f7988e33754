"""The real data anywhere (issue 17, item 4): with no NEURALBONEREG_DATA and no ../shared, `load_case` fetches the
pinned sources (here a local `file://` mirror of the shared files), checks every sha256 and caches them; a corrupted
file is refused and not cached. No network."""
import os, shutil
from pathlib import Path
import numpy as np
import pytest
from neuralbonereg_nb import data
from neuralbonereg_nb.files import cache_dir

SHARED = Path(os.environ.get('NEURALBONEREG_DATA', '')) if os.environ.get('NEURALBONEREG_DATA') else data.data_root()
HAVE_FIBULA = SHARED is not None and (SHARED / 'ultrabones100k_example' / 'Fibula.stl').is_file()
pytestmark = pytest.mark.skipif(not HAVE_FIBULA, reason='../shared/data absent (set NEURALBONEREG_DATA): the file:// mirror is built from it')


def _mirror(root:Path, corrupt:str|None=None)->Path:
    "A folder laid out as <owner>/<repo>/<commit>/<path> holding the fibula record's files (links to the shared copies)."
    src = data.DATA_SOURCES['ultrabones100k_example']
    for local, (remote, _) in src.files.items():
        p = root / src.repo / src.commit / remote
        p.parent.mkdir(parents=True, exist_ok=True)
        if local == corrupt:                                                         # one byte flipped
            b = bytearray((SHARED / src.folder / local).read_bytes()); b[1000] ^= 0xFF; p.write_bytes(bytes(b))
        else: p.symlink_to(SHARED / src.folder / local)
    return root


@pytest.fixture
def no_shared(tmp_path, monkeypatch):
    "NEURALBONEREG_DATA unset, no ../shared/data, an empty cache."
    monkeypatch.delenv('NEURALBONEREG_DATA', raising=False)
    monkeypatch.setattr(data, 'data_root', lambda: None)
    monkeypatch.setenv('NEURALBONEREG_CACHE', str(tmp_path / 'cache'))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_load_case_fetches_checks_caches(no_shared, monkeypatch):
    monkeypatch.setenv('NEURALBONEREG_SOURCES_URL', _mirror(no_shared / 'mirror').as_uri())
    c = data.load_case('ultrabones_fibula')
    d = cache_dir('data') / 'ultrabones100k_example'
    assert c.meta['folder'] == str(d) and c.meta['intraop_rebuilt']
    src = data.DATA_SOURCES['ultrabones100k_example']
    assert all(not (d / p).is_symlink() and data.file_sha256(d / p) == h for p, (_, h) in src.files.items())
    assert (d / 'Fibula.stl').read_bytes() == (SHARED / 'ultrabones100k_example' / 'Fibula.stl').read_bytes()
    assert len(c.mesh.vertices) == 22099 and 10_000 < len(c.points) < 20_000       # the 111-frame reconstruction
    d_mm = data.surface_distance(c.mesh, c.points)
    assert np.median(d_mm) < 0.6 and np.percentile(d_mm, 95) < 2.0
    shutil.rmtree(no_shared / 'mirror')                                          # offline now: read from the cache
    assert len(data.load_case('ultrabones_fibula').points) == len(c.points)


def test_corrupted_file_refused_not_cached(no_shared, monkeypatch):
    monkeypatch.setenv('NEURALBONEREG_SOURCES_URL', _mirror(no_shared / 'mirror', corrupt='Fibula.stl').as_uri())
    with pytest.raises(ValueError, match='refused, not cached'): data.load_case('ultrabones_fibula')
    d = cache_dir('data') / 'ultrabones100k_example'
    assert not (d / 'Fibula.stl').exists() and not [p for p in d.rglob('*') if p.is_file() and 'tmp' in p.name]


def test_offline_one_line(no_shared, monkeypatch):
    monkeypatch.setenv('NEURALBONEREG_SOURCES_URL', (no_shared / 'nowhere').as_uri())
    with pytest.raises(FileNotFoundError, match='NEURALBONEREG_DATA') as e: data.load_case('ultraboneship_pelvis')
    assert '\n' not in str(e.value)
