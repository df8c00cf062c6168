"""KernelAwareNAFNet: the known kernel K and the noise level inside the network (deep unfolding).

USRNet, DPIR and Converse-USRNet alternate a closed-form data step with the known K and a learned
prior conditioned on the noise level. Here, for stages t = 1 .. N, in linear light as the data are
degraded (x the observation, y_0 = x)::

    z_t = argmin_z ||x - K z||² + α_t ||z - y_{t-1}||²          ops.data_step, per-sample K
    α_t = σ̄² / τ_t²                                            σ̄²: the sample's mean noise variance
    y_t = linear(srgb(z_t) + R_t(srgb(z_t), σ))                 NAFNet prior, noise map σ at its intro

and Ŷ = srgb(y_N). With ``start: wiener`` the first data step is Wiener deconvolution instead,
``z_1 = argmin_z ||x - K z||² + α_1 ||L z||²`` (L the Laplacian: the smooth-image prior of the
classical baseline; ``ops.data_step`` with ``regulariser='laplacian'`` and ``x0 = 0``), so that the
prior refines the classical oracle rather than a partial inverse pulled towards x. τ_t (the spread
the prior allows around the previous estimate) is learned per stage (``alpha: per_stage``), or given
per sample by a small hyper-network of log σ̄ as USRNet's (``alpha: hyper``); σ² = gain · signal +
read_sigma² is the Poisson–Gaussian variance per pixel, from the noise parameters drawn for each
sample (NewBPModel hands them over) or the network's defaults.
"""
import math

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from newbp_plugin.archs.checkpoint import load_checkpoint
from newbp_plugin.archs.nafnet_arch import NAFNet
from newbp_plugin.ops.data_step import data_step
from newbp_plugin.registration import register
from newbp_plugin.sensor import physical_kernel, select_kernel
from newbp_plugin.sensor.noise import noise_variance_map
from newbp_plugin.sensor.optics import SensorOptics


ALPHA_SOURCES = ('per_stage', 'hyper')
STARTS = ('observation', 'wiener')  # what the first data step pulls towards
HYPER_WIDTH = 32  # hidden units of the hyper-network of τ_t


