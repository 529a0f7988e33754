"""Fetchers, caches and bad input of neuralbonereg_nb.data (what notebooks show less well)."""
import os
from pathlib import Path
import numpy as np
import pytest
from neuralbonereg_nb import data
from neuralbonereg_nb.files import cache_dir


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / 'cache'
    monkeypatch.setenv('NEURALBONEREG_CACHE', str(cache))
    return cache


def test_offline_without_cache_names_package_and_command(empty_cache):
    with pytest.raises(RuntimeError, match=r'pip download --no-deps gias3\.examples==3\.0\.0'):
        data.load_bone('tibia', download=False)


def test_corrupt_wheel_is_refused_and_kept_aside(empty_cache):
    whl = cache_dir('gias3_examples') / data.GIAS3_WHEEL
    whl.write_bytes(b'not a wheel')
    with pytest.raises(ValueError, match='wrong sha256'):
        data.fetch_gias3_wheel(download=False)
    assert not whl.exists() and whl.with_suffix('.whl.corrupt').exists()


def test_load_bone_sizes_mm():
    "The acceptance check: the tibia's longest side is 300–420 mm."
    m = data.load_bone('tibia')
    assert 300 <= np.ptp(np.asarray(m.vertices), axis=0).max() <= 420


def test_points_in_metres_are_refused(tmp_path):
    p = tmp_path / 'us_m.xyz'
    np.savetxt(p, np.random.default_rng(0).normal(0, 0.05, (500, 3)))
    with pytest.raises(ValueError, match='metres'):
        data.read_points(p)


def test_user_file_is_never_written(tmp_path, empty_cache):
    "Outer-surface extraction caches in the cache folder, never beside the input."
    import open3d as o3d
    user = tmp_path / 'user'; user.mkdir(); p = user / 'bone.stl'
    s = o3d.geometry.TriangleMesh.create_sphere(25.0); s.compute_triangle_normals()
    o3d.io.write_triangle_mesh(str(p), s)
    before = sorted(user.iterdir())
    data.extract_outer_surface(data.read_mesh(p), n_views=8, resolution=32)
    assert sorted(user.iterdir()) == before
    assert len(list((empty_cache / 'outer_surface').glob('*.ply'))) == 1


@pytest.mark.skipif(data.data_root() is None, reason='../shared/data absent (set NEURALBONEREG_DATA to run the real-case tests)')
def test_real_fibula_case():
    c = data.load_case('ultrabones_fibula')
    assert len(c.points) == 99655 and np.allclose(c.T_gt, np.eye(4))
    assert 380 < np.ptp(np.asarray(c.mesh.vertices), axis=0).max() < 410
