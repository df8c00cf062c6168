"""User plugins: your modules that register sensor kernels (or BasicSR classes), imported before options are built.

Three sources; every ``basicsr`` subcommand that builds from options loads them in this order:

1. installed packages: the entry points of the group ``newbp_plugin.kernels`` (each names a
   module), imported on the first look-up in KERNEL_REGISTRY, in scripts too;
2. ``plugins:`` of the options YAML (train, test, benchmark): entries resolved against the
   YAML's folder, then the working directory;
3. ``--plugin`` (restore, benchmark, kernels): resolved against the working directory.

An entry is a module name (``my_sensor``, ``acme.sensors``) or a path (``./sensors/acme.py``,
a package folder). A module found in a search folder is imported from there, with that
folder put at the front of ``sys.path`` (as ``python -m`` does with the working directory);
a file ``dir/name.py`` is imported as the module ``name``. A module is imported once, whatever
lists it. Two plugins that register one kernel name are an error (the first stays, see
:class:`newbp_plugin.kernels.registry.Registry`), and so is a built-in name.
"""
import importlib
import importlib.metadata
import os
import os.path as osp
import sys

from newbp_plugin.kernels.registry import DuplicateNameError

_how_loaded = {}  # module name -> where it was listed, e.g. 'my.yml: plugins: my_sensor.py' (basicsr kernels list)


class PluginError(ValueError):
    """A plugin that cannot be found or imported as listed; the message names the entry and its source."""


def _is_path(entry):
    return entry.endswith('.py') or '/' in entry or os.sep in entry


def _locate(entry, search_dirs, where):
    """``(module name, folder to import it from or None, its file or package folder or None)``."""
    if _is_path(entry):
        entry = osp.expanduser(entry)
        candidates = [entry] if osp.isabs(entry) else [osp.join(folder, entry) for folder in search_dirs]
        found = next((path for path in candidates if osp.exists(path)), None)
        if found is None:
            raise PluginError(f"{where}: not found (looked in {', '.join(map(osp.abspath, search_dirs))})")
        folder, name = osp.split(osp.abspath(found).rstrip(os.sep))
        name = name[:-3] if name.endswith('.py') else name
        if not name.isidentifier():
            raise PluginError(f"{where}: '{name}' is not a Python module name; rename it")
        return name, folder, osp.join(folder, name if osp.isdir(found) else f'{name}.py')
    top = entry.split('.')[0]
    for folder in search_dirs:
        for path in (osp.join(folder, f'{top}.py'), osp.join(folder, top)):
            if osp.exists(path):
                return entry, osp.abspath(folder), osp.abspath(path)
    return entry, None, None


def _import(name, where, search_dirs=()):
    """``importlib.import_module(name)``; its absence or a kernel-name clash becomes a PluginError."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is None or not (name == error.name or name.startswith(f'{error.name}.')):
            raise  # an import inside the plugin failed: its own traceback
        searched = ''.join(f'{osp.abspath(folder)}, ' for folder in search_dirs)
        raise PluginError(f"{where}: no module named '{name}' (looked in {searched}the Python path)") from None
    except DuplicateNameError as error:
        raise PluginError(f'{where}: {error.args[0]}') from None
    _how_loaded.setdefault(name, where)
    return module


def _module_path(module):
    """The file of a module, or the folder of a package."""
    path = getattr(module, '__file__', None)
    if path is None:  # a namespace package
        return next(iter(getattr(module, '__path__', [])), '')
    return osp.dirname(path) if osp.basename(path) == '__init__.py' else path


def import_plugin(entry, search_dirs, how):
    """Import one plugin entry (see the module docstring); return the module.

    Args:
        entry (str): a module name, or a path to a ``.py`` file or a package folder.
        search_dirs (list[str]): folders a relative entry is looked for in, in order.
        how (str): where the entry is listed, for messages: ``'my.yml: plugins:'``, ``'--plugin'``.

    Raises:
        PluginError: the entry is not found, names a module already imported from elsewhere,
            or registers a kernel name that is taken.
    """
    where = f'{how} {entry}'
    if not isinstance(entry, str) or not entry:
        raise PluginError(f'{where}: an entry is a module name or a .py file')
    name, folder, path = _locate(entry, search_dirs, where)
    if folder is not None:
        existing = sys.modules.get(name.split('.')[0])
        if existing is not None and osp.realpath(_module_path(existing)) != osp.realpath(path):
            raise PluginError(f"{where}: that is {path}, but a module '{existing.__name__}' is already imported "
                              f'from {_module_path(existing)}; rename one of them')
        if folder not in sys.path:
            sys.path.insert(0, folder)
            importlib.invalidate_caches()
    return _import(name, where, search_dirs)


def load_plugins(entries, search_dirs, how):
    """Import the installed plugins (entry points), then each of ``entries``; see :func:`import_plugin`.

    Args:
        entries (str | list[str] | None): a ``plugins:`` value or the ``--plugin`` values.
    """
    from newbp_plugin.kernels import KERNEL_REGISTRY
    KERNEL_REGISTRY.load_entry_points()
    if entries is None:
        return
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, (list, tuple)):
        raise PluginError(f'{how} expected a list of module names or .py files, got {entries!r}')
    for entry in entries:
        import_plugin(entry, search_dirs, how)


def import_entry_points(group):
    """Import the module of every installed entry point of ``group``.

    Raises:
        PluginError: an entry point's module is missing (a broken install) or clashes.
    """
    points = importlib.metadata.entry_points()
    points = points.select(group=group) if hasattr(points, 'select') else points.get(group, [])
    for point in points:
        dist = getattr(point, 'dist', None)
        source = f' of {dist.name} {dist.version}' if dist is not None else ''
        _import(point.module, f"entry point {group}: '{point.name} = {point.value}'{source}")


def origin(obj):
    """Where a registered object comes from: None for the plugin's own, else its file and source."""
    module = obj.__module__
    if module == 'newbp_plugin' or module.startswith('newbp_plugin.'):
        return None
    path = _module_path(sys.modules[module]) if module in sys.modules else module
    top = module.split('.')[0]
    how = _how_loaded.get(module) or _how_loaded.get(top)
    return f'{path} ({how})' if how else path
