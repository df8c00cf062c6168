"""The ``basicsr`` command: help, error paths and argument hand-over to BasicSR."""
import subprocess
import sys

import pytest

from newbp_plugin import cli
from tests.conftest import run_basicsr


def test_help_lists_subcommands(tmp_path):
    result = run_basicsr(['--help'], cwd=tmp_path)
    assert result.returncode == 0
    assert 'train' in result.stdout and 'test' in result.stdout


def test_version():
    from newbp_plugin import __version__
    out = subprocess.run([sys.executable, '-m', 'newbp_plugin.cli', '--version'], capture_output=True, text=True)
    assert out.stdout.strip() == f'newbp-plugin {__version__}'


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
    picture = cv2.imread(str(out))
    assert picture is not None and picture.ndim == 3 and np.ptp(picture) > 0


def test_kernels_show_bad_spec_is_one_line_exit_2(capsys):
    assert cli.main(['kernels', 'show', '{type: gausian}']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('basicsr kernels: error:') and 'gaussian' in err[0]
