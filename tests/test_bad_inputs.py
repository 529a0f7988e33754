"""The hostile-user corpus (issue 16): bad inputs, bad options, bad outputs, damaged checkpoints and caches, each run
through the `neuralbonereg` CLI as a user runs it. Every case must end in one line on stderr that names the file or the
option (no traceback), exit status 2, and write nothing: no output, no temporary file, no cache entry."""
import os, shutil, subprocess, sys, time
from dataclasses import asdict
from pathlib import Path
import numpy as np
import open3d as o3d
import pytest
import torch
from PIL import Image

EXE = shutil.which('neuralbonereg')


def run(*args, cache:Path, cwd=None):
    "Run the CLI in a subprocess with its own cache folder (NEURALBONEREG_CACHE)."
    cmd = [EXE, *args] if EXE else [sys.executable, '-c', 'import sys; from neuralbonereg_nb.cli import main; sys.exit(main())', *args]
    env = {**os.environ, 'NEURALBONEREG_CACHE': str(cache), 'OMP_NUM_THREADS': '1'}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600, env=env)


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    "Good inputs the bad ones are made from: the embedded fibula (mesh, mm), a cloud of its surface, a `test` checkpoint."
    from neuralbonereg_nb.data import load_bone, sample_surface
    from neuralbonereg_nb.udf import fit_preop
    d = tmp_path_factory.mktemp('base')
    mesh = load_bone('fibula')
    o3d.io.write_triangle_mesh(str(d / 'fibula.ply'), mesh, write_ascii=False)
    surf = sample_surface(mesh, 3000, seed=0)[0]
    np.savetxt(d / 'surface.xyz', surf, fmt='%.4f')
    np.savetxt(d / 'cloud.xyz', surf[::5], fmt='%.4f')  # 600 points: a valid intraoperative cloud
    fit_preop(surf, 'test', cache=False, progress=False).save(d / 'model.pt')
    return dict(dir=d, mesh=mesh, surface=surf)


# ---- builders: each writes its bad input into `d` and returns the command line --------------------------------------

def _cut(src:Path, dst:Path, frac:float)->Path:
    b = src.read_bytes(); dst.write_bytes(b[:int(len(b) * frac)]); return dst

def _ckpt(base, d, change, name='damaged.pt')->Path:
    ck = torch.load(base['dir'] / 'model.pt', weights_only=True)
    ck = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ck.items()}
    change(ck); torch.save(ck, d / name); return d / name

def _record(d:Path, junk_first:bool=False)->Path:
    "A tiny tracked B-mode record: three frames (synthetic, or the first one corrupt) and their poses."
    from neuralbonereg_nb.ultrasound import synthetic_bmode, POSE_COLUMNS
    rec = d / 'record'; (rec / 'UltrasoundImages').mkdir(parents=True)
    for k, ts in enumerate((100, 200, 300)):
        png = rec / 'UltrasoundImages' / f'{ts}.png'
        if junk_first and k == 0: png.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\x00garbage' * 40)
        else: Image.fromarray((255 * synthetic_bmode((120, 90), seed=k)[0]).astype(np.uint8)).save(png)
    (rec / 'poses.csv').write_text(','.join(POSE_COLUMNS) + '\n' + ''.join(f'{ts},0.2,{k},0,0,0,0,0\n' for k, ts in enumerate((100, 200, 300))))
    return rec

def _readonly_folder(d:Path)->Path:
    "A folder we cannot write in: chmod 555 (or, as root, whom chmod does not stop, /sys)."
    ro = d / 'readonly'; ro.mkdir(); ro.chmod(0o555)
    try: (ro / 'probe').write_text('x')
    except OSError: return ro
    (ro / 'probe').unlink(); ro.chmod(0o755)
    try: (Path('/sys') / 'neuralbonereg_probe').write_text('x')
    except OSError: return Path('/sys')
    pytest.skip('no folder here that this user cannot write in')

def _flat_stl(d:Path)->Path:
    V = np.c_[np.linspace(0, 60, 40), np.zeros(40), np.zeros(40)]  # collinear: every triangle has zero area
    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(V), o3d.utility.Vector3iVector([[i, i + 1, i + 2] for i in range(38)]))
    o3d.io.write_triangle_mesh(str(d / 'flat.stl'), m.compute_triangle_normals()); return d / 'flat.stl'

