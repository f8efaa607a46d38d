#!/usr/bin/env python3
"""Regenerate the Python stubs for the Gantry v1 contracts.

    .venv/bin/python scripts/gen_protos.py            # into libs/gantry-proto/src/gantry/proto
    .venv/bin/python scripts/gen_protos.py --out DIR  # anywhere else (the drift test does)

Runs grpc_tools.protoc over every `protos/gantry/**/*.proto` and writes `_pb2.py`,
`_pb2.pyi`, `_pb2_grpc.py` and (through mypy-protobuf's `protoc-gen-mypy_grpc`)
`_pb2_grpc.pyi`. Proto package `gantry.<area>.v1` becomes the Python package
`gantry.proto.<area>.v1`, because `gantry.<area>` is the service's own package: protoc
writes into a scratch directory, then the files are moved and their references to
`gantry.<area>.v1.*_pb2` modules rewritten. Descriptor file names stay
`gantry/<area>/v1/<file>.proto` (server reflection serves them under those names) and
`google.*` imports are left alone. Foreign contracts whose package cannot follow that
scheme (`protos/inference/`: KServe's Open Inference Protocol, package `inference`) land
at `gantry.proto.<package>`, so they never shadow another distribution's top-level
`inference` module. The output directory is replaced as a whole, so files
of deleted protos disappear. Output is deterministic for pinned tool versions.

Third-party imports are vendored into a scratch include directory: googleapis protos from
the googleapis-common-protos wheel and the well-known types from grpc_tools. The wheel
names the long-running operations file `google/longrunning/operations_proto.proto` but
registers its descriptor as `google/longrunning/operations.proto`; Gantry protos import
the canonical name, so the file is vendored under that name (importing the wheel's name
would make the generated modules fail to load: the pool would not find the dependency).
`--vendor-only DIR` writes just that include tree (scripts/lint_protos.sh gives it to buf).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "libs" / "gantry-proto" / "src" / "gantry" / "proto"

# Foreign proto packages (protos/<name>/, package <name>) -> gantry.proto.<name>.
FOREIGN_PACKAGES = ("inference",)

# googleapis directories whose top-level *.proto files are vendored.
GOOGLEAPIS_DIRS = ("api", "rpc", "longrunning")
# Vendored files that must be renamed: wheel name -> canonical googleapis name.
RENAMES = {"longrunning/operations_proto.proto": "longrunning/operations.proto"}

TOP_INIT = (
    '"""Generated protobuf/gRPC stubs for the Gantry v1 contracts '
    '(do not edit; run scripts/gen_protos.py)."""\n'
)

# `from gantry.<area>.v1 import x_pb2` and dotted references `gantry.<area>.v1.x_pb2`
# (mypy-protobuf's .pyi use fully qualified names). Method paths such as
# "/gantry.rollout.v1.RolloutService/Generate" and full message names in descriptors do
# not end in a module name, so they are never touched.
_FROM_IMPORT = re.compile(r"^(\s*from )gantry\.([a-z0-9_]+)\.(v[0-9]+) import ", re.MULTILINE)
_DOTTED_MODULE = re.compile(r"(?<![\w.])gantry\.([a-z0-9_]+)\.(v[0-9]+)\.(\w+_pb2(?:_grpc)?)\b")
_FOREIGN = "|".join(FOREIGN_PACKAGES)
_FOREIGN_FROM_IMPORT = re.compile(rf"^(\s*from )({_FOREIGN}) import ", re.MULTILINE)
_FOREIGN_DOTTED = re.compile(rf"(?<![\w.])({_FOREIGN})\.(\w+_pb2(?:_grpc)?)\b")


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"cannot locate package {module!r}; is the venv active?")
    return Path(next(iter(spec.submodule_search_locations)))


