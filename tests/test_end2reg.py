"""Edge cases of neuralbonereg_nb.end2reg (scenes, kpconv, segmentation) that the notebooks show less well."""
import numpy as np
import pytest
import torch
from neuralbonereg_nb.data import data_root
from neuralbonereg_nb.end2reg import kpconv, scenes, segmentation

HAVE_SPINE = data_root() is not None and (data_root() / 'spinedepth_vertebrae').is_dir()
needs_spine = pytest.mark.skipif(not HAVE_SPINE, reason='shared data folder with spinedepth_vertebrae is absent '
                                                        '(set NEURALBONEREG_DATA)')


@pytest.fixture(scope='module')
def spine_and_mesh():
    spine = scenes.load_spine(6, points_per_level=3000)
    return spine, scenes.spine_mesh(spine, depth=6)


@needs_spine
def test_occlusion_limit_that_cannot_be_met_raises(spine_and_mesh):
    cfg = scenes.SCENE_PRESETS('test', n_occluders=12, occluder_size_mm=(40.0, 60.0), max_occlusion=0.01)
    with pytest.raises(RuntimeError, match='occluder draws'):
        scenes.simulate_scene(*spine_and_mesh, cfg, seed=0, max_attempts=2)


@needs_spine
def test_scene_is_reproducible_and_seed_dependent(spine_and_mesh):
    a, b = (scenes.simulate_scene(*spine_and_mesh, 'test', seed=s) for s in (5, 5))
    c = scenes.simulate_scene(*spine_and_mesh, 'test', seed=6)
    np.testing.assert_array_equal(a.intraop, b.intraop)
    assert not np.allclose(a.T_gt, c.T_gt)


@needs_spine
def test_saved_files_that_do_not_match_are_refused(spine_and_mesh, tmp_path):
    paths = scenes.save_scene(scenes.simulate_scene(*spine_and_mesh, 'test', seed=0, name='a'), tmp_path)
    for k in ('intraop', 'preop'): (tmp_path / f'b_{k}.ply').write_bytes(paths[k].read_bytes())
    np.savez(tmp_path / 'b_gt.npz', label=np.zeros(3, np.uint8), T_gt=np.eye(4), landmarks=np.zeros((5, 3, 3)),
             center_mm=np.zeros(3), scale_mm=1.0, meta='{"specimen": 6}')   # 3 labels for thousands of points
    with pytest.raises(ValueError, match='do not match'):
        scenes.load_scene(tmp_path, 'b')


def test_save_into_missing_folder_is_refused(tmp_path):
    sc = scenes.Scene('x', 6, np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(2, np.uint8), np.zeros((2, 3)), np.eye(4),
                      np.zeros((5, 3, 3)), scenes.unit_sphere(np.eye(3)))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        scenes.save_scene(sc, tmp_path / 'missing')


def test_kpconv_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(12, 3, generator=g, dtype=torch.float64)
    nb = torch.as_tensor(kpconv.radius_neighbors(X, X, 0.6, 5))
    kern = torch.as_tensor(kpconv.kernel_points(4, 0.6), dtype=torch.float64)
    f = torch.randn(12, 2, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, W: kpconv.kpconv(X, X, nb, f, kern, W, 0.3), (f, W))


def test_pyramid_of_one_point():
    p = kpconv.build_pyramid(np.zeros((1, 3)), n_levels=3, voxel=0.1)
    assert [len(x) for x in p.points] == [1, 1, 1]
    assert p.neighbors[0][0, 0] == 0 and (p.neighbors[0][0, 1:] == 1).all()   # itself, then shadows


def test_kernel_points_refuse_zero():
    with pytest.raises(ValueError, match='n_kernel'):
        kpconv.kernel_points(0)


def test_every_parameter_of_the_unet_gets_a_gradient():
    X = np.random.default_rng(0).uniform(-0.7, 0.7, (800, 3))
    p = segmentation.seg_pyramid(X, 'test')
    torch.manual_seed(0)
    net = segmentation.SegmentationNet('test')
    y = segmentation.st_gumbel_softmax(net(p, segmentation.input_features(p, np.full((800, 3), 0.5))), 0.5)
    y[:, 1].sum().backward()
    missing = [n for n, q in net.named_parameters() if q.grad is None or not q.grad.abs().sum() > 0]
    assert not missing, missing
