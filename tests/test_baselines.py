"""baselines: the registry, the distance grid against the exact field, bad input, the NeuralUDF path, and every method's
`test` preset through check_registrar."""
import numpy as np
import pytest
from neuralbonereg_nb.fields import GridDistanceField
from neuralbonereg_nb.udf import fit_preop
from neuralbonereg_nb.frames import random_perturbation, apply_transform, invert_transform, check_cloud
from neuralbonereg_nb.metrics import rre_deg, rte_mm, evaluate
from neuralbonereg_nb.presets import PRESET_NAMES as PRESETS
from neuralbonereg_nb.register import Registration
from neuralbonereg_nb.polish import registration_score_mm
from neuralbonereg_nb.verdict import VERDICTS, POOR_MIN_MM, POOR_NOISE_FACTOR
from neuralbonereg_nb.registrar import check_registrar
from neuralbonereg_nb.baselines_udf import UDFObjective
from neuralbonereg_nb.baselines import METHODS, make_registrar


@pytest.fixture(scope='module')
def tibia(tibia_field, partial_cloud):
    mesh, field = tibia_field
    cloud = partial_cloud(field, 60)
    T_pert = random_perturbation(2, 'uniform', center_mm=cloud.mean(0))
    return mesh, field, apply_transform(T_pert, cloud), invert_transform(T_pert)


def test_unknown_names_presets_and_fields():
    with pytest.raises(ValueError, match=r"unknown method 'teaser'; choose one of pca_icp, icp, fpfh_ransac_icp, fgr_icp, udf_lbfgs"):
        make_registrar('teaser')
    with pytest.raises(ValueError, match='unknown preset'): make_registrar('icp', 'fast')
    with pytest.raises(ValueError, match='unknown ICPConfig fields'): make_registrar('icp', 'test', voxel_mm=3)
    with pytest.raises(ValueError, match='polish must be one of'): make_registrar('udf_de', 'test', polish='gicp')
    with pytest.raises(ValueError, match='icp must be one of'): make_registrar('pca_icp', 'test', icp='gicp')
    with pytest.raises(ValueError, match='unknown RegistrationConfig fields|unknown NeuralRegConfig fields'):
        make_registrar('neuralbonereg', 'test', heads=3)
    for name in METHODS:
        for preset in PRESETS:
            r = make_registrar(name, preset)
            assert r.name == name and r.preset == preset and isinstance(r.deterministic, bool)
    assert make_registrar('neuralbonereg', 'test', steps=7).config.registration.steps == 7  # passed through to register


def test_bad_input_raises_check_clouds_message(tibia):
    _, field, cloud, _ = tibia
    nan = cloud.copy(); nan[3] = np.nan
    for bad in (nan, cloud[:40], cloud / 1000, cloud[:, :2]):
        with pytest.raises(ValueError) as want: check_cloud(bad)
        for name in METHODS:  # the cloud is checked before any work: cheap at any preset
            with pytest.raises(ValueError) as got: make_registrar(name, 'fast_cpu').register(field, bad)
            assert str(got.value) == str(want.value), name
    with pytest.raises(ValueError, match='must be a DistanceField'): make_registrar('icp', 'test').register('tibia.stl', cloud)


def test_grid_agrees_with_exact_field(tibia):
    _, field, _, _ = tibia
    g = GridDistanceField(field, 64)
    assert 6 < g.voxel_mm < 8  # 1.25 / 63 of the 350 mm tibia
    rng = np.random.default_rng(0)
    S = field.surface_points_mm
    q = S[rng.choice(len(S), 20_000)] + rng.normal(size=(20_000, 3)) * 8
    exact, grid = field.udf(q), g.udf(q)
    near = (exact > 2) & (exact < 15)  # near the surface, off its kink
    assert near.sum() > 5000
    assert np.abs(grid - exact)[near].mean() < 1.0  # mm, at 7 mm voxels
    assert np.abs(grid - exact).max() <= np.sqrt(3) * g.voxel_mm  # interpolating a 1-Lipschitz function
    g96 = GridDistanceField(field, 96)
    assert np.abs(g96.udf(q) - exact)[near].mean() < 0.75 * np.abs(grid - exact)[near].mean()  # finer grid, smaller error


def test_score_and_field_cache(tibia):
    _, field, cloud, T_gt = tibia
    assert registration_score_mm(field, cloud, T_gt) < 0.01  # the cloud is made of surface samples
    assert registration_score_mm(field, cloud, np.eye(4)) > 10
    calls = []
    v1, s1 = field.cached('k', lambda: calls.append(1) or 42)
    v2, s2 = field.cached('k', lambda: calls.append(1) or 43)
    assert (v1, v2, s2, len(calls)) == (42, 42, 0.0, 1)


# the `test` preset of every method, through the conformance check; seconds each on one core
@pytest.mark.parametrize('name', list(METHODS))
def test_every_method_passes_check_registrar(tibia, name):
    _, field, cloud, T_gt = tibia
    r = check_registrar(make_registrar(name, 'test'), field, cloud)
    assert isinstance(r, Registration) and r.seconds['total'] > 0  # durations are benchmarked, never asserted
    assert {'preop', 'total'} <= set(r.seconds)
    limit = max(POOR_MIN_MM, POOR_NOISE_FACTOR * r.shape.noise_mm)  # every method is judged by the same verdict
    assert r.verdict.kind in VERDICTS and (r.score_mm <= limit or r.verdict.kind in ('poor', 'degenerate')), r.message
    if name in ('neuralbonereg', 'exact_neuralreg', 'grid_neuralreg'):  # ours and its variants, even at `test`
        assert rre_deg(r.T, T_gt) < 5 and rte_mm(r.T, T_gt, center_mm=cloud.mean(0)) < 4
        if name != 'grid_neuralreg': assert r.verdict.kind == 'ok', r.message  # the `test` grid (48³) scores 2.8 mm at the true pose


def test_udf_methods_on_a_neural_udf_and_evaluate(tibia):
    mesh, _, cloud, _ = tibia
    preop = fit_preop(mesh, 'test', cache=False, progress=False)  # the PreopModel path (the notebook uses the exact field)
    obj = UDFObjective(preop, cloud, 200)
    f, g = obj.value_and_grad(np.zeros(6))
    assert np.isfinite(f) and g.shape == (6,) and np.isfinite(g).all()
    for name, kw in (('udf_lbfgs', dict(n_starts=2, maxiter=5)), ('udf_de', dict(maxiter=3)), ('grid_neuralreg', dict(grid_res=24, steps=5))):
        check_registrar(make_registrar(name, 'test', **kw), preop, cloud)
    reg = make_registrar('icp', 'test')
    recs = evaluate(lambda p: reg.register(preop, p), mesh, cloud, runs=1, seed=0, protocol='uniform')
    assert len(recs) == 1 and recs[0]['seconds'] > 0 and np.isfinite(recs[0]['rre_deg'])
