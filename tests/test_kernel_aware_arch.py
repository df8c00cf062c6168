"""KernelAwareNAFNet: the data step inside the network, the noise level handed over, NAFNet's weights."""
import numpy as np
import pytest
import torch
from basicsr.archs import build_network

from newbp_plugin.archs.kernel_aware_arch import KernelAwareNAFNet
from newbp_plugin.archs.nafnet_arch import NAFNet
from newbp_plugin.ops.color import linear_to_srgb, srgb_to_linear
from newbp_plugin.ops.data_step import data_step

from tests.test_converse_arch import perturbed, smooth_image

TINY = dict(img_channel=3, width=8, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])
CMOS = {'type': 'crosstalk', 'size': 5, 'left': 0.06, 'right': 0.06, 'up': 0.05, 'down': 0.05}


def silent_prior(net):
    """Zero every prior's ending conv: R = 0, the stages are their data steps alone."""
    for prior in net.priors:
        torch.nn.init.zeros_(prior.ending.weight)
        torch.nn.init.zeros_(prior.ending.bias)
    return net


def test_with_a_silent_prior_one_stage_is_the_data_step_in_linear_light():
    torch.manual_seed(0)
    net = silent_prior(KernelAwareNAFNet(**TINY, kernel=CMOS)).double()
    x = smooth_image(2, 3, 20, 18)
    noise = {'gain': torch.tensor([[0.002] * 3, [0.01] * 3]), 'read_sigma': torch.full((2, 3), 0.003)}
    light = srgb_to_linear(x)
    variance = (noise['gain'].double()[..., None, None] * light + 0.003**2).mean(1, keepdim=True)
    alpha = variance.mean((-2, -1), keepdim=True) / 0.05**2
    expected = linear_to_srgb(data_step(light, net.kernel, alpha))
    with torch.no_grad():
        torch.testing.assert_close(net(x, noise=noise), expected)
        assert not torch.allclose(net(x), expected)  # without the batch's noise: the defaults, another α


def test_with_a_silent_prior_the_wiener_start_is_classical_wiener():
    """start: wiener: the first stage is Wiener deconvolution (Laplacian prior, β = α_1) in linear light."""
    from newbp_plugin.benchmark.classical import wiener
    torch.manual_seed(0)
    net = silent_prior(KernelAwareNAFNet(**TINY, kernel=CMOS, start='wiener')).double()
    x = smooth_image(2, 3, 20, 18)
    noise = {'gain': torch.tensor([[0.002] * 3, [0.01] * 3]), 'read_sigma': torch.full((2, 3), 0.003)}
    light = srgb_to_linear(x)
    variance = (noise['gain'].double()[..., None, None] * light + 0.003**2).mean(1, keepdim=True)
    beta = variance.mean((-2, -1), keepdim=True) / 0.05**2
    pad = max(net.kernel.shape[-2:])  # the data step's reflect padding
    expected = linear_to_srgb(wiener(light, net.kernel, balance=beta, pad=pad))
    with torch.no_grad():
        torch.testing.assert_close(net(x, noise=noise), expected)
        observation_start = silent_prior(KernelAwareNAFNet(**TINY, kernel=CMOS)).double()
        assert (net(x, noise=noise) - observation_start(x, noise=noise)).abs().max() > 1e-3


def test_the_stages_recover_a_blurred_image_better_than_one():
    from tests.reference import scipy_crosstalk
    from newbp_plugin.kernels import build_kernel
    clean = smooth_image(1, 3, 40, 36)
    kernel = torch.as_tensor(build_kernel(CMOS), dtype=torch.float64)
    blurred = linear_to_srgb(torch.tensor(scipy_crosstalk(srgb_to_linear(clean).numpy(), kernel.numpy())))
    interior = (..., slice(6, -6), slice(6, -6))

    def psnr(stages):
        net = silent_prior(KernelAwareNAFNet(**TINY, stages=stages, kernel=CMOS, init_tau=0.02)).double()
        with torch.no_grad():
            restored = net(blurred, noise={'gain': torch.zeros(1, 3), 'read_sigma': torch.full((1, 3), 1e-3)})
        return -10 * torch.log10((restored - clean)[interior].square().mean()).item()

    blurred_psnr = -10 * torch.log10((blurred - clean)[interior].square().mean()).item()
    assert psnr(1) > blurred_psnr + 5 and psnr(3) > psnr(1) + 3  # each stage pulls further from x


def test_batch_gives_what_samples_give_one_by_one_with_their_own_kernels_and_noise():
    torch.manual_seed(1)
    net = KernelAwareNAFNet(**TINY, stages=2, shared_prior=False).double().eval()
    x = torch.rand(3, 3, 24, 21, dtype=torch.float64)
    kernels = torch.rand(3, 3, 3, 5, 5, dtype=torch.float64)  # per-sample channel-mixing
    kernels = kernels / kernels.sum((-3, -2, -1), keepdim=True)
    noise = {'gain': torch.tensor([[0.001] * 3, [0.004] * 3, [0.01] * 3]), 'read_sigma': torch.full((3, 3), 0.002)}
    with torch.no_grad():
        batch = net(x, kernels, noise)
        for index in range(3):
            single = net(x[index:index + 1], kernels[index:index + 1],
                         {key: value[index:index + 1] for key, value in noise.items()})
            torch.testing.assert_close(batch[index:index + 1], single)


