"""Degradation synthesis: sRGB curve, noise statistics, kernel convention, spec validation."""
import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from newbp_plugin.data.degradations import (FILTER2D_MAX_KERNEL_SIZE, NoiseModel, NoiseSpecError, _rank_one_factors,
                                            blur, degrade, linear_to_srgb, srgb_to_linear)
from newbp_plugin.kernels import build_kernel
from newbp_plugin.ops import crosstalk
from newbp_plugin.ops.color import linear_to_srgb_8bit

NO_NOISE = NoiseModel(None)


def flat(value, channels=3, size=256):
    return np.full((channels, size, size), value, np.float32)


def scipy_blur(image, kernel):
    """Reference K * y per channel: scipy's true convolution of the reflect-padded image ('valid')."""
    ph, pw = kernel.shape[-2] // 2, kernel.shape[-1] // 2
    planes = [np.pad(plane.astype(np.float64), ((ph, ph), (pw, pw)), mode='reflect') for plane in image]
    if kernel.ndim == 2:
        return np.stack([convolve2d(plane, kernel, mode='valid') for plane in planes])
    if kernel.ndim == 3:
        return np.stack([convolve2d(plane, k, mode='valid') for plane, k in zip(planes, kernel)])
    return np.stack([sum(convolve2d(plane, k, mode='valid') for plane, k in zip(planes, row)) for row in kernel])


ASYMMETRIC = np.array([[0.00, 0.10, 0.00, 0.00, 0.00],
                       [0.00, 0.00, 0.05, 0.00, 0.00],
                       [0.02, 0.00, 0.60, 0.15, 0.00],
                       [0.00, 0.00, 0.00, 0.00, 0.00],
                       [0.00, 0.00, 0.00, 0.00, 0.08]], np.float32)
# Wider than filter2D takes: blurred by ops.crosstalk itself.
WIDE = np.random.default_rng(9).random((FILTER2D_MAX_KERNEL_SIZE + 4, FILTER2D_MAX_KERNEL_SIZE + 2), dtype=np.float32)
WIDE /= WIDE.sum()
# Rank 1 and lopsided: blurred as two 1-D passes, whose orientation must match the head's.
SEPARABLE = np.outer(np.linspace(0.1, 1.0, 15) ** 2, np.linspace(1.0, 0.2, 13)).astype(np.float32)
SEPARABLE /= SEPARABLE.sum()


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


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_srgb_code_values_decode_as_the_float64_curve(dtype):
    codes = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
    expected = srgb_to_linear(codes / np.float64(np.iinfo(dtype).max))
    decoded = srgb_to_linear(codes.reshape(-1, 1, 1))
    assert decoded.dtype == np.float32 and decoded.shape == (codes.size, 1, 1)
    np.testing.assert_array_equal(decoded.ravel(), expected.astype(np.float32))


def test_8bit_encoding_rounds_the_float64_curve_and_clips():
    x = np.concatenate([np.linspace(-0.5, 1.5, 2_000_001), np.random.default_rng(0).random(1_000_000)])
    expected = np.round(255 * linear_to_srgb(np.clip(x, 0, 1)))
    codes = linear_to_srgb_8bit(x)
    assert codes.dtype == np.uint8 and codes.shape == x.shape
    np.testing.assert_array_equal(codes, expected)
    # float32 input: the codes of its float32 values
    x32 = x.astype(np.float32)
    expected32 = np.round(255 * linear_to_srgb(np.clip(x32.astype(np.float64), 0, 1)))
    np.testing.assert_array_equal(linear_to_srgb_8bit(x32), expected32)


def test_srgb_curve_is_monotonic_and_continuous_at_the_knee():
    x = np.linspace(0, 1, 200001)
    assert (np.diff(srgb_to_linear(x)) > 0).all()
    below, above = srgb_to_linear(np.nextafter(0.04045, 0)), srgb_to_linear(np.nextafter(0.04045, 1))
    assert abs(above - below) < 1e-7


# ---------------------------------------------------------------- kernel convention


