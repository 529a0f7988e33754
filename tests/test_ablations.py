"""Ablations (`nbs/11_ablations.ipynb`): method variants by name, the corrupted cloud, the robust `gm` score through
`register`, a study end to end and the `ablation` / `evaluate --noise-mm` commands — all at the `test` presets, on
small clouds, in well under a minute."""
import numpy as np
import pytest
import torch
from neuralbonereg_nb import ablations as ab
from neuralbonereg_nb.benchmark import make_method, run_benchmark
from neuralbonereg_nb.loss import aggregate, gnc_scale, SCORE_MODES
from neuralbonereg_nb.metrics import rre_deg
from neuralbonereg_nb.register import register, registration_config


def test_variant_names_round_trip_and_build_registrars():
    name = ab.variant_name('neuralbonereg', depth=1, score_mode='gm', robust_mm=(20.0, 2.0), noise_mm=2)
    assert ab.parse_variant(name) == ('neuralbonereg', dict(depth=1, score_mode='gm', robust_mm=(20.0, 2.0), noise_mm=2))
    r = make_method(name, 'test')
    assert isinstance(r, ab.CorruptedInput) and r.noise_mm == 2
    assert (r.inner.config.registration.depth, r.inner.config.registration.robust_mm) == (1, (20.0, 2.0))
    with pytest.raises(ValueError, match='unknown method'): make_method('nope[depth=0]', 'test')
    with pytest.raises(ValueError, match='unknown methods'): run_benchmark([], ['nope[depth=0]'])


def test_every_study_row_is_a_valid_variant():
    for s in ab.STUDIES.values():
        for _, v, _ in s.rows + s.gpu_rows: ab.variant_registrar(v, 'test')


def test_corruption_is_content_seeded_and_shared_across_sigmas():
    X = np.random.default_rng(1).normal(size=(400, 3)) * 30
    a, b = ab.corrupt_cloud(X, 2.0, 0.2), ab.corrupt_cloud(X.copy(), 2.0, 0.2)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 500 and np.allclose(ab.corrupt_cloud(X, 4.0) - X, 2 * (ab.corrupt_cloud(X, 2.0) - X))
    with pytest.raises(ValueError, match='outliers'): ab.corrupt_cloud(X, 0, 1.0)


def test_gm_score_is_bounded_and_annealed():
    d = torch.tensor([[0.1, 0.2, 50.0]])
    assert float(aggregate(d, 'gm', robust_scale=3.0)) < 1.2 < float(aggregate(d, 'mean'))
    assert 'gm' in SCORE_MODES and gnc_scale(0, 10) == 30.0 and abs(gnc_scale(9, 10) - 3.0) < 1e-12
    with pytest.raises(ValueError, match='robust_mm'): registration_config('test', robust_mm=(3.0,))


def test_register_with_gm_finds_the_pose_despite_outliers(tibia_field, partial_cloud):
    _, field = tibia_field
    pts = partial_cloud(field, 40.0)
    noisy = ab.corrupt_cloud(pts, 1.0, 0.2)
    reg = register(field, noisy, 'test', seed=0, score_mode='gm', mirror_check=False, n_heads=300, steps=80)
    assert rre_deg(reg.T, np.eye(4)) < 5 and np.isfinite(reg.score_mm) and reg.score_mm < 3.0


def test_a_study_end_to_end_at_the_test_preset(tibia_field):
    mesh, _ = tibia_field
    from neuralbonereg_nb.benchmark import embedded_case
    from neuralbonereg_nb.data import Case
    c = embedded_case('tibia')
    c = Case('tibia_small', c.mesh, c.points[::20], c.T_gt, meta=dict(c.meta))
    rows, fig = ab.run_study('init', [c], runs=1, preset='test', udf_preset='test', progress=False)
    assert [r['variant'] for r in rows] == ab.STUDIES['init'].variants and all(r['n'] == 1 and r['errors'] == 0 for r in rows)
    assert len(fig.data) == 3 and '| variant | runs | RR |' in ab.format_study(rows)


