"""NeuralUDF: bad input, checkpoints and the `fit` command, as a user meets them."""
import subprocess, sys, shutil
import numpy as np
import open3d as o3d
import pytest
import torch
from neuralbonereg_nb.udf import fit_preop, PreopModel, udf_config


def test_bad_preop_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match='metres'):
        fit_preop(np.random.default_rng(0).normal(0, 0.05, (500, 3)), 'test', cache=False, progress=False)
    with pytest.raises(ValueError, match='no triangles'):
        fit_preop(o3d.geometry.TriangleMesh(), 'test', cache=False, progress=False)
    pts = np.random.default_rng(0).normal(0, 30, (500, 3)); pts[7] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        fit_preop(pts, 'test', cache=False, progress=False)
    (tmp_path / 'empty.xyz').write_text('')
    with pytest.raises(ValueError, match='empty'):
        fit_preop(tmp_path / 'empty.xyz', 'test', cache=False, progress=False)


def test_checkpoint_roundtrip_and_refusals(tmp_path):
    pts = np.random.default_rng(1).normal(0, 1, (3000, 3)); pts = 40 * pts / np.linalg.norm(pts, axis=1, keepdims=True)
    m = fit_preop(pts, 'test', cache=False, progress=False)
    f = m.save(tmp_path / 'm.pt')
    with pytest.raises(FileExistsError): m.save(f)
    m2 = PreopModel.load(f, expect_source_hash=m.source_hash, expect_config=udf_config('test'))
    q = pts[:50] * 1.1
    assert np.allclose(m.udf(q), m2.udf(q), atol=1e-5)
    with pytest.raises(ValueError, match='other geometry'): PreopModel.load(f, expect_source_hash='0' * 64)
    (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='not a readable'): PreopModel.load(tmp_path / 'junk.pt')
    # a pickled object is refused by weights_only=True, and never executed
    class Evil:
        def __reduce__(self): return (print, ('pwned',))
    torch.save({'format': 'x', 'obj': Evil()}, tmp_path / 'evil.pt')
    with pytest.raises(ValueError, match='not a readable'): PreopModel.load(tmp_path / 'evil.pt')


def test_fit_command_on_a_surface_cloud(tmp_path):
    "PREOP may be a surface cloud (like the SpineDepth vertebrae); the last line is the accuracy line."
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(
        np.asarray(o3d.geometry.TriangleMesh.create_sphere(25.0, 60).sample_points_poisson_disk(3000).points)))
    o3d.io.write_point_cloud(str(tmp_path / 'ball.ply'), pc)
    exe = shutil.which('neuralbonereg')
    cmd = [exe] if exe else [sys.executable, '-c', 'import sys; from neuralbonereg_nb.cli import main; sys.exit(main())']
    r = subprocess.run(cmd + ['fit', str(tmp_path / 'ball.ply'), '-o', str(tmp_path / 'ball.pt'), '--preset', 'test',
                              '--quiet', '--no-cache'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    last = dict(kv.split('=', 1) for kv in r.stdout.strip().splitlines()[-1].split())
    assert set(last) == {'fit_seconds', 'udf_median_mm', 'udf_p95_mm', 'surface_mean_mm'}
    assert PreopModel.load(tmp_path / 'ball.pt').config == udf_config('test')
