"""NAFNet, NAFNetLocal, LayerNorm2d and the checkpoint loader.

Fixtures (tests/fixtures/nafnet, see its README): the official state_dict keys and shapes of
two zoo configurations, and a tiny checkpoint with its outputs, all made with the upstream code.
"""
import json
import os.path as osp

import pytest
import torch
from basicsr.archs import build_network
from torch.nn import functional as F

from newbp_plugin.archs import layer_norm
from newbp_plugin.archs.checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint_atomic
from newbp_plugin.archs.layer_norm import LayerNorm2d
from newbp_plugin.archs.nafnet_arch import LocalAvgPool2d, NAFNet, NAFNetLocal

FIXTURES = osp.join(osp.dirname(__file__), 'fixtures', 'nafnet')
TINY = dict(img_channel=3, width=4, middle_blk_num=1, enc_blk_nums=[1, 1], dec_blk_nums=[1, 1])


def tiny_net(cls=NAFNet, seed=0, **kwargs):
    """A tiny network whose parameters are all perturbed, so no block is the identity (beta = gamma = 0 at init)."""
    torch.manual_seed(seed)
    net = cls(**TINY, **kwargs)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net


def upstream_io():
    return torch.load(osp.join(FIXTURES, 'tiny_width8_io.pt'), weights_only=True)


# ---------------------------------------------------------------- shapes, gradients, dtypes


@pytest.mark.parametrize('cls, kwargs', [(NAFNet, {}), (NAFNetLocal, dict(train_size=(1, 3, 8, 8))),
                                         (NAFNetLocal, dict(train_size=(1, 3, 8, 8), fast_imp=True))])
@pytest.mark.parametrize('shape', [(1, 3, 37, 23), (3, 3, 16, 16), (2, 3, 5, 41)])
def test_output_has_input_shape(cls, kwargs, shape):
    net = tiny_net(cls, **kwargs)
    with torch.no_grad():
        assert net(torch.rand(shape)).shape == shape


def test_encoder_and_decoder_levels_must_agree():
    with pytest.raises(ValueError, match='enc_blk_nums'):
        NAFNet(width=4, enc_blk_nums=[1, 1], dec_blk_nums=[1])


@pytest.mark.parametrize('cls, kwargs', [(NAFNet, {}), (NAFNetLocal, dict(train_size=(1, 3, 8, 8)))])
def test_gradients_reach_every_parameter(cls, kwargs):
    net = tiny_net(cls, **kwargs)
    net(torch.rand(2, 3, 21, 18)).square().mean().backward()
    no_grad = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


@pytest.mark.parametrize('cls, kwargs', [(NAFNet, {}), (NAFNetLocal, dict(train_size=(1, 3, 8, 8)))])
def test_tiny_network_in_bfloat16_is_finite_and_close(cls, kwargs):
    net = tiny_net(cls, **kwargs)
    x = 300 * torch.rand(1, 3, 20, 24)  # large activations: the squared deviations exceed fp16's range
    with torch.no_grad():
        reference = net(x)
        out = net.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - reference).abs().max() <= 0.05 * reference.abs().max()


def test_nafnet_local_equals_nafnet_within_one_and_a_half_train_sizes():
    net = tiny_net()
    local = NAFNetLocal(**TINY, train_size=(1, 3, 16, 16))
    local.load_state_dict(net.state_dict())
    x = torch.rand(2, 3, 24, 21)  # padded to 24 x 24 = 1.5 x 16: every window covers its map
    with torch.no_grad():
        torch.testing.assert_close(local(x), net(x), rtol=0, atol=0)


def test_local_avg_pool_is_the_window_mean_with_replicated_borders():
    x = torch.rand(2, 3, 11, 14, dtype=torch.float64)
    pool = LocalAvgPool2d(kernel_size=(4, 5))
    expected = F.pad(F.avg_pool2d(x, (4, 5), stride=1), (2, 2, 1, 2), mode='replicate')
    torch.testing.assert_close(pool(x), expected)
    torch.testing.assert_close(LocalAvgPool2d(kernel_size=(11, 14))(x), x.mean((2, 3), keepdim=True))


