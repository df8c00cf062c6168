"""NewBP crosstalk op: true convolution, explicit Jacobian-transpose backward, FFT path."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from newbp_plugin.ops import crosstalk, fft_conv
from newbp_plugin.ops.newbp import FOLD_MIXING_MAX_CHANNELS

PADDING_MODES = ('zeros', 'reflect', 'replicate', 'circular')
METHODS = ('direct', 'fft')
KERNEL_LAYOUTS = ('shared', 'per_channel', 'per_sample', 'mixing', 'per_sample_mixing')


@pytest.fixture(autouse=True, scope='module')
def single_thread():
    """Tiny tensors gain nothing from threads, and OpenMP threads stall on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_kernel(layout, batch, channels, size, dtype=torch.float64, seed=0):
    """Random kernel of the given layout (the convention of ``crosstalk``'s docstring)."""
    generator = torch.Generator().manual_seed(seed)
    leading = {
        'shared': (),
        'per_channel': (channels, ),
        'per_sample': (batch, channels),
        'mixing': (1, channels, channels),
        'per_sample_mixing': (batch, channels, channels),
    }[layout]
    return torch.rand(leading + size, generator=generator, dtype=dtype)


def full_weights(kernel, batch, channels):
    """Per-sample (B, C_out, C_in, kh, kw) PSFs of any layout, the channel mixing spelt out."""
    if kernel.dim() == 5:
        return kernel.expand(batch, *kernel.shape[1:])
    per_sample = kernel.expand(batch, channels, *kernel.shape[-2:])
    eye = torch.eye(channels, dtype=kernel.dtype)
    return eye[None, :, :, None, None] * per_sample[:, :, None]


def reference_crosstalk(x, kernel, padding_mode):
    """Plain autograd: per sample, F.pad then a full F.conv2d with the flipped PSF."""
    batch, channels = x.shape[:2]
    kh, kw = kernel.shape[-2:]
    mode = 'constant' if padding_mode == 'zeros' else padding_mode
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode=mode)
    weights = full_weights(kernel, batch, channels).flip((-2, -1))
    return torch.cat([F.conv2d(padded[b:b + 1], weights[b]) for b in range(batch)])


