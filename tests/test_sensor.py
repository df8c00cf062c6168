"""The sensor model (newbp_plugin.sensor): sRGB curve, kernel convention, noise statistics, draws, specs."""
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from newbp_plugin.kernels import build_kernel
from newbp_plugin.ops.color import linear_to_srgb, srgb_to_linear
from newbp_plugin.sensor import physical_kernel
from newbp_plugin.sensor.degradation import degrade, noise_variance
from newbp_plugin.sensor.noise import NoiseModel, NoiseSpecError

from tests.reference import scipy_crosstalk

ASYMMETRIC = np.array([[0.00, 0.10, 0.00, 0.00, 0.00],
                       [0.00, 0.00, 0.05, 0.00, 0.00],
                       [0.02, 0.00, 0.60, 0.15, 0.00],
                       [0.00, 0.00, 0.00, 0.00, 0.00],
                       [0.00, 0.00, 0.00, 0.00, 0.08]], np.float32)
MIXING = build_kernel({'type': 'cross_channel', 'mix': [[0.8, 0.2, 0], [0.1, 0.8, 0.1], [0, 0.3, 0.7]],
                       'kernel': {'type': 'gaussian', 'sigma_x': 1.5, 'sigma_y': 0.5, 'angle': 30}})
DELTA = np.ones((1, 1), np.float32)


def draws_of(spec, seeds, linear_light=False, channels=3):
    """The collated ``sensor`` draws of a batch, one sample per seed (as CrosstalkDataset makes them)."""
    noise = NoiseModel(spec, channels)
    return default_collate([dict(noise.draw(np.random.default_rng(seed)), linear_light=torch.tensor(linear_light))
                            for seed in seeds])


def degrade_images(clean, kernel, spec=None, seeds=None, linear_light=False, context=None):
    """X of (B, C, H, W) numpy scenes: kernel a numpy PSF from build_kernel, the same for every sample."""
    clean = torch.as_tensor(np.asarray(clean, np.float32))
    kernel = physical_kernel(kernel, clean.shape[1], 'test')
    context = max(kernel.shape[-2:]) // 2 if context is None else context
    seeds = range(len(clean)) if seeds is None else seeds
    return degrade(clean, kernel, draws_of(spec, seeds, linear_light, clean.shape[1]), context).numpy()


def flat(value, batch=1, channels=3, size=256):
    return np.full((batch, channels, size, size), value, np.float32)


# ---------------------------------------------------------------- sRGB curve (IEC 61966-2-1)


@pytest.mark.parametrize('encoded, linear', [
    (0.0, 0.0),
    (1.0, 1.0),
    (128 / 255, 0.21586050011389926),  # published value of sRGB 128
    (0.7353569830524495, 0.5),  # linear 0.5 encodes to 0.735357
    (0.04045, 0.0031308049535603713),  # the knee, on the linear segment
    (0.02, 0.02 / 12.92),
])
def test_srgb_known_values(encoded, linear):
    assert srgb_to_linear(encoded) == pytest.approx(linear, rel=1e-9, abs=1e-12)
    assert linear_to_srgb(linear) == pytest.approx(encoded, rel=1e-6, abs=1e-9)


def test_srgb_round_trip_numpy_and_torch():
    x = np.linspace(-0.1, 1.1, 100001)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-12)
    codes = np.arange(256, dtype=np.float32) / 255
    assert srgb_to_linear(codes).dtype == np.float32
    np.testing.assert_array_equal(np.round(linear_to_srgb(srgb_to_linear(codes)) * 255), np.arange(256))
    tensor = torch.linspace(0, 1, 1001, dtype=torch.float64, requires_grad=True)
    out = linear_to_srgb(srgb_to_linear(tensor))
    assert torch.is_tensor(out) and out.dtype == torch.float64
    torch.testing.assert_close(out, tensor.detach())
    out.sum().backward()
    assert torch.isfinite(tensor.grad).all()


