"""File operations, archives and permissions."""

from __future__ import annotations

import random

from gantry.envfarm.terminal.task import Difficulty
from gantry.envfarm.terminal.templates.base import (
    Draft,
    Template,
    read_helper,
    script,
    test_file,
    words,
    write_files,
)

EXTENSIONS = ("log", "csv", "txt", "json", "md")


def _content(rng: random.Random, name: str) -> str:
    return f"{name}: {rng.randrange(10**6)}\n"


def organize(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Move every file with one extension from a tree into a new folder."""
    hard = difficulty == "hard"
    ext = rng.choice(EXTENSIONS)
    others = [e for e in EXTENSIONS if e != ext]
    count = rng.randint(8, 12) if hard else rng.randint(3, 5)
    subdirs = ["", "a/", "a/b/", "c/"] if hard else [""]
    names = words(rng, count + 4)
    files: dict[str, str] = {}
    moved: dict[str, str] = {}
    for i, name in enumerate(names[:count]):
        base = f"{name} copy.{ext}" if hard and i == 0 else f"{name}.{ext}"
        path = f"inbox/{rng.choice(subdirs)}{base}"
        files[path] = moved[base] = _content(rng, base)
    kept = {}
    for name in names[count:]:
        path = f"inbox/{rng.choice(subdirs)}{name}.{rng.choice(others)}"
        kept[path] = _content(rng, name)
    if hard:  # the extension in the middle of a name does not count
        kept[f"inbox/{names[0]}.{ext}.bak"] = "backup\n"
    files.update(kept)
    where = "anywhere under inbox/ (subdirectories included)" if hard else "in inbox/"
    instruction = (
        f"Move every file whose name ends in .{ext} {where} into the directory "
        f"archive/{ext}/ (create it), keeping each file's name. Leave every other file "
        "where it is."
    )
    sources = [p for p in files if p in kept or p.rsplit("/", 1)[1] in moved]
    consts = {
        "MOVED": moved,
        "KEPT": kept,
        "SOURCES": sorted(p for p in sources if p not in kept),
        "DEST": f"archive/{ext}",
    }
    initial = test_file(
        consts,
        read_helper() + "def test_sources_exist():\n"
        "    for path in SOURCES:\n"
        "        assert os.path.isfile(path), path\n"
        "    for path, text in KEPT.items():\n"
        "        assert read(path) == text, path\n",
    )
    completion = test_file(
        consts,
        read_helper() + "def test_moved():\n"
        "    assert sorted(os.listdir(DEST)) == sorted(MOVED)\n"
        "    for name, text in MOVED.items():\n"
        "        assert read(os.path.join(DEST, name)) == text, name\n"
        "    for path in SOURCES:\n"
        "        assert not os.path.exists(path), path\n\n"
        "def test_others_untouched():\n"
        "    for path, text in KEPT.items():\n"
        "        assert read(path) == text, path\n",
    )
    depth = "" if hard else "-maxdepth 1 "
    solution = (
        f"mkdir -p archive/{ext} && find inbox {depth}-type f -name '*.{ext}' "
        f"-exec mv -t archive/{ext} {{}} +",
    )
    return Draft(
        instruction,
        {"moved": sorted(moved), "destination": f"archive/{ext}"},
        script(write_files(files)),
        initial,
        completion,
        solution,
        {"files": str(count), "nested": str(hard).lower()},
    )


def cleanup(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Delete empty files and temporary files from a tree, keep the rest."""
    hard = difficulty == "hard"
    subdirs = ["", "cache/", "cache/x/", "runs/"] if hard else [""]
    names = words(rng, 14 if hard else 7)
    files: dict[str, str] = {}
    doomed: list[str] = []
    for i, name in enumerate(names):
        path = f"data/{rng.choice(subdirs)}{name}"
        kind = i % 3
        if kind == 0:
            files[path + ".tmp"] = _content(rng, name)
            doomed.append(path + ".tmp")
        elif kind == 1 and hard:
            files[path + ".dat"] = ""
            doomed.append(path + ".dat")
        else:
            files[path + ".dat"] = _content(rng, name)
    if hard:
        files["data/notes.tmp.txt"] = "keep me\n"
    kept = {p: t for p, t in files.items() if p not in doomed}
    what = "every empty file and every file ending in .tmp" if hard else "every .tmp file"
    where = "under data/ (subdirectories included)" if hard else "in data/"
    instruction = f"Delete {what} {where}. Keep every other file unchanged."
    consts = {"DOOMED": sorted(doomed), "KEPT": kept}
    initial = test_file(
        consts,
        read_helper() + "def test_files_exist():\n"
        "    for path in DOOMED:\n"
        "        assert os.path.isfile(path), path\n"
        "    for path, text in KEPT.items():\n"
        "        assert read(path) == text, path\n",
    )
    completion = test_file(
        consts,
        read_helper() + "def test_deleted():\n"
        "    for path in DOOMED:\n"
        "        assert not os.path.exists(path), path\n\n"
        "def test_kept():\n"
        "    for path, text in KEPT.items():\n"
        "        assert read(path) == text, path\n",
    )
    solution = (
        "find data -type f \\( -empty -o -name '*.tmp' \\) -delete" if hard else "rm -f data/*.tmp",
    )
    return Draft(
        instruction,
        {"deleted": sorted(doomed)},
        script(write_files(files)),
        initial,
        completion,
        solution,
        {"files": str(len(files)), "nested": str(hard).lower()},
    )


def create_archive(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Pack a source tree into a .tar.gz (hard: without compiled files)."""
    hard = difficulty == "hard"
    names = words(rng, rng.randint(5, 8) if hard else rng.randint(2, 4))
    files = {f"project/src/{n}.py": f"# {n}\nVALUE = {rng.randrange(1000)}\n" for n in names}
    files[f"project/src/lib/{names[0]}_util.py"] = "def util():\n    return 1\n"
    files["project/README.md"] = "# project\n"
    compiled = {}
    if hard:
        compiled = {f"project/src/__pycache__/{n}.cpython-311.pyc": "bytecode\n" for n in names[:3]}
        files.update(compiled)
    expected = {p.removeprefix("project/"): t for p, t in files.items() if p not in compiled}
    expected.pop("README.md")
    instruction = (
        "Create the archive backup.tar.gz (gzip-compressed tar) in the current directory "
        "holding the directory project/src, with member paths starting at src/ (for example "
        f"src/{names[0]}.py)." + (" Leave out compiled Python files (*.pyc)." if hard else "")
    )
    consts = {"EXPECTED": expected}
    initial = test_file(
        consts,
        "def test_tree():\n"
        "    for path in EXPECTED:\n"
        "        assert os.path.isfile(os.path.join('project', path)), path\n"
        "    assert not os.path.exists('backup.tar.gz')\n",
    )
    completion = test_file(
        consts,
        "def test_archive():\n"
        "    with tarfile.open('backup.tar.gz', 'r:gz') as tar:\n"
        "        files = {m.name.removeprefix('./'): m for m in tar.getmembers() if m.isfile()}\n"
        "        assert sorted(files) == sorted(EXPECTED)\n"
        "        for name, text in EXPECTED.items():\n"
        "            assert tar.extractfile(files[name]).read().decode() == text, name\n",
    )
    exclude = "--exclude='*.pyc' " if hard else ""
    return Draft(
        instruction,
        {"members": sorted(expected)},
        script(write_files(files)),
        initial,
        completion,
        (f"tar -czf backup.tar.gz -C project {exclude}src",),
        {"files": str(len(expected)), "exclude_compiled": str(hard).lower()},
    )


def extract_archive(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Unpack an archive (hard: only its .conf members)."""
    hard = difficulty == "hard"
    names = words(rng, rng.randint(6, 9) if hard else rng.randint(3, 5))
    members = {}
    for i, name in enumerate(names):
        ext = "conf" if i % 2 == 0 else "txt"
        folder = "bundle/etc/" if hard and i % 3 == 0 else "bundle/"
        members[f"{folder}{name}.{ext}"] = f"{name}={rng.randrange(100)}\n"
    wanted = {p: t for p, t in members.items() if not hard or p.endswith(".conf")}
    build = write_files({f"build/{p}": t for p, t in members.items()})
    setup = script(
        build,
        "mkdir -p incoming\ntar -czf incoming/bundle.tar.gz -C build bundle\nrm -rf build\n",
    )
    what = "only the members whose names end in .conf" if hard else "it"
    instruction = (
        f"Extract {what} from incoming/bundle.tar.gz into the directory restored/ (create "
        "it), keeping member paths, so that restored/bundle/... holds the files."
    )
    consts = {"WANTED": wanted, "ALL": sorted(members)}
    initial = test_file(
        consts,
        "def test_archive():\n"
        "    with tarfile.open('incoming/bundle.tar.gz') as tar:\n"
        "        names = sorted(m.name for m in tar.getmembers() if m.isfile())\n"
        "    assert names == ALL\n"
        "    assert not os.path.exists('restored')\n",
    )
    completion = test_file(
        consts,
        read_helper() + "def test_restored():\n"
        "    found = sorted(\n"
        "        os.path.relpath(os.path.join(d, f), 'restored')\n"
        "        for d, _, fs in os.walk('restored') for f in fs\n"
        "    )\n"
        "    assert found == sorted(WANTED)\n"
        "    for path, text in WANTED.items():\n"
        "        assert read(os.path.join('restored', path)) == text, path\n",
    )
    pattern = " --wildcards '*.conf'" if hard else ""
    return Draft(
        instruction,
        {"extracted": sorted(wanted)},
        setup,
        initial,
        completion,
        (f"mkdir -p restored && tar -xzf incoming/bundle.tar.gz -C restored{pattern}",),
        {"members": str(len(members)), "filtered": str(hard).lower()},
    )


def permissions(rng: random.Random, difficulty: Difficulty) -> Draft:
    """Set modes: scripts 755, keys 600, a private directory 700, the rest 644."""
    hard = difficulty == "hard"
    names = words(rng, 9 if hard else 5)
    folders = ["deploy/", "deploy/bin/", "deploy/private/"] if hard else ["deploy/"]
    files: dict[str, str] = {}
    modes: dict[str, int] = {}
    for i, name in enumerate(names):
        folder = rng.choice(folders)
        ext = ("sh", "key", "txt")[i % 3]
        path = f"{folder}{name}.{ext}"
        files[path] = f"{name}\n"
        modes[path] = {"sh": 0o755, "key": 0o600, "txt": 0o644}[ext]
    instruction = (
        "Fix the permissions under deploy/"
        + (" (subdirectories included)" if hard else "")
        + ": every *.sh file must have mode 755, every *.key file mode 600, the directory "
        "deploy/private mode 700, and every other file mode 644."
    )
    setup = script("mkdir -p deploy/private", write_files(files), "chmod 755 deploy/private")
    consts = {"MODES": modes}
    initial = test_file(
        consts,
        "def test_initial_modes():\n"
        "    for path in MODES:\n"
        "        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path\n"
        "    assert stat.S_IMODE(os.stat('deploy/private').st_mode) == 0o755\n",
    )
    completion = test_file(
        consts,
        "def test_modes():\n"
        "    for path, mode in MODES.items():\n"
        "        assert stat.S_IMODE(os.stat(path).st_mode) == mode, (path, oct(mode))\n"
        "    assert stat.S_IMODE(os.stat('deploy/private').st_mode) == 0o700\n",
    )
    solution = (
        "find deploy -type f -name '*.sh' -exec chmod 755 {} +",
        "find deploy -type f -name '*.key' -exec chmod 600 {} +",
        "chmod 700 deploy/private",
    )
    return Draft(
        instruction,
        {"modes": {p: oct(m) for p, m in modes.items()}},
        setup,
        initial,
        completion,
        solution,
        {"files": str(len(files)), "nested": str(hard).lower()},
    )


FILE_TEMPLATES: dict[str, tuple[Template, ...]] = {
    "file_ops": (organize, cleanup),
    "archives": (create_archive, extract_archive),
    "permissions": (permissions,),
}
