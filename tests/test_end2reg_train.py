"""neuralbonereg_nb.end2reg.train: the two loss terms, the gradient path through the straight-through mask,
checkpoints (round trip, refusals), resume equality and a falling loss of the `test` preset."""
import numpy as np
import pytest
import torch
from neuralbonereg_nb.data import data_root
from neuralbonereg_nb.frames import apply_transform
from neuralbonereg_nb.end2reg import train as tr
from neuralbonereg_nb.end2reg.geotransformer import GEO_PRESETS, LogOptimalTransport, geo_pyramid, point_to_node

HAVE_SPINE = data_root() is not None and (data_root() / 'spinedepth_vertebrae').is_dir()
needs_spine = pytest.mark.skipif(not HAVE_SPINE, reason='shared data folder with spinedepth_vertebrae is absent '
                                                        '(set NEURALBONEREG_DATA)')


@pytest.fixture(scope='module')
def toy():
    return tr.toy_scene(1200, seed=3), tr.toy_scene(800, seed=4)


@pytest.fixture(scope='module')
def straight_run(toy, tmp_path_factory):
    "The `test` preset, 8 steps on the toy scene, in one go."
    path = tmp_path_factory.mktemp('straight') / 'run.pt'
    return tr.train_end2reg('test', 'end2end', path, progress=False, scenes=[toy[0]], val_scenes=[toy[1]]), path


def _overlaps(scene):
    g = GEO_PRESETS('test')
    P_ref, P_src = geo_pyramid(scene.intraop, g), geo_pyramid(scene.preop, g)
    pt = [point_to_node(P.points[1], P.points[-1], g.patch_k)[0].numpy() for P in (P_ref, P_src)]
    O = tr.patch_overlaps(P_ref.points[1], apply_transform(scene.T_gt, P_src.points[1].numpy()), *pt, 0.08)
    return P_ref, P_src, O


def test_circle_loss_is_lower_for_features_of_the_true_layout(toy):
    P_ref, P_src, O = _overlaps(toy[0])
    feats = lambda p: tr._position_features(torch.as_tensor(p, dtype=torch.float32))
    fr, fs = feats(P_ref.points[-1]), feats(apply_transform(toy[0].T_gt, P_src.points[-1].numpy()))
    true = tr.overlap_circle_loss(fr, fs, O)
    shuffled = tr.overlap_circle_loss(fr, fs[torch.randperm(len(fs), generator=torch.Generator().manual_seed(0))], O)
    assert (O > 0.1).any() and (O == 0).any()
    assert true < 0.7 * shuffled


def test_matching_nll_sends_unmatched_points_to_the_slack():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 6, 3, generator=g)
    y = torch.cat([x[:, :4], 5 + torch.rand(1, 3, 3, generator=g)], 1)          # 4 partners, 3 far preop points
    rm, cm = torch.ones(1, 6, dtype=torch.bool), torch.ones(1, 7, dtype=torch.bool)
    lab = tr.matching_labels(x, y, rm, cm, 1e-3)
    assert lab[0, 4:6, 7].all() and lab[0, 6, 4:7].all() and int(lab.sum()) == 4 + 2 + 3
    ot, scores = LogOptimalTransport(20), torch.zeros(1, 6, 7, requires_grad=True)
    opt = torch.optim.Adam([scores, *ot.parameters()], lr=0.1)
    for _ in range(100):
        loss = tr.matching_nll(ot(scores, rm, cm), lab); opt.zero_grad(); loss.backward(); opt.step()
    Z = ot(scores, rm, cm).exp().detach()[0]
    assert (Z[4:6, 7] > 0.5).all() and (Z[6, 4:7] > 0.5).all() and (Z[:4, 7] < 0.2).all()


def test_gradient_reaches_the_segmentation_only_through_the_mask(toy):
    torch.manual_seed(0)
    net = tr.End2RegNet('test')
    s = tr.prepare_scene(toy[0], 'test')
    t = tr.end2reg_loss(net, s, toy[0].preop, toy[0].T_gt, tau=0.7, generator=torch.Generator().manual_seed(0))
    assert set(t['Y'].detach().unique().tolist()) == {0.0, 1.0}                  # hard forward
    t['logits'].retain_grad(); t['loss'].backward()
    assert t['logits'].grad.abs().sum() > 0                                        # softmax gradient backward
    net.zero_grad(set_to_none=True)
    with torch.no_grad(): Y = net.mask(s, 0.7, torch.Generator().manual_seed(0))[1]
    out = net.reg(toy[0].preop, s.intraop_pyramid, Y)
    (out['intraop_node_feats'].sum() + out['log_z'].clamp_min(-30).sum()).backward()
    assert all(p.grad is None for p in net.seg.parameters())                      # no other path


