"""Registration of the plugin's classes in BasicSR's registries.

Policy (documented in the README): the plugin's class wins. BasicSR's
``Registry.register`` refuses a second object under a name; forks of BasicSR
(NAFNet's own repository, for instance) already register names such as
``NAFNet``. The YAML recipes of this plugin are written against its own
classes, so :func:`register` replaces such an entry and logs a warning that
names what it replaced. Registering the same class again (a module imported
twice, ``importlib.reload``) is silent.
"""
import importlib
import logging
import os

logger = logging.getLogger('basicsr')


def _qualified_name(obj):
    return f'{obj.__module__}.{obj.__qualname__}'


def register(registry):
    """Class decorator: ``@register(ARCH_REGISTRY)`` registers under the class name.

    Args:
        registry (basicsr.utils.registry.Registry): target registry.
    """

    def decorate(obj):
        name = obj.__name__
        existing = registry._obj_map.get(name)
        if existing is not None and _qualified_name(existing) != _qualified_name(obj):
            logger.warning(f"newbp_plugin: '{name}' in the {registry._name} registry was "
                           f'{_qualified_name(existing)}; the plugin replaces it with {_qualified_name(obj)}.')
        registry._obj_map[name] = obj
        return obj

    return decorate


def import_modules_by_suffix(package, suffix):
    """Import every ``*<suffix>.py`` module of ``package`` (BasicSR's auto-import pattern).

    Args:
        package (str): dotted package name, e.g. ``'newbp_plugin.archs'``.
        suffix (str): file-name suffix, e.g. ``'_arch'``.

    Returns:
        list[module]: the imported modules, sorted by file name.
    """
    folder = os.path.dirname(importlib.import_module(package).__file__)
    names = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(f'{suffix}.py'))
    return [importlib.import_module(f'{package}.{name}') for name in names]
