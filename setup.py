#!/usr/bin/env python
"""Install newbp-plugin: ``pip install -e .`` (users) or ``pip install -r requirements-dev.txt`` (development, CI)."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    """The single source of the version: ``newbp_plugin/version.py``."""
    scope = {}
    with open(osp.join(HERE, 'newbp_plugin', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_readme():
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


setup(
    name='newbp-plugin',
    version=read_version(),
    description='BasicSR plugin for sensor-crosstalk removal: NewBP head, Converse2D, NAFNet, on-the-fly degradations',
    long_description=read_readme(),
    long_description_content_type='text/markdown',
    author='newbp-plugin maintainers',
    license='Apache-2.0',
    keywords='basicsr, image restoration, deconvolution, sensor crosstalk, nafnet, pytorch',
    python_requires='>=3.9',
    packages=find_packages(include=['newbp_plugin', 'newbp_plugin.*']),
    py_modules=['newbp_console'],  # the console script, importable without torch and BasicSR
    include_package_data=True,
    install_requires=[
        'basicsr>=1.4.2',
        'torch>=2.0',
        'torchvision>=0.15',
        'numpy>=1.23',
        'scipy>=1.8',
        'opencv-python>=4.5',
        'lmdb>=1.0',
        'pyyaml>=5.4',
        'tqdm>=4.60',
    ],
    extras_require={
        'raw': ['rawpy>=0.18', 'tifffile>=2021.1'],  # DNG: read through LibRaw, written as TIFF/EP
        'test': ['pytest>=7', 'rawpy>=0.18', 'tifffile>=2021.1'],  # CI tests the raw extra too
    },
    entry_points={
        'console_scripts': ['basicsr = newbp_console:main'],
    },
    classifiers=[
        'License :: OSI Approved :: Apache Software License',
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Image Processing',
    ],
)