# ---------------------------------------------------------------- compatibility with the upstream NAFNet


def official_configs():
    with open(osp.join(FIXTURES, 'official_keys.json')) as f:
        return json.load(f)['configs']


@pytest.mark.parametrize('cls', [NAFNet, NAFNetLocal])
@pytest.mark.parametrize('config_name', sorted(official_configs()))
def test_state_dict_keys_and_shapes_are_official(cls, config_name):
    config = official_configs()[config_name]
    with torch.device('meta'):  # shapes only: no memory, no initialisation
        net = cls(**config['kwargs'])
    shapes = {key: list(value.shape) for key, value in net.state_dict().items()}
    assert list(shapes) == list(config['shapes'])  # same keys, in the same order
    assert shapes == config['shapes']


@pytest.mark.parametrize('cls, kwargs, output_key', [
    (NAFNet, {}, 'NAFNet'),
    (NAFNetLocal, dict(fast_imp=False), 'NAFNetLocal_fast_imp=False'),
    (NAFNetLocal, dict(fast_imp=True), 'NAFNetLocal_fast_imp=True'),
])
def test_upstream_checkpoint_gives_upstream_output(cls, kwargs, output_key):
    io = upstream_io()
    if cls is NAFNetLocal:
        kwargs = dict(kwargs, train_size=io['train_size'])
        assert io['input'].shape[-1] > 1.5 * io['train_size'][-1]  # the local windows are used
    net = cls(**io['config'], **kwargs)
    loaded = load_checkpoint(net, osp.join(FIXTURES, 'tiny_width8.pth'), strict=True)
    assert loaded.param_key == 'params'
    with torch.no_grad():
        torch.testing.assert_close(net(io['input']), io[output_key], rtol=0, atol=1e-5)


def test_basicsr_builds_the_networks():
    net = build_network(dict(type='NAFNet', **TINY))
    local = build_network(dict(type='NAFNetLocal', **TINY, train_size=[1, 3, 16, 16], fast_imp=True))
    assert type(net) is NAFNet and type(local) is NAFNetLocal
    assert local.encoders[0][0].sca[0].kernel_size == (24, 24)


# ---------------------------------------------------------------- checkpoint loader


def test_checkpoint_saved_and_reloaded_gives_the_same_output(tmp_path):
    net = tiny_net(seed=0)
    save_checkpoint_atomic({'params': net.state_dict()}, tmp_path / 'net.pth')
    assert [p.name for p in tmp_path.iterdir()] == ['net.pth']  # no temporary file left
    reloaded = tiny_net(seed=1)
    load_checkpoint(reloaded, tmp_path / 'net.pth')
    x = torch.rand(1, 3, 19, 30)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), net(x), rtol=0, atol=0)


def test_atomic_save_keeps_the_previous_file_when_saving_fails(tmp_path):
    path = tmp_path / 'net.pth'
    save_checkpoint_atomic({'params': {'w': torch.ones(2)}}, path)
    with pytest.raises(Exception):
        save_checkpoint_atomic({'params': lambda: None}, path)  # a lambda cannot be pickled
    assert [p.name for p in tmp_path.iterdir()] == ['net.pth']
    assert torch.equal(torch.load(path, weights_only=True)['params']['w'], torch.ones(2))


@pytest.mark.parametrize('wrap, param_key, expected_key', [
    (lambda sd: {'params': sd}, 'params', 'params'),
    (lambda sd: {'params_ema': sd, 'params': {}}, 'params_ema', 'params_ema'),
    (lambda sd: {'params_ema': sd}, 'params', 'params_ema'),  # fallback when the preferred key is absent
    (lambda sd: {'state_dict': sd, 'epoch': 3}, 'params', 'state_dict'),
    (lambda sd: sd, 'params', None),  # bare state_dict
    (lambda sd: {'params': {'module.' + k: v for k, v in sd.items()}}, 'params', 'params'),  # DDP
    (lambda sd: {'module.' + k: v for k, v in sd.items()}, None, None),
])
def test_loader_accepts_every_wrapper(tmp_path, wrap, param_key, expected_key):
    source = tiny_net(seed=0)
    torch.save(wrap(source.state_dict()), tmp_path / 'ckpt.pth')
    target = tiny_net(seed=1)
    loaded = load_checkpoint(target, tmp_path / 'ckpt.pth', param_key=param_key)
    assert loaded.param_key == expected_key
    assert (loaded.missing_keys, loaded.unexpected_keys, loaded.mismatched_shapes) == ([], [], [])
    for (name, expected), actual in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(actual, expected), name


