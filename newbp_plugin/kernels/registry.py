"""A BasicSR-style name -> object registry, without importing BasicSR."""


class DuplicateNameError(KeyError):
    """A second, different object registered under a name already taken (``args[0]`` names both)."""


class Registry:
    """Maps names to objects so that options can name them (``type: gaussian``).

    Register with a decorator, ``@KERNEL_REGISTRY.register()`` (or without the
    parentheses), or with a call, ``KERNEL_REGISTRY.register(func)``; the name is
    the object's ``__name__``.

    Args:
        name (str): what the registry holds, used in error messages.
        entry_point_group (str | None): entry points of installed packages that register
            into this registry (:func:`newbp_plugin.plugins.import_entry_points`); they are
            imported on the first look-up. Default: None.
    """

    def __init__(self, name, entry_point_group=None):
        self._name = name
        self._obj_map = {}
        self._entry_point_group = entry_point_group

    def register(self, obj=None):
        """Register ``obj`` (or, used as a decorator, the decorated object); return it.

        Registering a name again raises DuplicateNameError, unless it is the same definition
        again (same module and qualified name: a reloaded module, a re-run notebook cell),
        which replaces it. The first registration of a name stays.
        """
        if obj is None:
            return self.register
        name = obj.__name__
        previous = self._obj_map.get(name)
        if previous is not None and _qualified_name(previous) != _qualified_name(obj):
            raise DuplicateNameError(f"A {self._name} named '{name}' is already registered (by "
                                     f'{_qualified_name(previous)}); {_qualified_name(obj)} must choose another name.')
        self._obj_map[name] = obj
        return obj

    def load_entry_points(self):
        """Import the installed packages of ``entry_point_group``, once (the first look-up does it)."""
        group, self._entry_point_group = self._entry_point_group, None
        if group is not None:
            from newbp_plugin.plugins import import_entry_points
            import_entry_points(group)

    def get(self, name):
        self.load_entry_points()
        if name not in self._obj_map:
            raise KeyError(f"No {self._name} named '{name}'; known: {', '.join(sorted(self._obj_map))}")
        return self._obj_map[name]

    def __contains__(self, name):
        self.load_entry_points()
        return name in self._obj_map

    def __iter__(self):
        self.load_entry_points()
        return iter(self._obj_map.items())

    def keys(self):
        self.load_entry_points()
        return self._obj_map.keys()

    def __repr__(self):
        return f'Registry({self._name!r}, {sorted(self._obj_map)})'


def _qualified_name(obj):
    return f'{obj.__module__}.{obj.__qualname__}'


KERNEL_REGISTRY = Registry('kernel', entry_point_group='newbp_plugin.kernels')
