"""User plugins: where entries are found, name clashes, installed entry points, `basicsr kernels` with them."""
import sys
import textwrap

import pytest

from newbp_plugin import cli, plugins
from newbp_plugin.kernels import KERNEL_REGISTRY, build_kernel

PLUGIN = '''
import numpy as np
from newbp_plugin.kernels import KERNEL_REGISTRY


@KERNEL_REGISTRY.register()
def {kernel}(leak={leak}):
    """Leakage into the four neighbours."""
    kernel = np.zeros((3, 3))
    kernel[1, 1] = 1 - leak
    kernel[[0, 1, 1, 2], [1, 0, 2, 1]] = leak / 4
    return kernel
'''


def write_plugin(folder, module, kernel, leak=0.1):
    """``folder/module.py`` registering the kernel type ``kernel`` (centre 1 - leak)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f'{module}.py').write_text(PLUGIN.format(kernel=kernel, leak=leak))


def centre(kernel_type):
    return float(build_kernel({'type': kernel_type})[1, 1])


@pytest.fixture
def isolated_plugins(monkeypatch):
    """Plugins a test imports leave no module, sys.path entry, kernel or record behind."""
    monkeypatch.setattr(sys, 'path', list(sys.path))
    monkeypatch.setattr(KERNEL_REGISTRY, '_obj_map', dict(KERNEL_REGISTRY._obj_map))
    monkeypatch.setattr(plugins, '_how_loaded', {})
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_entries_are_found_beside_the_yaml_then_in_the_working_directory(tmp_path, isolated_plugins):
    yaml_dir, cwd = tmp_path / 'options', tmp_path / 'work'
    write_plugin(yaml_dir / 'sensors', 'acme_file', 'acme_file_kernel')
    write_plugin(yaml_dir, 'both_places', 'both_places_kernel', leak=0.2)
    write_plugin(cwd, 'both_places', 'both_places_kernel', leak=0.4)
    write_plugin(cwd, 'only_cwd', 'only_cwd_kernel')
    plugins.load_plugins(['sensors/acme_file.py', 'both_places', 'only_cwd'], [str(yaml_dir), str(cwd)],
                         'run.yml: plugins:')
    assert centre('acme_file_kernel') == pytest.approx(0.9)
    assert centre('both_places_kernel') == pytest.approx(0.8)  # the YAML's folder first
    assert centre('only_cwd_kernel') == pytest.approx(0.9)
    assert plugins.origin(KERNEL_REGISTRY.get('acme_file_kernel')) == (
        f"{yaml_dir / 'sensors' / 'acme_file.py'} (run.yml: plugins: sensors/acme_file.py)")
    assert plugins.origin(KERNEL_REGISTRY.get('gaussian')) is None  # built-in
    plugins.load_plugins(['only_cwd'], [str(cwd)], '--plugin')  # listed again: imported once, no clash


def test_missing_entry_names_itself_and_where_it_looked(tmp_path, isolated_plugins):
    with pytest.raises(plugins.PluginError, match=rf"^--plugin my_sensr: no module named 'my_sensr' \(looked in "
                                                  rf"{tmp_path}, the Python path\)$"):
        plugins.load_plugins(['my_sensr'], [str(tmp_path)], '--plugin')
    with pytest.raises(plugins.PluginError, match=rf'^x.yml: plugins: sensors/nope.py: not found \(looked in '
                                                  rf'{tmp_path}\)$'):
        plugins.load_plugins('sensors/nope.py', [str(tmp_path)], 'x.yml: plugins:')
    with pytest.raises(plugins.PluginError, match='expected a list of module names'):
        plugins.load_plugins({'a': 1}, [str(tmp_path)], 'x.yml: plugins:')


def test_a_taken_kernel_name_is_an_error_and_the_first_definition_stays(tmp_path, isolated_plugins):
    write_plugin(tmp_path, 'first_sensor', 'clash_kernel', leak=0.2)
    write_plugin(tmp_path, 'second_sensor', 'clash_kernel', leak=0.4)
    write_plugin(tmp_path, 'my_gaussian', 'gaussian')
    plugins.load_plugins(['first_sensor.py'], [str(tmp_path)], 'a.yml: plugins:')
    with pytest.raises(plugins.PluginError) as error:
        plugins.load_plugins(['second_sensor.py'], [str(tmp_path)], 'b.yml: plugins:')
    assert str(error.value) == ("b.yml: plugins: second_sensor.py: A kernel named 'clash_kernel' is already "
                                'registered (by first_sensor.clash_kernel); second_sensor.clash_kernel must '
                                'choose another name.')
    assert centre('clash_kernel') == pytest.approx(0.8)
    with pytest.raises(plugins.PluginError, match=r"'gaussian' is already registered \(by "
                                                  r'newbp_plugin.kernels.gaussian.gaussian\)'):
        plugins.load_plugins(['my_gaussian'], [str(tmp_path)], '--plugin')
    assert KERNEL_REGISTRY.get('gaussian').__module__ == 'newbp_plugin.kernels.gaussian'


def test_two_files_of_one_module_name_are_an_error(tmp_path, isolated_plugins):
    write_plugin(tmp_path / 'a', 'acme_twice', 'acme_a_kernel')
    write_plugin(tmp_path / 'b', 'acme_twice', 'acme_b_kernel')
    plugins.load_plugins(['a/acme_twice.py'], [str(tmp_path)], '--plugin')
    with pytest.raises(plugins.PluginError, match=rf"b/acme_twice.py: that is {tmp_path / 'b' / 'acme_twice.py'}, "
                                                  rf"but a module 'acme_twice' is already imported from "
                                                  rf"{tmp_path / 'a' / 'acme_twice.py'}; rename one"):
        plugins.load_plugins(['b/acme_twice.py'], [str(tmp_path)], '--plugin')
    assert 'acme_b_kernel' not in KERNEL_REGISTRY


def write_distribution(site, name='acme-sensors', module='acme_sensors', kernel='acme_kernel'):
    """An installed distribution in ``site`` whose entry point ``newbp_plugin.kernels`` names ``module``."""
    write_plugin(site, module, kernel)
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n')
    (info / 'entry_points.txt').write_text(f'[newbp_plugin.kernels]\nacme = {module}\n')


def test_installed_entry_point_registers_at_the_first_lookup(tmp_path, isolated_plugins, monkeypatch):
    write_distribution(tmp_path)
    sys.path.insert(0, str(tmp_path))
    monkeypatch.setattr(KERNEL_REGISTRY, '_entry_point_group', 'newbp_plugin.kernels')
    assert 'acme_sensors' not in sys.modules
    assert centre('acme_kernel') == pytest.approx(0.9)  # no flag, no import
    assert plugins.origin(KERNEL_REGISTRY.get('acme_kernel')) == (
        f"{tmp_path / 'acme_sensors.py'} (entry point newbp_plugin.kernels: 'acme = acme_sensors' of "
        'acme-sensors 1.0)')


def test_kernels_list_and_show_a_plugin_kernel(tmp_path, isolated_plugins, monkeypatch, capsys):
    write_plugin(tmp_path, 'list_sensor', 'list_kernel')
    monkeypatch.chdir(tmp_path)
    assert cli.main(['kernels', 'list', '--plugin', 'list_sensor.py']) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows['list_kernel'].endswith(
        f"Leakage into the four neighbours.  [from {tmp_path / 'list_sensor.py'} (--plugin list_sensor.py)]")
    assert '[from' not in rows['gaussian']
    out = tmp_path / 'k.png'
    assert cli.main(['kernels', 'show', '{type: list_kernel, leak: 0.2}', '--plugin', 'list_sensor',
                     '--out', str(out)]) == 0
    assert 'shape (3, 3), sum 1' in capsys.readouterr().out and out.is_file()


def test_plugin_import_error_inside_the_module_keeps_its_traceback(tmp_path, isolated_plugins):
    (tmp_path / 'broken_sensor.py').write_text(textwrap.dedent('''
        import a_module_that_is_not_installed
    '''))
    with pytest.raises(ModuleNotFoundError, match='a_module_that_is_not_installed'):
        plugins.load_plugins(['broken_sensor.py'], [str(tmp_path)], '--plugin')


def test_a_bug_in_a_plugin_kernel_keeps_its_traceback(tmp_path, isolated_plugins, monkeypatch):
    (tmp_path / 'buggy_sensor.py').write_text(PLUGIN.format(kernel='buggy_kernel', leak=0.1).replace(
        '    return kernel', '    return kernel[3]'))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IndexError):  # not a user error: main does not turn it into one line
        cli.main(['kernels', 'show', 'buggy_kernel', '--plugin', 'buggy_sensor.py'])