def test_srgb_curve_is_monotonic_and_continuous_at_the_knee():
    x = np.linspace(0, 1, 200001)
    assert (np.diff(srgb_to_linear(x)) > 0).all()
    below, above = srgb_to_linear(np.nextafter(0.04045, 0)), srgb_to_linear(np.nextafter(0.04045, 1))
    assert abs(above - below) < 1e-7


# ---------------------------------------------------------------- the optics: K, light, border


@pytest.mark.parametrize('kernel', [
    ASYMMETRIC,
    np.stack([ASYMMETRIC, ASYMMETRIC.T, ASYMMETRIC[::-1]]),
    MIXING,
    np.random.default_rng(9).random((15, 13), dtype=np.float32) / 100,
], ids=['shared', 'per_channel', 'channel_mixing', 'wide'])
def test_blur_is_the_true_convolution_of_the_scene_with_its_context(kernel):
    scene = np.random.default_rng(0).random((2, 3, 37, 45), dtype=np.float32)
    context = max(kernel.shape[-2:]) // 2
    blurred = degrade_images(scene, kernel)
    expected = scipy_crosstalk(scene, kernel[None] if kernel.ndim == 4 else kernel)
    assert blurred.shape == (2, 3, 37 - 2 * context, 45 - 2 * context)
    np.testing.assert_allclose(blurred, expected[..., context:-context, context:-context], atol=2e-6)


def test_the_context_ring_is_read_then_left_out():
    scene = np.random.default_rng(1).random((1, 3, 40, 40), dtype=np.float32)
    out = degrade_images(scene, ASYMMETRIC, context=4)
    assert out.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(out, scipy_crosstalk(scene, ASYMMETRIC)[..., 4:-4, 4:-4], atol=2e-6)


def test_impulse_becomes_the_psf():
    clean = np.zeros((1, 1, 15, 15), np.float32)
    clean[0, 0, 7, 7] = 1
    blurred = degrade_images(clean, ASYMMETRIC, context=0)
    np.testing.assert_allclose(blurred[0, 0, 5:10, 5:10], ASYMMETRIC, atol=1e-7)


def test_linear_light_blurs_in_linear_light():
    scene = np.random.default_rng(3).random((1, 3, 32, 32), dtype=np.float32)
    out = degrade_images(scene, ASYMMETRIC, linear_light=True)
    expected = linear_to_srgb(scipy_crosstalk(srgb_to_linear(scene.astype(np.float64)), ASYMMETRIC))
    np.testing.assert_allclose(out, expected[..., 2:-2, 2:-2], atol=1e-5)
    assert np.abs(out - degrade_images(scene, ASYMMETRIC)).max() > 1e-2


def test_a_batch_mixing_linear_light_is_refused():
    draws = default_collate([dict(NoiseModel(None).draw(np.random.default_rng(0)), linear_light=torch.tensor(flag))
                             for flag in (True, False)])
    with pytest.raises(ValueError, match='a batch mixes linear_light true and false'):
        degrade(torch.rand(2, 3, 8, 8), torch.ones(1, 1), draws, 0)


# ---------------------------------------------------------------- noise statistics


def measured_sigma(noise_spec, level, linear_light=False, seed=0, size=256):
    """Per-channel standard deviation and mean of the noise on a flat size x size patch at ``level``."""
    noisy = degrade_images(flat(level, size=size), DELTA, noise_spec, [seed], linear_light)[0]
    if linear_light:
        noisy = srgb_to_linear(noisy.astype(np.float64))
    return noisy.reshape(3, -1).std(axis=1), noisy.reshape(3, -1).mean(axis=1)


def test_gaussian_sigma_matches_spec():
    sigma, mean = measured_sigma({'type': 'gaussian', 'sigma': 0.02}, 0.5)
    np.testing.assert_allclose(sigma, 0.02, rtol=0.05)
    np.testing.assert_allclose(mean, 0.5, atol=1e-3)


