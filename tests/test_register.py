"""register(): bad input, the poor flag, determinism and the result's contract, as a user meets them."""
import numpy as np
import pytest
from neuralbonereg_nb.udf import fit_preop
from neuralbonereg_nb.frames import random_perturbation, apply_transform, invert_transform
from neuralbonereg_nb.metrics import rre_deg, rte_mm, evaluate
from neuralbonereg_nb.register import register, registration_config, Registration


@pytest.fixture(scope='module')
def tibia(tibia_field, partial_cloud):
    mesh, field = tibia_field
    return mesh, field, partial_cloud(field, 50)


def test_bad_clouds_are_clear_errors(tibia):
    _, field, cloud = tibia
    with pytest.raises(ValueError, match='fewer than the 50'): register(field, cloud[:20], 'test')
    with pytest.raises(ValueError, match='metres'): register(field, cloud / 1000, 'test')
    bad = cloud.copy(); bad[5] = np.nan
    with pytest.raises(ValueError, match='NaN'): register(field, bad, 'test')
    with pytest.raises(ValueError, match=r'\(N, 3\)'): register(field, cloud[:, :2], 'test')
    with pytest.raises(ValueError, match='must be a DistanceField'): register('tibia.stl', cloud, 'test')
    with pytest.raises(ValueError, match='unknown preset'): register(field, cloud, 'fast')
    with pytest.raises(ValueError, match='unknown RegistrationConfig fields'): register(field, cloud, 'test', heads=10)


def test_registers_deterministically_and_reports(tibia):
    _, field, cloud = tibia
    T_pert = random_perturbation(1, 'uniform', center_mm=cloud.mean(0))
    moved = apply_transform(T_pert, cloud)
    a = register(field, moved, 'test', seed=0)
    b = register(field, moved, 'test', seed=0)
    assert isinstance(a, Registration) and np.allclose(a.T, b.T, atol=1e-9)
    T_gt = invert_transform(T_pert)
    assert rre_deg(a.T, T_gt) < 5 and rte_mm(a.T, T_gt, center_mm=moved.mean(0)) < 4
    assert not a.poor and a.message.startswith('ok') and a.score_mm < 1.0
    assert a.seconds['total'] > 0
    assert a.config == registration_config('test')
    for r in a.runner_ups:
        assert r['score_mm'] >= a.score_mm and (r['rotation_deg'] > 20 or r['offset_mm'] > 20)


def test_poor_fit_is_flagged(tibia):
    _, field, cloud = tibia
    noise = np.random.default_rng(0).uniform(-80, 80, (400, 3)) + cloud.mean(0)  # not this bone
    r = register(field, noise, 'test', seed=0, steps=5)
    assert r.verdict.kind == 'poor' and r.poor and r.message.startswith('poor:')


def test_works_with_a_neural_udf_and_evaluate(tibia):
    mesh, _, cloud = tibia
    preop = fit_preop(mesh, 'test', cache=False, progress=False)
    recs = evaluate(lambda p: register(preop, p, 'test', seed=0, steps=5), mesh, cloud, runs=1, seed=0, protocol='uniform')
    assert len(recs) == 1 and recs[0]['seconds'] > 0 and np.isfinite(recs[0]['rre_deg'])