@pytest.mark.parametrize('kernel', [
    ASYMMETRIC,
    np.stack([ASYMMETRIC, ASYMMETRIC.T, ASYMMETRIC[::-1]]),
    build_kernel({'type': 'cross_channel', 'mix': [[0.8, 0.2, 0], [0.1, 0.8, 0.1], [0, 0.3, 0.7]],
                  'kernel': {'type': 'gaussian', 'sigma_x': 1.5, 'sigma_y': 0.5, 'angle': 30}}),
    WIDE,
    np.stack([WIDE, WIDE[::-1], WIDE[:, ::-1]]),
    SEPARABLE,
    np.stack([SEPARABLE, SEPARABLE[::-1], SEPARABLE[:, ::-1]]),
    np.stack([SEPARABLE, SEPARABLE[::-1], WIDE]),
], ids=['shared', 'per_channel', 'cross_channel', 'wide', 'wide_per_channel', 'separable', 'separable_per_channel',
        'one_not_separable'])
def test_blur_is_the_true_convolution_of_the_head(kernel):
    clean = np.random.default_rng(0).random((3, 37, 45), dtype=np.float32)
    blurred = degrade(clean, kernel, NO_NOISE, np.random.default_rng(0), linear_light=False)
    np.testing.assert_allclose(blurred, scipy_blur(clean, kernel), atol=2e-6)
    head = crosstalk(torch.from_numpy(clean)[None], torch.from_numpy(kernel[None] if kernel.ndim == 4 else kernel),
                     padding_mode='reflect')[0]
    np.testing.assert_allclose(blurred, head.numpy(), atol=2e-6)


@pytest.mark.parametrize('kernel', [ASYMMETRIC, WIDE, SEPARABLE], ids=['filter2d', 'crosstalk', 'sep_filter2d'])
def test_blur_with_context_equals_the_head_cropped(kernel):
    clean = np.random.default_rng(6).random((3, 50, 44), dtype=np.float32)
    head = crosstalk(torch.from_numpy(clean)[None], torch.from_numpy(kernel), padding_mode='reflect')[0].numpy()
    np.testing.assert_allclose(blur(clean, kernel, context=3), head[:, 3:-3, 3:-3], atol=2e-6)
    np.testing.assert_allclose(blur(clean, torch.from_numpy(kernel)), head, atol=2e-6)


def test_separable_kernels_are_found_and_factored():
    column, row = _rank_one_factors(SEPARABLE.astype(np.float64))
    np.testing.assert_allclose(np.outer(column, row), SEPARABLE, rtol=1e-6, atol=1e-9)
    gaussian = build_kernel({'type': 'gaussian', 'sigma': 5.0, 'size': 31}).astype(np.float64)
    assert _rank_one_factors(gaussian) is not None  # float32 rounding stays within the tolerance
    for kernel in (ASYMMETRIC, WIDE, np.zeros((3, 3))):
        assert _rank_one_factors(kernel.astype(np.float64)) is None


@pytest.mark.parametrize('kernel', [np.ones((4, 3), np.float32), np.ones((2, 3, 3), np.float32)],
                         ids=['even', 'channels_mismatch'])
def test_blur_refuses_what_the_head_refuses(kernel):
    with pytest.raises(ValueError, match='crosstalk: kernel'):
        blur(np.zeros((3, 16, 16), np.float32), kernel)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
@pytest.mark.parametrize('linear_light', [True, False])
def test_code_values_degrade_as_their_float_image(dtype, linear_light):
    codes = np.random.default_rng(7).integers(0, np.iinfo(dtype).max + 1, (3, 40, 36)).astype(dtype)
    clean = (codes / np.float64(np.iinfo(dtype).max)).astype(np.float32)
    for noise in (NO_NOISE, NoiseModel({'type': 'poisson_gaussian', 'gain': 0.005, 'read_sigma': 0.01, 'quantize': 8})):
        out = degrade(codes, ASYMMETRIC, noise, np.random.default_rng(1), linear_light, context=2)
        reference = degrade(clean, ASYMMETRIC, noise, np.random.default_rng(1), linear_light, context=2)
        assert out.dtype == np.float32 and out.shape == (3, 36, 32)
        # float32 decoding of a float image vs the float64 table: at most one 8-bit step apart
        np.testing.assert_allclose(out, reference, atol=1e-5 if noise is NO_NOISE else 1 / 255 + 1e-6)
        if noise is not NO_NOISE:
            assert np.mean(out != reference) < 1e-3


