"""Classical baselines against independent computations: Wiener, Richardson–Lucy, Converse2D as a solver."""
import pytest
import torch

from newbp_plugin.benchmark.classical import converse, prior_power, richardson_lucy, wiener
from newbp_plugin.kernels import build_kernel
from newbp_plugin.ops import crosstalk
from newbp_plugin.ops.color import linear_to_srgb, srgb_to_linear
from tests.test_ops_converse import circular_conv, gaussian

KERNELS = {
    'gaussian': gaussian(5, 1.0),
    'crosstalk': torch.from_numpy(build_kernel({'type': 'crosstalk', 'size': 5, 'left': 0.08, 'right': 0.04,
                                                'second_ring': 0.01})).double(),
}
MIX = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.0, 0.2, 0.8]], dtype=torch.float64)


def smooth_image(batch=2, channels=3, size=40, seed=0):
    """Smooth positive random images in [0.1, 0.9], float64 (B, C, size, size)."""
    coarse = torch.rand(batch, channels, size // 4, size // 4, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64)
    return 0.1 + 0.8 * torch.nn.functional.interpolate(coarse, size=(size, size), mode='bicubic').clamp(0, 1)


def mixing_conv(x, mix, kernel):
    """Independent channel-mixing circular blur: y_c = Σ_c' mix[c, c'] (K ⊛ x_c')."""
    blurred = circular_conv(x, kernel[None, None])
    return torch.einsum('ij,bjhw->bihw', mix, blurred)


@pytest.mark.parametrize('name', list(KERNELS))
def test_wiener_inverts_a_circular_blur(name):
    clean = smooth_image()
    observed = circular_conv(clean, KERNELS[name][None, None])
    restored = wiener(observed, KERNELS[name], balance=1e-12, boundary='circular')
    assert (restored - clean).abs().max() < 1e-5
    assert (observed - clean).abs().max() > 1e-2


def test_wiener_inverts_a_channel_mixing_blur():
    clean = smooth_image()
    kernel = MIX[:, :, None, None] * KERNELS['gaussian']  # (C, C, kh, kw): mix[c, c'] K
    observed = mixing_conv(clean, MIX, KERNELS['gaussian'])
    restored = wiener(observed, kernel, balance=1e-12, cross_channel=True, boundary='circular')
    assert (restored - clean).abs().max() < 1e-5


def test_wiener_in_linear_light_inverts_a_blur_of_linear_light():
    clean = smooth_image()  # sRGB-encoded
    observed = linear_to_srgb(circular_conv(srgb_to_linear(clean), KERNELS['crosstalk'][None, None]))
    restored = wiener(observed, KERNELS['crosstalk'], balance=1e-12, linear_light=True, boundary='circular')
    assert (restored - clean).abs().max() < 1e-5


def test_reflect_boundary_rings_less_than_circular_on_a_non_periodic_image():
    ramp = torch.linspace(0.1, 0.9, 48, dtype=torch.float64)
    clean = (ramp[None, :] * ramp[:, None])[None, None].repeat(1, 3, 1, 1)  # far from periodic
    observed = crosstalk(clean, KERNELS['gaussian'], padding_mode='reflect')  # as the degradation does
    errors = {boundary: (wiener(observed, KERNELS['gaussian'], balance=1e-4, boundary=boundary) - clean).abs().max()
              for boundary in ('circular', 'reflect')}
    assert errors['reflect'] < errors['circular'] / 5


def test_wiener_with_the_oracle_noise_level_beats_the_noisy_input():
    clean = smooth_image(size=64)
    sigma = 0.02
    noise = sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    observed = circular_conv(clean, KERNELS['gaussian'][None, None]) + noise
    restored = wiener(observed, KERNELS['gaussian'], noise_var=sigma**2, boundary='circular')
    assert (restored - clean).square().mean() < (observed - clean).square().mean()


def test_prior_power_removes_the_noise_share():
    torch.manual_seed(0)
    noise = 0.1 * torch.randn(1, 2, 256, 256, dtype=torch.float64)
    laplacian = torch.tensor([[0., -1., 0.], [-1., 4., -1.], [0., -1., 0.]], dtype=torch.float64)
    power = prior_power(noise, 0.01, laplacian)  # pure noise: nothing left, the floor sigma^2
    assert torch.allclose(power, torch.full_like(power, 0.01))


def poisson_objective(observed, estimate, kernel):
    """Σ K x - y log(K x): the negative Poisson log-likelihood that RL never increases."""
    blurred = circular_conv(estimate, kernel[None, None])
    return (blurred - observed * torch.log(blurred)).sum().item()


def test_richardson_lucy_objective_decreases_monotonically():
    clean = smooth_image(batch=1, channels=1, size=24)
    observed = circular_conv(clean, KERNELS['gaussian'][None, None])
    objectives = [poisson_objective(observed, richardson_lucy(observed, KERNELS['gaussian'], n, boundary='circular'),
                                    KERNELS['gaussian']) for n in range(0, 30, 3)]
    assert all(later <= earlier + 1e-9 for earlier, later in zip(objectives, objectives[1:]))
    assert objectives[-1] < objectives[0]


def test_richardson_lucy_converges_to_a_point_source():
    point = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    point[..., 16, 16] = 1
    observed = circular_conv(point, KERNELS['gaussian'][None, None])
    restored = richardson_lucy(observed, KERNELS['gaussian'], iterations=200, boundary='circular')
    assert restored.min() >= 0
    assert restored.sum().item() == pytest.approx(1, abs=1e-9)  # flux kept
    assert restored[..., 16, 16].item() > 0.95 and observed[..., 16, 16].item() < 0.2


def test_richardson_lucy_channel_mixing_and_discrepancy_stop():
    clean = smooth_image(batch=1)
    kernel = MIX[:, :, None, None] * KERNELS['gaussian']
    observed = mixing_conv(clean, MIX, KERNELS['gaussian'])
    restored = richardson_lucy(observed, kernel, iterations=300, cross_channel=True, boundary='circular')
    assert (restored - clean).abs().mean() < (observed - clean).abs().mean() / 3
    # a noise level above the residual of the flat start stops before the first iteration
    flat = richardson_lucy(observed, kernel, iterations=300, noise_var=1.0, cross_channel=True, boundary='circular')
    assert torch.allclose(flat, observed.mean((-2, -1), keepdim=True).expand_as(observed))


@pytest.mark.parametrize('name', list(KERNELS))
def test_converse_inverts_a_circular_blur(name):
    clean = smooth_image()
    observed = circular_conv(clean, KERNELS[name][None, None])
    restored = converse(observed, KERNELS[name], lam=1e-12, boundary='circular')
    assert (restored - clean).abs().max() < 1e-5


def test_converse_with_the_noise_level_stays_between_input_and_inverse():
    clean = smooth_image()
    observed = circular_conv(clean, KERNELS['crosstalk'][None, None])
    restored = converse(observed, KERNELS['crosstalk'], noise_var=1e-6, boundary='circular')
    assert (restored - clean).abs().max() < (observed - clean).abs().max() / 10


@pytest.mark.parametrize('call, message', [
    (lambda x, k: wiener(x, k), 'exactly one of noise_var and balance'),
    (lambda x, k: wiener(x, k, noise_var=1e-4, balance=1e-3), 'exactly one of noise_var and balance'),
    (lambda x, k: converse(x, k), 'exactly one of noise_var and lam'),
    (lambda x, k: converse(x, k[None, None].repeat(3, 3, 1, 1), lam=1e-3, cross_channel=True), 'depthwise'),
    (lambda x, k: richardson_lucy(x, -k), 'negative'),
    (lambda x, k: wiener(x, k, balance=1e-3, boundary='zeros'), 'boundary must be one of'),
    (lambda x, k: converse(x, k, lam=1e-3, pad=-2), 'pad must be an integer >= 0'),
    (lambda x, k: wiener(x[0], k, balance=1e-3), r'\(B, C, H, W\)'),
])
def test_bad_arguments_fail_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call(smooth_image(size=16), KERNELS['gaussian'])
