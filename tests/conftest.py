"""Shared fixtures: tiny image folders and a runner for the ``basicsr`` command."""
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

import newbp_plugin  # noqa: F401  (compat + registration before any basicsr import, as for users)


def basicsr_command():
    """The installed ``basicsr`` console script of this interpreter's environment."""
    script = shutil.which('basicsr', path=os.path.dirname(sys.executable))
    if script is None:
        pytest.fail('the basicsr console script is not installed: run `pip install -e .` first')
    return script


def run_basicsr(args, cwd, timeout=600, env=None):
    """Run ``basicsr ARGS`` in ``cwd``; return the CompletedProcess (text output)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([basicsr_command()] + list(args), cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def write_smooth_images(folder, count, size=32, seed=0):
    """Write ``count`` smooth random 8-bit RGB PNGs (``img{i}.png``) into ``folder``."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.uniform(0, 255, size=(size // 4, size // 4, 3)).astype(np.float32)
        img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(os.path.join(folder, f'img{i}.png'), np.clip(img, 0, 255).astype(np.uint8))
    return folder


@pytest.fixture
def paired_folders(tmp_path):
    """``gt/`` and ``lq/`` folders of 4 paired 32x32 images (lq = gt blurred)."""
    gt = write_smooth_images(tmp_path / 'gt', 4)
    lq = tmp_path / 'lq'
    lq.mkdir()
    for name in os.listdir(gt):
        img = cv2.imread(str(gt / name))
        cv2.imwrite(str(lq / name), cv2.GaussianBlur(img, (5, 5), 1.0))
    return gt, lq
