"""Command-line interface: `iugc <command>` or `python -m iugc <command>`.

User mistakes (a bad file, row or parameter) end with one line on stderr and exit status 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UserError


def _own_variants(path: Path, preset: dict) -> dict:
    """The variants of an existing params file that its preset does not define (a user's own)."""
    import yaml

    try:
        existing = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return {}
    variants = existing.get("variants") if isinstance(existing, dict) else None
    if not isinstance(variants, dict):
        return {}
    return {name: value for name, value in variants.items() if name not in preset["variants"]}


def _cmd_params(args) -> int:
    from .config import (dump_params, fill_from_preset, load_preset, preset_differences_markdown, read_params,
                         set_values, validate_params)

    if args.diff:
        sys.stdout.write(preset_differences_markdown())
        return 0
    out = Path(args.out)
    unsourced = args.start is None and args.preset is None
    kept: dict = {}
    if args.start is not None:
        start = read_params(args.start)
        added = fill_from_preset(start)
        validate_params(start, args.start)
        origin = f"preset '{start['preset']}' via {args.start}"
        if added:
            print(f"added {', '.join(added)} from preset '{start['preset']}' (new in this version of iugc, "
                  f"not yet in {args.start})", file=sys.stderr)
    else:
        name = args.preset or "quick"
        start, origin = load_preset(name), f"preset '{name}'"
        kept = _own_variants(out, start) if args.out != "-" and not unsourced else {}
        start["variants"].update(kept)
    params = set_values(start, args.set or [])
    validate_params(params, "resolved parameters")
    if unsourced and args.out != "-" and out.exists() and not args.force:
        raise UserError(f"{out} exists; say what to write it from (--preset paper|quick|smoke, or "
                        f"--from {out} to change a value of it), or add --force to overwrite it with preset quick")
    text = (f"# Resolved from {origin} by `iugc params`; edit freely, the schema checks it.\n"
            + dump_params(params))
    if args.out == "-":
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"wrote {args.out} ({origin})", file=sys.stderr)
        if kept:
            print(f"kept your variant(s) {', '.join(kept)} from {out} (not in the preset; "
                  "delete them there to drop them)", file=sys.stderr)
    return 0


