"""The ``basicsr`` command: help, error paths and argument hand-over to BasicSR."""
import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

from newbp_plugin import cli
from tests.conftest import run_basicsr


def test_help_lists_subcommands(tmp_path):
    result = run_basicsr(['--help'], cwd=tmp_path)
    assert result.returncode == 0
    assert 'train' in result.stdout and 'test' in result.stdout


def test_version_answers_without_importing_torch_or_basicsr(tmp_path):
    """``basicsr --version`` is the console script's own answer: no torch, no BasicSR (seconds) imported."""
    from newbp_plugin import __version__
    probe = ('import runpy, sys; sys.argv = ["basicsr", "--version"]\n'
             'try:\n    runpy.run_module("newbp_console", run_name="__main__")\n'
             'finally:\n    print(sorted(m for m in ("torch", "basicsr", "newbp_plugin") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.splitlines() == [f'newbp-plugin {__version__}', '[]'], out.stderr


def test_version_verbose_names_torch_cuda_and_basicsr(capsys):
    import basicsr
    import torch
    assert cli.main(['--version', '--verbose']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('newbp-plugin ') and lines[1].startswith('Python ')
    assert lines[2].startswith(f'torch {torch.__version__} (') and lines[3] == f'basicsr {basicsr.__version__}'


@pytest.mark.parametrize('args, message', [
    (['train'], 'basicsr train: error: missing -opt OPTIONS.yml (the YAML file that describes the run)'),
    (['test'], 'basicsr test: error: missing -opt OPTIONS.yml (the YAML file that describes the run)'),
    (['train', '-opt', 'missing.yml'], 'basicsr train: error: options file not found: missing.yml'),
    (['train', '-opt'], 'basicsr train: error: -opt needs the path of an options YAML file'),
])
def test_bad_opt_is_one_line_exit_2(tmp_path, args, message):
    result = run_basicsr(args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert 'Traceback' not in result.stdout + result.stderr


def test_invalid_yaml_names_file_and_line(tmp_path):
    (tmp_path / 'bad.yml').write_text('name: x\ntrain: [1, 2\n')
    result = run_basicsr(['train', '-opt', 'bad.yml'], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('basicsr train: error: bad.yml (line ')
    assert 'not valid YAML' in lines[0]


def test_unknown_subcommand_exits_2(tmp_path):
    result = run_basicsr(['frobnicate'], cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_no_arguments_prints_usage_exit_2(tmp_path):
    result = run_basicsr([], cwd=tmp_path)
    assert result.returncode == 2
    assert 'usage: basicsr' in result.stderr


@pytest.mark.parametrize('args, environ, expected', [
    (['-opt', 'a.yml', '--local-rank', '1'], {}, ['-opt', 'a.yml', '--local_rank', '1']),
    (['-opt', 'a.yml', '--local-rank=3'], {}, ['-opt', 'a.yml', '--local_rank=3']),
    (['-opt', 'a.yml'], {'LOCAL_RANK': '2'}, ['-opt', 'a.yml', '--local_rank', '2']),
    (['-opt', 'a.yml', '--local_rank', '0'], {'LOCAL_RANK': '5'}, ['-opt', 'a.yml', '--local_rank', '0']),
    (['-opt', 'a.yml', '--auto_resume', '--force_yml', 'train:total_iter=4'], {},
     ['-opt', 'a.yml', '--auto_resume', '--force_yml', 'train:total_iter=4']),
])
def test_launcher_flags_normalised(args, environ, expected):
    assert cli.normalise_basicsr_args(args, environ) == expected


def test_flags_reach_basicsr_parser(tmp_path, monkeypatch):
    """Every BasicSR flag, in the torchrun spelling, is parsed by BasicSR's own option parser."""
    import basicsr.test
    from basicsr.utils.options import parse_options
    opt_file = tmp_path / 'x.yml'
    opt_file.write_text('name: x\nmodel_type: SRModel\nnum_gpu: 0\ndatasets: {}\npath: {}\nval: {}\n')
    seen = {}

    def parse_only(root_path):
        seen['opt'], seen['args'] = parse_options(root_path, is_train=False)

    monkeypatch.setattr(basicsr.test, 'test_pipeline', parse_only)
    monkeypatch.chdir(tmp_path)
    argv = ['test', '-opt', str(opt_file), '--launcher', 'none', '--auto_resume', '--debug', '--local-rank', '0',
            '--force_yml', 'name=y']
    assert cli.main(argv) == 0
    opt, args = seen['opt'], seen['args']
    assert (args.opt, args.launcher, args.local_rank) == (str(opt_file), 'none', 0)
    assert opt['auto_resume'] is True
    assert opt['name'] == 'debug_y'  # --force_yml applied, then --debug
    assert opt['path']['results_root'] == str(tmp_path / 'results' / 'debug_y')


def test_finished_run_leaves_the_process_group(tmp_path, monkeypatch):
    """A --launcher run's process group is destroyed once the pipeline returns (BasicSR leaves it up)."""
    import basicsr.test
    import torch.distributed as dist
    opt_file = tmp_path / 'x.yml'
    opt_file.write_text('name: x\nmodel_type: SRModel\nnum_gpu: 0\ndatasets: {}\npath: {}\nval: {}\n')

    def join_group(root_path):
        dist.init_process_group('gloo', init_method=f'file://{tmp_path / "store"}', rank=0, world_size=1)

    monkeypatch.setattr(basicsr.test, 'test_pipeline', join_group)
    monkeypatch.chdir(tmp_path)
    try:
        assert cli.main(['test', '-opt', str(opt_file)]) == 0
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_kernels_list_names_every_registered_type(capsys):
    from newbp_plugin.kernels import KERNEL_REGISTRY
    assert cli.main(['kernels', 'list']) == 0
    names = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert names == set(KERNEL_REGISTRY.keys()) | {'random'}


def test_kernels_show_writes_png(tmp_path, capsys):
    import cv2
    import numpy as np
    from newbp_plugin.kernels import build_kernel
    out = tmp_path / 'k.png'
    assert cli.main(['kernels', 'show', '{type: crosstalk, left: 0.05}', '--out', str(out)]) == 0
    text = capsys.readouterr().out
    shape = build_kernel({'type': 'crosstalk', 'left': 0.05}).shape
    assert f'shape {tuple(shape)}' in text and 'sum 1' in text
    assert 'kernel: sum 1.0000' in text and '   0  0.0500  0.8700  0.0200' in text  # the values, left leak at -1
    picture = cv2.imread(str(out))
    assert picture is not None and picture.ndim == 3 and np.ptp(picture) > 0
    assert cli.main(['kernels', 'show', '{type: crosstalk, left: 0.05}', '--decimals', '2']) == 0
    assert '   0  0.05  0.87  0.02' in capsys.readouterr().out


def test_kernels_show_names_the_phases_of_a_bayer_kernel(tmp_path, capsys):
    import cv2
    import numpy as np
    from newbp_plugin.kernels import build_kernel, render_kernel
    out = tmp_path / 'k.png'
    assert cli.main(['kernels', 'show', '{type: bayer_crosstalk, pattern: GRBG}', '--out', str(out)]) == 0
    titles = [line.split(':')[0] for line in capsys.readouterr().out.splitlines() if ' <- ' in line]
    assert titles[:4] == ['out Gr <- in Gr', 'out Gr <- in R', 'out Gr <- in B', 'out Gr <- in Gb']
    assert titles[-1] == 'out Gb <- in Gb' and len(titles) == 16
    kernel = build_kernel({'type': 'bayer_crosstalk', 'pattern': 'GRBG'})
    np.testing.assert_array_equal(cv2.imread(str(out)), render_kernel(kernel, pattern='GRBG'))
    assert not np.array_equal(cv2.imread(str(out)), render_kernel(kernel))  # the titles are drawn
    assert cli.main(['kernels', 'show', '{type: bayer_crosstalk}']) == 0  # the type's default pattern, RGGB
    assert 'out R <- in Gr: sum' in capsys.readouterr().out


def test_kernels_show_bad_spec_is_one_line_exit_2(capsys):
    assert cli.main(['kernels', 'show', '{type: gausian}']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('basicsr kernels: error:') and 'gaussian' in err[0]


def test_traceback_on_request(monkeypatch):
    from newbp_plugin.kernels import KernelSpecError
    with pytest.raises(KernelSpecError, match="unknown type 'gausian'"):
        cli.main(['kernels', 'show', '{type: gausian}', '--debug'])
    monkeypatch.setenv('NEWBP_TRACEBACK', '1')
    with pytest.raises(KernelSpecError, match="unknown type 'gausian'"):
        cli.main(['kernels', 'show', '{type: gausian}'])


@pytest.mark.slow
def test_train_logs_iteration_1_then_every_print_freq(tmp_path):
    """Iteration 1 gets BasicSR's line, with its time and an ETA, long before the first print_freq line."""
    (tmp_path / 'my_sensor.py').write_text(SENSOR_MODULE)
    opt = tiny_run()
    opt['train']['total_iter'] = 6
    opt['val']['val_freq'] = 100
    opt['logger'].update(print_freq=3, save_checkpoint_freq=100)
    (tmp_path / 'run.yml').write_text(yaml.safe_dump(opt))
    result = run_basicsr(['train', '-opt', 'run.yml'], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = next((tmp_path / 'experiments' / 'tiny').glob('train_tiny_*.log')).read_text()
    lines = [line.split(' INFO: ', 1)[1] for line in log.splitlines() if ', lr:(' in line]
    assert [int(line.split('iter:')[1].split(',')[0].replace(',', '')) for line in lines] == [1, 3, 6]
    assert re.fullmatch(r'\[tiny\.\.\]\[epoch:  0, iter:       1, lr:\(1\.000e-03,\)\] \[eta: \d+:\d\d:\d\d, '
                        r'time \(data\): \d+\.\d{3} \(\d+\.\d{3}\)\] l_pix: \d\.\d{4}e[-+]\d\d ', lines[0]), lines[0]


# ------------------------------------------------- user errors through the console script
ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE_VAL = str(ROOT / 'datasets' / 'sample' / 'val.lmdb')
NAFNET_WEIGHTS = str(ROOT / 'experiments' / 'pretrained_models' / 'NAFNet-sample.pth')
SENSOR_MODULE = '''
import numpy as np
from newbp_plugin.kernels import KERNEL_REGISTRY


@KERNEL_REGISTRY.register()
def my_sensor(leak=0.04, size=3):
    """Even leakage into the rest of a size x size window."""
    kernel = np.full((size, size), leak / (size * size - 1))
    kernel[size // 2, size // 2] = 1 - leak
    return kernel


@KERNEL_REGISTRY.register()
def buggy_sensor(size=3):
    """A kernel function with a bug."""
    return np.ones((size, size))[size]
'''
TINY_NET = {'type': 'NewBPNAFNet', 'width': 8, 'middle_blk_num': 1, 'enc_blk_nums': [1], 'dec_blk_nums': [1],
            'kernel': {'type': 'my_sensor'}}


def tiny_run(is_train=True):
    """A NewBPModel run on the sample LMDB whose kernel comes from the plugin my_sensor.py."""
    data = {'type': 'CrosstalkDataset', 'dataroot_gt': SAMPLE_VAL, 'kernel': {'type': 'my_sensor'}}
    opt = {'name': 'tiny', 'model_type': 'NewBPModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
           'plugins': ['my_sensor.py'], 'network_g': dict(TINY_NET), 'path': {'pretrain_network_g': None},
           'val': {'val_freq': 2, 'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}}
    if not is_train:
        return dict(opt, name='tiny_test', datasets={'test': dict(data, name='test')})
    return dict(opt, datasets={'train': dict(data, name='train', gt_size=32, batch_size_per_gpu=1,
                                             num_worker_per_gpu=0),
                               'val': dict(data, name='val')},
                train={'optim_g': {'type': 'AdamW', 'lr': 1e-3}, 'total_iter': 2, 'pixel_opt': {'type': 'L1Loss'},
                       'scheduler': {'type': 'MultiStepLR', 'milestones': [10]}},
                logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False})


def train_case(change, extra_args=()):
    def prepare(folder):
        opt = tiny_run()
        change(opt, folder)
        (folder / 'run.yml').write_text(yaml.safe_dump(opt, sort_keys=False))
        return ['train', '-opt', 'run.yml', *extra_args], None
    return prepare


def set_train(key, value):
    return lambda opt, folder: opt['datasets']['train'].update({key: value})


def corrupt_lmdb(opt, folder):
    (folder / 'bad.lmdb').mkdir()
    (folder / 'bad.lmdb' / 'data.mdb').write_bytes(bytes(range(256)) * 64)
    (folder / 'bad.lmdb' / 'meta_info.txt').write_text('img0.png (8,8,3) 1\n')
    opt['datasets']['train']['dataroot_gt'] = 'bad.lmdb'


def unreadable_image(opt, folder):
    (folder / 'photos').mkdir()
    (folder / 'photos' / 'a.png').write_text('not an image')
    opt['datasets']['val'].update(dataroot_gt='photos', io_backend={'type': 'disk'})


def basicsr_test_case(folder):
    opt = tiny_run(is_train=False)
    opt['datasets']['test']['kernel'] = {'type': 'my_sensr'}
    (folder / 'run.yml').write_text(yaml.safe_dump(opt))
    return ['test', '-opt', 'run.yml'], None


def before_training_case(folder):
    """``basicsr test`` of a run not trained yet; its training recipe lies beside."""
    opt = tiny_run(is_train=False)
    opt['path']['pretrain_network_g'] = 'experiments/tiny/models/net_g_latest.pth'
    (folder / 'run.yml').write_text(yaml.safe_dump(opt))
    (folder / 'recipe.yml').write_text(yaml.safe_dump(tiny_run()))
    return ['test', '-opt', 'run.yml'], None


def restore_case(folder):
    cv2.imwrite(str(folder / 'photo.png'), np.zeros((8, 8, 3), np.uint8))
    return ['restore', '-i', 'photo.png', '-o', 'out.png', '--weights', NAFNET_WEIGHTS, '--plugin', 'my_sensor.py',
            '--arch', yaml.safe_dump(TINY_NET, default_flow_style=True).strip()], None


def benchmark_case(folder):
    opt = {'name': 'bench', 'plugins': ['my_sensor.py'], 'dataset': {'dataroot_gt': SAMPLE_VAL},
           'kernels': {'mine': {'type': 'my_sensor', 'size': 4}}, 'noises': {'none': {'type': 'none'}},
           'methods': {'input': {'type': 'identity'}}}
    (folder / 'bench.yml').write_text(yaml.safe_dump(opt))
    return ['benchmark', '-opt', 'bench.yml'], None


def nan_psf_case(folder):
    psf = np.ones((3, 3))
    psf[0, 0] = np.nan
    np.save(folder / 'psf.npy', psf)
    return ['kernels', 'show', 'psf.npy', '--out', 'psf.png'], None


def entry_point_case(folder):
    site = folder / 'site'
    (site / 'acme_sensors-1.0.dist-info').mkdir(parents=True)
    (site / 'acme_sensors.py').write_text(SENSOR_MODULE.replace('my_sensor', 'acme_sensor').replace(
        'buggy_sensor', 'acme_buggy'))
    (site / 'acme_sensors-1.0.dist-info' / 'METADATA').write_text('Metadata-Version: 2.1\nName: acme-sensors\n'
                                                                  'Version: 1.0\n')
    (site / 'acme_sensors-1.0.dist-info' / 'entry_points.txt').write_text(
        '[newbp_plugin.kernels]\nacme = acme_sensors\n')
    return ['kernels', 'list'], {'PYTHONPATH': str(site)}


# name -> (prepare(folder) -> (arguments, environment), exit status, text expected on stderr)
ERROR_CASES = {
    'unknown_option': (train_case(set_train('gt_sise', 32)), 2,
                       "basicsr train: error: run.yml: datasets:train: CrosstalkDataset: unknown option 'gt_sise' "
                       "(did you mean 'gt_size'?)"),
    'bad_kernel': (train_case(set_train('kernel', {'type': 'my_sensor', 'size': 4})), 2,
                   'basicsr train: error: run.yml: datasets:train: CrosstalkDataset: option kernel: kernel '
                   '{type: my_sensor, size: 4} is 4x4: an even side has no centre pixel'),
    'missing_lmdb': (train_case(set_train('dataroot_gt', 'nothere.lmdb')), 2,
                     'basicsr train: error: run.yml: datasets:train: CrosstalkDataset: LMDB not found: nothere.lmdb'),
    'corrupt_lmdb': (train_case(corrupt_lmdb), 2, 'basicsr train: error: run.yml: datasets:train: '),
    'unreadable_image': (train_case(unreadable_image), 2,
                         'basicsr train: error: run.yml: datasets:val: CrosstalkDataset: cannot decode image '
                         'photos/a.png'),
    'weights_mismatch': (train_case(lambda opt, folder: opt['path'].update(pretrain_network_g=NAFNET_WEIGHTS)), 2,
                         f"basicsr train: error: run.yml: The weights in 'params' of {NAFNET_WEIGHTS} do not match "
                         "NewBPNAFNet: the network's keys live under 'body.', the checkpoint's at the top level "
                         '(a NAFNet checkpoint?'),
    'test_pipeline': (basicsr_test_case, 2, "basicsr test: error: run.yml: datasets:test: CrosstalkDataset: option kernel: "
                                    "kernel {type: my_sensr}: unknown type 'my_sensr'; did you mean 'my_sensor'?"),
    'test_before_training': (before_training_case, 2, 'basicsr test: error: run.yml: path:pretrain_network_g: '
                             'weights not found: experiments/tiny/models/net_g_latest.pth; `basicsr train -opt '
                             'recipe.yml` makes them'),
    'restore': (restore_case, 2, f"basicsr restore: error: The weights in 'params' of {NAFNET_WEIGHTS} do not match"),
    'benchmark': (benchmark_case, 2, 'basicsr benchmark: error: benchmark options: kernels:mine / noises:none: '),
    'kernels': (nan_psf_case, 2, 'basicsr kernels: error: kernel {type: file, path: psf.npy} has 1 non-finite'),
    'bug': (train_case(set_train('kernel', {'type': 'buggy_sensor'})), 1, 'IndexError: index 3 is out of bounds'),
    'debug_flag': (train_case(set_train('gt_sise', 32), extra_args=['--debug']), 1,
                   "OptionError: run.yml: datasets:train: CrosstalkDataset: unknown option 'gt_sise'"),
}


@pytest.fixture(scope='module')
def console_runs(tmp_path_factory):  # about 40 s on 2 cores
    """{case: (CompletedProcess, its folder)}: every case of ERROR_CASES (and the entry point) run by the
    console script, four at a time, each in a folder holding my_sensor.py and earlier runs' folders."""
    from concurrent.futures import ThreadPoolExecutor
    cases = dict(((name, prepare) for name, (prepare, _, _) in ERROR_CASES.items()), entry_point=entry_point_case)
    runs = {}
    for name, prepare in cases.items():
        folder = tmp_path_factory.mktemp(name)
        (folder / 'my_sensor.py').write_text(SENSOR_MODULE)
        for earlier in ('experiments/tiny', 'results/tiny_test'):
            (folder / earlier).mkdir(parents=True)
            (folder / earlier / 'marker').write_text('an earlier run')
        runs[name] = (folder, *prepare(folder))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = {name: pool.submit(run_basicsr, args, cwd=folder, env=env)
                   for name, (folder, args, env) in runs.items()}
    return {name: (result.result(), runs[name][0]) for name, result in results.items()}


def folder_contents(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob('*') if path.is_file())


@pytest.mark.slow
@pytest.mark.parametrize('case', ERROR_CASES)
def test_user_error_is_one_line_exit_2_and_nothing_is_written_or_lost(console_runs, case):
    result, folder = console_runs[case]
    _, status, expected = ERROR_CASES[case]
    assert result.returncode == status, result.stderr[-3000:]
    if status == 2:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith(expected), result.stderr
    else:  # a bug, or a traceback asked for: the traceback and the message
        assert 'Traceback (most recent call last)' in result.stderr and expected in result.stderr
    written = set(folder_contents(folder)) - {'run.yml', 'recipe.yml', 'bench.yml', 'my_sensor.py', 'psf.npy',
                                              'photo.png', 'bad.lmdb/data.mdb', 'bad.lmdb/meta_info.txt', 'photos/a.png'}
    assert written == {'experiments/tiny/marker', 'results/tiny_test/marker'}  # none archived, none added


@pytest.mark.slow
def test_installed_entry_point_is_listed_with_no_flag(console_runs):
    result, folder = console_runs['entry_point']
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert rows['acme_sensor'].endswith(f"[from {folder / 'site' / 'acme_sensors.py'} (entry point "
                                        "newbp_plugin.kernels: 'acme = acme_sensors' of acme-sensors 1.0)]")
