"""NewBPModel: kernel hand-over, physics losses, NaN guard, tiled validation, safe checkpoints."""
import os

import numpy as np
import pytest
import torch
from basicsr.models import build_model
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from newbp_plugin.archs.checkpoint import load_checkpoint
from newbp_plugin.archs.forward_arguments import forward_takes
from newbp_plugin.models.newbp_model import NewBPModel
from newbp_plugin.pictures import s_to_image
from newbp_plugin.ops import crosstalk
from newbp_plugin.registration import register

TINY_NAFNET = {'type': 'NAFNet', 'img_channel': 3, 'width': 8, 'middle_blk_num': 1, 'enc_blk_nums': [1],
               'dec_blk_nums': [1]}


@register(ARCH_REGISTRY)
class KernelProbeNet(nn.Module):
    """Test network with the NewBP contract: S = w * x, Ŷ = K * S (K from the batch); records the batch's
    kernel and noise parameters (as KernelAwareNAFNet takes them)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.seen_kernel = self.seen_noise = None

    def forward(self, x, kernel=None, return_s=False, noise=None):
        self.seen_kernel, self.seen_noise = kernel, noise
        s = self.w * x
        y = s if kernel is None else torch.cat([crosstalk(s[i:i + 1], kernel[i]) for i in range(x.size(0))])
        return (y, s) if return_s else y


def make_opt(tmp_path, network=None, train=None, val=None):
    root = tmp_path / 'experiments' / 'unit'
    for sub in ('models', 'training_states', 'visualization'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    train_opt = {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [10],
                                                                       'gamma': 0.5},
                 'total_iter': 10, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}
    train_opt.update(train or {})
    return {
        'name': 'unit', 'model_type': 'NewBPModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0,
        'world_size': 1, 'network_g': dict(network or TINY_NAFNET), 'train': train_opt,
        'val': dict({'val_freq': 1, 'save_img': False}, **(val or {})),
        'path': {'models': str(root / 'models'), 'training_states': str(root / 'training_states'),
                 'visualization': str(root / 'visualization'), 'pretrain_network_g': None, 'strict_load_g': True,
                 'resume_state': None},
    }


def batch(b=2, size=16, seed=0, kernel=None):
    g = torch.Generator().manual_seed(seed)
    data = {'lq': torch.rand(b, 3, size, size, generator=g), 'gt': torch.rand(b, 3, size, size, generator=g),
            'lq_path': [f'img{i}.png' for i in range(b)]}
    if kernel is not None:
        data['kernel'] = kernel
    return data


def test_unknown_option_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown option 'train:pixel_op' \(did you mean 'pixel_opt'\?\)"):
        build_model(make_opt(tmp_path, train={'pixel_op': {}}))
    with pytest.raises(ValueError, match="unknown option 'val:tiles'"):
        build_model(make_opt(tmp_path, val={'tiles': 64}))
    with pytest.raises(ValueError, match="option train:amp must be bf16, fp16 or absent, got 'fp8'"):
        build_model(make_opt(tmp_path, train={'amp': 'fp8'}))


def test_batch_kernel_reaches_network_and_redegradation_loss(tmp_path):
    kernel = torch.zeros(2, 3, 3, 3)
    kernel[0, :, 1, 1] = 1.0  # identity for sample 0
    kernel[1, :, 1, 0] = 1.0  # a shift for sample 1
    opt = make_opt(tmp_path, network={'type': 'KernelProbeNet'},
                   train={'redegradation_opt': {'type': 'RedegradationLoss', 'padding_mode': 'zeros'},
                          'precompensation_opt': {'type': 'PrecompensationRegularizer'}})
    model = build_model(opt)
    assert isinstance(model, NewBPModel) and forward_takes(model.get_bare_model(model.net_g), 'kernel') and model.net_returns_s
    data = batch(kernel=kernel)
    model.feed_data(data)
    model.optimize_parameters(1)
    assert model.net_g.seen_kernel is model.kernel
    assert set(model.get_current_log()) == {'l_pix', 'l_redeg', 'l_s'}
    expected = (crosstalk(model.output.detach(), kernel, padding_mode='zeros') - data['lq']).abs().mean()
    assert model.get_current_log()['l_redeg'] == pytest.approx(expected.item(), rel=1e-5)


def test_nan_loss_skips_step_then_stops(tmp_path):
    model = build_model(make_opt(tmp_path, train={'max_bad_steps': 3}))
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    data = batch()
    data['gt'][0, 0, 0, 0] = float('nan')
    model.feed_data(data)
    for it in (1, 2):
        model.optimize_parameters(it)
    assert model.bad_steps == 2
    for k, v in model.net_g.state_dict().items():
        assert torch.equal(v, before[k]), k
    model.feed_data(batch())  # a good step resets the count
    model.optimize_parameters(3)
    assert model.bad_steps == 0
    model.feed_data(data)
    with pytest.raises(RuntimeError, match='3 consecutive non-finite losses'):
        for it in (4, 5, 6):
            model.optimize_parameters(it)


@register(ARCH_REGISTRY)
class BoxFilterNet(nn.Module):
    """Test network, local: a 5x5 box filter with replicate padding (its output near a tile's edge depends on it)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.w * F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode='replicate'), 5, stride=1)


def test_tiled_validation_blends_the_tiles(tmp_path):
    model = build_model(make_opt(tmp_path, network={'type': 'BoxFilterNet'}, val={'tile': 64, 'tile_overlap': 8}))
    model.feed_data(batch(b=1, size=64))
    model.test()
    whole = model.output.clone()
    torch.testing.assert_close(whole, BoxFilterNet()(model.lq).detach())
    model.opt['val'].update(tile=24, tile_overlap=0)
    model.test()
    hard_seams = (model.output - whole).abs().mean()
    model.opt['val']['tile_overlap'] = 8
    model.test()
    blended = (model.output - whole).abs().mean()
    assert 0 < blended < 0.5 * hard_seams


def test_crosstalk_batches_are_degraded_on_the_model(tmp_path):
    from torch.utils.data import default_collate

    from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset, degrade_batch
    from tests.conftest import write_smooth_images
    folder = write_smooth_images(tmp_path / 'clean', 2, size=24)
    dataset = CrosstalkDataset({'dataroot_gt': str(folder), 'phase': 'val', 'kernel': {'type': 'crosstalk'},
                                'noise': {'type': 'poisson_gaussian', 'gain': 0.002, 'quantize': 8}})
    data = default_collate([dataset[0], dataset[1]])
    model = build_model(make_opt(tmp_path, network={**TINY_NAFNET, 'type': 'NewBPNAFNet'}))
    model.feed_data(data)
    torch.testing.assert_close(model.lq, degrade_batch(data), rtol=0, atol=0)
    assert model.lq.shape == model.gt.shape == (2, 3, 24, 24) and (model.lq != model.gt).any()
    model.optimize_parameters(1)  # the network gets the batch's kernels
    torch.testing.assert_close(model.kernel, data['kernel'])
    encoded = build_model(make_opt(tmp_path, network={**TINY_NAFNET, 'type': 'NewBPNAFNet', 'linear_light': False}))
    with pytest.raises(ValueError, match=r'network_g \(NewBPNAFNet\) applies K with linear_light: false, but the '
                       r'dataset degrades with linear_light: true'):
        encoded.feed_data(data)
    loss = build_model(make_opt(tmp_path, train={'redegradation_opt': {'type': 'RedegradationLoss',
                                                                       'linear_light': False}}))
    with pytest.raises(ValueError, match=r'train:redegradation_opt applies K with linear_light: false'):
        loss.feed_data(data)


def test_checkpoints_are_atomic_and_load_weights_only(tmp_path, monkeypatch):
    model = build_model(make_opt(tmp_path))
    model.save(epoch=0, current_iter=5)
    models_dir = tmp_path / 'experiments' / 'unit' / 'models'
    states_dir = tmp_path / 'experiments' / 'unit' / 'training_states'
    state = torch.load(states_dir / '5.state', weights_only=True)
    assert state['iter'] == 5 and len(state['optimizers']) == 1
    net = build_model(make_opt(tmp_path)).net_g
    assert load_checkpoint(net, models_dir / 'net_g_5.pth').param_key == 'params'
    good = (models_dir / 'net_g_5.pth').read_bytes()

    def killed_mid_write(obj, f, *args, **kwargs):
        f.write(b'partial')
        raise KeyboardInterrupt('killed')

    monkeypatch.setattr(torch, 'save', killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        model.save_network(model.net_g, 'net_g', 5)
    assert (models_dir / 'net_g_5.pth').read_bytes() == good
    assert sorted(os.listdir(models_dir)) == ['net_g_5.pth']


def test_pretrain_with_module_prefix_loads(tmp_path):
    source = build_model(make_opt(tmp_path)).net_g
    path = tmp_path / 'ddp.pth'
    torch.save({'params': {f'module.{k}': v for k, v in source.state_dict().items()}}, path)
    opt = make_opt(tmp_path)
    opt['path']['pretrain_network_g'] = str(path)
    loaded = build_model(opt).net_g
    for k, v in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_any_torch_optimizer_by_name(tmp_path):
    model = build_model(make_opt(tmp_path, train={'optim_g': {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 0.01}}))
    assert isinstance(model.optimizer_g, torch.optim.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer 'Adamm'"):
        build_model(make_opt(tmp_path, train={'optim_g': {'type': 'Adamm', 'lr': 1e-3}}))


def test_validation_logs_the_degraded_input_metric(tmp_path, caplog):
    """Ŷ's PSNR is logged by SRModel; the input's PSNR (lq vs gt, computed independently here) beside it."""
    import logging

    from torch.utils.data import DataLoader
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img

    class Pairs(torch.utils.data.Dataset):
        opt = {'name': 'pairs'}

        def __len__(self):
            return 2

        def __getitem__(self, i):
            item = batch(b=1, size=16, seed=i)
            return {k: v[0] for k, v in item.items()}

    opt = make_opt(tmp_path, val={'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}})
    model = build_model(opt)
    with caplog.at_level(logging.INFO, logger='basicsr'):
        model.validation(DataLoader(Pairs(), batch_size=1), 1, None, save_img=False)
    expected = np.mean([calculate_psnr(tensor2img([Pairs()[i]['lq']]), tensor2img([Pairs()[i]['gt']]), 0)
                        for i in range(2)])
    assert model.input_metrics['pairs']['psnr'] == pytest.approx(expected)
    assert f'# psnr: {expected:.4f}' in caplog.text and 'Degraded input pairs' in caplog.text


def test_channel_mixing_batches_go_through_degradation_head_and_loss(tmp_path):
    # per-sample (B, C, C, k, k) kernels: the data degrade with them, the head and the loss apply them, one optics
    from torch.utils.data import default_collate

    from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset
    from tests.conftest import write_smooth_images
    from tests.reference import scipy_crosstalk
    folder = write_smooth_images(tmp_path / 'clean', 2, size=24)
    mixing = {'type': 'cross_channel', 'mix': [[0.8, 0.2, 0], [0.1, 0.8, 0.1], [0, 0.2, 0.8]]}
    dataset = CrosstalkDataset({'dataroot_gt': str(folder), 'phase': 'train', 'gt_size': 16,
                                'kernel': [mixing, {'type': 'gaussian', 'sigma': 0.8}], 'linear_light': False})
    data = default_collate([dataset[0], dataset[1]])
    assert data['kernel'].shape == (2, 3, 3, 7, 7)
    model = build_model(make_opt(tmp_path, network={**TINY_NAFNET, 'type': 'NewBPNAFNet', 'linear_light': False,
                                                    'output': 'residual'},
                                 train={'redegradation_opt': {'type': 'RedegradationLoss', 'linear_light': False}}))
    model.feed_data(data)
    expected = scipy_crosstalk(data['scene'].numpy(), data['kernel'].numpy())[..., 3:-3, 3:-3]
    np.testing.assert_allclose(model.lq.numpy(), expected, atol=2e-6)
    model.optimize_parameters(1)
    head = model.get_bare_model(model.net_g).head
    s = torch.rand(2, 3, 16, 16)
    np.testing.assert_allclose(head(s, model.kernel).detach().numpy(),
                               scipy_crosstalk(s.numpy(), data['kernel'].numpy()), atol=2e-6)
    assert np.isfinite(model.get_current_log()['l_redeg'])


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_checkpoints_get_the_permissions_torch_save_gives(tmp_path, umask):
    # a temporary file is 0600: other users of a shared machine could not read the checkpoints
    model = build_model(make_opt(tmp_path))
    previous = os.umask(umask)
    try:
        model.save(epoch=0, current_iter=3)
        torch.save({}, tmp_path / 'reference.pth')
    finally:
        os.umask(previous)
    expected = (tmp_path / 'reference.pth').stat().st_mode & 0o777
    assert expected == 0o666 & ~umask
    for path in (tmp_path / 'experiments' / 'unit').rglob('*3.*'):
        assert path.stat().st_mode & 0o777 == expected, path
    assert len(list((tmp_path / 'experiments' / 'unit').rglob('*3.*'))) == 2  # net_g_3.pth, 3.state


class ValPairs(torch.utils.data.Dataset):
    """Two validation pairs, lq_path img0.png and img1.png."""
    opt = {'name': 'pairs'}

    def __len__(self):
        return 2

    def __getitem__(self, i):
        item = batch(b=1, size=16, seed=i)
        return dict({k: v[0] for k, v in item.items()}, lq_path=f'img{i}.png')


@pytest.mark.parametrize('is_train, network, kind', [
    (True, {'type': 'NewBPNAFNet', 'width': 8, 'enc_blk_nums': [1], 'dec_blk_nums': [1], 'output': 'residual',
            'skip': 'none', 'kernel': {'type': 'crosstalk'}}, 'residual'),
    (False, {'type': 'KernelProbeNet'}, 'image'),
])
def test_validation_saves_the_input_and_ground_truth_once_beside_y_and_s(tmp_path, is_train, network, kind):
    from torch.utils.data import DataLoader
    from basicsr.utils import tensor2img
    import cv2

    opt = make_opt(tmp_path, network=network, val={'save_img': True, 'suffix': None})
    opt['is_train'] = is_train
    model = build_model(opt)
    folder = tmp_path / 'experiments' / 'unit' / 'visualization'
    for iteration in (1, 2):
        model.validation(DataLoader(ValPairs(), batch_size=1), iteration, None, save_img=True)
        if iteration == 1:
            first = {path: path.stat().st_mtime_ns for path in folder.rglob('*_[lg][qt].png')}
    names = sorted(path.relative_to(folder).as_posix() for path in folder.rglob('*.png'))
    if is_train:  # BasicSR: visualization/<img>/<img>_<iter>.png
        assert names == sorted(f'img{i}/img{i}_{end}.png' for i in range(2)
                               for end in ('1', '1_S', '2', '2_S', 'lq', 'gt'))
    else:  # BasicSR: visualization/<dataset>/<img>_<suffix or name>.png
        assert names == sorted(f'pairs/img{i}_{end}.png' for i in range(2) for end in ('unit', 'unit_S', 'lq', 'gt'))
    assert {path: path.stat().st_mtime_ns for path in folder.rglob('*_[lg][qt].png')} == first  # written once
    for name in ('lq', 'gt'):
        saved = cv2.imread(str(next(folder.rglob(f'img1_{name}.png'))))
        np.testing.assert_array_equal(saved, tensor2img([ValPairs()[1][name][None]]))
    last_s = cv2.imread(str(next(folder.rglob('img1_2_S.png' if is_train else 'img1_unit_S.png'))))
    np.testing.assert_array_equal(last_s, s_to_image(model.s[0], kind))  # drawn as the network's kind of S


def test_the_noise_drawn_for_each_sample_reaches_the_network(tmp_path):
    from torch.utils.data import default_collate

    from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset
    from tests.conftest import write_smooth_images
    folder = write_smooth_images(tmp_path / 'clean', 2, size=24)
    dataset = CrosstalkDataset({'dataroot_gt': str(folder), 'phase': 'train', 'gt_size': 16,
                                'noise': {'type': 'poisson_gaussian', 'gain': {'uniform': [0.001, 0.01]},
                                          'read_sigma': 0.002}})
    data = default_collate([dataset[0], dataset[1]])
    model = build_model(make_opt(tmp_path, network={'type': 'KernelProbeNet'}))
    model.feed_data(data)
    model.optimize_parameters(1)
    seen = model.get_bare_model(model.net_g).seen_noise
    torch.testing.assert_close(seen['gain'], data['sensor']['gain'])
    torch.testing.assert_close(seen['read_sigma'], data['sensor']['read_sigma'])
    assert seen['gain'][0, 0] != seen['gain'][1, 0]  # per sample
    model.feed_data(batch(b=1))  # stored pairs carry no noise parameters: none is passed
    model.test()
    assert model.get_bare_model(model.net_g).seen_noise is None


def test_redegradation_with_sigma_noise_gets_each_samples_drawn_noise_level(tmp_path):
    from torch.utils.data import default_collate

    from newbp_plugin.data.crosstalk_dataset import CrosstalkDataset
    from newbp_plugin.ops.color import srgb_to_linear
    from tests.conftest import write_smooth_images
    from tests.reference import scipy_crosstalk
    folder = write_smooth_images(tmp_path / 'clean', 2, size=24)
    dataset = CrosstalkDataset({'dataroot_gt': str(folder), 'phase': 'train', 'gt_size': 16,
                                'kernel': {'type': 'gaussian', 'sigma': 0.8, 'size': 3},
                                'noise': {'type': 'poisson_gaussian', 'gain': {'uniform': [0.0005, 0.004]},
                                          'read_sigma': {'uniform': [0.001, 0.006]}}})
    data = default_collate([dataset[0], dataset[1]])
    model = build_model(make_opt(tmp_path, network={'type': 'KernelProbeNet'},
                                 train={'redegradation_opt': {'type': 'RedegradationLoss', 'sigma': 'noise'}}))
    model.feed_data(data)
    model.optimize_parameters(1)
    out, lq = model.output.detach().double(), model.lq.double()
    sensor = data['sensor']
    # σ² per sample and channel, by hand: gain · mean linear signal + read² (the noise has no quantisation)
    linear_lq = srgb_to_linear(lq)
    variance = (sensor['gain'].double()[..., None, None] * linear_lq.mean((-2, -1), keepdim=True)
                + sensor['read_sigma'].double()[..., None, None] ** 2)
    reblurred = scipy_crosstalk(srgb_to_linear(out).numpy(), data['kernel'].numpy())
    expected = (np.abs(reblurred - linear_lq.numpy()) / variance.sqrt().numpy()).mean()
    assert model.get_current_log()['l_redeg'] == pytest.approx(expected, rel=1e-5)
