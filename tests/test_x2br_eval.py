"""X2BR evaluation (30d_evaluate) and its commands (30e_x2br_cli): metrics on shapes with known answers, the pipeline
and the command round trip at the `test` preset, one-line errors for bad X-ray files."""
import contextlib, io, json
from pathlib import Path
import numpy as np
import open3d as o3d
import pytest
from neuralbonereg_nb.data import data_root
from neuralbonereg_nb.x2br.drr import view_geometry
from neuralbonereg_nb.x2br.evaluate import (X2BRResult, box_points, chamfer_l1, read_geometry, read_xray, save_xray,
                                            shape_topology, volumetric_iou, x2br_reconstruct)
from neuralbonereg_nb.x2br.x2b import X2B, X2BNet, x2b_config

needs_data = pytest.mark.skipif(data_root() is None, reason='needs the shared SpineDepth vertebrae (NEURALBONEREG_DATA)')


def _sphere(r=20., c=(0, 0, 0)):
    return o3d.geometry.TriangleMesh.create_sphere(r, resolution=60).translate(c)


def test_iou_and_chamfer_of_a_sphere_and_a_shifted_sphere():
    r, d = 20., 6.
    lens, vol = np.pi * (4 * r + d) * (2 * r - d) ** 2 / 12, 4 / 3 * np.pi * r ** 3     # the overlap: a lens
    pts = box_points(np.diag([70., 70, 70, 1]), 150_000, seed=1)
    assert volumetric_iou(_sphere(c=(d, 0, 0)), _sphere(), pts) == pytest.approx(lens / (2 * vol - lens), abs=0.01)
    t = np.linspace(-1, 1, 100_001)                              # cos θ of a uniform point on a sphere is uniform
    exact = np.abs(np.sqrt(r ** 2 + d ** 2 - 2 * r * d * t) - r).mean()
    cd, cdn = chamfer_l1(_sphere(c=(d, 0, 0)), _sphere(), 20_000)
    assert cd == pytest.approx(exact, rel=0.05) and cdn == pytest.approx(cd / (2 * r), rel=0.01)
    assert volumetric_iou(o3d.geometry.TriangleMesh(), _sphere(), pts) == 0.0


def test_euler_characteristic_and_genus_of_a_sphere_and_a_torus():
    assert shape_topology(_sphere()) == dict(watertight=True, components=1, euler=2, genus=0)
    assert shape_topology(o3d.geometry.TriangleMesh.create_torus()) == dict(watertight=True, components=1, euler=0, genus=1)
    holed = _sphere(); holed.remove_triangles_by_index([0, 1]); holed.remove_unreferenced_vertices()
    assert not shape_topology(holed)['watertight']


def test_xray_files_round_trip_and_bad_geometry_is_one_line(tmp_path):
    g = view_geometry('AP', (0, 0, 0), shape=(16, 20), pixel_mm=2.)
    img = np.random.default_rng(0).uniform(-0.03, 2.5, (16, 20))          # noise can push the background below 0
    png, gj = save_xray(img, g, tmp_path / 'x.png', tmp_path / 'x.json')
    back, g2 = read_xray(png, gj)
    np.testing.assert_allclose(back, img, atol=1e-3); np.testing.assert_allclose(g2.P, g.P)
    with pytest.raises(FileExistsError): save_xray(img, g, png, gj)
    bad = {'trunc.json': '{"source_mm": [0, 0, ', 'list.json': '[1, 2]', 'part.json': '{"u": [1, 0, 0]}',
           'shape.json': json.dumps(dict(g.to_dict(), shape=[16, 21]))}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError) as e: read_xray(png, tmp_path / name)
        assert name in str(e.value) and '\n' not in str(e.value)
    with pytest.raises(FileNotFoundError): read_geometry(tmp_path / 'absent.json')
    (tmp_path / 'junk.png').write_bytes(b'no image')
    with pytest.raises(ValueError, match='not a readable image'): read_xray(tmp_path / 'junk.png', gj)


def test_pipeline_at_the_test_preset_returns_a_mesh():
    cfg = x2b_config('test')
    g = view_geometry('AP', (0, 0, 0), shape=(cfg.image_size,) * 2, pixel_mm=cfg.field_mm * cfg.sdd_mm / cfg.sid_mm / cfg.image_size)
    model = X2B(X2BNet(cfg).eval(), cfg, [])
    r = x2br_reconstruct(model, np.zeros((32, 32)), g, res=16)
    assert isinstance(r, X2BRResult) and isinstance(r.x2b, o3d.geometry.TriangleMesh) and r.x2br is None
    with pytest.raises(ValueError, match='reads 32×32 px'): x2br_reconstruct(model, np.zeros((16, 16)), view_geometry('AP', shape=(16, 16)))


def _parser():
    "The console script's own parser (`cli.build_parser`), which adds this group."
    from neuralbonereg_nb.cli import build_parser
    return build_parser()


def _run(*argv):
    args, out = _parser().parse_args([str(a) for a in argv]), io.StringIO()
    try:
        with contextlib.redirect_stdout(out): args.func(args)
    except (ValueError, OSError) as e: return out.getvalue(), str(e)
    return out.getvalue(), None


@needs_data
def test_commands_round_trip_at_the_test_preset(tmp_path, monkeypatch):
    monkeypatch.setenv('NEURALBONEREG_CACHE', str(tmp_path / 'cache'))
    m, x, gj = tmp_path / 'm.pt', tmp_path / 'x.png', tmp_path / 'x.json'
    out, err = _run('x2br', 'train', '--preset', 'test', '-o', m, '--quiet')
    assert err is None and out.strip().endswith(f'output={m}') and m.is_file()
    assert 'exists' in _run('x2br', 'train', '--preset', 'test', '-o', m, '--quiet')[1]      # no overwrite without --force
    err = _run('x2br', 'drr', m, '--specimen', 6, '--level', 'L1', '-o', x, '--geometry', gj, '--vertebrae', tmp_path)[1]
    assert err.startswith('no vertebra file specimen06_L1.ply in') and not x.exists()               # a folder without vertebrae
    vertebrae = data_root() / 'spinedepth_vertebrae'
    assert _run('x2br', 'drr', m, '--specimen', 6, '--level', 'L1', '-o', x, '--geometry', gj, '--vertebrae', vertebrae)[1] is None
    out, err = _run('x2br', 'reconstruct', m, x, '--geometry', gj, '-o', tmp_path / 'b.ply', '--template', '--res', 20)
    assert err is None and 'method=X2BR' in out and 'watertight=True' in out
    assert len(o3d.io.read_triangle_mesh(str(tmp_path / 'b.ply')).triangles) > 1000
    (tmp_path / 'bad.json').write_text('{"u": [1, 0, 0]')
    err = _run('x2br', 'reconstruct', m, x, '--geometry', tmp_path / 'bad.json', '-o', tmp_path / 'c.stl')[1]
    assert 'bad.json is not valid JSON' in err and '\n' not in err and not (tmp_path / 'c.stl').exists()
    out, err = _run('x2br', 'evaluate', m, '--views', 1, '--res', 20, '--quiet', '--seed', 3)
    last = out.strip().splitlines()[-1]
    assert err is None and [kv.split('=')[0] for kv in last.split()] == ['IoU_X2B', 'chamfer_mm_X2B', 'IoU_X2BR', 'chamfer_mm_X2BR',
                                                                        'IoU_template', 'watertight_X2BR']
    assert last.endswith('watertight_X2BR=1.00')
