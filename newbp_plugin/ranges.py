"""The one grammar of random option values, for kernel specs and noise specs alike (no BasicSR).

An option value is a fixed value, or drawn anew for every sample from::

    {uniform: [low, high]}      a float, uniform in [low, high]
    {randint: [low, high]}      an integer, both ends included
    {choice: [value, ...]}      one of the values (each may itself be random)
"""
import numbers

RANDOM_RULES = ('uniform', 'randint', 'choice')  # the keys of a random value


def is_random_value(value):
    """Whether ``value`` is a random value ``{uniform|randint|choice: ...}``."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in RANDOM_RULES


def random_value_args(value, where, error=ValueError):
    """``(rule, args)`` of a random value, its grammar checked.

    Args:
        value (dict): ``{rule: args}``.
        where (str): the option's place in the user's spec, for the message.
        error (type): the exception class raised.

    Raises:
        error: a malformed random value, with ``where`` and the expected form.
    """
    rule, args = next(iter(value.items()))
    if rule == 'choice':
        if not isinstance(args, (list, tuple)) or not args:
            raise error(f'{where}: {{choice: ...}} needs a non-empty list, got {args!r}')
    elif (not isinstance(args, (list, tuple)) or len(args) != 2
          or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in args) or args[0] > args[1]):
        raise error(f'{where}: {{{rule}: {args!r}}} needs two numbers [low, high] with low <= high')
    return rule, args


def extremes(value, where, error=ValueError):
    """Every value a random value can reach at its ends: ``[low, high]``, or the choices (nested ones expanded)."""
    if not is_random_value(value):
        return [value]
    rule, args = random_value_args(value, where, error)
    return [end for item in args for end in extremes(item, where, error)] if rule == 'choice' else list(args)


def draw_value(value, rng, where, error=ValueError):
    """A fixed value of ``value``: itself, or a draw from ``rng`` (np.random.Generator) of a random value."""
    if not is_random_value(value):
        return value
    rule, args = random_value_args(value, where, error)
    if rule == 'choice':
        return draw_value(args[rng.integers(len(args))], rng, where, error)
    return float(rng.uniform(*args)) if rule == 'uniform' else int(rng.integers(*args, endpoint=True))
