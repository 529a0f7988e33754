"""neuralbonereg_nb.end2reg.evaluate (20e_evaluate): the frame convention and its adapter on a known transform, the
landmark errors, the oracle window, the summary / table / line, the pipeline on toy cases with an untrained `test`
End2Reg, the figures; the `end2reg` commands (20f_end2reg_cli) through a parser built the way the console script does."""
import argparse, contextlib, io
import numpy as np
import pytest
from neuralbonereg_nb.baselines import make_registrar
from neuralbonereg_nb.fields import ExactDistanceField
from neuralbonereg_nb.frames import apply_transform, invert_transform, make_transform
from neuralbonereg_nb.end2reg import evaluate as ev
from neuralbonereg_nb.end2reg.train import END2REG_PRESETS, End2Reg, End2RegNet, toy_scene


def _rot_z(a):
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


@pytest.fixture(scope='module')
def toys():
    return [ev.make_case(toy_scene(400, seed=s)) for s in (1, 2)]


@pytest.fixture(scope='module')
def net():
    return End2Reg(End2RegNet('test').eval(), END2REG_PRESETS('test'), 'end2end', [])


def test_adapter_and_registrar_direction_on_a_known_transform():
    surf = np.random.default_rng(0).normal(size=(3000, 3)) * [40, 20, 10]
    A = make_transform(_rot_z(0.1), [4.0, -3.0, 2.0])                    # truth: intraop mm → preop mm
    r = make_registrar('icp', 'test').register(ExactDistanceField(surf), apply_transform(invert_transform(A), surf[::2]))
    assert np.abs(ev.as_intraop_to_preop(r.T, 'intraop_to_preop') - A).max() < 1e-2
    assert np.abs(ev.as_intraop_to_preop(invert_transform(r.T), 'preop_to_intraop') - A).max() < 1e-2
    with pytest.raises(ValueError, match='convention must be one of'): ev.as_intraop_to_preop(A, 'forward')
    assert {s.convention for s in ev.E2R_METHODS.values()} == {'intraop_to_preop'}


def test_case_truth_and_landmark_errors(toys):
    c = toys[0]
    d = np.linalg.norm(apply_transform(c.T_gt, c.intraop_mm[c.bone])[:, None] - c.preop_mm[None], axis=2).min(1)
    assert d.max() < 1e-8                                                # the truth puts the bone on the preop points
    e = ev.case_errors(make_transform(t=[3.0, 4.0, 0.0]) @ c.T_gt, c)
    assert np.allclose([e['tre_mm'], e['rmse_mm'], e['max_mm'], e['rre_deg']], [5, 5, 5, 0], atol=1e-9)
    assert ev.case_errors(invert_transform(c.T_gt), c)['tre_mm'] > 10     # the wrong direction is far off
    with pytest.raises(ValueError, match='window must be'): ev.make_case(c.scene, np.ones(3, bool))


def test_window_mask_is_the_elliptic_cylinder():
    fr = dict(centre=np.zeros(3), left=np.array([1.0, 0, 0]), cranial=np.array([0, 0, 1.0]), length_mm=100.0)
    got = ev.window_mask([[0, 0, 0], [34, 0, 0], [36, 0, 0], [0, 500, 59], [0, 0, 61]], fr, 'fast_cpu')
    assert got.tolist() == [True, True, False, True, False]


def test_summary_line_and_table():
    rows = [dict(method='end2reg', tre_mm=t, rmse_mm=t, rre_deg=1.0, iou=0.5, seconds=2.0) for t in (1, 2, 3, 4, 20)]
    S = ev.summarize_e2r(rows)
    assert (S[0]['tre_median'], S[0]['tre_q1'], S[0]['tre_q3'], S[0]['outliers']) == (3.0, 2.0, 4.0, 0.2)
    assert ev.e2r_line(S) == 'TRE_median=3.00 TRE_q1=2.00 TRE_q3=4.00 outliers=0.200 seg_IoU=0.500 seconds=2.00'
    tab = ev.format_e2r_table(S)
    assert '1.83 [1.17, 2.70], outliers 3.8%' in tab and '9.73 ± 5.56' in tab and 'GMCNet' in tab
    with pytest.raises(ValueError, match='no rows'): ev.summarize_e2r([])


def test_evaluate_on_toy_cases_and_figures(toys, net):
    r = ev.e2r_evaluate(net, methods=['end2reg', 'icp', 'icp_bone'], cases=toys, preset='test', progress=False)
    assert len(r.rows) == 6 and [s['method'] for s in r.summary] == ['end2reg', 'icp', 'icp_bone']
    assert r.line.startswith('TRE_median=') and 0 <= r.summary[0]['iou'] <= 1
    assert r.summary[2]['tre_median'] < 1.0                              # ICP on the bone alone, toy misalignment
    with pytest.raises(ValueError, match='unknown method'): ev.e2r_evaluate(net, methods=['gmcnet'], cases=toys)
    with pytest.raises(ValueError, match='needs a trained model'): ev.e2r_evaluate(None, methods=['end2reg'], cases=toys)
    keep = np.arange(len(toys[0])) % 2 == 0
    assert len(ev.plot_mask(toys[0], keep).data) == 5
    assert len(ev.plot_registration(toys[0], r.rows[1]['T']).data) == 4
    with pytest.raises(ValueError, match='mask must be'): ev.plot_mask(toys[0], keep[:5])
