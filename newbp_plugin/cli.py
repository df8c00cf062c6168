"""The ``basicsr`` command: BasicSR's pipelines with the plugin registered.

``basicsr train|test`` hand every flag to BasicSR's own option parser
(``-opt``, ``--launcher``, ``--auto_resume``, ``--debug``, ``--local_rank``,
``--force_yml``) and run BasicSR's ``train_pipeline`` / ``test_pipeline`` with
the current directory as root, so ``experiments/``, ``results/`` and
``tb_logger/`` are created where the command runs. The plugin's own commands:
``kernels list|show``, ``make-lmdb``, ``benchmark``, ``restore`` and ``calibrate``.

Before BasicSR acts, ``train|test`` import the YAML's ``plugins:`` and build everything the run
builds (:mod:`newbp_plugin.preflight`), so a bad option leaves ``experiments/`` as it was. A
bad option or input (:data:`newbp_plugin.preflight.USER_ERRORS`) is reported in one line,
``basicsr <command>: error: <message>``, exit status 2; ``--debug`` or ``NEWBP_TRACEBACK=1``
shows its traceback. Any other exception is a bug and shows its traceback.
"""
import argparse
import os
import sys

import yaml

from newbp_plugin.kernels.bayer import CFA_PATTERNS
from newbp_plugin.plugins import load_plugins, origin
from newbp_console import version_report
from newbp_plugin.preflight import USER_ERRORS, check_run_options, error_message

PROG = 'basicsr'
TRACEBACK_VARIABLE = 'NEWBP_TRACEBACK'  # set to 1: user errors show their traceback
# Top-level options BasicSR's parse_options and pipelines read unconditionally.
REQUIRED_OPTIONS = {
    'train': ('name', 'model_type', 'num_gpu', 'datasets', 'path', 'train', 'logger'),
    'test': ('name', 'model_type', 'num_gpu', 'datasets', 'path', 'val'),
}


class UsageError(Exception):
    """A mistake in the command line, reported as one line and exit status 2."""


def normalise_basicsr_args(args, environ=None):
    """Rewrite launcher flags into the form BasicSR 1.4.2's parser accepts.

    ``--local-rank`` (torch >= 2 launchers) becomes ``--local_rank``; when no
    local rank is given and ``LOCAL_RANK`` is set (torchrun), it is passed on.

    Args:
        args (list[str]): arguments after the subcommand.
        environ (dict | None): environment, ``os.environ`` by default.

    Returns:
        list[str]: the arguments for BasicSR.
    """
    environ = os.environ if environ is None else environ
    out = []
    for arg in args:
        if arg == '--local-rank' or arg.startswith('--local-rank='):
            arg = arg.replace('--local-rank', '--local_rank', 1)
        out.append(arg)
    has_rank = any(a == '--local_rank' or a.startswith('--local_rank=') for a in out)
    if not has_rank and environ.get('LOCAL_RANK'):
        out += ['--local_rank', environ['LOCAL_RANK']]
    return out


