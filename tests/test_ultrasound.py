"""The `reconstruct-us` command (neuralbonereg_nb.cli) on tracked B-mode records, through the console script's parser."""
import numpy as np
import pytest
from PIL import Image
from neuralbonereg_nb.data import data_root, read_mesh, surface_distance
from neuralbonereg_nb.ultrasound import synthetic_bmode
from neuralbonereg_nb.cli import build_parser, cmd_reconstruct_us

RECORD = data_root() / 'ultrabones100k_example' / 'record' if data_root() is not None else None
needs_record = pytest.mark.skipif(RECORD is None or not RECORD.is_dir(),
                                  reason='shared data folder with ultrabones100k_example/record is absent (set NEURALBONEREG_DATA)')


def parse(*argv):
    return build_parser().parse_args(['reconstruct-us', *map(str, argv)])


def summary(out):
    "The last printed line as a dict: points=… frames_used=… ..."
    return dict(kv.split('=', 1) for kv in out.strip().splitlines()[-1].split())


@needs_record
def test_real_record_every_2nd_frame(tmp_path, capsys):
    args = parse(RECORD, '-o', tmp_path / 'fibula.xyz', '--every', '2')
    args.func(args)
    last = summary(capsys.readouterr().out)
    assert list(last)[:2] == ['points', 'frames_used'] and last['frames_used'] == '56'
    pts = np.loadtxt(tmp_path / 'fibula.xyz')
    assert pts.shape == (int(last['points']), 3) and len(pts) > 3000
    d = surface_distance(read_mesh(RECORD.parent / 'Fibula.stl'), pts)   # identity: both in the tracking frame
    assert np.median(d) <= 0.6 and np.percentile(d, 95) <= 2.0


def test_refuses_to_overwrite_and_force_replaces(tmp_path, capsys):
    rec = tmp_path / 'rec'; (rec / 'UltrasoundImages').mkdir(parents=True)
    rows = []
    for i in range(3):
        f, _ = synthetic_bmode((300, 200), np.full(200, 150.0), seed=i)
        Image.fromarray((255 * f).astype(np.uint8)).save(rec / f'UltrasoundImages/{10 + i}.png')
        rows.append(f'{10 + i},0.1,0,{i},0,90,0,0')
    (rec / 'sweep_initial.csv').write_text(','.join(['timestamp', 'space_factor', 'x', 'y', 'z', 'euler_x', 'euler_y', 'euler_z'])
                                          + '\n' + '\n'.join(rows) + '\n')
    out = tmp_path / 'mine.xyz'; out.write_text('precious')
    with pytest.raises(FileExistsError, match='--force'):
        cmd_reconstruct_us(parse(rec, '-o', out))
    assert out.read_text() == 'precious'
    cmd_reconstruct_us(parse(rec, '-o', out, '--force', '--calibration', 0, 0, 0, 0, 0, 0))
    last = summary(capsys.readouterr().out)
    pts = np.loadtxt(out)
    assert last['frames_used'] == '3' and pts.shape == (int(last['points']), 3)
    np.testing.assert_allclose(pts[:, 2], 0.1 * 150.5, atol=0.15)     # row 150 at 0.1 mm/px, identity calibration


def test_bad_record_is_a_clear_error(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no pose file'):
        cmd_reconstruct_us(parse(tmp_path / 'empty', '-o', tmp_path / 'x.xyz'))
    assert not (tmp_path / 'x.xyz').exists()