def test_gradients_reach_every_parameter_and_zoo_weights_load():
    net = perturbed(build_network({'type': 'KernelAwareNAFNet', **TINY, 'stages': 2, 'shared_prior': False}))
    x, kernel = torch.rand(2, 3, 16, 16), torch.full((3, 3), 1 / 9)
    net(x, kernel).square().mean().backward()
    assert [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []
    nafnet = NAFNet(**TINY)
    assert sum(p.numel() for p in build_network({'type': 'KernelAwareNAFNet', **TINY}).parameters()) < 1.05 * sum(
        p.numel() for p in nafnet.parameters())
    assert set(net.priors[0].state_dict()) == set(nafnet.state_dict())


def test_a_zoo_body_keeps_its_function_before_training(tmp_path):
    torch.manual_seed(2)
    nafnet = NAFNet(**TINY)
    torch.save({'params': nafnet.state_dict()}, tmp_path / 'zoo.pth')
    net = KernelAwareNAFNet(**TINY, pretrain_body=str(tmp_path / 'zoo.pth'), kernel=CMOS, linear_light=False)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        z = data_step(x, net.kernel, net.noise_std(x, None).square().mean() / 0.05**2)
        torch.testing.assert_close(net(x), nafnet(z))


@pytest.mark.parametrize('options, message', [
    (dict(stages=0), 'stages must be an integer >= 1'),
    (dict(gain=0, read_sigma=0), 'a noise'),
    (dict(kernel={'type': 'crosstalk', 'left': {'uniform': [0, 0.1]}}), 'random'),
    (dict(alpha='learned'), 'alpha must be one of per_stage, hyper'),
    (dict(start='x'), "start must be one of observation, wiener, got 'x'"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        KernelAwareNAFNet(**TINY, **options)
    with pytest.raises(ValueError, match='no kernel'):
        KernelAwareNAFNet(**TINY)(torch.rand(1, 3, 8, 8))


def test_hyper_alpha_starts_as_per_stage_then_follows_the_noise_level():
    """alpha: hyper: τ_t from log σ̄ by an MLP that starts at init_tau; trained, τ differs between noise levels."""
    torch.manual_seed(3)
    per_stage = KernelAwareNAFNet(**TINY, stages=2, kernel=CMOS).double().eval()
    hyper = KernelAwareNAFNet(**TINY, stages=2, kernel=CMOS, alpha='hyper').double().eval()
    hyper.load_state_dict(per_stage.state_dict(), strict=False)  # the same priors and embeddings
    x = smooth_image(2, 3, 20, 20)
    noise = {'gain': torch.tensor([[0.0005] * 3, [0.01] * 3]), 'read_sigma': torch.full((2, 3), 0.002)}
    with torch.no_grad():
        torch.testing.assert_close(hyper(x, noise=noise), per_stage(x, noise=noise))
        torch.nn.init.normal_(hyper.alpha_net[-1].weight)
        mean_variance = hyper.noise_std(srgb_to_linear(x), noise).square().mean((-2, -1), keepdim=True)
        log_tau = hyper.stage_log_tau(mean_variance)
    assert log_tau.shape == (2, 2) and not torch.allclose(log_tau[0], log_tau[1])
    hyper(x, noise=noise).square().mean().backward()
    assert hyper.alpha_net[0].weight.grad.abs().sum() > 0 and not hasattr(hyper, 'log_tau')


def test_checkpoints_hold_weights_not_the_sensor_kernel():
    """A model trained without a fixed K (the universal one) loads strictly into one built with a sensor's K."""
    universal = KernelAwareNAFNet(**TINY)
    with_kernel = KernelAwareNAFNet(**TINY, kernel=CMOS)
    assert 'kernel' not in with_kernel.state_dict()
    with_kernel.load_state_dict(universal.state_dict(), strict=True)
    assert with_kernel.kernel is not None


def test_packed_raw_runs_the_4x4_solve_per_frequency():
    """Raw (issue 15): 4 packed phase planes, linear already, a packed (4, 4, k, k) bayer_crosstalk kernel; with a
    silent prior the network is the data step with that mixing kernel (a 4×4 solve per frequency)."""
    from newbp_plugin.kernels import build_kernel
    from newbp_plugin.sensor import physical_kernel
    torch.manual_seed(5)
    raw_tiny = dict(TINY, img_channel=4)
    net = silent_prior(KernelAwareNAFNet(**raw_tiny, linear_light=False)).double()
    kernel = physical_kernel(build_kernel({'type': 'bayer_crosstalk'}), 4, 'test').double()
    assert kernel.shape[:3] == (1, 4, 4)
    x = torch.rand(2, 4, 16, 12, dtype=torch.float64)
    noise = {'gain': torch.full((2, 4), 0.001), 'read_sigma': torch.full((2, 4), 0.002)}
    variance = (noise['gain'].double()[..., None, None] * x + 0.002**2).mean(1, keepdim=True)
    alpha = variance.mean((-2, -1), keepdim=True) / 0.05**2
    with torch.no_grad():
        torch.testing.assert_close(net(x, kernel, noise), data_step(x, kernel, alpha))
