"""The closed-form data step: the minimiser (dense solve), recovery, batches, gradients, errors."""
import numpy as np
import pytest
import torch

from newbp_plugin.ops.data_step import LAPLACIAN, data_step

from tests.reference import scipy_crosstalk


def dense_operator(kernel, channels, height, width):
    """The (C·H·W, C·H·W) matrix of K on one periodic image (columns: impulse responses, by scipy)."""
    size = channels * height * width
    columns = []
    for index in range(size):
        impulse = np.zeros((1, channels, height, width))
        impulse.reshape(-1)[index] = 1
        columns.append(scipy_crosstalk(impulse, kernel, 'circular').reshape(-1))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize('regulariser', ['identity', 'laplacian'])
@pytest.mark.parametrize('layout', ['per_sample', 'per_sample_mixing'])
def test_the_data_step_is_the_minimiser(layout, regulariser):
    # z* solves (AᵀA + αRᵀR) z = Aᵀx + αRᵀR x0 on the periodic grid: a dense float64 solve, sample by sample
    rng = np.random.default_rng(0)
    batch, channels, height, width = 2, 3, 6, 5
    shape = (batch, channels, channels, 3, 3) if layout == 'per_sample_mixing' else (batch, channels, 3, 3)
    kernel, x, x0 = rng.random(shape), rng.random((batch, channels, height, width)), rng.random(
        (batch, channels, height, width))
    alpha = np.array([0.05, 0.3]).reshape(2, 1, 1, 1)
    z = data_step(torch.tensor(x), torch.tensor(kernel), torch.tensor(alpha), torch.tensor(x0), padding=0,
                  padding_mode='circular', regulariser=regulariser).numpy()
    r = (dense_operator(np.array(LAPLACIAN), channels, height, width) if regulariser == 'laplacian'
         else np.eye(channels * height * width))
    for b in range(batch):
        a = dense_operator(kernel[b:b + 1], channels, height, width)
        penalty = alpha[b, 0, 0, 0] * r.T @ r
        rhs = a.T @ x[b].reshape(-1) + penalty @ x0[b].reshape(-1)
        expected = np.linalg.solve(a.T @ a + penalty, rhs)
        np.testing.assert_allclose(z[b].reshape(-1), expected, atol=1e-10)


@pytest.mark.parametrize('mixing', [False, True])
def test_the_laplacian_data_step_from_zero_is_wiener(mixing):
    from newbp_plugin.benchmark.classical import wiener
    rng = np.random.default_rng(3)
    shape = (1, 3, 3, 5, 5) if mixing else (1, 3, 5, 5)
    kernel = torch.tensor(rng.random(shape))
    kernel = kernel / kernel.sum((-3, -2, -1) if mixing else (-2, -1), keepdim=True)
    x = torch.tensor(rng.random((1, 3, 16, 12)))
    z = data_step(x, kernel, 0.02, torch.zeros_like(x), padding=0, padding_mode='circular', regulariser='laplacian')
    expected = wiener(x, kernel, balance=0.02, boundary='circular')
    np.testing.assert_allclose(z.numpy(), expected.numpy(), atol=1e-12)


@pytest.mark.parametrize('mixing', [False, True])
def test_a_noiseless_blur_is_undone_in_the_interior(mixing):
    from tests.test_converse_arch import smooth_image
    clean = smooth_image(1, 3, 48, 40)
    from newbp_plugin.kernels import build_kernel
    crosstalk = {'type': 'crosstalk', 'size': 5, 'left': 0.08, 'up': 0.05, 'diagonal': 0.02}
    spec = {'type': 'cross_channel', 'mix': [[0.8, 0.2, 0], [0.1, 0.8, 0.1], [0, 0.2, 0.8]], 'kernel': crosstalk}
    kernel = torch.as_tensor(build_kernel(spec if mixing else crosstalk), dtype=torch.float64)
    kernel = kernel[None] if mixing else kernel
    blurred = torch.tensor(scipy_crosstalk(clean.numpy(), kernel.numpy(), 'reflect'))
    restored = data_step(blurred, kernel, 1e-7)
    interior = (..., slice(8, -8), slice(8, -8))
    psnr = -10 * torch.log10((restored - clean)[interior].square().mean())
    blurred_psnr = -10 * torch.log10((blurred - clean)[interior].square().mean())
    assert psnr > 40 and psnr > blurred_psnr + 20


