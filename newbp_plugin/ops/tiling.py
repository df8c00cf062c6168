"""Tiled inference: run an image-to-image function on overlapping tiles and blend them."""
import torch


def _tile_starts(length, tile, overlap):
    """Start offsets of tiles of side ``tile`` covering ``length`` with at least ``overlap`` shared pixels."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(length, overlap, first, last, like):
    """(length,) blending weights: linear ramps of ``overlap`` px on inner edges, 1 elsewhere."""
    weights = torch.ones(length, dtype=like.dtype, device=like.device)
    if overlap > 0:
        rise = torch.arange(1, overlap + 1, dtype=like.dtype, device=like.device) / (overlap + 1)
        if not first:
            weights[:overlap] = torch.minimum(weights[:overlap], rise)
        if not last:
            weights[-overlap:] = torch.minimum(weights[-overlap:], rise.flip(0))
    return weights


def tiled_forward(fn, x, tile, overlap=32):
    """Apply ``fn`` to overlapping ``tile``×``tile`` crops of ``x`` and blend the results.

    Each output pixel is the weighted mean of the tiles covering it; weights fall
    linearly across the overlaps, so seams do not show. ``fn`` must keep the
    spatial size (restoration, scale 1) and may return a tensor or a tuple of tensors
    (e.g. ``(Ŷ, S)``), each (B, C_i, h, w) for an input tile (B, C, h, w).

    Args:
        fn (callable): (B, C, h, w) -> Tensor | tuple[Tensor].
        x (Tensor): (B, C, H, W) input.
        tile (int): tile side [px]; images no larger than it run in one piece.
        overlap (int): pixels shared by neighbouring tiles, 0 <= overlap < tile.

    Returns:
        Tensor | tuple[Tensor]: like ``fn``'s output, at (B, C_i, H, W).
    """
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f'tiled_forward: need tile > 0 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}')
    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        return fn(x)
    rows, cols = _tile_starts(height, tile, overlap), _tile_starts(width, tile, overlap)
    sums, total = None, x.new_zeros(1, 1, height, width)
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            crop = x[..., top:top + tile, left:left + tile]
            out = fn(crop)
            outs = out if isinstance(out, tuple) else (out, )
            h, w = crop.shape[-2:]
            weight = torch.outer(
                _ramp(h, overlap, i == 0, i == len(rows) - 1, x), _ramp(w, overlap, j == 0, j == len(cols) - 1, x))
            if sums is None:
                sums = [o.new_zeros(o.shape[:2] + (height, width)) for o in outs]
            for acc, o in zip(sums, outs):
                acc[..., top:top + h, left:left + w] += o * weight
            total[..., top:top + h, left:left + w] += weight
    results = tuple(acc / total for acc in sums)
    return results if isinstance(out, tuple) else results[0]
