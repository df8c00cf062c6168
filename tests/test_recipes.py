"""Every shipped YAML recipe builds: known options, its network, its datasets (on the sample set)."""
import copy
import pathlib

import pytest
import yaml
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.utils.options import ordered_yaml

from newbp_plugin.models.newbp_model import parse_model_options
from newbp_plugin.sensor_block import apply_sensor_block
from tests.test_data_dataset import lq_of

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = {'train': ROOT / 'datasets' / 'sample' / 'train.lmdb', 'val': ROOT / 'datasets' / 'sample' / 'val.lmdb'}
RECIPES = sorted(p for p in (ROOT / 'options').rglob('*.yml') if p.parent.name != 'benchmark')


def load(path):
    with open(path, encoding='utf-8') as f:
        return yaml.load(f, Loader=ordered_yaml()[0])  # BasicSR's own loader (anchors resolved)


def test_recipes_exist():
    names = {p.relative_to(ROOT / 'options').as_posix() for p in RECIPES}
    assert 'newbp_nafnet.yml' in names and 'test/newbp_nafnet.yml' in names
    for kind in ('NAFNet-width32', 'NAFNet-width64', 'NewBPNAFNet-width32', 'NewBPNAFNet-width64',
                 'NewBPNAFNet-Converse-width32', 'NewBPNAFNet-width32_finetune-GoPro', 'NAFNet-sample',
                 'NewBPNAFNet-sample', 'NewBPNAFNet-Converse-sample'):
        assert f'train/{kind}.yml' in names and f'test/{kind}.yml' in names


@pytest.mark.parametrize('path', RECIPES, ids=lambda p: p.relative_to(ROOT / 'options').as_posix())
def test_recipe_builds(path):
    opt = load(path)
    apply_sensor_block(opt, str(path))  # as basicsr train|test do
    assert opt['scale'] == 1
    if opt['model_type'] == 'NewBPModel':
        parse_model_options(opt)
    network = copy.deepcopy(opt['network_g'])
    network.pop('pretrain_body', None)  # zoo weights are not shipped
    build_network(network)
    for phase, dataset in opt['datasets'].items():
        if dataset['type'] != 'CrosstalkDataset':
            continue  # the zoo's paired sets (GoPro, SIDD) are not shipped
        dataset = dict(dataset, phase=phase.split('_')[0], scale=opt['scale'])
        dataset['dataroot_gt'] = str(SAMPLE['train' if phase == 'train' else 'val'])
        if phase == 'train':
            dataset['gt_size'] = min(dataset['gt_size'], 64)
        sample = build_dataset(dataset)[0]
        assert lq_of(sample).shape == sample['gt'].shape and sample['kernel'].dim() >= 3
