"""NewBPModel: BasicSR's SRModel, aware of the sensor kernel and of the pre-compensated map S."""
import os
import os.path as osp
import time
from collections import OrderedDict

import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY

from newbp_plugin.archs.checkpoint import load_checkpoint, save_checkpoint_atomic
from newbp_plugin.archs.forward_arguments import forward_takes, sensor_arguments
from newbp_plugin.losses.physics_loss import NOISE_SIGMA
from newbp_plugin.data.crosstalk_dataset import degrade_batch
from newbp_plugin.ops.tiling import tiled_forward
from newbp_plugin.options import Option, is_bool, is_int, one_of, optional, parse_options
from newbp_plugin.pictures import s_kind, s_to_image
from newbp_plugin.registration import register
from newbp_plugin.sensor.degradation import batch_optics, noise_variance
from newbp_plugin.sensor.mosaic import unpack
from newbp_plugin.sensor.unprocess import Cameras, process

# Options this model reads, beside BasicSR's own (see README, "Options").
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
BASICSR_TRAIN_OPTIONS = ('optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'ema_decay', 'pixel_opt',
                         'perceptual_opt')
TRAIN_OPTIONS = {  # the plugin's train options (beside BasicSR's)
    'redegradation_opt': Option(None),
    'precompensation_opt': Option(None),
    'max_bad_steps': Option(10, lambda value: is_int(value, 1), 'a positive integer'),
    'grad_clip_norm': Option(None, lambda value: value is None or (isinstance(value, (int, float)) and value > 0),
                             'null or a positive number'),
    'amp': Option(None, one_of((None, ) + tuple(AMP_DTYPES)), f"{', '.join(AMP_DTYPES)} or absent"),
}
BASICSR_VAL_OPTIONS = ('val_freq', 'save_img', 'metrics', 'pbar', 'suffix')
VAL_OPTIONS = {  # the plugin's val options (beside BasicSR's)
    'tile': Option(None, optional(lambda value: is_int(value, 1)), 'null or a positive integer'),
    'tile_overlap': Option(32, lambda value: is_int(value, 0), 'an integer >= 0'),
    'save_s': Option(True, is_bool, 'true or false'),
}


def parse_model_options(opt):
    """The plugin's ``train`` options of a run (defaults filled in), ``train`` and ``val`` checked.

    Raises:
        ValueError: an unknown key (with the closest valid one) or a bad value, named as ``train:key``.
    """
    parse_options(opt.get('val'), VAL_OPTIONS, 'NewBPModel', 'val:', BASICSR_VAL_OPTIONS)
    return parse_options(opt.get('train'), TRAIN_OPTIONS, 'NewBPModel', 'train:', BASICSR_TRAIN_OPTIONS)


