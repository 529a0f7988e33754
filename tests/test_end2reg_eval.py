"""neuralbonereg_nb.end2reg.evaluate (20e_evaluate): the frame convention and its adapter on a known transform, the
landmark errors, the oracle window, the summary / table / line, the pipeline on toy cases with an untrained `test`
End2Reg, the figures; the `end2reg` commands (20f_end2reg_cli) through a parser built the way the console script does."""
import contextlib, io
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


# ---- the commands (20f_end2reg_cli), through a parser built the way the console script builds its own ----
from neuralbonereg_nb.data import data_root
from neuralbonereg_nb.end2reg.commands import register_cloud, spine_specimen

HAVE_SPINE = data_root() is not None and (data_root() / 'spinedepth_vertebrae').is_dir()
needs_spine = pytest.mark.skipif(not HAVE_SPINE, reason='shared data folder with spinedepth_vertebrae is absent '
                                                        '(set NEURALBONEREG_DATA)')


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


def test_parser_and_spine_folder(tmp_path):
    a = _parser().parse_args(['end2reg', 'evaluate', 'm.pt', '--specimens', '6', '--scenes', '3', '--seed', '2'])
    assert (a.specimens, a.scenes, a.seed) == ([6], 3, 2)
    assert _parser().parse_args(['end2reg', 'train', '-o', 'm.pt']).mode == 'end2end'
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        _parser().parse_args(['end2reg', 'train', '-o', 'm.pt', '--mode', 'joint'])
    for s in (3, 6): (tmp_path / f'specimen0{s}_L1.ply').touch()
    with pytest.raises(ValueError, match='pick one with --specimen'): spine_specimen(tmp_path)
    assert spine_specimen(tmp_path, 3) == 3


def test_register_cloud_shapes(net):
    toy = toy_scene(500, seed=1)
    T, keep, sec = register_cloud(net, toy.norm.to_mm(toy.preop), toy.norm.to_mm(toy.intraop), toy.colors)
    assert T.shape == (4, 4) and np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5) and keep.shape == (len(toy),)
    with pytest.raises(ValueError, match='points but 5 colours'):
        register_cloud(net, toy.norm.to_mm(toy.preop), toy.norm.to_mm(toy.intraop), toy.colors[:5])


@needs_spine
def test_commands_round_trip_at_the_test_preset(tmp_path, monkeypatch, net):
    from neuralbonereg_nb.end2reg.scenes import make_split, save_scene
    monkeypatch.setenv('NEURALBONEREG_CACHE', str(tmp_path / 'cache'))
    m = tmp_path / 'm.pt'; net.save(m)                   # an untrained test model: the plumbing, not the accuracy
    sc = make_split('validate', 1, 'test', seed=1)[0]; save_scene(sc, tmp_path)
    vert, scene = data_root() / 'spinedepth_vertebrae', tmp_path / f'{sc.name}_intraop.ply'
    out, err = _run('end2reg', 'register', m, vert, scene, '-o', tmp_path / 'T.txt', '--specimen', 6)
    assert err is None and 'frame=save_scene' in out and np.loadtxt(tmp_path / 'T.txt').shape == (4, 4)
    assert 'exists' in _run('end2reg', 'register', m, vert, scene, '-o', tmp_path / 'T.txt', '--specimen', 6)[1]
    err = _run('end2reg', 'register', m, vert, scene, '-o', tmp_path / 'T2.txt')[1]
    assert 'pick one with --specimen' in err and '\n' not in err and not (tmp_path / 'T2.txt').exists()
    err = _run('end2reg', 'register', m, vert, tmp_path / f'{sc.name}_preop.ply', '-o', tmp_path / 'T3.txt', '--specimen', 6)[1]
    assert 'has no colours' in err
    out, err = _run('end2reg', 'evaluate', m, '--vertebrae', vert, '--specimens', 6, '--scenes', 1, '--methods', 'icp_bone',
                    '--preset', 'test', '--quiet')
    last = out.strip().splitlines()[-1]
    assert err is None and [kv.split('=')[0] for kv in last.split()] == ['TRE_median', 'TRE_q1', 'TRE_q3', 'outliers',
                                                                          'seg_IoU', 'seconds']
