"""The one option-schema helper of the plugin: known keys, defaults, required keys, valid values.

Every component that reads options (dataset, model, network, benchmark, sensor block) checks them
here, so that a bad option fails at start with a message that names the owner and the key::

    NewBPModel: unknown option 'train:pixel_op' (did you mean 'pixel_opt'?); valid options: ...
    CrosstalkDataset: option dataroot_gt is required
    CrosstalkDataset: option gt_size must be a positive integer, got -3
"""
import difflib
import numbers

REQUIRED = object()  # the default of an option that has none


class Option:
    """One option: its default and what a valid value is.

    Args:
        default: the value when the option is absent; :data:`REQUIRED`: it must be given.
        valid (callable | None): ``valid(value) -> bool``; None: any value.
        expected (str): what a valid value is, for the message (e.g. ``'true or false'``).
    """

    def __init__(self, default=REQUIRED, valid=None, expected=''):
        self.default, self.valid, self.expected = default, valid, expected


def check_options(options, valid, owner, prefix=''):
    """Raise ValueError naming the first key of ``options`` that is not in ``valid``.

    The message names the owner, the key (with ``prefix``, e.g. ``'train:'`` as in
    BasicSR's ``--force_yml`` syntax), the closest valid name and every valid name.

    Args:
        options (Iterable[str] | None): the keys given (a dict works).
        valid (Sequence[str]): the keys accepted.
        owner (str): what reads the options, e.g. ``'CrosstalkDataset'``.
        prefix (str): printed before the key. Default: ''.
    """
    valid = list(valid)
    for key in options or ():
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ''
            raise ValueError(f"{owner}: unknown option '{prefix}{key}'{hint}; valid options: {', '.join(valid)}")


def parse_options(options, schema, owner, prefix='', also_valid=()):
    """``options`` checked against ``schema``, with the defaults of the absent ones.

    Args:
        options (dict | None): the options given.
        schema (dict[str, Option]): every option the owner reads.
        owner (str): what reads the options, for messages.
        prefix (str): printed before a key (``'train:'``). Default: ''.
        also_valid (Sequence[str]): keys accepted as they are (e.g. those BasicSR writes into
            every dataset's options). Default: ().

    Returns:
        dict: every key of ``schema`` with its value, and the ``also_valid`` keys given.

    Raises:
        ValueError: an unknown key (with the closest valid one), a missing required key, or a
            value that is not valid; the message names the owner and the key.
    """
    options = dict(options or {})
    check_options(options, list(schema) + list(also_valid), owner, prefix)
    parsed = {key: value for key, value in options.items() if key not in schema}
    for key, option in schema.items():
        if key not in options:
            if option.default is REQUIRED:
                raise ValueError(f'{owner}: option {prefix}{key} is required')
            parsed[key] = option.default
            continue
        value = options[key]
        if option.valid is not None and not option.valid(value):
            raise ValueError(f'{owner}: option {prefix}{key} must be {option.expected}, got {value!r}')
        parsed[key] = value
    return parsed


def is_bool(value):
    return isinstance(value, bool)


def is_int(value, low=None):
    """Whether ``value`` is an integer (not a bool), at least ``low`` when given."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and (low is None or value >= low)


def one_of(choices):
    """A ``valid`` function accepting exactly ``choices``."""
    return lambda value: isinstance(value, (str, numbers.Number, type(None))) and value in choices


def optional(valid):
    """``valid``, or None."""
    return lambda value: value is None or valid(value)
