"""What a restoration network's ``forward`` takes besides the image: the sensor's kernel and noise, ``return_s``.

One answer for training (NewBPModel) and inference (``basicsr restore``, ``basicsr benchmark``).
"""
import inspect


def forward_takes(net, argument):
    """Whether ``net.forward`` takes the keyword ``argument`` (``'kernel'``, ``'noise'`` or ``'return_s'``)."""
    return argument in inspect.signature(net.forward).parameters


def sensor_arguments(net, kernel=None, noise=None):
    """The keyword arguments of ``net.forward`` for a batch's sensor: each one given that it takes.

    Args:
        net (nn.Module): the bare network (not a DDP wrapper).
        kernel (Tensor | None): the batch's K (layouts of :mod:`newbp_plugin.sensor.layout`).
        noise (dict | None): ``{'gain': (B, C), 'read_sigma': (B, C)}`` of the batch.

    Returns:
        dict: ``kernel`` and/or ``noise``.
    """
    given = {'kernel': kernel, 'noise': noise}
    return {key: value for key, value in given.items() if value is not None and forward_takes(net, key)}
