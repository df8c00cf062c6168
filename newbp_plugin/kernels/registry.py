"""A BasicSR-style name -> object registry, without importing BasicSR."""


class Registry:
    """Maps names to objects so that options can name them (``type: gaussian``).

    Register with a decorator, ``@KERNEL_REGISTRY.register()`` (or without the
    parentheses), or with a call, ``KERNEL_REGISTRY.register(func)``; the name is
    the object's ``__name__``.

    Args:
        name (str): what the registry holds, used in error messages.
    """

    def __init__(self, name):
        self._name = name
        self._obj_map = {}

    def register(self, obj=None):
        """Register ``obj`` (or, used as a decorator, the decorated object); return it.

        Registering a name again raises, unless it is the same definition again (same
        module and qualified name: a reloaded module, a re-run notebook cell), which replaces it.
        """
        if obj is None:
            return self.register
        name = obj.__name__
        previous = self._obj_map.get(name)
        if previous is not None and _qualified_name(previous) != _qualified_name(obj):
            raise KeyError(f"A {self._name} named '{name}' is already registered (by {_qualified_name(previous)}); "
                           f'{_qualified_name(obj)} must choose another name.')
        self._obj_map[name] = obj
        return obj

    def get(self, name):
        if name not in self._obj_map:
            raise KeyError(f"No {self._name} named '{name}'; known: {', '.join(sorted(self._obj_map))}")
        return self._obj_map[name]

    def __contains__(self, name):
        return name in self._obj_map

    def __iter__(self):
        return iter(self._obj_map.items())

    def keys(self):
        return self._obj_map.keys()

    def __repr__(self):
        return f'Registry({self._name!r}, {sorted(self._obj_map)})'


def _qualified_name(obj):
    return f'{obj.__module__}.{obj.__qualname__}'


KERNEL_REGISTRY = Registry('kernel')
