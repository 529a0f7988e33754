"""The `neuralbonereg` console script, as a user runs it."""
import shutil, subprocess, sys
import numpy as np
import pytest

EXE = shutil.which('neuralbonereg')


def run(*args, cwd=None):
    cmd = [EXE, *args] if EXE else [sys.executable, '-c', 'import sys; from neuralbonereg_nb.cli import main; sys.exit(main())', *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)


def test_simulate_writes_cloud_and_ends_with_summary(tmp_path):
    r = run('simulate', 'fibula', '-o', str(tmp_path / 'f.xyz'), '--seed', '3')
    assert r.returncode == 0, r.stderr
    last = dict(kv.split('=', 1) for kv in r.stdout.strip().splitlines()[-1].split())
    pts = np.loadtxt(tmp_path / 'f.xyz')
    assert pts.shape == (int(last['points']), 3) and float(last['median_mm']) < 1.0


def test_never_overwrites_a_user_file(tmp_path):
    f = tmp_path / 'mine.xyz'; f.write_text('precious')
    r = run('simulate', 'tibia', '-o', str(f))
    assert r.returncode == 2 and 'refusing to overwrite' in r.stderr
    assert f.read_text() == 'precious'


def test_bad_mesh_file_is_a_clear_error(tmp_path):
    f = tmp_path / 'bone_in_metres.stl'
    import open3d as o3d
    m = o3d.geometry.TriangleMesh.create_sphere(0.02); m.compute_triangle_normals()
    o3d.io.write_triangle_mesh(str(f), m)
    r = run('simulate', str(f), '-o', str(tmp_path / 'x.xyz'))
    assert r.returncode == 2 and 'metres' in r.stderr
    r = run('simulate', 'femur_that_does_not_exist', '-o', str(tmp_path / 'y.xyz'))
    assert r.returncode == 2 and 'neither an embedded bone' in r.stderr