@register(MODEL_REGISTRY)
class NewBPModel(SRModel):
    """SRModel for crosstalk removal: ``Ŷ, S = net_g(X, kernel)``, physics losses, safe checkpoints.

    Beyond SRModel it:

    * degrades the clean batch of CrosstalkDataset on the model's device
      (:func:`newbp_plugin.data.crosstalk_dataset.degrade_batch`, as Real-ESRGAN's ``feed_data``), and
      fails at the first batch when the network or the re-degradation loss work in another light
      than the data;
    * passes the per-sample kernel of the batch (``data['kernel']``) to networks
      whose ``forward`` takes ``kernel`` (the NewBP head), the noise parameters drawn for each
      sample (``gain``, ``read_sigma``) to those that take ``noise``, and asks for S when the
      network's ``forward`` takes ``return_s``;
    * adds ``train.redegradation_opt`` (on Ŷ, the input and the kernel) and
      ``train.precompensation_opt`` (on S) to BasicSR's ``pixel_opt``;
    * skips a step whose loss is NaN/inf, logs it, and stops with a clear message
      after ``train.max_bad_steps`` consecutive bad steps (default 10);
    * optional ``train.grad_clip_norm`` and ``train.amp: bf16 | fp16`` (CUDA);
    * validates tile by tile when ``val.tile`` is set (``val.tile_overlap``,
      default 32), and saves beside Ŷ a viewable S (``val.save_s``, default True) and,
      once per image, the degraded input and the ground truth (``<img>_lq.png``, ``<img>_gt.png``);
    * validates packed raw (CrosstalkDataset ``domain: raw``) on its mosaic (the metrics see all
      four phases) and saves its pictures processed to sRGB with each sample's camera;
    * writes checkpoints and training states atomically and loads them with
      ``weights_only=True``.
    """

    def __init__(self, opt):
        self.train_options = parse_model_options(opt)
        self.kernel, self.noise, self.lq_path, self.s = None, None, None, None
        self.sensor_draws = None  # the batch's degradation draws (CrosstalkDataset), for the noise level
        self.raw_view = None  # (cameras, cfa) of a packed raw batch, to view it
        self.input_metrics = {}  # dataset name -> {metric: value of the degraded input itself}
        self.input_sums = None  # accumulated while the first validation of a dataset runs
        super().__init__(opt)

    @property
    def net_returns_s(self):
        """Whether ``net_g.forward`` can return ``(Ŷ, S)`` (``return_s``)."""
        return forward_takes(self.get_bare_model(self.net_g), 'return_s')

    # ----------------------------------------------------------------- training
    def init_training_settings(self):
        train_opt = self.opt['train']
        super().init_training_settings()
        self.cri_redegradation = self._build_optional_loss(train_opt.get('redegradation_opt'))
        self.cri_precompensation = self._build_optional_loss(train_opt.get('precompensation_opt'))
        if self.cri_precompensation is not None and not self.net_returns_s:
            raise ValueError("option 'train:precompensation_opt' needs a network with a NewBP head "
                             f'(its forward takes return_s); {type(self.get_bare_model(self.net_g)).__name__} has none')
        self.max_bad_steps = self.train_options['max_bad_steps']
        self.grad_clip_norm = self.train_options['grad_clip_norm']
        amp = self.train_options['amp']
        self.amp_dtype = AMP_DTYPES[amp] if amp and self.device.type == 'cuda' else None
        if amp and self.amp_dtype is None:
            get_root_logger().warning(f"train:amp={amp} needs CUDA; training in float32 on {self.device}.")
        self.grad_scaler = torch.amp.GradScaler('cuda') if self.amp_dtype == torch.float16 else None
        self.bad_steps = 0
        self.built_at, self.first_batch_at = time.time(), None  # the times of iteration 1's log line

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        """Any ``torch.optim`` optimizer by class name (BasicSR 1.4.2 knows only Adam): Adam, AdamW, SGD, ..."""
        optimizer = getattr(torch.optim, optim_type, None)
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise ValueError(f"option 'train:optim_g:type': unknown optimizer {optim_type!r}; use a torch.optim class "
                             'name such as Adam, AdamW or SGD')
        return optimizer(params, lr, **kwargs)

    def _build_optional_loss(self, loss_opt):
        return build_loss(loss_opt).to(self.device) if loss_opt else None

    def feed_data(self, data):
        self.kernel = data['kernel'].to(self.device) if 'kernel' in data else None
        self.noise, self.raw_view, self.sensor_draws = None, None, None
        if 'scene' in data:  # CrosstalkDataset: clean scenes and the draws of their degradation
            self.sensor_draws = data['sensor']
            self.noise = {key: data['sensor'][key].to(self.device) for key in ('gain', 'read_sigma')}
            if 'cfa' in data['sensor']:
                self.raw_view = Cameras.from_draws(data['sensor']), data['sensor']['cfa'][0]
            self._check_light(data['sensor'])
            with torch.no_grad():
                data = dict(data, lq=degrade_batch(data, self.device))
        super().feed_data(data)
        self.lq_path = data.get('lq_path')

    def _check_light(self, draws):
        """Raise ValueError when the network or the re-degradation loss apply K in another light than the data."""
        data_light = batch_optics(draws).linear_light
        net = self.get_bare_model(self.net_g)
        holders = [('train:redegradation_opt', getattr(getattr(self, 'cri_redegradation', None), 'optics', None))]
        if getattr(net, 'head', True) is not None:  # networks that apply K (NewBPNAFNet: unless head none)
            holders.append((f'network_g ({type(net).__name__})', getattr(net, 'optics', None)))
        for owner, optics in holders:
            if optics is not None and optics.linear_light != data_light:
                raise ValueError(f'{owner} applies K with linear_light: {str(optics.linear_light).lower()}, but the '
                                 f'dataset degrades with linear_light: {str(data_light).lower()}; set the same '
                                 'value in both')

    def _run(self, net, x):
        """``(Ŷ, S or None)`` of ``net`` on ``x``, given the batch's kernel and noise draws where it takes them."""
        kwargs = sensor_arguments(self.get_bare_model(self.net_g), self.kernel, self.noise)
        if self.net_returns_s:
            return net(x, return_s=True, **kwargs)
        return net(x, **kwargs), None

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        if current_iter == 1:  # BasicSR's loop calls it when a batch has arrived
            self.first_batch_at = time.time()
        super().update_learning_rate(current_iter, warmup_iter)

    def optimize_parameters(self, current_iter):
        self._step(current_iter)
        driven_by_basicsr = self.first_batch_at is not None  # its train loop, which logs every print_freq
        if current_iter == 1 and driven_by_basicsr and self.opt['logger']['print_freq'] > 1:
            self._log_first_iteration()

    @master_only
    def _log_first_iteration(self):
        """BasicSR's line for iteration 1, with its time and an ETA from it, long before ``print_freq``.

        As BasicSR's timers do, the time runs from the start of training (here: the model built) and
        the data time until the first batch arrived.
        """
        from basicsr.utils import MessageLogger
        message_logger = MessageLogger(dict(self.opt, logger=dict(self.opt['logger'], use_tb_logger=False)))
        message_logger.start_time = self.built_at
        message_logger({'epoch': 0, 'iter': 1, 'lrs': self.get_current_learning_rate(),
                        'time': time.time() - self.built_at, 'data_time': self.first_batch_at - self.built_at,
                        **self.get_current_log()})

    def _step(self, current_iter):
        """One optimisation step: forward, losses (a non-finite total skips the step), backward, update, EMA."""
        self.optimizer_g.zero_grad()
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            self.output, self.s = self._run(self.net_g, self.lq)
        self.output, s = self.output.float(), None if self.s is None else self.s.float()

        loss_dict = OrderedDict()
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            for name, value in (('l_percep', l_percep), ('l_style', l_style)):
                if value is not None:
                    loss_dict[name] = value
        if self.cri_redegradation:
            if self.kernel is None:
                raise ValueError("option 'train:redegradation_opt' needs the kernel in the batch "
                                 '(a dataset that returns "kernel", such as CrosstalkDataset)')
            sigma = None
            if self.cri_redegradation.sigma == NOISE_SIGMA and self.sensor_draws is not None:
                draws = {key: value.to(self.device) if torch.is_tensor(value) else value
                         for key, value in self.sensor_draws.items()}  # only this loss needs them on the device
                sigma = noise_variance(draws, self.lq).sqrt()
            loss_dict['l_redeg'] = self.cri_redegradation(self.output, self.lq, self.kernel, sigma)
        if self.cri_precompensation:
            loss_dict['l_s'] = self.cri_precompensation(s)
        l_total = sum(loss_dict.values())

        if not self._loss_is_finite(l_total, current_iter):
            self.log_dict = self.reduce_loss_dict(OrderedDict((k, v.detach()) for k, v in loss_dict.items()))
            return
        if self.grad_scaler is not None:
            self.grad_scaler.scale(l_total).backward()
            self.grad_scaler.unscale_(self.optimizer_g)
        else:
            l_total.backward()
        if self.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.grad_clip_norm)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer_g)
            self.grad_scaler.update()
        else:
            self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _loss_is_finite(self, l_total, current_iter):
        """True for a finite loss; else count the bad step, log it, and stop after too many in a row."""
        finite = torch.isfinite(l_total.detach()).to(torch.int32)
        if self.opt['dist']:  # every rank skips the same steps, or DDP's all-reduce would hang
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if bool(finite):
            self.bad_steps = 0
            return True
        self.bad_steps += 1
        get_root_logger().warning(f'iter {current_iter}: non-finite loss ({l_total.item()}), step skipped '
                                  f'({self.bad_steps} in a row, limit train:max_bad_steps={self.max_bad_steps}).')
        if self.bad_steps >= self.max_bad_steps:
            raise RuntimeError(f'Training stopped at iter {current_iter}: {self.bad_steps} consecutive non-finite '
                               'losses. Lower the learning rate, set train:grad_clip_norm, or check the data; '
                               'resume from the last checkpoint with --auto_resume.')
        self.optimizer_g.zero_grad()
        return False

    # --------------------------------------------------------------- inference
    def test(self):
        # the bare network: rank 0 validates alone, and a DDP wrapper's forward would wait for the other ranks
        net = self.get_bare_model(self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g)
        was_training = net.training
        net.eval()
        val_opt = self.opt.get('val') or {}

        def infer(x):
            y, s = self._run(net, x)
            return y if s is None else (y, s)

        with torch.no_grad():
            if val_opt.get('tile'):
                out = tiled_forward(infer, self.lq, val_opt['tile'], val_opt.get('tile_overlap',
                                                                                 VAL_OPTIONS['tile_overlap'].default))
            else:
                out = infer(self.lq)
        self.output, self.s = out if isinstance(out, tuple) else (out, None)
        if was_training:
            net.train()
        if self.input_sums is not None and hasattr(self, 'gt'):
            self._accumulate_input_metrics()
        if val_opt.get('save_img'):
            self._save_visuals(self.s is not None and val_opt.get('save_s', VAL_OPTIONS['save_s'].default))

    @master_only
    def _save_visuals(self, save_s):
        """Write, where SRModel's validation writes Ŷ: S with the suffix ``_S`` (when ``save_s``) and, once
        per image, the degraded input and the ground truth, ``<img>_lq.png`` and ``<img>_gt.png``."""
        if not self.lq_path:
            return
        img_name = osp.splitext(osp.basename(self.lq_path[0]))[0]
        if self.opt['is_train']:
            folder, stem = osp.join(self.opt['path']['visualization'], img_name), f'{img_name}_{self.current_iter}'
        else:
            dataset = self.val_dataset_name
            suffix = self.opt['val'].get('suffix') or self.opt['name']
            folder, stem = osp.join(self.opt['path']['visualization'], dataset), f'{img_name}_{suffix}'
        if save_s:
            kind = s_kind(self.get_bare_model(self.net_g))
            imwrite(s_to_image(self.s[0], kind), osp.join(folder, f'{stem}_S.png'))
        if self.raw_view is not None:  # Ŷ: BasicSR would save the mosaic its metrics see (nondist_validation)
            imwrite(self._picture(self.output), osp.join(folder, f'{stem}.png'))
        for name in ('lq', 'gt'):
            path = osp.join(folder, f'{img_name}_{name}.png')
            if hasattr(self, name) and not osp.exists(path):
                imwrite(self._picture(getattr(self, name)), path)

    def _picture(self, images):
        """The first of (B, C, H, W) images as an 8-bit BGR picture; packed raw processed to sRGB by its camera."""
        images = images.detach().cpu()
        if self.raw_view is not None:
            cameras, cfa = self.raw_view
            images = process(unpack(images.double().clamp(0, 1)), cameras, cfa)
        return tensor2img([images[0:1]])

    def _metric_view(self, images):
        """(B, C, H, W) images as the metrics see them: packed raw as its (B, 1, 2H, 2W) mosaic (BasicSR's
        tensor2img takes 1 or 3 channels, and would drop a fourth)."""
        return images if self.raw_view is None else unpack(images)

    def _accumulate_input_metrics(self):
        """Add the metrics of the degraded input (lq against gt) of this image to ``input_sums``."""
        data = {'img': tensor2img([self._metric_view(self.lq.detach().cpu())]),
                'img2': tensor2img([self._metric_view(self.gt.detach().cpu())])}
        for name, metric_opt in self.opt['val']['metrics'].items():
            self.input_sums[name] = self.input_sums.get(name, 0) + calculate_metric(data, metric_opt)
        self.input_sums['#images'] = self.input_sums.get('#images', 0) + 1

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """SRModel's validation of Ŷ, plus the same metrics of the degraded input, logged beside."""
        self.current_iter, self.val_dataset_name = current_iter, dataloader.dataset.opt['name']
        measure_input = self.opt['val'].get('metrics') and self.val_dataset_name not in self.input_metrics
        self.input_sums = {} if measure_input else None
        is_raw = getattr(dataloader.dataset, 'is_raw', False)
        if is_raw and measure_input:
            get_root_logger().info(f'Validation {self.val_dataset_name} is packed raw: metrics on its mosaic (linear, '
                                   "every phase), pictures processed to sRGB with each image's camera.")
        super().nondist_validation(dataloader, current_iter, tb_logger, save_img and not is_raw)  # raw: _save_visuals
        if self.input_sums:
            count = self.input_sums.pop('#images')
            self.input_metrics[self.val_dataset_name] = {k: v / count for k, v in self.input_sums.items()}
        self.input_sums = None
        if self.val_dataset_name in self.input_metrics:
            values = self.input_metrics[self.val_dataset_name]
            get_root_logger().info(f'Degraded input {self.val_dataset_name} (no restoration)\n' +
                                   ''.join(f'\t # {k}: {v:.4f}\n' for k, v in values.items()))
            if tb_logger:
                for k, v in values.items():
                    tb_logger.add_scalar(f'metrics/{self.val_dataset_name}/input_{k}', v, current_iter)

    def get_current_visuals(self):
        visuals = {key: self._metric_view(value) for key, value in super().get_current_visuals().items()}
        if self.s is not None:
            visuals['s'] = self.s.detach().cpu()
        return visuals

    # ------------------------------------------------------------- checkpoints
    def load_network(self, net, load_path, strict=True, param_key='params'):
        """BasicSR's load_network through the plugin's loader (``weights_only=True``, wrappers, ``module.``)."""
        report = load_checkpoint(self.get_bare_model(net), load_path, param_key=param_key, strict=strict)
        get_root_logger().info(f'Loaded {type(self.get_bare_model(net)).__name__} from {load_path} '
                               f'[{report.param_key or "bare state_dict"}].')

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """BasicSR's save_network, written atomically (temporary file, then rename)."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys')
        save_dict = {}
        for net_, key in zip(nets, keys):
            state = self.get_bare_model(net_).state_dict()
            save_dict[key] = OrderedDict((k[7:] if k.startswith('module.') else k, v.cpu()) for k, v in state.items())
        name = f'{net_label}_{"latest" if current_iter == -1 else current_iter}.pth'
        save_checkpoint_atomic(save_dict, osp.join(self.opt['path']['models'], name))

    @master_only
    def save_training_state(self, epoch, current_iter):
        """BasicSR's save_training_state, written atomically (temporary file, then rename)."""
        if current_iter == -1:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
        }
        if self.grad_scaler is not None:
            state['grad_scaler'] = self.grad_scaler.state_dict()
        os.makedirs(self.opt['path']['training_states'], exist_ok=True)
        save_checkpoint_atomic(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        if self.grad_scaler is not None and 'grad_scaler' in resume_state:
            self.grad_scaler.load_state_dict(resume_state['grad_scaler'])
