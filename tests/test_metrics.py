"""Properties of the metrics and the protocol runner that the notebook shows only by example (nbs/08_metrics.ipynb)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from neuralbonereg_nb.frames import apply_transform, invert_transform, make_transform
from neuralbonereg_nb.metrics import (cd_hd95_mm, chamfer_mm, evaluate, evaluate_registration, filtered_target,
                                      format_summary, perturbation_runs, rre_deg, rte_mm, summarize, tre_mm)


def _random_T(rng, t_scale=100.0):
    return make_transform(Rotation.random(random_state=rng).as_matrix(), rng.uniform(-t_scale, t_scale, 3))


def test_pose_errors_are_symmetric_and_frame_consistent():
    rng = np.random.default_rng(1)
    pts = rng.normal(0, 30, (500, 3)) + [0, 300, 1300]
    for _ in range(20):
        Te, Tg = _random_T(rng), _random_T(rng)
        assert rre_deg(Te, Tg) == pytest.approx(rre_deg(Tg, Te), abs=1e-9)
        c = pts.mean(0)
        # RTE at the centroid = distance between where the two transforms put the centroid = TRE at that one landmark
        assert rte_mm(Te, Tg, c) == pytest.approx(np.linalg.norm(apply_transform(Te, c[None]) - apply_transform(Tg, c[None])), abs=1e-9)
        assert rte_mm(Te, Tg, c) == pytest.approx(tre_mm(Te, Tg, c[None]), abs=1e-9)
        # composing both with the same motion on the right (a re-perturbation of the source) keeps RRE and the centroid RTE
        A = _random_T(rng)
        assert rre_deg(Te @ A, Tg @ A) == pytest.approx(rre_deg(Te, Tg), abs=1e-6)
        assert rte_mm(Te @ A, Tg @ A, apply_transform(invert_transform(A), c[None])[0]) == pytest.approx(rte_mm(Te, Tg, c), abs=1e-6)


def test_chamfer_is_rigid_invariant_and_hd95_bounds_it_loosely():
    rng = np.random.default_rng(2)
    X, Y = rng.normal(0, 10, (3000, 3)), rng.normal(0, 10, (2000, 3)) + 1
    T = _random_T(rng)
    cd, hd = cd_hd95_mm(X, Y)
    assert chamfer_mm(apply_transform(T, X), apply_transform(T, Y)) == pytest.approx(cd, rel=1e-9)
    assert 0 < cd < hd


def test_evaluate_record_fields_and_independence_from_global_rng():
    import open3d as o3d
    box = o3d.geometry.TriangleMesh.create_box(30, 50, 120)
    from neuralbonereg_nb.data import sample_surface
    pts, _ = sample_surface(box, 4000, seed=3)
    pts = pts[pts[:, 0] > 29.99]
    oracle = lambda p: (_kabsch(p, pts), 0.5)
    np.random.seed(1); a = evaluate(oracle, box, pts, runs=3, n_eval_points=5000, case='x')
    np.random.seed(2); b = evaluate(oracle, box, pts, runs=3, n_eval_points=5000, case='x')
    assert set(a[0]) == {'run', 'rte_mm', 'rre_deg', 'cd_mm', 'hd95_mm', 'success', 'flip', 'seconds', 'T_est', 'T_gt'}
    for ra, rb in zip(a, b): np.testing.assert_array_equal(ra['T_gt'], rb['T_gt'])
    s = summarize(a)
    assert s['RR'] == 1.0 and s['n'] == 3 and s['seconds_median'] == 0.5
    assert format_summary(s).split()[0] == 'RR=1.000'
    assert [k.split('=')[0] for k in format_summary(s).split()] == ['RR', 'RRE_median', 'RTE_median', 'CD_mean', 'HD95_mean', 'flips', 'seconds_median']


def _kabsch(src, dst):
    cs, cd = src.mean(0), dst.mean(0)
    U, _, Vt = np.linalg.svd((src - cs).T @ (dst - cd))
    R = Vt.T @ np.diag([1, 1, np.sign(np.linalg.det(Vt.T @ U.T))]) @ U.T
    return make_transform(R, cd - R @ cs)


def test_bad_inputs_raise_value_errors_with_hints():
    pts = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.raises(ValueError, match='not a rigid transform'): rte_mm(np.diag([1, 1, 1, 2.0]), np.eye(4))
    with pytest.raises(ValueError, match='T_gt maps intraop'): filtered_target(pts, pts + 1000, np.eye(4))
    with pytest.raises(ValueError, match='protocol must be one of'): perturbation_runs(1, protocol='nope')
    with pytest.raises(ValueError, match='shape'): evaluate_registration(np.eye(4), np.eye(4), pts[:, :2], pts)