def test_impulse_becomes_the_psf():
    clean = np.zeros((1, 15, 15), np.float32)
    clean[0, 7, 7] = 1
    blurred = degrade(clean, ASYMMETRIC, NO_NOISE, np.random.default_rng(0), linear_light=False)
    np.testing.assert_allclose(blurred[0, 5:10, 5:10], ASYMMETRIC, atol=1e-7)


def test_context_is_read_by_the_kernel_then_left_out():
    clean = np.random.default_rng(1).random((3, 40, 40), dtype=np.float32)
    out = degrade(clean, ASYMMETRIC, NO_NOISE, np.random.default_rng(0), linear_light=False, context=2)
    assert out.shape == (3, 36, 36)
    np.testing.assert_allclose(out, scipy_blur(clean, ASYMMETRIC)[:, 2:-2, 2:-2], atol=2e-6)


def test_normalised_kernel_keeps_mean_brightness():
    kernel = build_kernel({'type': 'airy', 'f_number': 8})
    assert abs(kernel.sum() - 1) < 1e-6
    np.testing.assert_allclose(degrade(flat(0.37), kernel, NO_NOISE, None, linear_light=False), 0.37, atol=1e-6)
    clean = np.random.default_rng(2).random((3, 512, 512), dtype=np.float32)
    blurred = degrade(clean, kernel, NO_NOISE, None, linear_light=False)
    assert abs(blurred.mean() - clean.mean()) < 1e-3 * clean.mean()


def test_linear_light_blurs_in_linear_light():
    clean = np.random.default_rng(3).random((3, 32, 32), dtype=np.float32)
    out = degrade(clean, ASYMMETRIC, NO_NOISE, None, linear_light=True)
    expected = linear_to_srgb(scipy_blur(srgb_to_linear(clean.astype(np.float64)), ASYMMETRIC))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert np.abs(out - degrade(clean, ASYMMETRIC, NO_NOISE, None, linear_light=False)).max() > 1e-2


# ---------------------------------------------------------------- noise statistics


def measured_sigma(noise_spec, level, linear_light=False, seed=0, size=256):
    """Per-channel standard deviation and mean of the noise on a flat size x size patch at ``level``."""
    noisy = degrade(flat(level, size=size), np.ones((1, 1), np.float32), NoiseModel(noise_spec), np.random.default_rng(seed),
                    linear_light=linear_light)
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


@pytest.mark.parametrize('level', [0.05, 0.3, 0.8])
def test_poisson_gaussian_variance_is_gain_times_signal_plus_read_squared(level):
    gain, read = 0.004, 0.01
    sigma, mean = measured_sigma({'type': 'poisson_gaussian', 'gain': gain, 'read_sigma': read, 'clip': False}, level)
    np.testing.assert_allclose(sigma, np.sqrt(gain * level + read**2), rtol=0.05)
    np.testing.assert_allclose(mean, level, rtol=0.01)


def test_poisson_gaussian_per_channel_gain_and_shot_noise_is_discrete():
    gains = [0.002, 0.01, 0.05]
    sigma, _ = measured_sigma({'type': 'poisson_gaussian', 'gain': gains, 'clip': False}, 0.5)
    np.testing.assert_allclose(sigma, np.sqrt(np.multiply(gains, 0.5)), rtol=0.05)
    noisy = degrade(flat(0.5), np.ones((1, 1), np.float32), NoiseModel({'type': 'poisson_gaussian', 'gain': 0.05}),
                    np.random.default_rng(0), linear_light=False)
    np.testing.assert_allclose(noisy / 0.05, np.round(noisy / 0.05), atol=1e-4)  # whole photo-electrons


