"""Shared by the benchmark scripts: where and how the figures are saved."""
import json
import os
import os.path as osp

def save_json(report, path):
    """Write ``report`` as indented JSON to ``path`` (folders created) and say where."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=2)
    print(f'saved {path}')