def _cmd_validate(args) -> int:
    from .data.validate import validate_dataset

    report = validate_dataset(args.path)
    if report.problems:
        for line in report.problems:
            print(line, file=sys.stderr)
        print(f"{args.path}: {len(report.problems)} problem(s) found", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _cmd_phantom(args) -> int:
    from .config import load_preset
    from .data.phantom import make_phantom

    defaults = load_preset("paper")["phantom"]
    dst = Path(args.dst)
    if dst.is_dir() and any(dst.iterdir()) and not args.force:
        raise UserError(f"{dst}: exists and is not empty; add --force to replace a phantom written there before")
    out = make_phantom(
        args.dst,
        n_labeled=args.n,
        n_unlabeled=defaults["n_unlabeled"] if args.unlabeled is None else args.unlabeled,
        seed=args.seed,
        size=args.size or defaults["size"],
        standard_plane_fraction=defaults["standard_plane_fraction"],
        frames_per_acquisition=defaults["frames_per_acquisition"],
    )
    print(f"wrote phantom dataset to {out}")
    return 0


def _cmd_convert_psfhs(args) -> int:
    from .data.psfhs import convert_psfhs

    report = convert_psfhs(args.src, args.dst)
    for frame_id, reason in report.skipped:
        print(f"skipped {frame_id}: {reason}", file=sys.stderr)
    print(f"wrote {report.n_written} frames to {args.dst} ({len(report.skipped)} skipped)")
    return 0


def _cmd_model_summary(args) -> int:
    from .config import load_preset
    from .errors import UserError
    from .models.summary import format_summary, model_summary
    from .stages.views import landmark_spec

    params = load_preset(args.preset)
    if args.variant is None:
        print(f"the variants of preset '{args.preset}' (iugc model-summary VARIANT):")
        for name, v in params["variants"].items():
            print(f"  {name:<22} encoder {v['encoder']}, pretraining {v['pretrain']}, "
                  f"attention {'yes' if v['attention'] else 'no'}, adversarial {'yes' if v['adversarial'] else 'no'}, "
                  f"output {v['output']}" + (" (reference, not a paper variant)" if v.get("reference") else ""))
        return 0
    if args.variant not in params["variants"]:
        raise UserError(f"no variant {args.variant!r}; choose one of {', '.join(params['variants'])}")
    summary = model_summary(args.variant, landmark_spec(params, args.variant),
                            adversarial=params["variants"][args.variant]["adversarial"],
                            discriminator_channels=params["model"]["discriminator_channels"],
                            leaky_relu_slope=params["model"]["leaky_relu_slope"], size=args.size)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _cmd_dvc_yaml(args) -> int:
    from .workflow import write_dvc_yaml

    changed = write_dvc_yaml(Path(args.out), check=args.check)
    if args.check and changed:
        print(f"{args.out} is out of date with the Snakefile; run `iugc dvc-yaml`", file=sys.stderr)
        return 1
    return 0


def _cmd_predict(args) -> int:
    from .predict import Flag, run

    flag = None
    if args.flag_above is not None or args.flag_above_mm is not None:
        flag = Flag(args.flag_above, False) if args.flag_above is not None else Flag(args.flag_above_mm, True)
    failed = run(args.model, args.paths, args.out, device=args.device, batch_size=args.batch_size,
                 pixel_spacing_mm=args.pixel_spacing, calibration=args.calibration, flag=flag,
                 log=lambda line: print(line, file=sys.stderr))
    return 1 if failed else 0


def _cmd_export(args) -> int:
    from .export import export

    print(f"wrote {export(args.model, args.format, args.out)}", file=sys.stderr)
    return 0


def _cmd_export_submission(args) -> int:
    from .export import export_submission

    dst = Path(args.dst)
    zipped = dst.with_name(dst.name + ".zip")
    if (dst.exists() or zipped.exists()) and not args.force:
        there = dst if dst.exists() else zipped
        raise UserError(f"{there} exists; add --force to replace {dst}/ and {zipped.name}")
    archive = export_submission(args.model, args.dst, calibration=args.calibration)
    print(f"wrote {args.dst}/ and {archive}", file=sys.stderr)
    return 0


def _cmd_plan_study(args) -> int:
    import pandas as pd

    from .report.analysis import plan_from_claims
    from .report.tables import render_plan

    path = Path(args.claims)
    if not path.is_file():
        raise UserError(f"{path}: no claims table here; run the study first (its ablation stage writes it)")
    claims = pd.read_csv(path)
    if claims.empty or "seed_var" not in claims:
        raise UserError(f"{path}: holds no claims with variance components (a study of this version writes them)")
    print(render_plan(plan_from_claims(claims, args.seeds, args.power), args.power), end="")
    return 0


def _cmd_stage(args) -> int:
    from .stages.runner import main as run_stage

    return run_stage(args.stage_args)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, where it has one worth showing."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.option_strings and "%(default)" not in text and action.default not in (None, False)
                and action.default is not argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


MODEL_HELP = ("a model folder holding model.pt (reports/model, or a run's results/finetune/<variant>/seed<s>) "
              "or that model.pt; not the exported .ts/.onnx files")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="iugc", description=__doc__.splitlines()[0], formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"iugc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help_text, **kwargs):
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=_HelpFormatter, **kwargs)

    p = command("params", "write params.yaml from a preset (or an existing file)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--preset", default=None, choices=("paper", "quick", "smoke"),
                       help="start from this preset (quick when neither --preset nor --from is given); "
                            "variants of your own in --out are kept")
    start.add_argument("--from", dest="start", default=None, metavar="FILE",
                       help="start from this params file instead of a preset (e.g. params.yaml)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one value (dotted key); repeatable")
    p.add_argument("--out", default="params.yaml", help="file to write, '-' for stdout")
    p.add_argument("--force", action="store_true",
                   help="without --preset or --from, overwrite an existing --out with preset quick")
    p.add_argument("--diff", action="store_true",
                   help="print, as a Markdown table, every key where quick and smoke differ from paper, and exit")
    p.set_defaults(func=_cmd_params)

    p = command("validate-data", "check a dataset and print its summary")
    p.add_argument("path", metavar="PATH", help="the dataset's folder (IUGC 2025 layout: the one holding Training/)")
    p.set_defaults(func=_cmd_validate)

    p = command("phantom", "write the built-in phantom dataset (IUGC 2025 layout)")
    p.add_argument("dst", metavar="DST", help="folder to write (new, empty, or a phantom written before, with --force)")
    p.add_argument("--n", type=int, default=300, help="labelled frames")
    p.add_argument("--unlabeled", type=int, default=None, help="unlabeled frames (default: the paper preset's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same frames)")
    p.add_argument("--size", type=int, default=None, help="frame side in pixels (default: the paper preset's)")
    p.add_argument("--force", action="store_true", help="replace the phantom already in DST")
    p.set_defaults(func=_cmd_phantom)

    p = command("convert-psfhs", "convert the PSFHS release to the IUGC 2025 layout")
    p.add_argument("src", metavar="SRC", help="folder holding image_mha/ and label_mha/")
    p.add_argument("dst", metavar="DST", help="new or empty folder to write the converted tree to")
    p.set_defaults(func=_cmd_convert_psfhs)

    p = command("model-summary", "layer shapes and parameter counts of a variant (without one: the variants)")
    p.add_argument("variant", metavar="VARIANT", nargs="?", default=None,
                   help="a variant of the preset, e.g. v2_moco_cbam_adv; leave out to list them")
    p.add_argument("--preset", default="paper", choices=("paper", "quick", "smoke"), help="the preset whose sizes to use")
    p.add_argument("--size", type=int, default=None, help="input side (default: the preset's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_model_summary)

    p = command("predict", "landmarks, AoP and confidence of new frames with a trained model")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("paths", nargs="+", metavar="PATH", help="frames or folders (searched recursively)")
    p.add_argument("--out", required=True, help="folder for predictions.csv and overlays/")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when present")
    p.add_argument("--batch-size", type=int, default=16, help="frames per forward pass")
    p.add_argument("--pixel-spacing", type=float, default=None, metavar="MM",
                   help="mm per pixel of the frames (DICOM frames carry their own)")
    p.add_argument("--calibration", default=None, metavar="PATH",
                   help="the model's calibration.json or a results/calibrate/<variant>/seed<s> folder "
                        "(default: the calibration.json beside model.pt)")
    flag = p.add_mutually_exclusive_group()
    flag.add_argument("--flag-above", type=float, default=None, metavar="PX",
                      help="mark frames with a landmark whose calibrated radius exceeds PX pixels (column check)")
    flag.add_argument("--flag-above-mm", type=float, default=None, metavar="MM",
                      help="the same with the radius in mm (needs the pixel spacing)")
    p.set_defaults(func=_cmd_predict)

    p = command("export", "the whole predictor (network and soft-argmax) as TorchScript or ONNX")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--format", required=True, choices=("torchscript", "onnx"), help="the file format")
    p.add_argument("--out", required=True, help="file to write (replaced if it exists)")
    p.set_defaults(func=_cmd_export)

    p = command("export-submission", "a challenge submission folder (and .zip) for the model")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--calibration", default=None, metavar="PATH",
                   help="its calibration (default: the calibration.json beside model.pt)")
    p.add_argument("dst", metavar="DST", help="folder to write; DST.zip is written beside it")
    p.add_argument("--force", action="store_true", help="replace an existing DST and DST.zip")
    p.set_defaults(func=_cmd_export_submission)

    p = command("plan-study", "seeds and test acquisitions that would settle each claim, from a finished "
                "study's variance components")
    p.add_argument("--claims", default="results/ablation/claims.csv", help="the claims table of a finished study")
    p.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10, 20], help="seed counts to plan for")
    p.add_argument("--power", type=float, default=0.8, help="power to detect the paper's difference")
    p.set_defaults(func=_cmd_plan_study)

    p = command("stage", "run one job of the study (what the workflow's rules call); "
                "`iugc stage --help` lists the stages", add_help=False)
    p.add_argument("stage_args", nargs=argparse.REMAINDER, metavar="NAME [options]",
                   help="the stage and its options; `iugc stage NAME --help` shows them")
    p.set_defaults(func=_cmd_stage)

    p = command("dvc-yaml", "write dvc.yaml from the Snakemake DAG")
    p.add_argument("--out", default="dvc.yaml", help="file to write")
    p.add_argument("--check", action="store_true", help="only report whether it is up to date")
    p.set_defaults(func=_cmd_dvc_yaml)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["stage"]:  # its own parser (`iugc stage --help` lists the stages)
        from .stages.runner import main as run_stage

        return run_stage(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"iugc {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
