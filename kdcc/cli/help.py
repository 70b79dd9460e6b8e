"""`--help` for every subcommand: defaults after each option and a few examples at the end.

Kept out of cli.py so the command list stays thin: `polish(subparsers)` runs
once the parser is built and touches only help text.
"""

from __future__ import annotations

import argparse

__all__ = ["HelpFormatter", "polish", "TEACHER_HELP", "CONFIG_HELP"]

TEACHER_HELP = ("teacher file (.pt), EPyMARL/PyMARL model directory (agent.th, mixer.th) or ONNX teacher "
                "directory (agent.onnx, mixer.onnx, spec.json)")
CONFIG_HELP = ("a model directory's sacred config.json (default: config.json beside the checkpoint), or an ONNX "
               "teacher's spec file (default: spec.json beside the graphs)")

EXAMPLES = {
    "eval": ["kdcc eval examples/spread_teacher.pt --episodes 100",
             "kdcc eval build/ --teacher examples/spread_teacher.pt --json",
             "kdcc eval results/models/qmix/2050000 --config results/sacred/qmix/1/config.json",
             "kdcc eval onnx_teacher/ --episodes 20"],
    "collect": ["kdcc collect examples/spread_teacher.pt -o data.npz --episodes 200",
                "kdcc collect results/models/qmix/2050000 --config config.json -o data.npz"],
    "profile": ["kdcc profile examples/spread_teacher.pt --target orin",
                "kdcc profile examples/spread_teacher.pt --target orin-nano --fused --json"],
    "compile": ["kdcc compile examples/spread_teacher.pt --target orin -o build/",
                "kdcc compile examples/spread_teacher.pt --budget-flops 80k --record rec/ -o build/",
                "kdcc compile results/models/qmix/2050000 --config config.json --target orin -o build/",
                "kdcc compile onnx_teacher/ --target orin -o build/",
                "kdcc compile examples/spread_teacher.pt --pipeline exact --no-build -o report_only/",
                "kdcc compile examples/spread_teacher.pt --target host -o build/ --tune 64",
                "kdcc compile teacher.pt --target orin -o build/ --tune 64 --rpc-tracker HOST:9190 --rpc-key orin"],
    "calibrate": ["kdcc calibrate -o host-calibrated.toml",
                  "kdcc calibrate --target orin -o orin-cpu.toml --rpc-tracker HOST:9190 --rpc-key orin",
                  "kdcc compile examples/spread_teacher.pt --target host-calibrated.toml -o build/"],
    "check": ["kdcc check rec/ --against tests/golden/record",
              "kdcc check build/ --against golden/ --json"],
}


_FALLBACK_HELP = {"--episodes": "number of episodes", "--seed": "random seed"}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults that say something; descriptions re-wrapped, but an 'examples:' block kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):  # "(default: None)" says nothing
            return action.help
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        head, marker, examples = text.partition("examples:\n")
        filled = super()._fill_text(head, width, indent) if head.strip() else ""
        if not marker:
            return filled
        return (filled + "\n\n" if filled else "") + marker + examples


def polish(subparsers: argparse._SubParsersAction) -> None:
    """Examples on every subcommand that has none, and a default shown for every option."""
    for name, parser in subparsers.choices.items():
        parser.formatter_class = HelpFormatter
        if not parser.epilog and name in EXAMPLES:
            parser.epilog = "examples:\n" + "".join(f"  {line}\n" for line in EXAMPLES[name])
        for action in parser._actions:  # the formatter shows a default only after some help text
            if action.help is None and action.option_strings:
                action.help = _FALLBACK_HELP.get(action.option_strings[-1], "")
