"""Build, validate and randomly sample sensor kernels from option specs."""
import difflib
import inspect
import numbers
import os

import numpy as np
import yaml

from newbp_plugin.ranges import draw_value, is_random_value, random_value_args

from .registry import KERNEL_REGISTRY

MAX_KERNEL_SIZE = 127  # largest kernel side [px] accepted
RANDOM_TYPE = 'random'  # spec type that draws one of its ``choices``
GENERIC_OPTIONS = ('centre', 'allow_negative')  # options every kernel type accepts


class KernelSpecError(ValueError):
    """A kernel spec, or the kernel it gives, is invalid; the message names the spec."""


def describe_spec(spec):
    """Flow-style one-line text of a spec, as a user would write it in YAML."""
    if isinstance(spec, dict):
        return '{' + ', '.join(f'{key}: {describe_spec(value)}' for key, value in spec.items()) + '}'
    if isinstance(spec, (list, tuple)):
        return '[' + ', '.join(describe_spec(value) for value in spec) + ']'
    return str(spec)


def as_spec(spec):
    """Normalise a top-level spec: a path -> ``{type: file, path}``, a list -> a random choice."""
    if isinstance(spec, (str, os.PathLike)):
        return {'type': 'file', 'path': os.fspath(spec)}
    if isinstance(spec, (list, tuple)):
        return {'type': RANDOM_TYPE, 'choices': list(spec)}
    if not isinstance(spec, dict):
        raise KernelSpecError(f'A kernel spec is a dict such as {{type: gaussian, sigma: 1.2}}, a PSF file path '
                              f'or a list of specs; got {type(spec).__name__}: {spec!r}')
    return spec


def is_random_spec(spec):
    """Whether building ``spec`` draws random numbers (a list, ``type: random`` or a random value)."""
    if isinstance(spec, dict):
        if spec.get('type') == RANDOM_TYPE or is_random_value(spec):
            return True
        return any(is_random_spec(value) for value in spec.values())
    if isinstance(spec, (list, tuple)):
        return any(is_random_spec(value) for value in spec)
    return False


def _choices_weights(spec, where):
    """Checked ``choices`` and normalised ``weights`` (None: equal) of a ``type: random`` spec."""
    unknown = set(spec) - {'type', 'choices', 'weights'}
    if unknown:
        raise KernelSpecError(f"{where} {describe_spec(spec)}: type 'random' has no option "
                              f"{', '.join(sorted(unknown))}; valid options: choices, weights")
    choices, weights = spec.get('choices'), spec.get('weights')
    if not isinstance(choices, (list, tuple)) or not choices:
        raise KernelSpecError(f'{where} {describe_spec(spec)}: choices must be a non-empty list of specs')
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(choices),) or (weights < 0).any() or weights.sum() <= 0:
            raise KernelSpecError(f'{where} {describe_spec(spec)}: weights must be {len(choices)} non-negative '
                                  f'numbers, one per choice, not all zero')
        weights = weights / weights.sum()
    return choices, weights


def _require_rng(rng, spec, where):
    if rng is None:
        raise KernelSpecError(f'{where} {describe_spec(spec)} is random: pass rng=np.random.default_rng(seed) '
                              f'(or an int seed) to build_kernel, or use KernelSampler(spec).sample(rng)')


def resolve_spec(spec, rng=None, where='kernel'):
    """Replace every random part of ``spec`` by a draw from ``rng``; return a fixed spec.

    Random parts, anywhere in a spec (also inside nested specs):

    - ``{type: random, choices: [spec, ...], weights: [w, ...]}``: one of the
      specs (``weights`` optional, relative, default equal), itself resolved;
    - an option value ``{uniform: [low, high]}`` (float), ``{randint: [low, high]}``
      (int, both ends included) or ``{choice: [value, ...]}``.

    Args:
        spec (dict | list | scalar): a spec or part of one.
        rng (np.random.Generator | int | None): the draws' source (an int is a
            seed); required when ``spec`` is random, which never falls back to
            numpy's global state.
        where (str): position of ``spec`` in the user's spec, for error messages.
    """
    if isinstance(rng, numbers.Integral):
        rng = np.random.default_rng(rng)
    if isinstance(spec, (list, tuple)):
        return [resolve_spec(value, rng, f'{where}[{index}]') for index, value in enumerate(spec)]
    if not isinstance(spec, dict):
        return spec
    if is_random_value(spec):
        random_value_args(spec, where, KernelSpecError)
        _require_rng(rng, spec, where)
        return resolve_spec(draw_value(spec, rng, where, KernelSpecError), rng, where)
    if spec.get('type') == RANDOM_TYPE:
        choices, weights = _choices_weights(spec, where)
        _require_rng(rng, spec, where)
        index = int(rng.choice(len(choices), p=weights))
        return resolve_spec(as_spec(choices[index]), rng, f'{where}.choices[{index}]')
    return {key: resolve_spec(value, rng, f'{where}.{key}') for key, value in spec.items()}


