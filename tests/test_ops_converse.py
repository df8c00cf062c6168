"""Converse2D: stable closed form vs the printed one, accuracy, inversion, optimality, autograd."""
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from newbp_plugin.ops import converse2d
from newbp_plugin.ops.converse import converse2d_printed


def circular_conv(x, kernel):
    """Circular true convolution with a centred PSF by shifted sums (no FFT).

    x: (B, C, H, W); kernel: (B|1, C|1, kh, kw) -> (B, C, H, W).
    """
    kh, kw = kernel.shape[-2:]
    out = torch.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            out = out + kernel[..., i, j, None, None] * torch.roll(x, (i - kh // 2, j - kw // 2), (-2, -1))
    return out


def circular_corr(x, kernel):
    """Adjoint of :func:`circular_conv`: circular correlation with the same PSF."""
    kh, kw = kernel.shape[-2:]
    out = torch.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            out = out + kernel[..., i, j, None, None] * torch.roll(x, (kh // 2 - i, kw // 2 - j), (-2, -1))
    return out


def forward_model(x, kernel, scale):
    """A·x = (x ⊗ K)↓s, decimation keeping pixels [::s, ::s]."""
    return circular_conv(x, kernel)[..., ::scale, ::scale]


def gaussian(size, sigma, dtype=torch.float64):
    r = torch.arange(size, dtype=dtype) - size // 2
    g = torch.exp(-r**2 / (2 * sigma**2))
    g = torch.outer(g, g)
    return g / g.sum()


def softmax_kernels(*lead, size=3, seed=0, dtype=torch.float64):
    """Random positive kernels summing to 1, as Converse2D initialises its weight."""
    logits = torch.randn(*lead, size * size, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return logits.softmax(-1).view(*lead, size, size)


def rel_err(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


B, C = 2, 3


def test_reference_convolution_is_scipy_wrap_convolution():
    x, kernel = rand(1, 1, 9, 8), rand(3, 5, seed=1)  # asymmetric: catches a flipped orientation
    expected = ndimage.convolve(x[0, 0].numpy(), kernel.numpy(), mode='wrap')
    assert torch.allclose(circular_conv(x, kernel)[0, 0], torch.from_numpy(expected), rtol=0, atol=1e-12)


@pytest.mark.parametrize('scale', [1, 2, 3, 4])
@pytest.mark.parametrize('layout', ['(kh,kw)', '(C,kh,kw)', '(1,C,kh,kw)', '(B,C,kh,kw)'])
def test_matches_printed_formula_float64(scale, layout):
    # non-square image with an odd width, asymmetric 3x4 kernel (an even side included)
    y = rand(B, C, 6, 5, seed=scale)
    full = rand(B, C, 3, 4, seed=10 + scale) + 0.1
    kernel = {'(kh,kw)': full[0, 0], '(C,kh,kw)': full[0], '(1,C,kh,kw)': full[:1], '(B,C,kh,kw)': full}[layout]
    lam_tensor = 10**-torch.linspace(1, 4, B * C, dtype=torch.float64).view(B, C, 1, 1)
    x0 = rand(B, C, 6 * scale, 5 * scale, seed=20)
    for lam in (1e-3, lam_tensor):
        for start in (None, x0):
            expected = converse2d_printed(y, kernel, lam, scale, x0=start)
            out = converse2d(y, kernel, lam, scale, x0=start)
            assert out.shape == (B, C, 6 * scale, 5 * scale) and out.dtype == torch.float64
            assert rel_err(out, expected) <= 1e-8


def test_default_start_is_nearest_upsampling():
    y, kernel = rand(B, C, 8, 8), softmax_kernels(1, C)
    for scale in (2, 3):
        x0 = F.interpolate(y, scale_factor=scale, mode='nearest')
        assert rel_err(converse2d(y, kernel, 1e-4, scale), converse2d(y, kernel, 1e-4, scale, x0=x0)) <= 1e-12


@pytest.mark.parametrize('kernel_name', ['gaussian5', 'softmax3'])
def test_float32_accuracy_at_small_lambda(kernel_name):
    """λ = 1e-5: the stable form keeps float32 to <= 1e-5; the printed one loses digits."""
    lam = 1e-5
    kernel = gaussian(5, 1.0).float() if kernel_name == 'gaussian5' else softmax_kernels(C, seed=3).float()
    for scale in (1, 2, 3, 4):
        y = rand(B, C, 32, 32, seed=scale, dtype=torch.float32)
        reference = converse2d_printed(y.double(), kernel.double(), lam, scale)
        stable = rel_err(converse2d(y, kernel, lam, scale), reference)
        printed = rel_err(converse2d_printed(y, kernel, lam, scale), reference)
        assert stable <= 1e-5, (scale, stable)
        assert printed >= 20 * stable, (scale, stable, printed)


@pytest.mark.parametrize(
    'kernel',
    [gaussian(3, 0.6),
     torch.tensor([[0.01, 0.04, 0.01], [0.04, 0.8, 0.04], [0.01, 0.04, 0.01]], dtype=torch.float64)],
    ids=['gaussian0.6', 'crosstalk'])
def test_inverts_convolution(kernel):
    x = rand(B, C, 16, 12)
    y = circular_conv(x, kernel)
    assert rel_err(converse2d(y, kernel, 1e-10), x) <= 1e-7
    assert rel_err(converse2d(y.float(), kernel.float(), 1e-7).double(), x) <= 1e-5


def test_inverts_convolution_and_decimation():
    """s = 2: conv + decimation is injective on the row space of A = ↓2∘(⊗K); a signal band-limited
    to it (Kᵀ applied to a zero-inserted image) is recovered from x0 = 0; any x from x0 = x + Aᵀw."""
    scale, kernel = 2, gaussian(3, 0.6)

    def adjoint(z):  # Aᵀz, independent of the FFT code
        upsampled = z.new_zeros(*z.shape[:2], z.shape[-2] * scale, z.shape[-1] * scale)
        upsampled[..., ::scale, ::scale] = z
        return circular_corr(upsampled, kernel)

    x = adjoint(rand(B, C, 8, 10, seed=1))
    out = converse2d(forward_model(x, kernel, scale), kernel, 1e-12, scale, x0=torch.zeros_like(x))
    assert rel_err(out, x) <= 1e-8
    x = rand(B, C, 16, 20, seed=2)
    x0 = x + adjoint(rand(B, C, 8, 10, seed=3))
    assert rel_err(converse2d(forward_model(x, kernel, scale), kernel, 1e-12, scale, x0=x0), x) <= 1e-8


@pytest.mark.parametrize('scale', [1, 2, 3])
def test_solution_is_optimal(scale):
    """The gradient of the explicit objective (shifted-sum convolution, autograd) vanishes at X*."""
    kernel = softmax_kernels(B, C, seed=4)
    lam = 10**-torch.linspace(1, 3, B * C, dtype=torch.float64).view(B, C, 1, 1)
    y, x0 = rand(B, C, 6, 7, seed=5), rand(B, C, 6 * scale, 7 * scale, seed=6)
    for start in (None, x0):
        x = converse2d(y, kernel, lam, scale, x0=start).requires_grad_()
        prior = F.interpolate(y, scale_factor=scale, mode='nearest') if start is None else start
        (grad_data, ) = torch.autograd.grad(((y - forward_model(x, kernel, scale))**2).sum(), x)
        (grad_regulariser, ) = torch.autograd.grad((lam * (x - prior)**2).sum(), x)
        assert (grad_data + grad_regulariser).norm() <= 1e-9 * grad_regulariser.norm()


@pytest.mark.parametrize('scale', [1, 2])
def test_gradcheck(scale):
    y = rand(1, 2, 3, 4, seed=7).requires_grad_()
    kernel = softmax_kernels(1, 2, seed=8).requires_grad_()
    lam = torch.tensor([0.05, 0.2], dtype=torch.float64).view(1, 2, 1, 1).requires_grad_()
    x0 = rand(1, 2, 3 * scale, 4 * scale, seed=9).requires_grad_()
    assert torch.autograd.gradcheck(lambda y, k, lam: converse2d(y, k, lam, scale), (y, kernel, lam))
    assert torch.autograd.gradcheck(
        lambda y, k, lam, x0: converse2d(y, k, lam, scale, x0), (y, kernel, lam, x0), fast_mode=True)


@pytest.mark.parametrize('dtype, tol', [(torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
def test_half_precision_round_trip(dtype, tol):
    y = rand(B, C, 16, 16, dtype=torch.float32).to(dtype)
    kernel = softmax_kernels(1, C).float()
    for scale in (1, 2):
        expected = converse2d(y.float(), kernel, 1e-2, scale)
        out = converse2d(y, kernel.to(dtype), 1e-2, scale)
        assert out.dtype == dtype
        assert rel_err(out, expected) <= tol


def test_module_style_parameters_get_gradients():
    weight = softmax_kernels(1, C, dtype=torch.float32).requires_grad_()
    bias = torch.zeros(1, C, 1, 1, requires_grad=True)
    y = rand(B, C, 8, 8, dtype=torch.float32).requires_grad_()
    converse2d(y, weight, torch.sigmoid(bias - 9.0) + 1e-5, 2).square().sum().backward()
    for tensor in (y, weight, bias):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


@pytest.mark.parametrize('args, kwargs, match', [
    ((rand(1, 3, 8, 8), gaussian(3, 1.0), 0.1), dict(scale=5), 'scale'),
    ((rand(1, 3, 8, 8), gaussian(3, 1.0), 0.1), dict(scale=2.0), 'scale'),
    ((rand(3, 8, 8), gaussian(3, 1.0), 0.1), {}, r'y .*\(3, 8, 8\)'),
    ((rand(1, 3, 8, 8), rand(2, 3, 3), 0.1), {}, r'kernel \(2, 3, 3\).*\(1, 3, 8, 8\)'),
    ((rand(2, 3, 8, 8), rand(3, 3, 3, 3), 0.1), {}, r'kernel \(3, 3, 3, 3\)'),
    ((rand(1, 3, 4, 4), gaussian(9, 1.0), 0.1), dict(scale=2), r'kernel \(9, 9\).*larger'),
    ((rand(1, 3, 8, 8), gaussian(3, 1.0), 0.0), {}, 'lam must be > 0'),
    ((rand(1, 3, 8, 8), gaussian(3, 1.0), torch.tensor([0.1, -1.0, 0.1]).view(1, 3, 1, 1)), {}, 'lam must be > 0'),
    ((rand(1, 3, 8, 8), gaussian(3, 1.0), torch.ones(1, 2, 1, 1)), {}, r'lam \(1, 2, 1, 1\)'),
    ((rand(1, 3, 8, 8), gaussian(3, 1.0), 0.1), dict(scale=2, x0=rand(1, 3, 8, 8)), r'x0 .*\(1, 3, 16, 16\)'),
])
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        converse2d(*args, **kwargs)
