"""Benchmarks on Dask (issue 17, item 5): a two-worker LocalCluster gives the records of the process pool (the same
per-task seeds, RRE, RTE and T_est) on a tiny case at the `test` presets. Cheap methods keep it short; NeuralBoneReg
itself is compared in 10_benchmark (the embedded suite through the CLI, pool vs `--scheduler local:2`)."""
import numpy as np
import pytest

pytest.importorskip('distributed', reason="Dask's distributed scheduler not installed (pip install 'dask[distributed]==2026.8.0')")
from neuralbonereg_nb.benchmark import embedded_case, run_benchmark

KEYS = ('case', 'run', 'method', 'seed', 'T_est', 'error')


def test_local_cluster_matches_process_pool(tmp_path):
    case = embedded_case('fibula')  # the preoperative NeuralUDF is fitted on a worker (`test` preset) and sent as bytes
    kw = dict(methods=('icp', 'pca_icp'), runs=2, seed=0, preset='test', udf_preset='test', progress=False)  # 4 short tasks
    pool = run_benchmark([case], workers=2, **kw)
    dask = run_benchmark([case], scheduler='local:2', cache=tmp_path, **kw)
    assert [tuple(r[k] for k in KEYS) for r in dask] == [tuple(r[k] for k in KEYS) for r in pool]
    assert all(r['error'] == '' for r in dask)
    for k in ('rre_deg', 'rte_mm'):
        np.testing.assert_allclose([r[k] for r in dask], [r[k] for r in pool], rtol=0, atol=1e-9)
    assert len(list(tmp_path.glob('*.json'))) == 4                                   # Dask's results, cached here by content
    again = run_benchmark([case], cache=tmp_path, **kw)                              # read back by any executor, nothing re-run
    assert [r['T_est'] for r in again] == [r['T_est'] for r in dask] and [r['seconds'] for r in again] == [r['seconds'] for r in dask]


def test_scheduler_and_workers_refused():
    with pytest.raises(ValueError, match='not both'):
        run_benchmark([embedded_case('fibula')], 'icp', runs=1, workers=2, scheduler='local:2')


def test_cli_bad_scheduler_one_line(capsys):
    from neuralbonereg_nb.cli import main
    rc = main(['benchmark', '--suite', 'embedded', '--limit', '1', '--methods', 'icp', '--runs', '1', '--preset', 'test',
               '--no-cache', '--scheduler', 'dask://nowhere'])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "scheduler must be 'local:N'" in err and '\n' not in err