def _stl(base, d:Path)->Path:
    m = o3d.geometry.TriangleMesh(base['mesh']); m.compute_triangle_normals()
    o3d.io.write_triangle_mesh(str(d / 'whole.stl'), m); return d / 'whole.stl'

def _cloud_ply(base, d:Path, ascii:bool=False)->Path:
    p = d / f"cloud{'_ascii' if ascii else ''}.ply"
    o3d.io.write_point_cloud(str(p), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(base['surface'])), write_ascii=ascii)
    return p

def _write(d:Path, name:str, data:bytes)->Path:
    (d / name).write_bytes(data); return d / name

def _xyz(d:Path, name:str, pts)->Path:
    np.savetxt(d / name, np.asarray(pts), fmt='%.6g'); return d / name

PT, XYZ = lambda b: str(b['dir'] / 'model.pt'), lambda b: str(b['dir'] / 'cloud.xyz')
FAST = ['--preset', 'test', '--udf-preset', 'test']

# (id, builder (base, d) -> argv, substrings the one stderr line must hold ({d}: the work folder): the file or option, and what is wrong)
CASES = [
    # 3. readers: truncated, padded, corrupt, zero-area, coincident
    ('truncated_binary_ply_as_intraop_cloud', lambda b, d: ['register', PT(b), str(_cut(_cloud_ply(b, d), d / 'cut.ply', 0.5)), '-o', f'{d}/T.txt', *FAST],
     ['cut.ply is truncated', '3,000 vertices']),
    ('truncated_binary_ply_as_preop_cloud', lambda b, d: ['fit', str(_cut(_cloud_ply(b, d), d / 'cut.ply', 0.5)), '-o', f'{d}/m.pt', '--preset', 'test', '--quiet'],
     ['cut.ply is truncated']),
    ('truncated_binary_ply_as_mesh_in_vertices', lambda b, d: ['fit', str(_cut(b['dir'] / 'fibula.ply', d / 'cut_mesh.ply', 0.4)), '-o', f'{d}/m.pt', '--preset', 'test', '--quiet'],
     ['cut_mesh.ply is truncated', '5,226 faces']),
    ('truncated_binary_ply_as_mesh_in_faces', lambda b, d: ['simulate', str(_cut(b['dir'] / 'fibula.ply', d / 'cut_faces.ply', 0.9)), '-o', f'{d}/s.xyz'],
     ['cut_faces.ply is truncated']),
    ('truncated_ascii_ply_cloud', lambda b, d: ['register', PT(b), str(_cut(_cloud_ply(b, d, ascii=True), d / 'cut_ascii.ply', 0.5)), '-o', f'{d}/T.txt', *FAST],
     ['cut_ascii.ply could not be read whole']),
    ('truncated_binary_stl', lambda b, d: ['fit', str(_cut(_stl(b, d), d / 'cut.stl', 0.5)), '-o', f'{d}/m.pt', '--preset', 'test', '--quiet'],
     ['cut.stl is truncated: it declares 5,226 triangles']),
    ('not_an_stl', lambda b, d: ['simulate', str(_write(d, 'junk.stl', b'this is not an stl')), '-o', f'{d}/s.xyz'],
     ['junk.stl is too short to be an STL']),
    ('zero_area_stl', lambda b, d: ['fit', str(_flat_stl(d)), '-o', f'{d}/m.pt', '--preset', 'test', '--quiet'],
     ['flat.stl: all 38 triangles have zero area']),
    ('point_cloud_ply_as_mesh', lambda b, d: ['simulate', str(_cloud_ply(b, d)), '-o', f'{d}/s.xyz'],
     ['cloud.ply has no triangles (3000 vertices)']),
    ('identical_points', lambda b, d: ['register', PT(b), str(_xyz(d, 'same.xyz', np.tile([12.5, -3.0, 40.0], (200, 1)))), '-o', f'{d}/T.txt', *FAST],
     ['same.xyz: all 200 points coincide (at (12.5, -3, 40))']),
    ('points_padded_at_origin', lambda b, d: ['register', PT(b), str(_xyz(d, 'padded.xyz', np.vstack([b['surface'][:300], np.zeros((300, 3))]))), '-o', f'{d}/T.txt', *FAST],
     ['padded.xyz: 300 of 600 points lie exactly at (0, 0, 0)']),
    ('points_in_metres', lambda b, d: ['register', PT(b), str(_xyz(d, 'metres.xyz', b['surface'][::5] / 1000)), '-o', f'{d}/T.txt', *FAST],
     ['metres.xyz', 'looks like metres']),
    ('points_with_nan', lambda b, d: ['register', PT(b), str(_xyz(d, 'nan.xyz', np.vstack([b['surface'][:100], [[np.nan, 1, 2]]]))), '-o', f'{d}/T.txt', *FAST],
     ['nan.xyz has 1 rows with NaN']),
    ('too_few_points', lambda b, d: ['register', PT(b), str(_xyz(d, 'few.xyz', b['surface'][:10])), '-o', f'{d}/T.txt', *FAST],
     ['few.xyz has 10 points, fewer than the 50']),
    ('missing_intraop_file', lambda b, d: ['register', PT(b), f'{d}/nowhere.xyz', '-o', f'{d}/T.txt', *FAST],
     ['no point file at', 'nowhere.xyz']),
    ('unknown_bone', lambda b, d: ['simulate', 'femur_that_does_not_exist', '-o', f'{d}/s.xyz'],
     ["'femur_that_does_not_exist' is neither an embedded bone"]),
    ('corrupt_png_in_record', lambda b, d: ['reconstruct-us', str(_record(d, junk_first=True)), '-o', f'{d}/us.xyz', '--clean', 'none'],
     ['100.png: not a readable image']),
    ('nan_probe_calibration', lambda b, d: ['reconstruct-us', str(_record(d)), '-o', f'{d}/us.xyz', '--calibration', 'nan', '0', '0', '0', '0', '0'],
     ['--calibration nan 0 0 0 0 0: probe calibration has NaN']),
    # 4. checkpoints: schema, finite weights, a positive scale, the width they were built with
    ('checkpoint_missing_key', lambda b, d: ['register', str(_ckpt(b, d, lambda ck: ck.pop('state_dict'))), XYZ(b), '-o', f'{d}/T.txt', *FAST],
     ["damaged.pt: the checkpoint has no 'state_dict'", 'refit']),
    ('checkpoint_wrong_type', lambda b, d: ['register', str(_ckpt(b, d, lambda ck: ck.update(scale_mm='88 mm'))), XYZ(b), '-o', f'{d}/T.txt', *FAST],
     ["damaged.pt: the checkpoint's 'scale_mm' is a str, expected int or float"]),
    ('checkpoint_nan_weights', lambda b, d: ['register', str(_ckpt(b, d, lambda ck: ck['state_dict'].update({k: v * np.nan for k, v in ck['state_dict'].items()}))), XYZ(b), '-o', f'{d}/T.txt', *FAST],
     ['damaged.pt: weight', 'NaN or inf']),
    ('checkpoint_scale_zero', lambda b, d: ['register', str(_ckpt(b, d, lambda ck: ck.update(scale_mm=0.0))), XYZ(b), '-o', f'{d}/T.txt', *FAST],
     ["damaged.pt: the checkpoint's scale is 0.0 mm"]),
    ('checkpoint_width_mismatch', lambda b, d: ['evaluate', str(_ckpt(b, d, lambda ck: ck['config'].update(width=64))), XYZ(b), '--runs', '1', *FAST],
     ['damaged.pt: weight layers.0.weight has shape (128, 3), its config (UDF 3×64) needs (64, 3)']),
    ('checkpoint_not_torch', lambda b, d: ['register', str(_write(d, 'junk.pt', b'PK\x03\x04 not a zip')), XYZ(b), '-o', f'{d}/T.txt', *FAST],
     ['junk.pt is not a readable PreopModel checkpoint', 'refit it']),
    # 5. outputs: checked before the work
    ('output_is_a_folder', lambda b, d: ['simulate', str(b['dir'] / 'fibula.ply'), '-o', str(d)],
     ['{d} is a folder, not a file']),
    ('output_is_a_folder_even_with_force', lambda b, d: ['fit', str(b['dir'] / 'surface.xyz'), '-o', str(d), '--force', '--preset', 'test', '--quiet'],
     ['{d} is a folder, not a file']),
    ('output_in_readonly_folder', lambda b, d: ['fit', str(b['dir'] / 'surface.xyz'), '-o', str(_readonly_folder(d) / 'm.pt'), '--preset', 'test', '--quiet'],
     ['cannot write m.pt in folder']),
    ('report_in_readonly_folder', lambda b, d: ['simulate', str(b['dir'] / 'fibula.ply'), '-o', f'{d}/s.xyz', '--report', str(_readonly_folder(d) / 'r.html')],
     ['cannot write r.html in folder']),
    ('output_parent_missing', lambda b, d: ['reconstruct-us', str(_record(d)), '-o', f'{d}/no/such/us.xyz'],
     ['folder {d}/no/such does not exist']),
    ('output_parent_is_a_file', lambda b, d: ['simulate', str(b['dir'] / 'fibula.ply'), '-o', str(_xyz(d, 'afile.xyz', [[0, 0, 0]]) / 's.xyz')],
     ['afile.xyz is a file, not a folder']),
    ('output_exists', lambda b, d: ['simulate', str(b['dir'] / 'fibula.ply'), '-o', str(_xyz(d, 'mine.xyz', [[1, 2, 3]]))],
     ['mine.xyz exists; refusing to overwrite it', '--force']),
    # 5. options
    ('seed_not_an_integer', lambda b, d: ['register', PT(b), XYZ(b), '-o', f'{d}/T.txt', '--seed', 'abc', *FAST],
     ["argument --seed: must be an integer from 0 to 4294967295 (e.g. --seed 0), got 'abc'"]),
    ('seed_negative', lambda b, d: ['simulate', str(b['dir'] / 'fibula.ply'), '-o', f'{d}/s.xyz', '--seed', '-3'],
     ["argument --seed: must be an integer", "got '-3'"]),
    ('seed_too_large', lambda b, d: ['evaluate', PT(b), XYZ(b), '--seed', str(2 ** 40), *FAST],
     ['argument --seed']),
    ('runs_zero', lambda b, d: ['evaluate', PT(b), XYZ(b), '--runs', '0', *FAST],
     ["argument --runs: must be a positive integer, got '0'"]),
    ('every_zero', lambda b, d: ['reconstruct-us', str(_record(d)), '-o', f'{d}/us.xyz', '--every', '0'],
     ["argument --every: must be a positive integer"]),
    ('device_cuda_without_cuda', lambda b, d: (['fit', str(b['dir'] / 'surface.xyz'), '-o', f'{d}/m.pt', '--device', 'cuda', '--preset', 'test', '--quiet']
                                             if not torch.cuda.is_available() else pytest.skip('CUDA is here')),
     ["--device cuda: device 'cuda': CUDA is not available here"]),
    ('device_unknown', lambda b, d: ['fit', str(b['dir'] / 'surface.xyz'), '-o', f'{d}/m.pt', '--device', 'gpu', '--preset', 'test', '--quiet'],
     ["--device gpu: device 'gpu' is not a torch device"]),
]