def check_spec(spec, where='kernel', is_spec=True):
    """Check every branch of a spec without drawing: types, option names, random grammar.

    Option values are checked when a kernel is built. ``is_spec``: ``spec`` must be
    a kernel spec (a nested dict is one only when it has a ``type``).
    """
    if isinstance(spec, (list, tuple)):
        for index, value in enumerate(spec):
            check_spec(value, f'{where}[{index}]', is_spec=False)
    elif is_random_value(spec):
        check_spec(random_value_args(spec, where, KernelSpecError)[1], where, is_spec=False)
    elif isinstance(spec, dict) and spec.get('type') == RANDOM_TYPE:
        for index, choice in enumerate(_choices_weights(spec, where)[0]):
            check_spec(as_spec(choice), f'{where}.choices[{index}]')
    elif isinstance(spec, dict):
        if is_spec or 'type' in spec:
            options = {key: value for key, value in spec.items() if key != 'type'}
            _check_options(_kernel_function(spec.get('type'), describe_spec(spec)), spec.get('type'), options,
                           describe_spec(spec))
        for key, value in spec.items():
            check_spec(value, f'{where}.{key}', is_spec=False)


def _kernel_function(kernel_type, name):
    """The registered function of ``kernel_type``; a close match is suggested when unknown."""
    known = sorted(KERNEL_REGISTRY.keys()) + [RANDOM_TYPE]
    if kernel_type is None:
        raise KernelSpecError(f"kernel {name} has no 'type'; known types: {', '.join(known)}")
    if kernel_type not in KERNEL_REGISTRY:
        close = difflib.get_close_matches(str(kernel_type), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ''
        raise KernelSpecError(f"kernel {name}: unknown type '{kernel_type}'{hint} Known types: {', '.join(known)}")
    return KERNEL_REGISTRY.get(kernel_type)


def _check_options(func, kernel_type, options, name):
    """Fail on an option ``func`` does not take, or a required one that is missing."""
    params = inspect.signature(func).parameters
    valid = list(params) + list(GENERIC_OPTIONS)
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ''
            raise KernelSpecError(f"kernel {name}: type '{kernel_type}' has no option '{key}'{hint}; "
                                  f"valid options: {', '.join(valid)}")
    missing = [key for key, param in params.items() if param.default is param.empty and key not in options]
    if missing:
        raise KernelSpecError(f"kernel {name}: type '{kernel_type}' needs option(s) {', '.join(missing)}")


def _pad_to_centre(kernel, centre, name):
    """Zero-pad the last two axes so that pixel ``centre = [cy, cx]`` is the middle of an odd size."""
    kh, kw = kernel.shape[-2:]
    if (not isinstance(centre, (list, tuple)) or len(centre) != 2
            or not all(isinstance(c, numbers.Integral) for c in centre)
            or not (0 <= centre[0] < kh and 0 <= centre[1] < kw)):
        raise KernelSpecError(f'kernel {name}: centre must be [row, column] integer indices inside the '
                              f'{kh}x{kw} kernel, got {centre!r}')
    pads = []
    for index, length in zip(centre, (kh, kw)):
        half = max(index, length - 1 - index)
        pads.append((half - index, half - (length - 1 - index)))
    return np.pad(kernel, [(0, 0)] * (kernel.ndim - 2) + pads)


def _finalise(kernel, name, centre, allow_negative):
    """Validate a raw kernel and normalise each (output) channel to sum 1; float32."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim not in (2, 3, 4) or (kernel.ndim == 4 and kernel.shape[0] != kernel.shape[1]):
        raise KernelSpecError(f'kernel {name} has shape {kernel.shape}; expected (kh, kw), (C, kh, kw) '
                              f'or (C, C, kh, kw)')
    if not np.isfinite(kernel).all():
        raise KernelSpecError(f'kernel {name} has {int((~np.isfinite(kernel)).sum())} non-finite value(s)')
    if not allow_negative and (kernel < 0).any():
        raise KernelSpecError(f'kernel {name} has negative values (min {kernel.min():.4g}); set '
                              f'allow_negative: true if they are real (e.g. a background-subtracted PSF)')
    if centre is not None:
        kernel = _pad_to_centre(kernel, centre, name)
    kh, kw = kernel.shape[-2:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise KernelSpecError(f'kernel {name} is {kh}x{kw}: an even side has no centre pixel; crop it to '
                              f'odd, or give centre: [row, column] to zero-pad it to odd around that pixel')
    if max(kh, kw) > MAX_KERNEL_SIZE:
        raise KernelSpecError(f'kernel {name} is {kh}x{kw}, above MAX_KERNEL_SIZE = {MAX_KERNEL_SIZE}; '
                              f'crop it or use a smaller size')
    sums = kernel.sum(axis=(-3, -2, -1) if kernel.ndim == 4 else (-2, -1), keepdims=True)
    if (sums <= 0).any():
        raise KernelSpecError(f'kernel {name} sums to {np.round(sums.ravel(), 6).tolist()} (per channel); '
                              f'each sum must be > 0')
    return (kernel / sums).astype(np.float32)


def build_kernel(spec, rng=None):
    """Build a normalised sensor kernel from a spec.

    Convention: the kernel is the *forward* model (what the sensor does to the
    scene, not its inverse), odd-sized and centred (the light of a pixel lands at
    the kernel's offsets from the centre), applied by true convolution to
    *linear* light (not gamma-encoded sRGB); a measured PSF file is sampled at the
    sensor's pixel pitch. Each channel sums to 1 (energy conserving).

    Args:
        spec (dict | str | PathLike | list): ``{type: NAME, option: value, ...}``
            with NAME in KERNEL_REGISTRY (options: the keyword arguments of the
            registered function, plus ``centre: [row, column]`` and
            ``allow_negative: bool`` for every type); a PSF file path (.npy, .png,
            .tif); or a random spec (see :func:`resolve_spec`; a list of specs is
            a uniform random choice).
        rng (np.random.Generator | int | None): source of the draws of a random
            spec (an int is a seed); required for random specs only.

    Returns:
        np.ndarray: float32 (kh, kw), (C, kh, kw) per channel, or (C, C, kh, kw)
        cross-channel (``y_c = sum_c' K[c, c'] * s_c'``; each output channel c sums to 1).
    """
    spec = resolve_spec(as_spec(spec), rng)
    name = describe_spec(spec)
    options = dict(spec)
    kernel_type = options.pop('type', None)
    func = _kernel_function(kernel_type, name)
    _check_options(func, kernel_type, options, name)
    centre = options.pop('centre', None)
    allow_negative = bool(options.pop('allow_negative', False))
    try:
        kernel = func(**options)
    except KernelSpecError:  # from a nested spec: it names that spec
        raise
    except (TypeError, ValueError) as error:
        raise KernelSpecError(f'kernel {name}: {error}') from error
    return _finalise(kernel, name, centre, allow_negative)


class KernelSampler:
    """Kernels for a dataset: a fixed spec built once, or a random spec drawn per sample.

    Every branch of a random spec is checked (types, option names) on construction.

    Args:
        spec (dict | str | list): as for :func:`build_kernel`; a list of specs is
            a uniform random choice among them.

    Attributes:
        spec (dict): the normalised spec.
        is_random (bool): whether :meth:`sample` needs an rng and varies.
    """

    def __init__(self, spec):
        self.spec = as_spec(spec)
        self.is_random = is_random_spec(self.spec)
        if self.is_random:
            check_spec(self.spec)  # fail now, not at the first unlucky draw
        self._fixed = None if self.is_random else build_kernel(self.spec)

    def sample(self, rng=None):
        """A kernel (see :func:`build_kernel`); ``rng`` (Generator or int seed) is required when random."""
        return build_kernel(self.spec, rng) if self.is_random else self._fixed.copy()

    def __repr__(self):
        return f'KernelSampler({describe_spec(self.spec)})'


def parse_kernel_spec(text):
    """A spec from command-line text: an existing path, a registered type name or inline YAML/JSON.

    ``'psf.png'`` -> the path; ``'gaussian'`` -> ``{'type': 'gaussian'}`` (its defaults);
    ``'{type: gaussian, sigma: 1.2}'`` -> the dict; ``'[{type: disk}, ...]'`` -> the list.
    """
    if os.path.exists(text):
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise KernelSpecError(f'kernel spec {text!r} is neither a file nor valid YAML: {error}') from error
    if isinstance(value, str):
        return {'type': value} if value in KERNEL_REGISTRY else value
    if isinstance(value, (dict, list)):
        return value
    raise KernelSpecError(f"kernel spec {text!r} is neither a file nor a spec such as '{{type: gaussian, sigma: 1.2}}'")
