"""The README's benchmark table is what its command produces.

The table under "Shipped models and the ablation" is read from ``benchmarks/results/benchmark_sample.json``
(fast test), and that file from a fresh ``basicsr benchmark -opt options/benchmark/sample.yml`` (slow test).
"""
import json
import pathlib
import re

import pytest

from tests.conftest import run_basicsr

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMITTED = ROOT / 'benchmarks' / 'results' / 'benchmark_sample.json'
HEADER = '| method | CMOS 5×5 / low |'
# README labels -> names in options/benchmark/sample.yml
KERNELS = {'CMOS 5×5': 'cmos_5x5', 'Gaussian 1.2': 'gaussian_1.2'}
METHODS = {
    'degraded input': 'input',
    'Wiener (oracle)': 'wiener',
    'Richardson–Lucy (oracle, discrepancy stop)': 'richardson_lucy',
    'Converse2D as a solver (oracle)': 'converse',
    'NAFNet (blind)': 'nafnet',
    'NewBP-NAFNet (`output: residual`, Ŷ = X + K * R)': 'newbp_nafnet',
    'NewBP-NAFNet + Converse blocks': 'newbp_nafnet_converse',
}


def readme_table():
    """``{(kernel, noise, method): 'PSNR / SSIM'}`` of the README's table, bold marks removed."""
    lines = (ROOT / 'README.md').read_text(encoding='utf-8').splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(HEADER))
    columns = [cell.strip() for cell in lines[start].strip('|').split('|')][1:]
    degradations = [(KERNELS[column.rsplit(' / ', 1)[0]], column.rsplit(' / ', 1)[1]) for column in columns
                    if column.rsplit(' / ', 1)[0] in KERNELS]  # then the runtime column
    cells = {}
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        row = [cell.strip().replace('**', '') for cell in line.strip('|').split('|')]
        for degradation, cell in zip(degradations, row[1:]):
            cells[(*degradation, METHODS[row[0]])] = cell
    return cells


def means(path):
    """``{(kernel, noise, method): {metric: mean}}`` of a benchmark.json."""
    rows = json.loads(pathlib.Path(path).read_text())['rows']
    return {(row['kernel'], row['noise'], row['method']): row['mean'] for row in rows}


def test_readme_table_is_the_committed_benchmark():
    table, committed = readme_table(), means(COMMITTED)
    assert len(table) == len(KERNELS) * 2 * len(METHODS)
    for key, cell in table.items():
        assert re.fullmatch(r'\d+\.\d\d / \d\.\d{3}', cell), (key, cell)
        assert cell == f"{committed[key]['psnr']:.2f} / {committed[key]['ssim']:.3f}", key


@pytest.mark.slow
def test_committed_benchmark_is_what_the_command_produces(tmp_path):  # about 25 s on 2 cores
    for folder in ('datasets', 'experiments', 'options'):
        (tmp_path / folder).symlink_to(ROOT / folder)
    result = run_basicsr(['benchmark', '-opt', 'options/benchmark/sample.yml'], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    fresh, committed = means(tmp_path / 'results' / 'benchmark_sample' / 'benchmark.json'), means(COMMITTED)
    assert fresh.keys() == committed.keys()
    for key, values in committed.items():
        for metric in ('psnr', 'psnr_y'):
            assert fresh[key][metric] == pytest.approx(values[metric], abs=0.005), (key, metric)
        for metric in ('ssim', 'ssim_y'):
            assert fresh[key][metric] == pytest.approx(values[metric], abs=0.0005), (key, metric)