def test_a_batch_gives_what_its_samples_give_one_by_one():
    rng = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 20, 17, dtype=torch.float64, generator=rng)
    kernel = torch.rand(3, 3, 3, 7, 7, dtype=torch.float64, generator=rng)
    kernel[0, ..., :1, :] = 0  # a smaller kernel, zero-padded to the batch's size
    alpha = torch.tensor([1e-3, 1e-2, 1e-1], dtype=torch.float64).view(3, 1, 1, 1)
    batch = data_step(x, kernel, alpha)
    for index in range(3):
        single = data_step(x[index:index + 1], kernel[index:index + 1], alpha[index:index + 1])
        torch.testing.assert_close(batch[index:index + 1], single, rtol=1e-12, atol=1e-12)


def test_gradients_are_those_of_the_minimiser():
    rng = torch.Generator().manual_seed(3)
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, generator=rng, requires_grad=True)
    kernel = torch.rand(1, 2, 2, 3, 3, dtype=torch.float64, generator=rng, requires_grad=True)
    alpha = torch.tensor([[[[0.2]], [[0.4]]]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, k, a: data_step(x, k, a, padding=2), (x, kernel, alpha))
    assert torch.autograd.gradcheck(lambda x, k, a: data_step(x, k[:, 0], a, padding=2, regulariser='laplacian'),
                                    (x, kernel, alpha))


@pytest.mark.parametrize('kwargs, message', [
    (dict(kernel=torch.ones(2, 3, 3)), r'data_step: kernel shape \(2, 3, 3\) does not fit x shape \(1, 3, 8, 8\)'),
    (dict(kernel=torch.ones(1, 3, 2, 3, 3)), r'kernel shape \(1, 3, 2, 3, 3\) does not fit'),
    (dict(kernel=torch.ones(4, 4)), 'data_step: kernel size 4x4 must be odd'),
    (dict(alpha=0.0), 'alpha must be > 0'),
    (dict(padding_mode='constant'), "padding_mode 'constant' is not one of"),
    (dict(x0=torch.zeros(1, 3, 4, 4)), r'x0 \(1, 3, 4, 4\) must have the shape of x'),
    (dict(regulariser='tv'), "regulariser must be one of identity, laplacian, got 'tv'"),
])
def test_bad_arguments_are_named(kwargs, message):
    arguments = dict(x=torch.rand(1, 3, 8, 8), kernel=torch.ones(3, 3) / 9, alpha=0.1)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        data_step(**arguments)


def test_low_precision_returns_its_dtype():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    out = data_step(x, torch.ones(3, 3) / 9, 0.01)
    assert out.dtype == torch.bfloat16
    # computed in float32 from the same bfloat16 input, rounded once: within bfloat16's resolution (2^-8)
    torch.testing.assert_close(out.float(), data_step(x.float(), torch.ones(3, 3) / 9, 0.01), rtol=2**-8, atol=1e-3)


@pytest.mark.parametrize('mixing', [False, True])
def test_where_the_kernel_spectrum_vanishes_the_estimate_is_kept(mixing):
    """A 2-pixel box has no response at the horizontal Nyquist frequency: there x says nothing about z, and the
    data step keeps x0 (the prior's estimate) instead of dividing by zero; everywhere else it follows x."""
    box = torch.zeros(3, 3, dtype=torch.float64)
    box[1, 1:] = 0.5
    kernel = box
    if mixing:  # the same box on the diagonal of a (1, C, C, 3, 3) channel-mixing kernel: the C×C solve
        kernel = torch.zeros(1, 3, 3, 3, 3, dtype=torch.float64)
        kernel[0, range(3), range(3)] = box
    generator = torch.Generator().manual_seed(4)
    x, x0 = (torch.rand(1, 3, 16, 16, generator=generator, dtype=torch.float64) for _ in range(2))
    z = data_step(x, kernel, 1e-9, x0=x0, padding=0, padding_mode='circular')
    nyquist = torch.tensor([(-1.0)**column for column in range(16)], dtype=torch.float64)
    assert torch.isfinite(z).all()
    torch.testing.assert_close((z * nyquist).sum(-1), (x0 * nyquist).sum(-1))  # that frequency: x0's
    blurred = torch.from_numpy(scipy_crosstalk(z.numpy(), box.numpy(), 'circular'))
    unreachable = (x * nyquist).sum(-1, keepdim=True) * nyquist / 16  # x's Nyquist part: no K z makes it
    torch.testing.assert_close(blurred, x - unreachable, atol=1e-6, rtol=0)
