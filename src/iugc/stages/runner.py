"""Turns a stage function into a command line (workflow/scripts/<stage>.py stay three lines).

The command line is ``SCRIPT [WILDCARD] --name PATH ... [--params params.yaml]`` where the names
are the stage function's keyword-only arguments. The runner validates params.yaml, hands the stage
only the keys it declares, records the wall time, and turns a user's mistake into one line on
stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Callable

from ..config import load_params, select
from ..errors import UserError
from .keys import param_keys

TIMINGS_DIR = Path("results") / "timings"


def run_stage(stage: str, func: Callable, wildcard: str | None = None,
              params_path: str | Path = "params.yaml", **paths) -> object:
    """Run ``func(view, [wildcard,] **paths)`` with ``view`` = the params the stage declares."""
    params = load_params(params_path)
    view = select(params, param_keys(stage, params, wildcard))
    start = time.perf_counter()
    args = (view, wildcard) if wildcard is not None else (view,)
    result = func(*args, **paths)
    seconds = time.perf_counter() - start
    name = stage if wildcard is None else f"{stage}@{wildcard}"
    TIMINGS_DIR.mkdir(parents=True, exist_ok=True)
    (TIMINGS_DIR / f"{name}.json").write_text(json.dumps({"stage": name, "seconds": round(seconds, 3)}) + "\n")
    return result


def script_main(stage: str, func: Callable, argv: list[str] | None = None) -> None:
    """Parse argv from ``func``'s signature and run the stage; exit 2 on a user error."""
    signature = inspect.signature(func)
    positional = [p for p in signature.parameters.values()
                  if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    parser = argparse.ArgumentParser(prog=f"{stage}", description=(func.__doc__ or "").splitlines()[0])
    if len(positional) > 1:  # (params, wildcard)
        parser.add_argument("wildcard")
    for p in signature.parameters.values():
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            required = p.default is inspect.Parameter.empty
            parser.add_argument(f"--{p.name.replace('_', '-')}", dest=p.name, required=required,
                                default=None if required else p.default)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--log", default=None, help="also write what the stage prints to this file")
    args = vars(parser.parse_args(argv))
    params_path, log = args.pop("params"), args.pop("log")
    wildcard = args.pop("wildcard", None)
    with _tee(log):
        try:
            run_stage(stage, func, wildcard, params_path, **args)
        except UserError as err:
            print(f"{stage}: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()

    def isatty(self):
        return False


@contextlib.contextmanager
def _tee(log: str | None):
    """Copy stdout and stderr into ``log`` (Snakemake's log file) while still printing them."""
    if not log:
        yield
        return
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, handle), _Tee(err, handle)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err