def vendor_third_party(dest: Path) -> None:
    """Copy the google/* protos Gantry imports into `dest` (an include root)."""
    googleapis = _package_dir("google.api").parent  # site-packages/google
    well_known = _package_dir("grpc_tools") / "_proto" / "google" / "protobuf"
    for sub in GOOGLEAPIS_DIRS:
        for src in sorted((googleapis / sub).glob("*.proto")):
            rel = f"{sub}/{src.name}"
            target = dest / "google" / RENAMES.get(rel, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
    for src in sorted(well_known.glob("*.proto")):
        target = dest / "google" / "protobuf" / src.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)


def proto_sources() -> list[str]:
    """Every Gantry .proto (and foreign contract), relative to protos/, sorted."""
    roots = [PROTO_ROOT / "gantry", *(PROTO_ROOT / name for name in FOREIGN_PACKAGES)]
    files = sorted(
        p.relative_to(PROTO_ROOT).as_posix() for root in roots for p in root.rglob("*.proto")
    )
    if not files:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / 'gantry'}")
    return files


def _mypy_grpc_plugin() -> str:
    candidate = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("protoc-gen-mypy_grpc")
    if found is None:
        raise SystemExit("protoc-gen-mypy_grpc not found (pip install mypy-protobuf)")
    return found


def run_protoc(include: Path, out: Path, sources: list[str]) -> None:
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy_grpc={_mypy_grpc_plugin()}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    result = subprocess.run(args, cwd=PROTO_ROOT, capture_output=True, text=True, check=False)
    # protoc-gen-mypy_grpc reports every file it writes on stderr; keep only real messages.
    messages = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and not line.startswith("Writing mypy to ")
    ]
    if messages:
        sys.stderr.write("\n".join(messages) + "\n")
    if result.returncode != 0:
        raise SystemExit(f"protoc failed with exit status {result.returncode}")


def rewrite_imports(text: str) -> str:
    """Point references to generated Gantry modules at gantry.proto.<area>.<version>."""
    text = _FROM_IMPORT.sub(r"\1gantry.proto.\2.\3 import ", text)
    text = _DOTTED_MODULE.sub(r"gantry.proto.\1.\2.\3", text)
    text = _FOREIGN_FROM_IMPORT.sub(r"\1gantry.proto.\2 import ", text)
    return _FOREIGN_DOTTED.sub(r"gantry.proto.\1.\2", text)


def assemble(generated: Path, package: Path) -> None:
    """Move protoc's gantry/<area>/<v>/ files to <package>/<area>/<v>/ (and foreign
    <name>/ files to <package>/<name>/) with rewritten imports."""
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(TOP_INIT)
    (package / "py.typed").write_text("")
    sources = [
        (src, src.relative_to(generated / "gantry"))
        for src in sorted((generated / "gantry").rglob("*"))
    ]
    for name in FOREIGN_PACKAGES:
        sources += [
            (src, src.relative_to(generated)) for src in sorted((generated / name).rglob("*"))
        ]
    for src, rel in sources:
        if not src.is_file():
            continue
        target = package / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rewrite_imports(src.read_text()))
    for directory in sorted(p for p in package.rglob("*") if p.is_dir()):
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text("")


def generate(out: Path) -> list[Path]:
    """Generate the whole `gantry.proto` package into `out` (replacing it); return files."""
    sources = proto_sources()
    with tempfile.TemporaryDirectory(prefix="gantry-protos-") as tmp:
        scratch = Path(tmp)
        include = scratch / "include"
        generated = scratch / "generated"
        package = scratch / "package"
        generated.mkdir()
        vendor_third_party(include)
        run_protoc(include, generated, sources)
        assemble(generated, package)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(package, out)
    return sorted(p for p in out.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="directory of the `gantry.proto` package (default: %(default)s)",
    )
    parser.add_argument(
        "--vendor-only",
        type=Path,
        metavar="DIR",
        help="only copy the third-party google/* protos into DIR and exit",
    )
    args = parser.parse_args(argv)
    if args.vendor_only is not None:
        vendor_third_party(args.vendor_only)
        return 0
    files = generate(args.out.resolve())
    print(f"generated {len(files)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
