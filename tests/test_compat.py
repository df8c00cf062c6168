"""Each BasicSR compatibility fix: needed here, and effective."""
import collections
import subprocess
import sys

import pytest
import torch

import newbp_plugin  # noqa: F401  (applies the fixes)
from newbp_plugin import compat


def test_fixes_report_what_they_installed_and_are_idempotent():
    first = compat.apply()
    assert compat.apply() == first  # nothing new the second time
    assert len(set(first)) == len(first)


def test_basicsr_imports_only_with_functional_tensor_fix():
    """torchvision >= 0.17 lacks functional_tensor: plain `import basicsr` fails, the plugin's import works."""
    import torchvision
    major, minor = (int(v) for v in torchvision.__version__.split('.')[:2])
    bare = subprocess.run([sys.executable, '-c', 'import basicsr'], capture_output=True, text=True)
    with_plugin = subprocess.run([sys.executable, '-c', 'import newbp_plugin, basicsr; print(basicsr.__version__)'],
                                 capture_output=True, text=True)
    assert with_plugin.returncode == 0, with_plugin.stderr
    if (major, minor) >= (0, 17):
        assert 'functional_tensor' in compat.apply()
        assert bare.returncode != 0 and 'functional_tensor' in bare.stderr
    else:
        assert 'functional_tensor' not in compat.apply()
    from basicsr.data.degradations import rgb_to_grayscale
    img = torch.rand(1, 3, 4, 4)
    expected = (0.2989 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]).unsqueeze(1)
    torch.testing.assert_close(rgb_to_grayscale(img), expected, atol=1e-6, rtol=0)


def _scheduler_state(tmp_path):
    """A BasicSR training state as SRModel saves it, with MultiStepRestartLR (Counter milestones)."""
    from basicsr.models.lr_scheduler import MultiStepRestartLR
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    param.grad = torch.ones(2)
    optimizer.step()
    scheduler = MultiStepRestartLR(optimizer, milestones=[10, 20], gamma=0.5)
    state = {'epoch': 1, 'iter': 7, 'optimizers': [optimizer.state_dict()], 'schedulers': [scheduler.state_dict()]}
    assert isinstance(state['schedulers'][0]['milestones'], collections.Counter)
    states = tmp_path / 'experiments' / 'run' / 'training_states'
    states.mkdir(parents=True)
    for it in (3, 7):
        torch.save(dict(state, iter=it), states / f'{it}.state')
    return states


def test_weights_only_loads_basicsr_scheduler_state(tmp_path):
    states = _scheduler_state(tmp_path)
    loaded = torch.load(states / '7.state', weights_only=True)
    assert loaded['schedulers'][0]['milestones'] == collections.Counter({10: 1, 20: 1})


def _opt(tmp_path, auto_resume, resume_state=None):
    root = tmp_path / 'experiments' / 'run'
    return {
        'name': 'run', 'num_gpu': 0, 'network_g': {'type': 'SRVGGNetCompact'}, 'auto_resume': auto_resume, 'is_train': True,
        'path': {'training_states': str(root / 'training_states'), 'models': str(root / 'models'),
                 'resume_state': resume_state}
    }


@pytest.mark.skipif(torch.cuda.is_available(), reason='the crash being fixed happens only without CUDA')
def test_basicsr_load_resume_state_crashes_without_cuda(tmp_path):
    """BasicSR's own function (a fresh copy of its module) fails here; the installed one is the fix."""
    import importlib.util
    import basicsr.train
    states = _scheduler_state(tmp_path)
    spec = importlib.util.find_spec('basicsr.train')
    pristine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pristine)
    with pytest.raises((AssertionError, RuntimeError)):
        pristine.load_resume_state(_opt(tmp_path, auto_resume=False, resume_state=str(states / '7.state')))
    assert 'resume_state_device' in compat.apply()
    assert basicsr.train.load_resume_state is compat.load_resume_state


def test_resume_state_loads_on_model_device(tmp_path):
    import basicsr.train
    states = _scheduler_state(tmp_path)
    opt = _opt(tmp_path, auto_resume=False, resume_state=str(states / '3.state'))
    state = basicsr.train.load_resume_state(opt)
    assert state['iter'] == 3
    exp_avg = state['optimizers'][0]['state'][0]['exp_avg']
    assert exp_avg.device == torch.device('cpu')
    assert opt['path']['pretrain_network_g'].endswith('net_g_3.pth')  # BasicSR's check_resume ran


def test_auto_resume_picks_newest_state(tmp_path):
    import basicsr.train
    states = _scheduler_state(tmp_path)
    (states / 'notes.txt').write_text('ignored')
    opt = _opt(tmp_path, auto_resume=True)
    state = basicsr.train.load_resume_state(opt)
    assert state['iter'] == 7
    assert opt['path']['resume_state'] == str(states / '7.state')


def test_auto_resume_with_nothing_saved_starts_fresh(tmp_path):
    import basicsr.train
    assert basicsr.train.load_resume_state(_opt(tmp_path, auto_resume=True)) is None


DIST_SCRIPT = r'''
import os, socket, sys
import newbp_plugin
from newbp_plugin import compat
import torch, torch.distributed as dist
from basicsr.utils import dist_util, options
from basicsr.models.base_model import BaseModel
s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
os.environ.update(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
try:
    dist_util.init_dist('pytorch')  # BasicSR's own function
    print('original: ok')
except Exception as error:
    print('original:', type(error).__name__)
options.init_dist('pytorch')  # what parse_options calls
print('backend:', dist.get_backend())
model = BaseModel.__new__(BaseModel)
model.opt, model.device = {'dist': True, 'num_gpu': 0}, torch.device('cpu')
net = model.model_to_device(torch.nn.Conv2d(1, 1, 3))
print('wrapped:', type(net).__name__, next(net.parameters()).device)
dist.destroy_process_group()
'''


@pytest.mark.skipif(torch.cuda.is_available(), reason='the crashes being fixed happen only without CUDA')
def test_distributed_fixes_on_cpu():
    result = subprocess.run([sys.executable, '-c', DIST_SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] in ('original: ZeroDivisionError', 'original: RuntimeError', 'original: AssertionError')
    assert lines[1:] == ['backend: gloo', 'wrapped: DistributedDataParallel cpu']
    assert {'dist_without_cuda', 'ddp_without_cuda'} <= set(compat.apply())
