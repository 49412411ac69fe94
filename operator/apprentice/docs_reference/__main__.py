"""``python -m apprentice.docs_reference --write | --check``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from apprentice.docs_reference import REFERENCE


def pages() -> dict[str, Callable[[], str]]:
    """File name under docs/reference/ -> the function that renders it."""
    from apprentice.docs_reference import cli, configuration, errors, http_api, metrics, resources

    return {
        "configuration.md": configuration.render,
        "custom-resources.md": resources.render,
        "http-api.md": http_api.render,
        "cli.md": cli.render,
        "metrics.md": metrics.render,
        "errors.md": errors.render,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apprentice.docs_reference")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite docs/reference/")
    mode.add_argument("--check", action="store_true", help="exit 1 when a page drifts")
    args = parser.parse_args(argv)
    stale = []
    for name, render in pages().items():
        path = REFERENCE / name
        text = render()
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        if args.write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REFERENCE.parents[1])}")
        else:
            stale.append(name)
    if stale:
        print("out of date (run `make docs-generate`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
