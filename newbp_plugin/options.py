"""Fail-fast checking of option keys, shared by the plugin's arch, dataset and model."""
import difflib


def check_options(options, valid, owner, prefix=''):
    """Raise ValueError naming the first key of ``options`` that is not in ``valid``.

    The message names the owner, the key (with ``prefix``, e.g. ``'train:'`` as in
    BasicSR's ``--force_yml`` syntax), the closest valid name and every valid name::

        NewBPModel: unknown option 'train:pixel_op' (did you mean 'pixel_opt'?); valid options: ...

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