def test_cli_parsers_have_the_ablation_and_noise_options():
    from neuralbonereg_nb.cli import build_parser
    a = build_parser().parse_args(['ablation', 'noise', '--runs', '2', '--seed', '1', '--cases', 'ultrabones_fibula', '--preset', 'test', '-o', 'n.csv'])
    assert (a.name, a.runs, a.seed, a.cases, a.preset, a.output, a.func) == ('noise', 2, 1, 'ultrabones_fibula', 'test', 'n.csv', ab.ablation_command)
    e = build_parser().parse_args(['evaluate', 'fibula', 'x.xyz', '--noise-mm', '4', '--outliers', '0.1', '--score-mode', 'gm'])
    assert (e.noise_mm, e.outliers, e.score_mode) == (4.0, 0.1, 'gm')


def test_denoise_cloud_removes_noise_and_sparse_outliers_and_leaves_a_clean_cloud_alone():
    g = np.random.default_rng(0)
    u, v = g.uniform(-40, 40, (2, 20_000))
    Z = np.stack([u, v, 0.01 * u * u], -1)  # a curved sheet, mm
    err = lambda P: np.median(np.abs(P[:, 2] - 0.01 * P[:, 0] ** 2))
    noisy = Z + 2.0 * g.standard_normal(Z.shape)
    assert err(ab.denoise_cloud(noisy, 'auto', max_points=2000)) < 0.3 * err(noisy)
    assert ab.denoise_radius_mm(Z) == 0.0  # clean: no smoothing
    O = np.concatenate([Z, g.uniform(-60, 60, (2000, 3))])
    assert len(ab.denoise_cloud(O, 0.0, max_points=len(O))) < len(Z) + 100  # the sparse outliers are dropped
    r = make_method('neuralbonereg[noise_mm=4,denoise_mm=auto]', 'test')
    assert isinstance(r, ab.CorruptedInput) and r.denoise_mm == 'auto'


def test_residual_sigma_follows_the_noise(tibia_field, partial_cloud):
    from neuralbonereg_nb.register import residual_sigma_mm
    _, field = tibia_field
    X = partial_cloud(field, 40.0)
    s0, s3 = residual_sigma_mm(field, X), residual_sigma_mm(field, X + 3.0 * np.random.default_rng(0).standard_normal(X.shape))
    assert s0 < 1.0 and 2.0 < s3 < 4.0


def test_the_measured_studies_ship_with_the_package_and_read_back():
    "Every study's measured CSVs (the tables of `11_ablations`) are package data: both case groups, 3 runs a case, no errors."
    for name in ab.STUDIES:
        m = ab.measured_study(name)
        assert set(m) == {'fibula', 'three hips'}, (name, set(m))
        for group, rows in m.items():
            assert [r['variant'] for r in rows][:len(ab.STUDIES[name].rows)] == ab.STUDIES[name].variants, (name, group)
            assert all(r['n'] == (3 if group == 'fibula' else 9) and r['errors'] == 0 for r in rows), (name, group)
            assert all('RR_floor' in r for r in rows) == (name in ab.FLOOR_STUDIES), (name, group)
    ten = ab.measured_dir() / 'fibula_10runs'  # the fibula's noise and denoise studies again with 10 runs a row
    for name in ('noise', 'denoise'):
        (rows,) = ab.measured_study(name, ten).values()
        assert [r['variant'] for r in rows] == ab.STUDIES[name].variants and all(r['n'] == 10 and r['errors'] == 0 and 'RR_floor' in r for r in rows), name
    with pytest.raises(FileNotFoundError, match='neuralbonereg ablation depth'):
        ab.measured_study('depth', folder='/nonexistent')
    with pytest.raises(ValueError, match='unknown study'):
        ab.measured_study('nope')


def test_the_ablation_command_refuses_an_existing_floor_csv_before_running(tmp_path):
    "A floor study writes <stem>_floor.csv too: an existing one is refused at once (no hours of runs lost), not after."
    import argparse
    (tmp_path / 'n_floor.csv').write_text('keep me')
    args = argparse.Namespace(name='noise', output=str(tmp_path / 'n.csv'), force=False, cases='no_such_case')
    with pytest.raises(FileExistsError):
        ab.ablation_command(args)
    assert (tmp_path / 'n_floor.csv').read_text() == 'keep me' and not (tmp_path / 'n.csv').exists()