def _files(d:Path)->dict:
    "Every file under d with its bytes (to show that nothing was written, replaced or left behind)."
    return {p: p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file()}


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, base, tmp_path):
    name, build, says = case
    d, cache = tmp_path / 'work', tmp_path / 'cache'
    d.mkdir(); cache.mkdir()
    argv = build(base, d)
    before, base_before = _files(d), _files(base['dir'])
    r = run(*argv, cache=cache)
    lines = r.stderr.strip().splitlines()
    print(f'{name}: exit {r.returncode}: {r.stderr.strip()}')  # the corpus, readable with pytest -s
    assert r.returncode == 2, (name, r.returncode, r.stderr[-2000:])
    assert 'Traceback' not in r.stderr and len(lines) == 1, (name, r.stderr[-2000:])
    assert lines[0].startswith(f'neuralbonereg {argv[0]}: error: '), lines[0]
    for s in says: assert s.replace('{d}', str(d)) in lines[0], (name, s, lines[0])
    assert _files(d) == before, (name, 'something was written, replaced or left behind')
    assert _files(base['dir']) == base_before
    assert not [p for p in cache.rglob('*') if p.is_file()], (name, 'something was cached')


def test_corpus_size():
    "The corpus reports its size; issue 16 asks for the cases it lists and more."
    print(f'{len(CASES)} bad-input cases')
    assert len(CASES) >= 25