def test_gaussian_per_channel_sigma():
    sigma, _ = measured_sigma({'type': 'gaussian', 'sigma': [0.01, 0.02, 0.04]}, 0.5)
    np.testing.assert_allclose(sigma, [0.01, 0.02, 0.04], rtol=0.05)


def test_gaussian_sigma_is_in_linear_light_when_linear_light():
    sigma, mean = measured_sigma({'type': 'gaussian', 'sigma': 0.01, 'clip': False}, 0.5, linear_light=True)
    np.testing.assert_allclose(sigma, 0.01, rtol=0.05)
    np.testing.assert_allclose(mean, srgb_to_linear(0.5), atol=1e-3)


@pytest.mark.parametrize('level', [0.005, 0.05, 0.3, 0.8])
def test_poisson_gaussian_variance_is_gain_times_signal_plus_read_squared(level):
    # 0.005 at gain 0.004: about one electron a pixel, where a normal approximation would be wrong
    gain, read = 0.004, 0.01
    sigma, mean = measured_sigma({'type': 'poisson_gaussian', 'gain': gain, 'read_sigma': read, 'clip': False}, level)
    np.testing.assert_allclose(sigma, np.sqrt(gain * level + read**2), rtol=0.05)
    np.testing.assert_allclose(mean, level, atol=4 * np.sqrt((gain * level + read**2) / 256**2))  # 4 std errors


def test_shot_noise_is_poisson_in_photo_electrons():
    # 1.25 expected electrons: the counts follow the Poisson pmf (scipy), not a rounded normal
    from scipy.stats import poisson
    gain = 0.004
    noisy = degrade_images(flat(0.005, channels=1), DELTA, {'type': 'poisson_gaussian', 'gain': gain, 'clip': False})
    counts = np.round(noisy / gain).astype(int).ravel()
    np.testing.assert_allclose(noisy / gain, np.round(noisy / gain), atol=1e-3)  # whole photo-electrons
    frequencies = np.bincount(counts, minlength=6)[:6] / counts.size
    np.testing.assert_allclose(frequencies, poisson.pmf(np.arange(6), 1.25), atol=0.005)


def test_poisson_gaussian_per_channel_gain():
    gains = [0.002, 0.01, 0.05]
    sigma, _ = measured_sigma({'type': 'poisson_gaussian', 'gain': gains, 'clip': False}, 0.5)
    np.testing.assert_allclose(sigma, np.sqrt(np.multiply(gains, 0.5)), rtol=0.05)


def test_sigma_range_draws_one_sigma_per_image_shared_by_channels():
    sigmas = []
    for seed in range(40):
        sigma, _ = measured_sigma({'type': 'gaussian', 'sigma': {'uniform': [0.005, 0.02]}}, 0.5, seed=seed, size=128)
        np.testing.assert_allclose(sigma, sigma.mean(), rtol=0.05)
        sigmas.append(sigma.mean())
    assert 0.005 * 0.95 < min(sigmas) < 0.008 and 0.017 < max(sigmas) < 0.02 * 1.05


def test_per_channel_ranges_are_drawn_independently():
    spreads = [np.ptp(measured_sigma({'type': 'gaussian', 'sigma': [{'uniform': [0.005, 0.02]}] * 3}, 0.5, seed=s, size=128)[0])
               for s in range(10)]
    assert max(spreads) > 0.005


