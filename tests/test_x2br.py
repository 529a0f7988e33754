"""X2BR DRRs and X2B: properties and failure modes that the notebooks 30_x2br_drr and 30a_x2b show less well."""
import json
import numpy as np
import open3d as o3d
import pytest
import torch
from neuralbonereg_nb.frames import random_perturbation
from neuralbonereg_nb.x2br.drr import XrayGeometry, view_geometry, path_lengths, vertebra_mesh
from neuralbonereg_nb.x2br.x2b import X2B, X2BNet, box_projection, move_geometry, x2b_config


@pytest.fixture
def sphere():
    return o3d.geometry.TriangleMesh.create_sphere(20, resolution=60).translate((3, -2, 5))


def test_geometry_survives_a_json_file(tmp_path):
    g = view_geometry('oblique', (1, 2, 3), shape=(8, 12), pixel_mm=1.1)
    (tmp_path / 'g.json').write_text(json.dumps(g.to_dict()))
    back = XrayGeometry.from_dict(json.loads((tmp_path / 'g.json').read_text()))
    np.testing.assert_allclose(back.P, g.P)
    assert back.shape == (8, 12)


def test_path_lengths_do_not_change_when_bone_and_camera_move_together(sphere):
    g = view_geometry('AP', shape=(24, 24), pixel_mm=2.0)
    T = random_perturbation(3, 'uniform', max_translation_mm=40)
    moved = o3d.geometry.TriangleMesh(sphere).transform(T)
    np.testing.assert_allclose(path_lengths(moved, move_geometry(g, T)), path_lengths(sphere, g), atol=1e-3)


def test_vertebra_without_data_says_where_to_point(tmp_path, monkeypatch):
    monkeypatch.setenv('NEURALBONEREG_DATA', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='NEURALBONEREG_DATA'):
        vertebra_mesh(2, 'L1')


def test_paper_preset_builds_and_runs_one_image():
    cfg = x2b_config('paper')
    net = X2BNet(cfg).eval()
    g = view_geometry('AP', shape=(cfg.image_size,) * 2, pixel_mm=cfg.field_mm * cfg.sdd_mm / cfg.sid_mm / cfg.image_size)
    P = torch.tensor(box_projection(g, cfg.sid_mm, cfg.field_mm), dtype=torch.float32)[None]
    with torch.no_grad():
        out = net(torch.zeros(1, 1, cfg.image_size, cfg.image_size), P, torch.zeros(1, 5, 3))
    assert out.shape == (1, 5) and torch.isfinite(out).all()
    assert 25e6 < sum(p.numel() for p in net.encoder.parameters()) < 35e6   # about ConvNeXt-T's 28 M


def test_load_refuses_a_plain_state_dict(tmp_path):
    net = X2BNet(x2b_config('test'))
    torch.save(net.state_dict(), tmp_path / 'sd.pt')
    with pytest.raises(ValueError, match='not a neuralbonereg_nb.X2B/1 checkpoint'):
        X2B.load(tmp_path / 'sd.pt')
