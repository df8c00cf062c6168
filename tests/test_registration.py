"""Registration policy: re-registration is silent, the plugin wins over a fork's name."""
import logging

import pytest
from basicsr.utils.registry import Registry

from newbp_plugin.registration import import_modules_by_suffix, register


def _make_class(name, module):
    return type(name, (), {'__module__': module})


def test_register_adds_under_class_name():
    registry = Registry('demo')
    cls = register(registry)(_make_class('Net', 'pkg.a_arch'))
    assert registry.get('Net') is cls


def test_same_class_twice_is_silent(caplog):
    registry = Registry('demo')
    register(registry)(_make_class('Net', 'pkg.a_arch'))
    reloaded = _make_class('Net', 'pkg.a_arch')  # what importlib.reload produces
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        register(registry)(reloaded)
    assert registry.get('Net') is reloaded
    assert caplog.records == []


def test_plugin_replaces_fork_name_with_warning(caplog):
    registry = Registry('arch')
    fork = _make_class('NAFNet', 'basicsr.models.archs.NAFNet_arch')
    registry.register(fork)
    ours = _make_class('NAFNet', 'newbp_plugin.archs.nafnet_arch')
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        register(registry)(ours)
    assert registry.get('NAFNet') is ours
    message = caplog.records[0].getMessage()
    assert 'basicsr.models.archs.NAFNet_arch.NAFNet' in message and 'newbp_plugin.archs.nafnet_arch.NAFNet' in message


def test_basicsr_registry_would_refuse_the_fork_name():
    """Why the policy exists: BasicSR's own register() asserts on a second object."""
    registry = Registry('arch')
    registry.register(_make_class('NAFNet', 'fork'))
    with pytest.raises(AssertionError, match='already registered'):
        registry.register(_make_class('NAFNet', 'plugin'))


def test_import_modules_by_suffix(tmp_path, monkeypatch):
    package = tmp_path / 'demo_pkg'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'b_arch.py').write_text('VALUE = 2\n')
    (package / 'a_arch.py').write_text('VALUE = 1\n')
    (package / 'helper.py').write_text('raise RuntimeError("must not be imported")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = import_modules_by_suffix('demo_pkg', '_arch')
    assert [m.__name__ for m in modules] == ['demo_pkg.a_arch', 'demo_pkg.b_arch']


def _declared_registrations():
    """(registry name, class name) of every ``@register(X_REGISTRY)`` class in the plugin's source."""
    import ast
    import pathlib
    import newbp_plugin
    found = []
    for path in pathlib.Path(newbp_plugin.__file__).parent.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for deco in node.decorator_list:
                    if isinstance(deco, ast.Call) and getattr(deco.func, 'id', '') == 'register':
                        found.append((deco.args[0].id, node.name))
    return found


def test_every_plugin_class_is_registered_after_import():
    """'No object named X found in registry' cannot happen for the plugin's own names."""
    import subprocess
    import sys
    declared = _declared_registrations()
    assert ('ARCH_REGISTRY', 'NAFNet') in declared and len(declared) >= 3
    script = ('import newbp_plugin, basicsr.utils.registry as r\n'
              f'for registry, name in {declared!r}:\n'
              '    getattr(r, registry).get(name)\n'
              'print("ok")\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == 'ok', result.stderr[-2000:]