def read_option_file(args):
    """``(path, options)`` of the ``-opt`` file of BasicSR-style arguments, checked to exist and parse as YAML.

    Raises:
        UsageError: ``-opt`` missing, the file missing, or not a YAML mapping.
    """
    path = None
    for i, arg in enumerate(args):
        if arg in ('-opt', '--opt'):
            if i + 1 >= len(args):
                raise UsageError('-opt needs the path of an options YAML file')
            path = args[i + 1]
        elif arg.startswith(('-opt=', '--opt=')):
            path = arg.split('=', 1)[1]
    if path is None:
        raise UsageError('missing -opt OPTIONS.yml (the YAML file that describes the run)')
    if not os.path.isfile(path):
        raise UsageError(f'options file not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as error:
        where = getattr(error, 'problem_mark', None)
        line = f' (line {where.line + 1})' if where is not None else ''
        raise UsageError(f'{path}{line} is not valid YAML: {getattr(error, "problem", error)}') from None
    if not isinstance(opt, dict):
        raise UsageError(f'{path} must be a YAML mapping of options, got {type(opt).__name__}')
    return path, opt


def _yaml_plugins(opt, path):
    """Import the installed plugins and the ``plugins:`` of an options file (its folder, then the working directory)."""
    folder = os.path.dirname(os.path.abspath(path))
    load_plugins(opt.get('plugins'), list(dict.fromkeys([folder, os.getcwd()])), f'{path}: plugins:')


def _run_basicsr_pipeline(command, args):
    """Run BasicSR's train or test pipeline with ``args`` as its command line.

    Right after BasicSR's own ``parse_options`` (``--force_yml``, ``--debug`` and the launcher
    applied), and before the pipeline creates or archives any folder, the YAML's ``plugins:``
    are imported, its ``sensor:`` block is handed to the components
    (:func:`newbp_plugin.sensor_block.apply_sensor_block`) and the run's options are checked by
    building them (:func:`newbp_plugin.preflight.check_run_options`).
    """
    args = normalise_basicsr_args(args)
    if not any(a in ('-h', '--help') for a in args):
        path, opt = read_option_file(args)
        missing = [key for key in REQUIRED_OPTIONS[command] if key not in opt]
        if missing:
            raise UsageError(f"{path}: missing option '{missing[0]}' (basicsr {command} needs "
                             f"{', '.join(REQUIRED_OPTIONS[command])})")
    if command == 'train':
        import basicsr.train as module
        pipeline = module.train_pipeline
    else:
        import basicsr.test as module
        pipeline = module.test_pipeline
    parse_options = module.parse_options
    from newbp_plugin.sensor_block import apply_sensor_block  # imports BasicSR's registries: only when running

    def parse_then_check(root_path, is_train):
        opt, parsed = parse_options(root_path, is_train=is_train)
        _yaml_plugins(opt, parsed.opt)
        apply_sensor_block(opt, parsed.opt)
        check_run_options(opt, parsed.opt)
        return opt, parsed

    saved_argv = sys.argv
    sys.argv = [f'{PROG} {command}'] + args
    module.parse_options = parse_then_check
    try:
        pipeline(os.getcwd())
        _leave_process_group()
    finally:
        sys.argv = saved_argv
        module.parse_options = parse_options
    return 0


def _leave_process_group():
    """Wait for every rank, then destroy the process group a ``--launcher`` run initialised.

    BasicSR never destroys it: a rank that exits while rank 0 still validates takes gloo's threads
    down with it, and the C++ runtime aborts (SIGABRT, "terminate called without an active exception").
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _train(parsed, rest):
    return _run_basicsr_pipeline('train', rest)


def _test(parsed, rest):
    return _run_basicsr_pipeline('test', rest)


def _command_line_plugins(parsed):
    """Import the installed plugins and the ``--plugin`` modules (found from the working directory)."""
    load_plugins(parsed.plugin, [os.getcwd()], '--plugin')


def _kernels_list(parsed, rest):
    from newbp_plugin.kernels import KERNEL_REGISTRY, describe_kernels
    _command_line_plugins(parsed)
    rows = describe_kernels()
    width = max(len(name) for name, _ in rows)
    for name, summary in rows:
        source = origin(KERNEL_REGISTRY.get(name)) if name in KERNEL_REGISTRY else None
        print(f'{name:<{width}}  {summary}' + (f'  [from {source}]' if source else ''))
    return 0


def _kernels_show(parsed, rest):
    from newbp_plugin.kernels import build_kernel, describe_spec, parse_kernel_spec, render_kernel_png
    from newbp_plugin.kernels.preview import format_kernel, kernel_pattern
    _command_line_plugins(parsed)
    spec = parse_kernel_spec(parsed.spec)
    kernel = build_kernel(spec, rng=parsed.seed)
    pattern = kernel_pattern(spec)  # names the phases of a packed-raw kernel
    print(f'{describe_spec(spec)}: shape {tuple(kernel.shape)}, sum {float(kernel.sum()):.6g}')
    print(format_kernel(kernel, parsed.decimals, pattern))
    if parsed.out:
        render_kernel_png(kernel, parsed.out, pattern=pattern)
        print(f'wrote {parsed.out}')
    return 0


def _make_lmdb(parsed, rest):
    from newbp_plugin.data.lmdb_tools import make_lmdb
    count = make_lmdb(parsed.input, parsed.output, parsed.crop_size, parsed.step, parsed.thresh_size,
                      parsed.compress_level, parsed.overwrite)
    print(f'wrote {count} images to {parsed.output}')
    return 0


def _benchmark(parsed, rest):
    from newbp_plugin.benchmark.runner import Benchmark
    path, opt = read_option_file(['-opt', parsed.opt] if parsed.opt else [])
    _yaml_plugins(opt, path)
    _command_line_plugins(parsed)
    opt.pop('plugins', None)
    folder = Benchmark(opt).run(os.getcwd())
    print(f'wrote {os.path.join(folder, "benchmark")}.md, .csv, .json and .png')
    return 0


def _restore(parsed, rest):
    from newbp_plugin.inference.restore import restore
    _command_line_plugins(parsed)
    failures, total = restore(parsed.input, parsed.output, parsed.weights, arch=parsed.arch, kernel=parsed.kernel,
                              tile=parsed.tile, tile_overlap=parsed.tile_overlap, save_s=parsed.save_s,
                              device=parsed.device, param_key=parsed.param_key, noise=parsed.noise, cfa=parsed.cfa,
                              raw_bits=parsed.raw_bits, black_level=parsed.black_level,
                              white_level=parsed.white_level)
    for path, message in failures:
        print(f'{PROG} restore: failed: {path}: {message}', file=sys.stderr)
    print(f'restored {total - len(failures)} of {total} images into {parsed.output}')
    return 1 if failures else 0


def _calibrate(parsed, rest):
    from newbp_plugin.sensor.calibration import calibrate_files, describe_calibration, raw_source, write_report
    references, captures = parsed.reference or [], parsed.captured or []
    if len(references) != len(captures):
        raise UsageError(f'give one --captured per --reference (pairs in order), got {len(references)} --reference '
                         f'and {len(captures)} --captured')
    if parsed.size < 1 or parsed.size % 2 == 0:
        raise UsageError(f'--size {parsed.size}: the kernel side must be odd and >= 1 (it has a centre pixel)')
    raw = raw_source(references + captures, parsed.cfa)
    suffix = '.npz' if raw else '.npy'  # a raw kernel records its CFA pattern beside it
    if not parsed.output.endswith(suffix):
        raise UsageError(f'-o {parsed.output}: the kernel file must end in {suffix}'
                         + (' (a raw kernel: it records its CFA pattern beside it)' if raw else ''))
    if raw and (parsed.mixing or parsed.linear_light is not None):
        raise UsageError(f"{raw}: the packed raw kernel is always channel-mixing and fitted on the "
                         f"file's linear values; leave out {'--mixing' if parsed.mixing else '--[no-]linear-light'}")
    levels = {'--black-level': parsed.black_level, '--white-level': parsed.white_level}
    given = [option for option, value in levels.items() if value is not None]
    if given and not raw:
        raise UsageError(f'{given[0]}: the levels of raw mosaics, with --cfa (or DNG files)')
    if len(given) == 1:
        raise UsageError(f"{given[0]}: give both --black-level and --white-level (the codes of no light and of "
                         'saturation)')
    if given and not 0 <= parsed.black_level < parsed.white_level <= 65535:
        raise UsageError(f'--black-level {parsed.black_level} --white-level {parsed.white_level}: need 0 <= black '
                         '< white <= 65535')
    calibration, names = calibrate_files(references, captures, parsed.output, parsed.size, parsed.mixing,
                                         parsed.linear_light is not False, parsed.register, parsed.cfa,
                                         parsed.black_level, parsed.white_level)
    print(describe_calibration(calibration, names))
    where = f', with domain: raw and cfa: {calibration.pattern}, which it records' if raw else ''
    print(f'wrote {parsed.output} (kernel: {parsed.output} or {{type: file, path: {parsed.output}}}{where})')
    if parsed.report:
        print(f"wrote {', '.join(write_report(calibration, names, parsed.report))}")
    return 0


def build_parser():
    """The top-level parser; each subcommand sets ``handler`` and ``passthrough``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description='BasicSR with the newbp-plugin registered (crosstalk removal).')
    parser.add_argument('--version', action='store_true', help='print the version and exit')
    parser.add_argument('--verbose', action='store_true', help='with --version: also Python, torch, CUDA, BasicSR')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, handler, text in (
        ('train', _train, "train with BasicSR's train pipeline (-opt X.yml [--launcher ...] [--auto_resume] ...)"),
        ('test', _test, "test with BasicSR's test pipeline (-opt X.yml ...)"),
    ):
        sub = commands.add_parser(name, help=text, add_help=False)
        sub.set_defaults(handler=handler, passthrough=True)

    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument('--debug', action='store_true',
                       help=f'show the traceback of an error (or {TRACEBACK_VARIABLE}=1)')
    plugin = argparse.ArgumentParser(add_help=False, parents=[debug])
    plugin.add_argument('--plugin', action='append', metavar='MODULE_OR_FILE',
                        help='import a module (my_sensor) or a .py file that registers kernels; repeatable')

    kernels = commands.add_parser('kernels', help='list sensor kernel types, or show one kernel as a PNG')
    kernel_commands = kernels.add_subparsers(dest='kernels_command', metavar='ACTION', required=True)
    kernel_commands.add_parser('list', help='the registered kernel types', parents=[plugin]).set_defaults(
        handler=_kernels_list, passthrough=False)
    show = kernel_commands.add_parser('show', help='build a kernel from a spec, print it, draw it', parents=[plugin])
    show.add_argument('spec', help="a kernel spec in YAML, e.g. '{type: gaussian, sigma: 1.2}', or a PSF file")
    show.add_argument('--out', help='PNG file to draw the kernel into: its values, a colour bar, its centre profiles')
    show.add_argument('--decimals', type=int, default=4, choices=range(9), metavar='N',
                      help='decimals of the printed values, 0 to 8 (default: 4)')
    show.add_argument('--seed', type=int, default=0, help='seed for a random spec (default: 0)')
    show.set_defaults(handler=_kernels_show, passthrough=False)

    lmdb = commands.add_parser('make-lmdb', help="write a folder of images into a BasicSR LMDB (meta_info.txt)",
                               parents=[debug])
    lmdb.add_argument('--input', required=True, help='folder of images (PNG, JPEG, ...; 8- or 16-bit)')
    lmdb.add_argument('--output', required=True, help='LMDB folder to create, X.lmdb')
    lmdb.add_argument('--crop-size', type=int, help='cut sub-images of this side [px] (BasicSR: 480); default: whole')
    lmdb.add_argument('--step', type=int, help='sub-image stride [px] (default: crop size / 2)')
    lmdb.add_argument('--thresh-size', type=int, default=0, help='drop a leftover edge strip up to this size [px]')
    lmdb.add_argument('--compress-level', type=int, default=1, help='PNG compression 0-9 (default: 1)')
    lmdb.add_argument('--overwrite', action='store_true', help='replace an existing output LMDB')
    lmdb.set_defaults(handler=_make_lmdb, passthrough=False)

    bench = commands.add_parser('benchmark', help='compare methods (classical, zoo, plugin models) under degradations',
                                parents=[plugin])
    bench.add_argument('-opt', '--opt', help='the benchmark YAML, e.g. options/benchmark/sample.yml')
    bench.set_defaults(handler=_benchmark, passthrough=False)

    restore = commands.add_parser('restore', help='restore image files with a trained network', parents=[plugin])
    restore.add_argument('-i', '--input', required=True, help='an image (PNG, TIFF, JPEG; 8 or 16 bits) or a folder; '
                         'raw networks: a 16-bit CFA mosaic (PNG, TIFF, .npy) or a DNG (pip install newbp-plugin[raw])')
    restore.add_argument('-o', '--output', required=True, help='output file (input is a file) or folder')
    restore.add_argument('--weights', required=True, help='the checkpoint, .pth')
    restore.add_argument('--arch', help='network options: a YAML file (its network_g) or inline YAML; default: '
                         'experiments/<name>/*.yml when the weights are in experiments/<name>/models/')
    restore.add_argument('--kernel', help='sensor kernel for networks that take K (NewBP, KernelAwareNAFNet): a spec '
                         '(as basicsr kernels show) or a PSF file; '
                         "default: the network's own")
    restore.add_argument('--noise', help="the sensor's noise for kernel-aware networks, in linear light: 'estimate' "
                         "(from each image; the default) or a spec, e.g. '{type: poisson_gaussian, gain: 0.002, "
                         "read_sigma: 0.003}'")
    restore.add_argument('--tile', type=int, help='tile side [px] for large images (e.g. 512); default: whole image')
    restore.add_argument('--tile-overlap', type=int, default=32, help='pixels shared by tiles (default: 32)')
    restore.add_argument('--save-s', action='store_true', help='also write S (NewBP networks): NAME_S.png, NAME_S.npy')
    restore.add_argument('--device', choices=('cpu', 'cuda'), help='default: cuda when available')
    restore.add_argument('--param-key', default='params', help="checkpoint key of the weights (default: params)")
    restore.add_argument('--cfa', choices=CFA_PATTERNS, help="raw networks (img_channel 4): the mosaics' CFA "
                         "pattern; default: the training YAML's cfa, else RGGB; another than the training's fails")
    restore.add_argument('--raw-bits', type=int, help="raw: bits of the mosaics' codes (default: the training "
                         "YAML's raw_bits, else 16)")
    restore.add_argument('--black-level', type=int, help="raw: code of no light (default: the training YAML's, "
                         'else 64 * 2^(bits - 10))')
    restore.add_argument('--white-level', type=int, help="raw: code of saturation (default: the training YAML's, "
                         'else 2^bits - 1)')
    restore.set_defaults(handler=_restore, passthrough=False)

    calibrate = commands.add_parser('calibrate', help="fit the sensor's kernel K from pairs of a clean reference "
                                    'and its capture', parents=[debug])
    calibrate.add_argument('--reference', action='append', required=True, metavar='REF',
                           help='a clean image of the scene (PNG, TIFF: 8 or 16 bits or float; .npy; raw: also DNG); '
                           'repeat for several pairs')
    calibrate.add_argument('--captured', action='append', required=True, metavar='CAP',
                           help='the same scene as the sensor captured it, one per --reference, in order')
    calibrate.add_argument('--size', type=int, default=5,
                           help='odd side of the kernel [px; with --cfa packed px, 2x2 cells] (default: 5)')
    calibrate.add_argument('--mixing', action='store_true',
                           help='fit a channel-mixing kernel (C, C, k, k) rather than one per channel (C, k, k)')
    calibrate.add_argument('--cfa', choices=CFA_PATTERNS,
                           help='raw: the captures are single-channel mosaics of this CFA pattern (the references '
                           'too, or RGB images mosaicked on it); fits the packed (4, 4, k, k) kernel of domain: raw '
                           'in the linear file values, registered by whole 2x2 cells; default with DNG files: theirs')
    calibrate.add_argument('--black-level', type=int, help='raw: the code of no light of the captures (integer '
                           'mosaics), normalised as (code - black) / (white - black); a DNG brings its own')
    calibrate.add_argument('--white-level', type=int, help='raw: the code of saturation of the captures (with '
                           '--black-level); default without both: codes / 65535 (16 bits), as stored (floats)')
    calibrate.add_argument('--linear-light', action=argparse.BooleanOptionalAction,
                           help='the images are sRGB-encoded: fit K on linear light (default: yes; raw, --cfa: no)')
    calibrate.add_argument('--no-register', dest='register', action='store_false',
                           help='the pairs are pixel-aligned: skip the registration (keeps an asymmetric K as it is)')
    calibrate.add_argument('-o', '--output', required=True,
                           help='the kernel file to write, .npy (with --cfa: .npz, the kernel and its CFA pattern)')
    calibrate.add_argument('--report', metavar='DIR',
                           help='also write DIR/calibration.md, calibration.json and kernel.png')
    calibrate.set_defaults(handler=_calibrate, passthrough=False)
    return parser


def main(argv=None):
    """Entry point of the ``basicsr`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    parsed, rest = parser.parse_known_args(argv)
    if parsed.version:
        print(version_report(parsed.verbose))
        return 0
    if parsed.command is None:
        parser.error('a COMMAND is needed (--verbose goes with --version)')
    if rest and not parsed.passthrough:
        parser.error(f'unrecognized arguments: {" ".join(rest)}')
    try:
        return parsed.handler(parsed, rest)
    except (UsageError, ) + USER_ERRORS as error:
        wants_traceback = (getattr(parsed, 'debug', False) or '--debug' in rest
                           or os.environ.get(TRACEBACK_VARIABLE, '0') != '0')
        if wants_traceback and not isinstance(error, UsageError):
            raise
        print(f'{PROG} {parsed.command}: error: {error_message(error)}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
