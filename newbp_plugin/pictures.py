"""Pictures of what the networks compute, for people to look at (numpy, no BasicSR)."""
import numpy as np


def s_to_image(s):
    """Viewable uint8 BGR picture of a pre-compensated map S (C, H, W), C in {1, 3}.

    S is shown as is where it lies in [0, 1]; its halo outside that range (the
    negative ring that pre-compensates the blur, and overshoots above 1) is
    drawn on the right in a diverging colour map: blue below 0, red above 1.
    """
    s = s.float().cpu()
    visible = s.clamp(0, 1).mean(0) if s.size(0) != 3 else s.clamp(0, 1)
    visible = (visible.permute(1, 2, 0).numpy()[..., ::-1] if visible.dim() == 3 else np.repeat(
        visible.numpy()[..., None], 3, axis=2))
    excess = (s - s.clamp(0, 1)).mean(0).numpy()
    scale = max(float(np.abs(excess).max()), 1e-6)
    halo = np.full(excess.shape + (3, ), 1.0)
    halo[..., 0] -= np.clip(excess / scale, 0, 1)  # above 1: less blue, less green -> red
    halo[..., 1] -= np.abs(excess) / scale
    halo[..., 2] -= np.clip(-excess / scale, 0, 1)  # below 0: less red, less green -> blue
    picture = np.concatenate([visible, halo], axis=1)
    return np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8)
