"""The README's "Add your sensor", run as written: its files and its commands, through the console scripts."""
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

from tests.conftest import basicsr_command, write_smooth_images

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The runs are shrunk to seconds; the README's recipe is otherwise used as it is.
SHRINK = ['--force_yml', 'train:total_iter=2', 'val:val_freq=2', 'logger:print_freq=1', 'logger:save_checkpoint_freq=2',
          'datasets:train:batch_size_per_gpu=2', 'datasets:train:num_worker_per_gpu=0',
          'datasets:train:dataset_enlarge_ratio=1']


def readme_section(title='## Add your sensor'):
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    start = text.index(f'\n{title}\n')
    end = text.find('\n## ', start + 1)
    return text[start:end]


def code_blocks(section):
    """[(language, code)] of the fenced blocks, in order."""
    return re.findall(r'^```(\w*)\n(.*?)^```', section, flags=re.M | re.S)


def run(command, cwd):
    """Run one README command line; ``basicsr`` and ``torchrun`` are this environment's console scripts."""
    args = shlex.split(command)
    scripts = {'basicsr': basicsr_command(), 'torchrun': shutil.which('torchrun', path=os.path.dirname(sys.executable))}
    args[0] = scripts[args[0]]
    if args[1] == 'train' or 'newbp_plugin.train' in args:
        args += SHRINK
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_readme_psf_line_builds_a_measured_psf(tmp_path, monkeypatch):
    from newbp_plugin.kernels import build_kernel
    psf_line = next(code for language, code in code_blocks(readme_section()) if 'type: file' in code)
    (tmp_path / 'calib').mkdir()
    psf = np.outer([1, 4, 1], [1, 4, 1]).astype(np.float64)
    np.save(tmp_path / 'calib' / 'psf.npy', psf)
    monkeypatch.chdir(tmp_path)
    kernel = build_kernel(yaml.safe_load(psf_line)['sensor']['kernel'])
    np.testing.assert_allclose(kernel, psf / psf.sum(), rtol=1e-6)


@pytest.mark.slow
def test_readme_recipe_from_function_to_train_torchrun_and_restore(tmp_path):
    blocks = code_blocks(readme_section())
    for language, code in blocks:  # the files the README writes: '# my_sensor.py', '# my_sensor.yml'
        first = code.splitlines()[0]
        if language in ('python', 'yaml') and re.fullmatch(r'# [\w.]+\.(py|yml)', first):
            (tmp_path / first[2:]).write_text(code)
    assert (tmp_path / 'my_sensor.py').is_file() and (tmp_path / 'my_sensor.yml').is_file()
    (tmp_path / 'datasets').symlink_to(ROOT / 'datasets')  # the README runs from the repository root
    write_smooth_images(tmp_path / 'shots', 1, size=48)
    (tmp_path / 'shots' / 'img0.png').rename(tmp_path / 'photo.png')  # "your photograph"

    commands = [line for language, code in blocks if language == 'bash' for line in code.splitlines()
                if line.strip() and not line.startswith('#')]
    assert [shlex.split(line)[:2] for line in commands] == [
        ['basicsr', 'kernels'], ['basicsr', 'kernels'], ['basicsr', 'train'], ['torchrun', '--standalone'],
        ['basicsr', 'restore']]
    results = []
    for command in commands:
        results.append(run(command, tmp_path))
        assert results[-1].returncode == 0, f'{command}\n{results[-1].stderr[-3000:]}'

    listed = {line.split()[0]: line for line in results[0].stdout.splitlines()}
    assert listed['my_sensor'].endswith(f"[from {tmp_path / 'my_sensor.py'} (--plugin my_sensor.py)]")
    assert 'shape (3, 3), sum 1' in results[1].stdout and cv2.imread(str(tmp_path / 'my_sensor.png')) is not None
    runs = sorted((tmp_path / 'experiments').iterdir())  # the single-process run, archived by the distributed one
    assert [path.name.startswith('my_sensor_archived_') for path in runs] == [False, True]
    single = ''.join(path.read_text() for path in runs[1].glob('train_*.log'))
    assert re.search(r'iter:\s+2, lr:.*l_pix: ', single) and '# psnr:' in single
    distributed = ''.join(path.read_text() for path in runs[0].glob('train_*.log'))
    assert 'World size (gpu number): 2' in distributed and re.search(r'iter:\s+2, lr:.*l_pix: ', distributed)
    restored = cv2.imread(str(tmp_path / 'photo_restored.png'), cv2.IMREAD_UNCHANGED)
    assert restored is not None and restored.shape == (48, 48, 3) and restored.dtype == np.uint8


def test_readme_bayer_type_is_the_per_pixel_phase_model():
    """The README's '# my_bayer.py', run as written (registration aside): its packed kernel on the phase planes
    gives what each mosaic pixel receives by its phase's kernel, computed pixel by pixel here."""
    import torch

    from newbp_plugin.kernels import KERNEL_REGISTRY
    from newbp_plugin.ops import crosstalk
    from newbp_plugin.sensor.mosaic import pack, unpack
    code = next(code for language, code in code_blocks(readme_section()) if code.startswith('# my_bayer.py'))
    namespace = {}
    register = KERNEL_REGISTRY.register
    try:
        KERNEL_REGISTRY.register = lambda *args, **kwargs: (lambda function: function)
        exec(compile(code, 'my_bayer.py', 'exec'), namespace)
    finally:
        KERNEL_REGISTRY.register = register
    packed = namespace['my_bayer'](red_leak=0.2, leak=0.08)
    assert packed.shape == (4, 4, 3, 3)
    raw = np.random.default_rng(0).uniform(size=(8, 10))
    leaks = [0.2, 0.08, 0.08, 0.08]  # R, Gr, Gb, B of RGGB, by the parity of (row, column)
    expected = np.zeros_like(raw)
    for y in range(8):
        for x in range(10):
            amount = leaks[2 * (y % 2) + x % 2]
            neighbours = [raw[v, u] for v, u in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1))
                          if 0 <= v < 8 and 0 <= u < 10]  # zeros beyond the border
            expected[y, x] = (1 - amount) * raw[y, x] + amount / 4 * sum(neighbours)
    got = unpack(crosstalk(pack(torch.tensor(raw)[None, None]), torch.tensor(packed)[None], padding_mode='zeros'))
    np.testing.assert_allclose(got[0, 0].numpy(), expected, atol=1e-12)
