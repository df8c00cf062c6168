"""The ``sensor:`` block: one sensor for the data, the network and the losses of a run."""
import copy
import os

import pytest

from newbp_plugin.sensor_block import apply_sensor_block

CMOS = {'type': 'crosstalk', 'size': 5, 'left': 0.06}
NOISE = {'type': 'poisson_gaussian', 'gain': 0.002, 'read_sigma': 0.003, 'quantize': 8}


def run_options(**changes):
    opt = {
        'sensor': {'kernel': CMOS, 'noise': NOISE, 'linear_light': True},
        'datasets': {
            'train': {'type': 'CrosstalkDataset', 'dataroot_gt': 'train.lmdb'},
            'val': {'type': 'CrosstalkDataset', 'dataroot_gt': 'val.lmdb', 'noise': {'type': 'none'}},
            'zoo': {'type': 'PairedImageDataset', 'dataroot_gt': 'gt', 'dataroot_lq': 'lq'},
        },
        'network_g': {'type': 'NewBPNAFNet', 'width': 8},
        'train': {'redegradation_opt': {'type': 'RedegradationLoss', 'margin': 1.0}},
    }
    opt.update(changes)
    return opt


def test_every_component_gets_the_sensor():
    opt = run_options()
    apply_sensor_block(opt)
    train, val, zoo = (opt['datasets'][phase] for phase in ('train', 'val', 'zoo'))
    assert train['kernel'] == CMOS and train['noise'] == NOISE and train['linear_light'] is True
    assert val['kernel'] == CMOS and val['noise'] == {'type': 'none'} and val['linear_light'] is True  # its own noise
    assert set(zoo) == {'type', 'dataroot_gt', 'dataroot_lq'}  # not a sensor dataset
    assert opt['network_g']['kernel'] == CMOS and opt['network_g']['linear_light'] is True
    assert opt['train']['redegradation_opt']['linear_light'] is True
    train['kernel']['left'] = 0.5
    assert opt['sensor']['kernel']['left'] == 0.06  # copies, not shared


def test_networks_get_only_the_options_they_take():
    opt = run_options(network_g={'type': 'NAFNet', 'width': 8})
    apply_sensor_block(opt)
    assert opt['network_g'] == {'type': 'NAFNet', 'width': 8}
    random_kernel = run_options()
    random_kernel['sensor']['kernel'] = [CMOS, {'type': 'gaussian', 'sigma': 1.2}]
    apply_sensor_block(random_kernel)
    assert 'kernel' not in random_kernel['network_g']  # a random kernel comes with every batch
    assert random_kernel['datasets']['train']['kernel'] == [CMOS, {'type': 'gaussian', 'sigma': 1.2}]


def test_without_a_block_nothing_changes():
    opt = run_options()
    del opt['sensor']
    before = copy.deepcopy(opt)
    apply_sensor_block(opt)
    assert opt == before


def test_repeating_linear_light_with_another_value_is_an_error():
    opt = run_options()
    opt['datasets']['val']['linear_light'] = True  # the same value: accepted
    apply_sensor_block(opt)
    opt = run_options()
    opt['datasets']['val']['linear_light'] = False
    with pytest.raises(ValueError, match=r'run.yml: datasets:val: linear_light: False contradicts sensor: '
                       r'linear_light: True'):
        apply_sensor_block(opt, 'run.yml')
    opt = run_options()
    opt['train']['redegradation_opt']['linear_light'] = False
    with pytest.raises(ValueError, match='train:redegradation_opt: linear_light: False contradicts'):
        apply_sensor_block(opt, 'run.yml')


def test_unknown_key_is_named_with_the_closest():
    opt = run_options(sensor={'kernal': CMOS})
    with pytest.raises(ValueError, match=r"run.yml: sensor: unknown option 'sensor:kernal' \(did you mean 'kernel'"):
        apply_sensor_block(opt, 'run.yml')
    with pytest.raises(ValueError, match='sensor must be a mapping'):
        apply_sensor_block(run_options(sensor=[CMOS]), 'run.yml')


def test_a_crosstalk_dataset_needs_a_model_that_degrades():
    apply_sensor_block(run_options(model_type='NewBPModel'))
    with pytest.raises(ValueError, match=r'run.yml: datasets:train is a CrosstalkDataset: .* model_type SRModel would '
                       r'see no degraded input. Use model_type: NewBPModel'):
        apply_sensor_block(run_options(model_type='SRModel'), 'run.yml')
    paired = run_options(model_type='SRModel', datasets={'train': {'type': 'PairedImageDataset'}})
    apply_sensor_block(paired)  # SRModel with stored pairs is BasicSR's own business


def test_basicsr_train_resolves_the_block_before_acting(tmp_path):
    # through the console script: a typo in the block is one line, exit 2, and experiments/ is not touched
    import yaml

    from tests.conftest import run_basicsr
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, 'options', 'newbp_nafnet.yml'), encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    opt['sensor']['nosie'] = opt['sensor'].pop('noise')
    opt['datasets']['train']['dataroot_gt'] = os.path.join(root, 'datasets', 'sample', 'train.lmdb')
    opt['datasets']['val']['dataroot_gt'] = os.path.join(root, 'datasets', 'sample', 'val.lmdb')
    opt['train']['total_iter'] = 1  # were the block not checked, the run would end at once, not hang the test
    (tmp_path / 'front.yml').write_text(yaml.safe_dump(opt))
    result = run_basicsr(['train', '-opt', 'front.yml'], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "basicsr train: error: front.yml: sensor: unknown option 'sensor:nosie' (did you mean 'noise'?); valid "
        'options: kernel, noise, linear_light']
    assert not (tmp_path / 'experiments').exists()


def test_a_run_yaml_read_again_rebuilds_the_network_it_trained(tmp_path):
    # basicsr restore / benchmark read network_g from BasicSR's copy of the run's YAML: the block reaches it too
    import yaml

    from newbp_plugin.inference.network import network_options
    (tmp_path / 'run.yml').write_text(yaml.safe_dump(run_options()))
    network = network_options(str(tmp_path / 'run.yml'), 'net_g_latest.pth')
    assert network == {'type': 'NewBPNAFNet', 'width': 8, 'linear_light': True, 'kernel': CMOS}