def relative_error(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('layout', KERNEL_LAYOUTS)
@pytest.mark.parametrize('padding_mode', PADDING_MODES)
def test_matches_autograd_of_conv2d(padding_mode, layout, method):
    batch, channels = 2, 3
    x = torch.randn(batch, channels, 9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    kernel = make_kernel(layout, batch, channels, (3, 5))
    grad_out = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    results = []
    for op in (lambda *a: crosstalk(*a, method=method), reference_crosstalk):
        x_leaf, kernel_leaf = x.clone().requires_grad_(), kernel.clone().requires_grad_()
        out = op(x_leaf, kernel_leaf, padding_mode)
        out.backward(grad_out)
        results.append((out.detach(), x_leaf.grad, kernel_leaf.grad))
    for name, actual, expected in zip(('forward', 'grad_x', 'grad_kernel'), *results):
        assert actual.shape == expected.shape, name
        assert relative_error(actual, expected) <= 1e-10, name


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('layout,padding_mode', [('shared', 'reflect'), ('per_sample', 'circular'),
                                                 ('per_sample_mixing', 'replicate'), ('mixing', 'reflect'), ('per_channel', 'zeros')])
def test_gradcheck(layout, padding_mode, method):
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    kernel = make_kernel(layout, 2, 2, (3, 3))
    kernel.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, k: crosstalk(x, k, padding_mode, method=method),
                                    (x, kernel))


# A one-sided, L-shaped "motion" PSF: any flip or transpose of it changes the result.
# yapf: disable
L_SHAPED_PSF = np.array([[0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0],
                         [0, 0, 4, 3, 2],
                         [0, 0, 5, 0, 0],
                         [0, 0, 6, 0, 0]], dtype=np.float64) / 20
# yapf: enable


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('padding_mode,boundary', [('zeros', 'fill'), ('circular', 'wrap')])
def test_orientation_matches_scipy_convolve2d(method, padding_mode, boundary):
    image = np.random.default_rng(3).random((2, 12, 15))
    out = crosstalk(torch.from_numpy(image)[None], L_SHAPED_PSF, padding_mode, method=method)[0].numpy()
    for channel in range(2):
        expected = convolve2d(image[channel], L_SHAPED_PSF, mode='same', boundary=boundary)
        np.testing.assert_allclose(out[channel], expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize('method', METHODS)
def test_seed_1d_example_is_jacobian_and_its_transpose(method):
    # Seed 000: y1 = k1 s1 + k2 s2, y2 = k1 s2 + k2 s3. As a centred PSF that is
    # [k2, k1, 0] (convolution flips it); the same-size, zero-padded output adds the rows
    # y3, y4, and the seed's Jᵀ [g1, g2] is the backward of g = [g1, g2, 0, 0].
    k1, k2 = 2.0, 3.0
    # yapf: disable
    jacobian = torch.tensor([[k1, k2, 0, 0],
                             [0, k1, k2, 0],
                             [0, 0, k1, k2],
                             [0, 0, 0, k1]], dtype=torch.float64)
    # yapf: enable
    psf = torch.tensor([[k2, k1, 0.0]], dtype=torch.float64)
    signal = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64, requires_grad=True)
    out = crosstalk(signal.view(1, 1, 1, 4), psf, method=method).view(4)
    torch.testing.assert_close(out, jacobian @ signal.detach(), rtol=1e-12, atol=1e-12)
    seed_grad = torch.tensor([5.0, 7.0, 0.0, 0.0], dtype=torch.float64)
    (grad_signal, ) = torch.autograd.grad(out, signal, seed_grad, retain_graph=True)
    torch.testing.assert_close(grad_signal, jacobian.T @ seed_grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_signal, torch.tensor([k1 * 5, k2 * 5 + k1 * 7, k2 * 7, 0], dtype=torch.float64))
    full_grad = torch.tensor([5.0, 7.0, -1.0, 2.0], dtype=torch.float64)
    (grad_signal, ) = torch.autograd.grad(out, signal, full_grad)
    torch.testing.assert_close(grad_signal, jacobian.T @ full_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('layout', KERNEL_LAYOUTS)
def test_fft_matches_direct_float32_large_kernel(layout):
    batch, channels = 2, 3
    x = torch.rand(batch, channels, 48, 40, generator=torch.Generator().manual_seed(4))
    kernel = make_kernel(layout, batch, channels, (31, 31), dtype=torch.float32)
    kernel = kernel / kernel.sum((-2, -1), keepdim=True)
    grad_out = torch.rand(x.shape, generator=torch.Generator().manual_seed(5))
    results = []
    for method in METHODS:
        x_leaf, kernel_leaf = x.clone().requires_grad_(), kernel.clone().requires_grad_()
        out = crosstalk(x_leaf, kernel_leaf, 'reflect', method=method)
        out.backward(grad_out)
        results.append((out.detach(), x_leaf.grad, kernel_leaf.grad))
    for name, fft, direct in zip(('forward', 'grad_x', 'grad_kernel'), results[1], results[0]):
        assert relative_error(fft, direct) <= 1e-5, name


@pytest.mark.parametrize('block_elements', [1, 200, 700])
@pytest.mark.parametrize('layout', KERNEL_LAYOUTS)
def test_fft_blocks_cover_batch_and_groups(layout, block_elements, monkeypatch):
    # 72-element grids: blocks of one plane, of 2 groups, of 2 samples (a last one of 1).
    monkeypatch.setattr(fft_conv, '_CPU_BLOCK_ELEMENTS', block_elements)
    batch, channels = 3, 4
    x = torch.rand(batch, channels, 7, 6, dtype=torch.float64)
    kernel = make_kernel(layout, batch, channels, (3, 3))
    grad_out = torch.rand(x.shape, dtype=torch.float64)
    results = []
    for op in (lambda *a: crosstalk(*a, method='fft'), reference_crosstalk):
        x_leaf, kernel_leaf = x.clone().requires_grad_(), kernel.clone().requires_grad_()
        out = op(x_leaf, kernel_leaf, 'replicate')
        out.backward(grad_out)
        results.append((out.detach(), x_leaf.grad, kernel_leaf.grad))
    for name, actual, expected in zip(('forward', 'grad_x', 'grad_kernel'), *results):
        assert relative_error(actual, expected) <= 1e-10, name


def test_auto_picks_fft_for_large_kernels_only():
    x = torch.rand(1, 2, 40, 40)
    small, large = torch.rand(3, 3), torch.rand(31, 31)
    assert torch.equal(crosstalk(x, small), crosstalk(x, small, method='direct'))
    assert torch.equal(crosstalk(x, large), crosstalk(x, large, method='fft'))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('method', METHODS)
def test_low_precision_returns_input_dtype(dtype, method):
    x = torch.rand(1, 3, 16, 16)
    kernel = torch.rand(5, 5) / 12.5
    out = crosstalk(x.to(dtype), kernel, 'reflect', method=method)
    assert out.dtype == dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), crosstalk(x, kernel, 'reflect'), rtol=1e-2, atol=1e-2)