def test_checkpoint_round_trip_and_refusals(straight_run, tmp_path):
    model, _ = straight_run
    model.save(tmp_path / 'm.pt')
    back = tr.load_end2reg(tmp_path / 'm.pt', device='cpu')
    assert back.config == model.config and back.mode == 'end2end'
    assert all(torch.equal(v, back.net.state_dict()[k]) for k, v in model.net.state_dict().items())
    with pytest.raises(FileExistsError): model.save(tmp_path / 'm.pt')
    (tmp_path / 'text.pt').write_text('hello')
    (tmp_path / 'cut.pt').write_bytes((tmp_path / 'm.pt').read_bytes()[:3000])
    torch.save({'state_dict': {}}, tmp_path / 'foreign.pt')
    for name in ('text.pt', 'cut.pt', 'foreign.pt'):
        with pytest.raises(ValueError) as e: tr.load_end2reg(tmp_path / name)
        assert '\n' not in str(e.value) and name in str(e.value)
    with pytest.raises(FileNotFoundError): tr.load_end2reg(tmp_path / 'none.pt')


def test_resumed_run_equals_straight_run_and_refuses_another_runs_file(straight_run, toy, tmp_path):
    model, path = straight_run
    kw = dict(progress=False, scenes=[toy[0]], val_scenes=[toy[1]])
    half = tr.train_end2reg('test', 'end2end', tmp_path / 'r.pt', max_steps=3, **kw)
    assert len(half.history) == 3
    full = tr.train_end2reg('test', 'end2end', tmp_path / 'r.pt', **kw)
    sd = model.net.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in full.net.state_dict().items())
    strip = lambda h: [{k: v for k, v in r.items() if k != 'seconds'} for r in h]
    assert strip(full.history) == strip(model.history)
    with pytest.raises(ValueError, match='belongs to another'):
        tr.train_end2reg('test', 'two_step', path, **kw)


def test_test_preset_training_lowers_the_loss(straight_run, toy):
    model, _ = straight_run
    s = tr.prepare_scene(toy[0], 'test')
    torch.manual_seed(0)
    before = tr.validate(tr.End2RegNet('test'), [s])['val_loss']
    assert tr.validate(model.net, [s])['val_loss'] < before
    assert len(model.history) == 8 and 'val_loss' in model.history[-1]


def test_register_scene_frames(straight_run, toy):
    model, _ = straight_run
    sc = toy[0]
    T, keep = tr.register_scene(model, sc.norm.to_mm(sc.preop), sc)
    assert T.shape == (4, 4) and keep.shape == (len(sc),) and keep.dtype == bool
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5)
    G = tr.gt_transform_mm(sc)                           # intraop mm → preop mm: the bone lands on the preop points
    moved = apply_transform(G, sc.norm.to_mm(sc.intraop[sc.is_bone]))
    from scipy.spatial import cKDTree
    assert cKDTree(sc.norm.to_mm(sc.preop)).query(moved)[0].max() < 1e-8


@needs_spine
def test_two_step_mode_on_a_real_scene_freezes_the_segmentation(tmp_path, monkeypatch):
    monkeypatch.setenv('NEURALBONEREG_CACHE', str(tmp_path / 'cache'))
    run = tr.train_end2reg('test', 'two_step', tmp_path / 'two.pt', progress=False, max_steps=5)
    seg = {k: v.clone() for k, v in run.net.seg.state_dict().items()}
    assert [h['phase'] for h in run.history] == ['segmentation'] * 4 + ['registration']
    run = tr.train_end2reg('test', 'two_step', tmp_path / 'two.pt', progress=False, max_steps=2)
    assert all(torch.equal(v, run.net.seg.state_dict()[k]) for k, v in seg.items())
    assert len(run.history) == 7 and run.history[-1]['phase'] == 'registration'