@register(ARCH_REGISTRY)
class KernelAwareNAFNet(nn.Module):
    """N stages of (data step with the per-sample K, NAFNet prior given the noise map); see the module docstring.

    Args:
        img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums: each prior's NAFNet
            (NAFNet's arguments and defaults).
        stages (int): N >= 1; 1 is "a Wiener-like step, then the prior". Default: 1.
        shared_prior (bool): one NAFNet for every stage, or one per stage. Default: True.
        kernel (dict | str | Tensor | ndarray | None): a fixed kernel (spec or PSF) used when the
            batch carries none (``basicsr restore`` without ``--kernel``); None: given per call.
        linear_light (bool): the data step acts on linear light, as the data are degraded. Default: True.
        alpha (str): where τ_t comes from: ``per_stage`` (one learned value per stage) or ``hyper``
            (an MLP of log σ̄, one τ_t per sample and stage; it starts at ``init_tau``). Default: per_stage.
        init_tau (float): τ_t at initialisation (linear-light units). Default: 0.05.
        start (str): the first data step: ``observation`` (pulled towards x, as later stages towards the
            estimate) or ``wiener`` (Wiener deconvolution, β = α_1). Default: observation.
        gain (float): the noise's gain when none is given per call (signal per photo-electron).
            Default: 0.002 (the front door's sensor).
        read_sigma (float): the read noise when none is given per call. Default: 0.003.
        pretrain_body (str | None): NAFNet checkpoint loaded (strictly) into every prior. Default: None.
        pretrain_body_key (str): its wrapper key. Default: 'params'.

    Shape:
        forward(x, kernel=None, noise=None): x (B, C, H, W) sRGB-encoded when ``linear_light``; kernel in
        any layout of :mod:`newbp_plugin.sensor.layout`; noise ``{'gain': (B, C), 'read_sigma': (B, C)}``
        -> Ŷ (B, C, H, W).
    """

    def __init__(self, img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(), dec_blk_nums=(), stages=1,
                 shared_prior=True, kernel=None, linear_light=True, alpha='per_stage', init_tau=0.05, gain=0.002,
                 read_sigma=0.003, pretrain_body=None, pretrain_body_key='params', start='observation'):
        super().__init__()
        if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
            raise ValueError(f'KernelAwareNAFNet: stages must be an integer >= 1, got {stages!r}')
        if not init_tau > 0 or gain < 0 or read_sigma < 0 or gain == read_sigma == 0:
            raise ValueError(f'KernelAwareNAFNet: need init_tau > 0 and a noise (gain, read_sigma >= 0, not both 0); '
                             f'got init_tau={init_tau!r}, gain={gain!r}, read_sigma={read_sigma!r}')
        if alpha not in ALPHA_SOURCES:
            raise ValueError(f"KernelAwareNAFNet: alpha must be one of {', '.join(ALPHA_SOURCES)}, got {alpha!r}")
        if start not in STARTS:
            raise ValueError(f"KernelAwareNAFNet: start must be one of {', '.join(STARTS)}, got {start!r}")
        self.stages, self.start = stages, start
        self.optics = SensorOptics(bool(linear_light))
        priors = 1 if shared_prior else stages
        self.priors = nn.ModuleList(NAFNet(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums)
                                    for _ in range(priors))
        if pretrain_body is not None:
            for prior in self.priors:
                load_checkpoint(prior, pretrain_body, param_key=pretrain_body_key, strict=True)
        self.noise_embeddings = nn.ModuleList(nn.Conv2d(1, width, 1) for _ in range(priors))
        for embedding in self.noise_embeddings:  # no conditioning at the start: a zoo prior keeps its function
            nn.init.zeros_(embedding.weight)
            nn.init.zeros_(embedding.bias)
        if alpha == 'per_stage':
            self.log_tau = nn.Parameter(torch.full((stages, ), math.log(init_tau)))
        else:
            self.alpha_net = nn.Sequential(nn.Linear(1, HYPER_WIDTH), nn.ReLU(), nn.Linear(HYPER_WIDTH, stages))
            nn.init.zeros_(self.alpha_net[-1].weight)  # τ_t = init_tau at every noise level to start with
            nn.init.constant_(self.alpha_net[-1].bias, math.log(init_tau))
        # not saved in checkpoints: K belongs to the sensor, not to the weights (the universal model takes any)
        self.register_buffer('kernel', physical_kernel(kernel, img_channel, 'KernelAwareNAFNet'), persistent=False)
        self.default_noise = (float(gain), float(read_sigma))

    def noise_std(self, light, noise):
        """(B, 1, H, W) standard deviation of the noise per pixel, ``sqrt(gain · signal + read_sigma²)``,
        averaged over the channels; ``light`` (B, C, H, W) linear, ``noise`` as ``forward`` takes it."""
        if noise is None:
            gain, read = (torch.full(light.shape[:2], value, dtype=light.dtype, device=light.device)
                          for value in self.default_noise)
        else:
            gain, read = noise['gain'], noise['read_sigma']
        return noise_variance_map(light, gain, read).mean(1, keepdim=True).sqrt()

    def stage_log_tau(self, mean_variance):
        """(B, stages) log τ_t of each sample: learned per stage, or the hyper-network's of log σ̄.

        ``mean_variance``: (B, 1, 1, 1) σ̄², the sample's mean noise variance.
        """
        if hasattr(self, 'alpha_net'):
            return self.alpha_net(mean_variance.flatten(1).clamp(min=1e-12).log() / 2)
        return self.log_tau.expand(mean_variance.shape[0], -1)

    def forward(self, x, kernel=None, noise=None):
        kernel = select_kernel(kernel, self.kernel, 'KernelAwareNAFNet')
        observed = self.optics.to_linear(x)
        sigma = self.noise_std(observed, noise)
        mean_variance = sigma.square().mean((-2, -1), keepdim=True)  # (B, 1, 1, 1) σ̄²
        log_tau = self.stage_log_tau(mean_variance)
        estimate = observed
        for stage in range(self.stages):
            alpha = mean_variance / (2 * log_tau[:, stage, None, None, None]).exp()
            if stage == 0 and self.start == 'wiener':
                light = data_step(observed, kernel, alpha, x0=torch.zeros_like(observed), regulariser='laplacian')
            else:
                light = data_step(observed, kernel, alpha, x0=estimate)
            z = self.optics.to_encoded(light)
            prior = self.priors[stage % len(self.priors)]
            embedding = self.noise_embeddings[stage % len(self.priors)]
            condition = nn.functional.pad(sigma, (0, -z.shape[-1] % prior.size_multiple,
                                                  0, -z.shape[-2] % prior.size_multiple))

            def add_noise_map(features, embedding=embedding, condition=condition):
                return features + embedding(condition)

            estimate = self.optics.to_linear(z + prior.residual(z, after_intro=add_noise_map))
        return self.optics.to_encoded(estimate)