# ---- 4. a damaged cache entry at the right key is refitted, never trusted ----------------------------------------------

CACHE_TRAPS = [('nan_weights', lambda ck: ck['state_dict'].update({k: v * np.nan for k, v in ck['state_dict'].items()})),
               ('scale_zero', lambda ck: ck.update(scale_mm=0.0)),
               ('missing_key', lambda ck: ck.pop('surface_points_mm'))]


@pytest.mark.parametrize('trap', CACHE_TRAPS, ids=[t[0] for t in CACHE_TRAPS])
def test_damaged_cache_entry_is_refitted(trap, base, tmp_path):
    from neuralbonereg_nb.data import read_points
    from neuralbonereg_nb.files import content_hash
    from neuralbonereg_nb.udf import PreopModel, udf_config
    name, change = trap
    cache = tmp_path / 'cache'; (cache / 'udf').mkdir(parents=True)
    src = base['dir'] / 'surface.xyz'
    config = udf_config('test')
    key = cache / 'udf' / f"{content_hash(read_points(src))[:16]}_{config.key()}.pt"  # where fit_preop looks
    def at_key(ck):
        ck.update(source_hash=content_hash(read_points(src)), config=asdict(config)); change(ck)
    _ckpt(base, tmp_path, at_key, name='trap.pt'); (tmp_path / 'trap.pt').rename(key)
    r = run('fit', str(src), '-o', str(tmp_path / 'm.pt'), '--preset', 'test', '--quiet', cache=cache)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert 'nan' not in r.stdout.splitlines()[-1], r.stdout
    m = PreopModel.load(tmp_path / 'm.pt')  # the output is whole and finite
    assert m.normalization.scale_mm > 50 and np.isfinite(m.udf(base['surface'][:50])).all()
    PreopModel.load(key, expect_config=config)  # the cache entry was replaced by a checked fit


