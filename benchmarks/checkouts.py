"""Measure a benchmark on this library or on another checkout's, one label at a time, and keep every label.

The benchmarks that compare the library across commits (``mpc_step.py``, ``pixel_rollout_memory.py``) share
this: ``--library PATH`` measures the ``torchrl_gbp`` of another checkout in a child process with that checkout
first on ``PYTHONPATH``, the figures are saved under ``--label`` in one raw file, ``raw/<name>.json``, and its
page is rendered from that file (``regenerate.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def labelled_main(parser: argparse.ArgumentParser, script: str, measure: Callable[[argparse.Namespace], dict],
                  report_text: Callable[[dict], str], name: str) -> None:
    """Parse ``parser`` (plus ``--library``), measure in a child process, save under the label, render the page."""
    parser.add_argument("--library", help="a checkout whose torchrl_gbp to measure (default: the installed one)")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)  # the child: print JSON
    args = parser.parse_args()
    if args.measure_only:
        print(json.dumps(measure(args)))
        return
    from regenerate import RAW, save_raw, update  # not in the child: it may run another checkout's library

    saved = RAW / f"{name}.json"
    raw = json.loads(saved.read_text()) if saved.exists() else {}
    passed = sys.argv[1:]
    if args.library:
        at = passed.index("--library") if "--library" in passed else None
        passed = passed[:at] + passed[at + 2:] if at is not None else [a for a in passed
                                                                        if not a.startswith("--library=")]
    env = dict(os.environ)
    if args.library:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(args.library).resolve()), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, script, "--measure-only", *passed], env=env, check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["library"] = args.library or "installed"
    raw[args.label] = result
    save_raw(name, raw)
    print(report_text(raw))
    print("rewritten:", *update())