def test_draws_report_the_parameters_used():
    draws = draws_of({'type': 'poisson_gaussian', 'gain': [0.001, {'uniform': [0.002, 0.004]}, 0.01], 'read_sigma': 0.003,
                      'quantize': 8}, seeds=[0, 1])
    assert draws['gain'].shape == draws['read_sigma'].shape == (2, 3)
    torch.testing.assert_close(draws['gain'][:, [0, 2]], torch.tensor([[0.001, 0.01]] * 2))
    assert ((0.002 <= draws['gain'][:, 1]) & (draws['gain'][:, 1] <= 0.004)).all()
    assert draws['gain'][0, 1] != draws['gain'][1, 1]
    torch.testing.assert_close(draws['read_sigma'], torch.full((2, 3), 0.003))
    assert draws['quantize'].tolist() == [8, 8] and draws['clip'].tolist() == [True, True]
    gaussian = draws_of({'type': 'gaussian', 'sigma': 0.02}, seeds=[0])
    torch.testing.assert_close(gaussian['gain'], torch.zeros(1, 3))
    torch.testing.assert_close(gaussian['read_sigma'], torch.full((1, 3), 0.02))


def test_noise_variance_is_the_variance_of_the_added_noise():
    # per sample, from its drawn parameters: two samples of one batch with different gains
    spec = {'type': 'poisson_gaussian', 'gain': {'uniform': [0.0005, 0.01]}, 'read_sigma': 0.003, 'quantize': 8}
    scene = np.random.default_rng(2).random((2, 3, 64, 64), dtype=np.float32) * 0.5 + 0.25
    draws = draws_of(spec, seeds=[3, 4], linear_light=True)
    kernel = physical_kernel(ASYMMETRIC, 3, 'test')
    x = degrade(torch.from_numpy(scene), kernel, draws, 2)
    clean = degrade(torch.from_numpy(scene), kernel, draws_of(None, [0, 1], linear_light=True), 2)
    actual = (srgb_to_linear(x.double()) - srgb_to_linear(clean.double())).var(dim=(-2, -1))
    predicted = noise_variance(draws, x)
    assert predicted.shape == (2, 3, 1, 1)
    torch.testing.assert_close(actual, predicted.flatten(1).double(), rtol=0.15, atol=0)
    assert predicted[0].mean() * 3 < predicted[1].mean()


# ---------------------------------------------------------------- clipping, quantisation, determinism


def test_clip_and_quantize():
    noisy = degrade_images(flat(0.5), DELTA, {'type': 'gaussian', 'sigma': 0.5})
    assert noisy.min() == 0 and noisy.max() == 1
    free = degrade_images(flat(0.5), DELTA, {'type': 'gaussian', 'sigma': 0.5, 'clip': False})
    assert free.min() < -0.5 and free.max() > 1.5
    scene = np.random.default_rng(1).random((1, 3, 68, 68), dtype=np.float32)
    for bits in (8, 16):
        levels = 2**bits - 1
        out = degrade_images(scene, ASYMMETRIC, {'type': 'gaussian', 'sigma': 0.01, 'quantize': bits},
                             linear_light=True)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out * levels, np.round(out * levels), atol=levels * 1e-6)
        assert len(np.unique(out)) > (200 if bits == 8 else 4000)


def test_the_noise_of_a_sample_depends_on_its_seed_only():
    scene = np.random.default_rng(4).random((3, 3, 48, 48), dtype=np.float32)
    spec = {'type': 'poisson_gaussian', 'gain': {'uniform': [0.001, 0.01]}, 'read_sigma': {'uniform': [0, 0.01]}}
    first = degrade_images(scene, ASYMMETRIC, spec, seeds=[7, 8, 9])
    np.testing.assert_array_equal(first, degrade_images(scene, ASYMMETRIC, spec, seeds=[7, 8, 9]))
    np.testing.assert_array_equal(first[1:2], degrade_images(scene[1:2], ASYMMETRIC, spec, seeds=[8]))
    assert np.abs(first[0] - degrade_images(scene[:1], ASYMMETRIC, spec, seeds=[10])[0]).max() > 1e-3


def test_no_noise_is_identity_on_a_delta_kernel():
    clean = np.random.default_rng(5).random((1, 1, 16, 16), dtype=np.float32)
    out = degrade_images(clean, DELTA, None, linear_light=True)
    np.testing.assert_allclose(out, clean, atol=1e-6)


