"""The regularised least-squares solve at every frequency, shared by Wiener and the data step."""
import torch


def regularised_solve(otf, spectrum, weight):
    """``(HᴴH + diag(weight))⁻¹ Hᴴ spectrum`` and the diagonal of ``(HᴴH + diag(weight))⁻¹``, per frequency.

    H is the OTF of the kernel at each frequency: a scalar per channel (depthwise) or, for a
    channel-mixing kernel, the (C, C) matrix ``H[c, c']`` of ``y_c = Σ_c' K[c, c'] * x_c'``, whose
    C×C system is solved at every frequency.

    Args:
        otf (Tensor): complex, depthwise (H, W'), (C, H, W') or (B|1, C, H, W'), or channel-mixing
            (B|1, C, C, H, W') (the number of dimensions tells them apart, as in
            :mod:`newbp_plugin.sensor.layout`).
        spectrum (Tensor): (B, C, H, W') complex, the right-hand side's spectrum.
        weight (Tensor): real, >= 0, broadcastable to (B, C, H, W'); > 0 wherever H vanishes.

    Returns:
        tuple[Tensor, Tensor]: the solution's spectrum (B, C, H, W') and the real diagonal of the
        inverse (B, C, H, W') (the posterior variance over the noise variance, for Wiener).
    """
    weight = weight.expand(spectrum.shape)
    if otf.dim() < 5:
        inverse = 1 / (otf.real.square() + otf.imag.square() + weight)
        return otf.conj() * spectrum * inverse, inverse
    h = otf.permute(0, 3, 4, 1, 2)  # (B|1, H, W', C, C)
    system = h.mH @ h + torch.diag_embed(weight.permute(0, 2, 3, 1).to(h.dtype))
    inverse = torch.linalg.inv(system)
    solution = inverse @ (h.mH @ spectrum.permute(0, 2, 3, 1).unsqueeze(-1))
    return solution.squeeze(-1).permute(0, 3, 1, 2), inverse.diagonal(dim1=-2, dim2=-1).real.permute(0, 3, 1, 2)
