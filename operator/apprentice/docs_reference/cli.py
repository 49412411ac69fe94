"""``cli.md``: every ``apprentice`` command and flag, from the argparse parser itself."""

from __future__ import annotations

import argparse

from apprentice import cli
from apprentice.docs_reference.markdown import GENERATED, cell, code, literal, table

_INTRO = """# CLI reference

`apprentice COMMAND --help` prints the same text. Every command that reads a config takes
`-c FILE` (`apprentice.yaml`); exit codes are listed in the
[errors reference](errors.md#cli-exit-codes). Configuration problems are printed one per
line with their path, the fix and a link to their entry.
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    # A fixed width keeps the usage lines identical on every terminal and in CI.
    return argparse.HelpFormatter(prog, width=96)


def commands(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    parser = parser or cli.build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def flags(sub: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options and positionals a user types (``--help`` left out)."""
    return [a for a in sub._actions if not isinstance(a, argparse._HelpAction)]


def flag_name(action: argparse.Action) -> str:
    return ", ".join(action.option_strings) if action.option_strings else str(action.dest)


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "(switch)"
    if action.choices:
        return " \\| ".join(code(c) for c in action.choices)
    if action.metavar:
        return code(action.metavar)
    return code(action.dest.upper())


def _default(action: argparse.Action) -> str:
    if action.required:
        return "**required**"
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    return literal(action.default)


def _section(name: str, sub: argparse.ArgumentParser, summary: str) -> str:
    sub.formatter_class = _formatter
    usage = sub.format_usage().strip().removeprefix("usage: ")
    text = cell(summary)
    parts = [f"\n## `apprentice {name}` {{#{name}}}\n\n{text[:1].upper()}{text[1:]}.\n\n"]
    parts.append(f"```text\n{usage}\n```\n\n")
    if sub.description:
        parts.append(" ".join(sub.description.split()) + "\n\n")
    rows = [
        [code(flag_name(a)), _value(a), _default(a), cell(a.help or "")]
        for a in flags(sub)
        if a.help != argparse.SUPPRESS
    ]
    if rows:
        parts.append(table(["flag", "value", "default", "what"], rows))
    return "".join(parts)


def render() -> str:
    parser = cli.build_parser()
    helps = _helps(parser)
    subs = commands(parser)
    parts = [GENERATED.format(source="apprentice/cli.py and apprentice/commands/"), _INTRO]
    parts.append("\n| command | what |\n|---|---|\n")
    parts += [f"| [`{n}`](#{n}) | {cell(helps.get(n, ''))} |\n" for n in subs]
    parts += [_section(n, s, helps.get(n, "")) for n, s in subs.items()]
    return "".join(parts)


def all_flags() -> dict[str, list[str]]:
    """Command -> its flags, for the sync tests."""
    return {n: [flag_name(a) for a in flags(s)] for n, s in commands().items()}
