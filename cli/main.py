"""The `ceres` command: offline plan, integration matrix and rendered config of a stack, and the
restore commands (which act on the deployed stack through Docker)."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

from cli import restore_pitr
from stacks.load import ConfigError

FORMATS_PLAN = ("text", "json")
FORMATS_MATRIX = ("text", "json", "html", "mermaid")
# The same scripts a user can run by hand (scripts/restore-full.sh, scripts/restore-drill.sh).
RESTORE_SCRIPTS = {"restore": "restore-full.sh", "restore-drill": "restore-drill.sh"}
SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "scripts"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ceres", description="CERES platform-as-code: offline views of a stack.")
    commands = parser.add_subparsers(dest="command", required=True)

    plan = commands.add_parser("plan", help="evaluate the program offline: resources, critical path, score")
    plan.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default: dev)")
    plan.add_argument("--project", type=Path, default=None, help="project folder holding the stack files (default: here, else CERES's own)")
    plan.add_argument("--format", choices=FORMATS_PLAN, default="text")
    plan.add_argument("--min-score", type=float, default=None, metavar="N",
                      help="exit 1 when the overall integration score is below N percent")

    matrix = commands.add_parser("matrix", help="the integration matrix: every catalog edge and its status")
    matrix.add_argument("--stack", default="dev")
    matrix.add_argument("--project", type=Path, default=None)
    matrix.add_argument("--format", choices=FORMATS_MATRIX, default="text")

    render = commands.add_parser("render", help="write every config file the program puts into containers")
    render.add_argument("--stack", required=True)
    render.add_argument("--out", required=True, type=Path)
    render.add_argument("--project", type=Path, default=None)

    for name, help_text in (("restore", "restore every database and volume of a backup run into the deployed stack"),
                            ("restore-drill", "restore a backup run into a throwaway PostgreSQL and compare with the live data")):
        restore = commands.add_parser(name, help=help_text)
        restore.add_argument("--stack", default="dev")
        restore.add_argument("run", nargs="?", default="latest", help="the run id backup.sh printed, or latest (default)")
    restore_pitr.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "restore-pitr":
        return restore_pitr.run(args)
    if args.command in RESTORE_SCRIPTS:
        script = SCRIPTS_DIR / RESTORE_SCRIPTS[args.command]
        return subprocess.run(["bash", str(script), "--stack", args.stack, args.run]).returncode
    # Imported here so `ceres --help` stays fast and bad arguments never load the engine.
    from cli.offline import StackFileError, project_dir, run_offline, stack_file_config

    try:
        config, secret_keys = stack_file_config(args.stack, args.project or project_dir())
        run = run_offline(args.stack, config, secret_keys)
    except StackFileError as error:
        print(f"ceres: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"ceres: invalid config for stack {args.stack} (Pulumi.{args.stack}.yaml):\n{error}", file=sys.stderr)
        return 2
    finally:
        _close_event_loop()

    if args.command == "plan":
        return _plan(run, args)
    if args.command == "matrix":
        return _matrix(run, args)
    return _render(run, args)


def _plan(run, args) -> int:
    from cli.plan import plan_document, render_plan_text

    if args.format == "json":
        print(json.dumps(plan_document(run), indent=2))
    else:
        print(render_plan_text(run), end="")
    overall = run.outputs["integration_score"]["overall"]
    if args.min_score is not None and (overall["percent"] or 0.0) < args.min_score:
        print(f"ceres: integration score {overall['percent']}% is below --min-score {args.min_score}", file=sys.stderr)
        return 1
    return 0


def _matrix(run, args) -> int:
    from cli import matrix_views

    report = {"score": run.outputs["integration_score"], "edges": run.outputs["integration_matrix"]}
    if args.format == "json":
        print(json.dumps(report, indent=2))
    elif args.format == "html":
        print(matrix_views.render_html(report, run.stack), end="")
    elif args.format == "mermaid":
        print(matrix_views.render_mermaid(report), end="")
    else:
        print(matrix_views.render_text(report, run.stack), end="")
    return 0


def _render(run, args) -> int:
    from cli.render import write_files

    rendered = write_files(run, args.out)
    for path in rendered.written:
        print(path)
    for secret in rendered.withheld:
        print(f"ceres: not written, carries a secret: {secret}", file=sys.stderr)
    print(f"ceres: wrote {len(rendered.written)} config files for stack {run.stack} under {args.out}", file=sys.stderr)
    return 0


def _close_event_loop() -> None:
    # The engine leaves its event loop open; closing it here keeps interpreter exit quiet.
    try:
        asyncio.get_event_loop().close()
    except RuntimeError:
        pass


if __name__ == "__main__":
    sys.exit(main())