# ---------------------------------------------------------------- spec validation


@pytest.mark.parametrize('spec, message', [
    ('gaussian', 'noise must be a mapping'),
    ({'sigma': 0.1}, "noise.type must be one of none, gaussian, poisson_gaussian, got None"),
    ({'type': 'gauss', 'sigma': 0.1}, "noise.type must be one of none, gaussian, poisson_gaussian, got 'gauss'"),
    ({'type': 'gaussian'}, 'noise.sigma is required for type gaussian'),
    ({'type': 'poisson_gaussian', 'read_sigma': 0.01}, 'noise.gain is required for type poisson_gaussian'),
    ({'type': 'gaussian', 'sigma': 0.1, 'gain': 1}, 'noise.gain is not an option of type gaussian; valid options: '
     'type, clip, quantize, sigma'),
    ({'type': 'gaussian', 'sigma': -0.1}, 'noise.sigma must be >= 0, got -0.1'),
    ({'type': 'gaussian', 'sigma': True}, 'noise.sigma must be a number or a random value such as {uniform: '),
    ({'type': 'gaussian', 'sigma': [0.005, 0.02]}, 'noise.sigma: a range is written {uniform: [0.005, 0.02]} (the '
     'grammar of kernel specs); a list gives one value per channel (3)'),
    ({'type': 'gaussian', 'sigma': {'uniform': [0.02, 0.01]}}, 'noise.sigma: {uniform: [0.02, 0.01]} needs two '
     'numbers [low, high] with low <= high'),
    ({'type': 'gaussian', 'sigma': {'uniform': [-0.1, 0.1]}}, 'noise.sigma must be >= 0, got -0.1'),
    ({'type': 'gaussian', 'sigma': {'choice': [0.1, -2]}}, 'noise.sigma must be >= 0, got -2'),
    ({'type': 'gaussian', 'sigma': [0.1, 0.2, 0.3, 0.4]}, 'or a list of 3 (one per channel)'),
    ({'type': 'gaussian', 'sigma': [0.1, 'a', 0.2]}, 'noise.sigma[1] must be a number or a random value'),
    ({'type': 'gaussian', 'sigma': [0.1, [0.3, 0.2], 0.2]}, 'noise.sigma[1]: a range is written {uniform: [0.3, 0.2]}'),
    ({'type': 'poisson_gaussian', 'gain': 0}, 'noise.gain must be > 0, got 0'),
    ({'type': 'poisson_gaussian', 'gain': 0.01, 'read_sigma': float('nan')}, 'noise.read_sigma must be >= 0'),
    ({'type': 'gaussian', 'sigma': 0.1, 'clip': 'yes'}, "noise.clip must be true or false, got 'yes'"),
    ({'type': 'gaussian', 'sigma': 0.1, 'quantize': 12}, 'noise.quantize must be 8, 16 or null, got 12'),
    ({'type': 'none', 'clip': False, 'quantize': 8}, 'noise.quantize needs clip: true'),
])
def test_bad_noise_spec_names_the_key(spec, message):
    with pytest.raises(NoiseSpecError) as error:
        NoiseModel(spec)
    assert message in str(error.value)


def test_per_channel_list_must_match_channels():
    with pytest.raises(NoiseSpecError, match='a list of 1 '):
        NoiseModel({'type': 'gaussian', 'sigma': [0.1, 0.2, 0.3]}, channels=1)
    draws = draws_of({'type': 'gaussian', 'sigma': [0.1]}, seeds=[0], channels=1)
    torch.testing.assert_close(draws['read_sigma'], torch.tensor([[0.1]]))


def test_choice_draws_one_of_its_values_per_image():
    seen = {round(float(draws_of({'type': 'poisson_gaussian', 'gain': {'choice': [0.002, 0.01]}}, [seed])['gain'][0, 0]),
                  6) for seed in range(20)}
    assert seen == {0.002, 0.01}