def test_sigma_range_draws_one_sigma_per_image_shared_by_channels():
    sigmas = []
    for seed in range(40):
        sigma, _ = measured_sigma({'type': 'gaussian', 'sigma': [0.005, 0.02]}, 0.5, seed=seed, size=128)
        np.testing.assert_allclose(sigma, sigma.mean(), rtol=0.05)
        sigmas.append(sigma.mean())
    assert 0.005 * 0.95 < min(sigmas) < 0.008 and 0.017 < max(sigmas) < 0.02 * 1.05


def test_per_channel_ranges_are_drawn_independently():
    spreads = [np.ptp(measured_sigma({'type': 'gaussian', 'sigma': [[0.005, 0.02]] * 3}, 0.5, seed=s, size=128)[0])
               for s in range(10)]
    assert max(spreads) > 0.005


# ---------------------------------------------------------------- clipping, quantisation, determinism


def test_clip_and_quantize():
    noisy = degrade(flat(0.5), np.ones((1, 1), np.float32), NoiseModel({'type': 'gaussian', 'sigma': 0.5}),
                    np.random.default_rng(0), linear_light=False)
    assert noisy.min() == 0 and noisy.max() == 1
    free = degrade(flat(0.5), np.ones((1, 1), np.float32),
                   NoiseModel({'type': 'gaussian', 'sigma': 0.5, 'clip': False}), np.random.default_rng(0), False)
    assert free.min() < -0.5 and free.max() > 1.5
    for bits in (8, 16):
        levels = 2**bits - 1
        out = degrade(np.random.default_rng(1).random((3, 64, 64), dtype=np.float32), ASYMMETRIC,
                      NoiseModel({'type': 'gaussian', 'sigma': 0.01, 'quantize': bits}), np.random.default_rng(0))
        assert out.dtype == np.float32
        np.testing.assert_allclose(out * levels, np.round(out * levels), atol=levels * 1e-6)
        assert len(np.unique(out)) > (200 if bits == 8 else 4000)


def test_same_generator_state_gives_same_image():
    clean = np.random.default_rng(4).random((3, 48, 48), dtype=np.float32)
    noise = NoiseModel({'type': 'poisson_gaussian', 'gain': [0.001, 0.01], 'read_sigma': [0, 0.01]})
    first = degrade(clean, ASYMMETRIC, noise, np.random.default_rng(7))
    np.testing.assert_array_equal(first, degrade(clean, ASYMMETRIC, noise, np.random.default_rng(7)))
    assert np.abs(first - degrade(clean, ASYMMETRIC, noise, np.random.default_rng(8))).max() > 1e-3


def test_no_noise_is_identity_on_a_delta_kernel():
    clean = np.random.default_rng(5).random((1, 16, 16), dtype=np.float32)
    out = degrade(clean, np.ones((1, 1), np.float32), NoiseModel(None, channels=1), None, linear_light=True)
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
    ({'type': 'gaussian', 'sigma': True}, 'noise.sigma must be a number, a [low, high] range, or a list of 3'),
    ({'type': 'gaussian', 'sigma': [0.02, 0.01]}, 'noise.sigma: a range is [low, high] with low <= high'),
    ({'type': 'gaussian', 'sigma': [0.1, 0.2, 0.3, 0.4]}, 'a list of 3 (one per channel) numbers or ranges'),
    ({'type': 'gaussian', 'sigma': [0.1, 'a', 0.2]}, 'noise.sigma[1] must be a number or a [low, high] range'),
    ({'type': 'gaussian', 'sigma': [0.1, [0.3, 0.2], 0.2]}, 'noise.sigma[1]: a range is [low, high]'),
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
    assert NoiseModel({'type': 'gaussian', 'sigma': [0.1]}, channels=1).parameters['sigma'].low.tolist() == [0.1]