def test_loader_names_wrong_keys_and_the_file(tmp_path):
    state_dict = tiny_net().state_dict()
    state_dict['intro.weights'] = state_dict.pop('intro.weight')
    path = tmp_path / 'renamed.pth'
    torch.save({'params': state_dict}, path)
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint(tiny_net(), path)
    message = str(error.value)
    assert str(path) in message
    assert 'missing in the checkpoint (1):\n    intro.weight\n' in message
    assert 'unexpected in the checkpoint (1):\n    intro.weights' in message


def test_loader_names_mismatched_shapes_and_loads_the_rest_when_not_strict():
    wider = NAFNet(**dict(TINY, width=8)).state_dict()
    with pytest.raises(CheckpointMismatchError, match=r'intro\.weight: checkpoint \(8, 3, 3, 3\) vs network '
                                                      r'\(4, 3, 3, 3\)'):
        load_checkpoint(tiny_net(), {'params': wider})

    state_dict = tiny_net(seed=0).state_dict()
    state_dict['ending.bias'] = torch.zeros(5)
    target = tiny_net(seed=1)
    kept_bias = target.ending.bias.detach().clone()
    loaded = load_checkpoint(target, {'params': state_dict}, strict=False)
    assert loaded.mismatched_shapes == ['ending.bias: checkpoint (5,) vs network (3,)']
    assert torch.equal(target.ending.bias, kept_bias)
    assert torch.equal(target.intro.weight, state_dict['intro.weight'])


def test_loader_rejects_a_checkpoint_without_state_dict():
    with pytest.raises(ValueError, match=r"top-level keys: \['net', 'iter'\]"):
        load_checkpoint(tiny_net(), {'net': {'a': 1}, 'iter': 5})


# ---------------------------------------------------------------- LayerNorm2d


def test_layer_norm_is_channel_layer_norm_with_upstream_names():
    norm = LayerNorm2d(6)
    assert [name for name, _ in norm.named_parameters()] == ['weight', 'bias'] and norm.eps == 1e-6
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 6, 5, 7)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (6, ), norm.weight, norm.bias, eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected)
    assert torch.autograd.gradcheck(norm.double(), torch.randn(1, 6, 3, 4, dtype=torch.float64, requires_grad=True))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_layer_norm_is_finite_in_half_precision_where_a_naive_one_overflows(dtype):
    norm = LayerNorm2d(16)
    x = 300 * torch.randn(2, 16, 8, 8)
    if dtype is torch.float16:  # NAFNet's formula evaluated in fp16: the variance overflows
        x16 = x.half()
        naive_var = (x16 - x16.mean(1, keepdim=True)).pow(2).mean(1, keepdim=True)
        assert torch.isinf(naive_var).any()
    with torch.no_grad():
        out = norm.to(dtype)(x.to(dtype))
        reference = norm.float()(x)
    assert out.dtype == dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, rtol=0, atol=2e-2)


def test_layer_norm_uses_plain_ops_and_traces():
    classes = [obj for obj in vars(layer_norm).values() if isinstance(obj, type)]
    assert not any(issubclass(cls, torch.autograd.Function) for cls in classes)
    for module, x in ((LayerNorm2d(4), torch.randn(1, 4, 6, 6)), (tiny_net().eval(), torch.rand(1, 3, 8, 8))):
        traced = torch.jit.trace(module, x)
        # a custom autograd.Function shows in a trace as an opaque prim::PythonOp, which ONNX cannot export
        assert 'prim::PythonOp' not in {node.kind() for node in traced.inlined_graph.nodes()}
        with torch.no_grad():
            torch.testing.assert_close(traced(x), module(x))