# ---- 5. never replace a file that appeared during the run --------------------------------------------------------------

def test_file_appearing_during_the_run_is_not_replaced(tmp_path):
    from neuralbonereg_nb.files import write_atomic, safe_output
    dest = safe_output(tmp_path / 'T.txt')  # free when the run starts
    def work(tmp):
        Path(tmp).write_text('our result')
        dest.write_text('written by someone else meanwhile')
    with pytest.raises(FileExistsError, match='appeared while we worked.*--force'): write_atomic(dest, work)
    assert dest.read_text() == 'written by someone else meanwhile'
    assert [p.name for p in tmp_path.iterdir()] == ['T.txt']  # no temporary left
    write_atomic(dest, lambda tmp: Path(tmp).write_text('our result'), force=True)
    assert dest.read_text() == 'our result'


def test_cli_names_the_file_that_appeared(tmp_path, base, monkeypatch):
    "The same race through a command: the simulated cloud is not written over a file that took its name meanwhile."
    import neuralbonereg_nb.cli as cli
    out = tmp_path / 's.xyz'
    real = cli.write_atomic
    def racing_write(path, write, force=False):
        Path(path).write_text('theirs'); return real(path, write, force)
    monkeypatch.setattr(cli, 'write_atomic', racing_write)
    monkeypatch.setenv('NEURALBONEREG_CACHE', str(tmp_path / 'cache'))
    import contextlib, io
    with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(['simulate', str(base['dir'] / 'fibula.ply'), '-o', str(out)])
    assert rc == 2 and out.read_text() == 'theirs'
    line, = err.getvalue().strip().splitlines()
    assert f'{out} appeared while we worked; refusing to overwrite it' in line and '--force' in line
