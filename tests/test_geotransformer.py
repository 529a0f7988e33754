"""The three properties neuralbonereg_nb.end2reg.geotransformer rests on: rigid invariance of the geometric
self-attention, the Sinkhorn marginals, and exact recovery of a known transform by local-to-global registration."""
import numpy as np
import torch
from scipy.spatial import cKDTree
from neuralbonereg_nb.end2reg import geotransformer as geo
from neuralbonereg_nb.end2reg.kpconv import grid_subsample


def test_self_attention_is_invariant_to_a_rigid_motion():
    preop, _, T, _ = geo.toy_pair(600, seed=3)
    nodes = torch.as_tensor(grid_subsample(preop, 0.2)[0], dtype=torch.float32)
    R, t = torch.as_tensor(T[:3, :3], dtype=torch.float32), torch.as_tensor(T[:3, 3], dtype=torch.float32)
    torch.manual_seed(0)
    emb, sa = geo.GeometricEmbedding(32, 0.3, 15.0, 3), geo.GeoSelfAttention(32, 4)
    x = torch.randn(len(nodes), 32)
    with torch.no_grad():
        assert (sa(x, emb(nodes)) - sa(x, emb(nodes @ R.T + t))).abs().max() < 1e-4


def test_sinkhorn_rows_and_columns_sum_to_the_marginals():
    g = torch.Generator().manual_seed(1)
    rows = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]]).bool()
    cols = torch.tensor([[1, 1, 1], [1, 1, 1]]).bool()
    with torch.no_grad():
        Z = geo.LogOptimalTransport(100)(3 * torch.randn(2, 5, 3, generator=g), rows, cols).exp()   # (2, 6, 4)
    for b in range(2):
        m, n = int(rows[b].sum()), int(cols[b].sum())
        np.testing.assert_allclose(Z[b, :m].sum(1), 1, atol=1e-4)          # real rows
        np.testing.assert_allclose(Z[b, -1].sum(), n, atol=1e-4)           # slack row
        np.testing.assert_allclose(Z[b, :, :n].sum(0), 1, atol=1e-4)       # real columns
        np.testing.assert_allclose(Z[b, :, -1].sum(), m, atol=1e-4)        # slack column
        assert Z[b, m:-1].sum() < 1e-6                                     # padding gets nothing


def test_local_to_global_recovers_the_toy_transform():
    preop, intraop, T, perm = geo.toy_pair(800, seed=4)
    rng = np.random.default_rng(0)
    src = preop[perm].copy()
    bad = rng.random(len(src)) < 0.3
    src[bad] = rng.uniform(-0.6, 0.6, (bad.sum(), 3))
    patch = torch.as_tensor(cKDTree(grid_subsample(intraop, 0.3)[0]).query(intraop)[1])
    T_est, n_inl = geo.local_to_global(torch.as_tensor(intraop), torch.as_tensor(src),
                                       torch.ones(len(src), dtype=torch.float64), patch, 0.05)
    assert np.abs(T_est.numpy() - T).max() < 1e-4
    assert n_inl >= (~bad).sum()


def test_forward_backward_reaches_every_parameter_and_the_mask():
    preop, intraop, _, _ = geo.toy_pair(700, seed=5)
    torch.manual_seed(0)
    model = geo.GeoTransformer('test')
    y = torch.rand(len(intraop), requires_grad=True)
    out = model(preop, intraop, y)
    g = torch.Generator().manual_seed(0)
    loss = sum((out[k] * torch.randn(out[k].shape, generator=g)).sum()
               for k in ('intraop_node_feats', 'preop_node_feats')) \
        + (out['log_z'].exp() * torch.randn(out['log_z'].shape, generator=g)).sum()
    loss.backward()
    assert not [n for n, q in model.named_parameters() if q.grad is None or not q.grad.abs().sum() > 0]
    assert y.grad.abs().sum() > 0 and out['T'].shape == (4, 4)
