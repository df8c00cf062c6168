"""The ``sensor:`` block of a run's YAML: the sensor written once, handed to every component.

BasicSR hands each component only its own options (a dataset its ``datasets.<phase>`` entry,
the network ``network_g``), and ignores unknown top-level keys. ``basicsr train|test`` therefore
resolve the block right after BasicSR parses the options, before anything is built::

    sensor:
      kernel: {type: crosstalk, size: 5, left: 0.06}   # K (a spec, a PSF file or a random spec)
      noise: {type: poisson_gaussian, gain: 0.002, read_sigma: 0.003, quantize: 8}
      linear_light: true                               # K and N act on linear light

- every ``CrosstalkDataset`` takes ``kernel`` and ``noise`` unless it sets its own (a test set
  at another noise level), and ``linear_light``;
- ``network_g`` takes ``linear_light`` when its constructor has that option, and the
  sensor's kernel as its fixed ``kernel`` when it takes one, sets none, and the kernel is not
  random (NewBPNAFNet: the head's K when a batch carries none, as in ``basicsr restore``);
- ``train.redegradation_opt`` takes ``linear_light``.

``linear_light`` is one value for the whole run: a component that repeats it with another value
is an error naming both places. Without a ``sensor:`` block, every component reads its own
options as before.

A ``CrosstalkDataset`` returns clean images that ``NewBPModel`` (or a subclass) degrades on its
device: a run that gives one to another model (SRModel would train on no input) is an error.
"""
import copy
import inspect

from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY

from newbp_plugin.kernels import is_random_spec
from newbp_plugin.kernels.build import as_spec
from newbp_plugin.models.newbp_model import NewBPModel
from newbp_plugin.options import check_options

SENSOR_KEYS = ('kernel', 'noise', 'linear_light')
SENSOR_DATASETS = ('CrosstalkDataset', )


def apply_sensor_block(opt, where='options'):
    """Hand the ``sensor:`` block of ``opt`` to its components, in place (see the module docstring).

    Args:
        opt (dict): a run's options as BasicSR parsed them.
        where (str): the options file, for messages.

    Raises:
        ValueError: an unknown key in the block, a component's ``linear_light`` that contradicts it,
            or a CrosstalkDataset given to a model that does not degrade.
    """
    _check_model_degrades(opt, where)
    sensor = opt.get('sensor')
    if sensor is None:
        return
    if not isinstance(sensor, dict):
        raise ValueError(f'{where}: sensor must be a mapping with {", ".join(SENSOR_KEYS)}, got {sensor!r}')
    check_options(sensor, SENSOR_KEYS, f'{where}: sensor', prefix='sensor:')
    for phase, dataset in (opt.get('datasets') or {}).items():
        if isinstance(dataset, dict) and dataset.get('type') in SENSOR_DATASETS:
            _hand_over(sensor, dataset, SENSOR_KEYS, f'{where}: datasets:{phase}')
    hand_to_network(sensor, opt.get('network_g'), where)
    loss = (opt.get('train') or {}).get('redegradation_opt')
    if isinstance(loss, dict):
        _hand_over(sensor, loss, ('linear_light', ), f'{where}: train:redegradation_opt')


def hand_to_network(sensor, network, where='options'):
    """Hand a ``sensor:`` block to ``network_g`` options, in place: ``linear_light`` and the fixed kernel
    where the network takes them and sets none (see the module docstring). Also for a training YAML
    read again to rebuild its network (``basicsr restore``, ``basicsr benchmark``).

    Args:
        sensor (dict | None): the block; None: nothing to do.
        network (dict | None): the ``network_g`` options.
        where (str): the options file, for messages.
    """
    if not sensor or not isinstance(network, dict) or network.get('type') not in ARCH_REGISTRY:
        return
    takes = inspect.signature(ARCH_REGISTRY.get(network['type'])).parameters
    keys = [key for key in ('linear_light', 'kernel') if key in takes]
    if 'kernel' in sensor and is_random_spec(as_spec(sensor['kernel'])):
        keys = [key for key in keys if key != 'kernel']
    _hand_over(sensor, network, keys, f'{where}: network_g')


def _hand_over(sensor, component, keys, owner):
    """Copy ``keys`` of the block into ``component`` where it has none; a different ``linear_light`` is an error."""
    for key in keys:
        if key not in sensor:
            continue
        if key not in component:
            component[key] = copy.deepcopy(sensor[key])
        elif key == 'linear_light' and component[key] != sensor[key]:
            raise ValueError(f'{owner}: linear_light: {component[key]} contradicts sensor: linear_light: '
                             f'{sensor[key]}; the sensor has one light: remove linear_light here')


def _check_model_degrades(opt, where):
    """Raise ValueError when a CrosstalkDataset goes to a model that does not degrade its batches."""
    model = MODEL_REGISTRY._obj_map.get(opt.get('model_type'))
    if model is None or issubclass(model, NewBPModel):
        return  # an unknown model_type is BasicSR's error to report
    for phase, dataset in (opt.get('datasets') or {}).items():
        if isinstance(dataset, dict) and dataset.get('type') in SENSOR_DATASETS:
            raise ValueError(f"{where}: datasets:{phase} is a {dataset['type']}: it returns clean images and the draws "
                             f"of their degradation, which NewBPModel applies on the batch; model_type "
                             f"{opt['model_type']} would see no degraded input. Use model_type: NewBPModel")