def test_numpy_kernel_is_moved_to_input_dtype():
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    out = crosstalk(x, np.ones((3, 3), dtype=np.float32))
    assert out.dtype == torch.float64


@pytest.mark.parametrize('kwargs,message', [
    (dict(kernel=torch.ones(3, 3), padding_mode='symmetric'), r"padding_mode 'symmetric'.*'zeros'.*'circular'"),
    (dict(kernel=torch.ones(3, 3), method='winograd'), r"method 'winograd'.*'auto'.*'fft'"),
    (dict(kernel=torch.ones(4, 3)), r'kernel size 4x3 must be odd'),
    (dict(kernel=torch.ones(4, 3, 3)), r'kernel shape \(4, 3, 3\) does not fit x shape \(2, 3, 8, 8\)'),
    (dict(kernel=torch.ones(3, 2, 3, 3)), r'kernel shape \(3, 2, 3, 3\) does not fit'),
    (dict(kernel=torch.ones(1, 2, 3, 3, 3)), r'kernel shape \(1, 2, 3, 3, 3\) does not fit.*channel-mixing '
     r'\(1\|2, 3, 3, kh, kw\)'),
    (dict(kernel=torch.ones(4, 3, 3, 3, 3)), r'kernel shape \(4, 3, 3, 3, 3\) does not fit'),
])
def test_errors_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        crosstalk(torch.rand(2, 3, 8, 8), **kwargs)


def test_rejects_non_image_input():
    with pytest.raises(ValueError, match=r'\(B, C, H, W\) float tensor, got shape \(3, 8, 8\)'):
        crosstalk(torch.rand(3, 8, 8), torch.ones(3, 3))


@pytest.mark.parametrize('channels', [FOLD_MIXING_MAX_CHANNELS, FOLD_MIXING_MAX_CHANNELS + 1])
@pytest.mark.parametrize('layout', ['shared', 'mixing'])
def test_batch_folded_and_unfolded_layouts_agree(layout, channels):
    # A mixing kernel shared by the batch folds up to FOLD_MIXING_MAX_CHANNELS channels, and runs
    # batched above; both must equal the per-sample reference, forward and backward.
    x = torch.randn(3, channels, 7, 8, dtype=torch.float64)
    kernel = make_kernel(layout, 3, channels, (3, 5))
    grad_out = torch.randn(x.shape, dtype=torch.float64)
    results = []
    for op in (lambda *a: crosstalk(*a, method='direct'), reference_crosstalk):
        x_leaf, kernel_leaf = x.clone().requires_grad_(), kernel.clone().requires_grad_()
        op(x_leaf, kernel_leaf, 'reflect').backward(grad_out)
        results.append((x_leaf.grad, kernel_leaf.grad))
    for name, actual, expected in zip(('grad_x', 'grad_kernel'), *results):
        assert relative_error(actual, expected) <= 1e-10, name
