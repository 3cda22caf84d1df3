"""The extension's imports point one way: engine <- bridge <- operators/panels/preferences UI <- __init__.

Every module of the extension is parsed (no import, no bpy), with its imports at the top and inside
functions, relative and absolute (``bl_ext.<repo>.fathom...``); the test fails on any import cycle
and on any import that points up a layer.
"""

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_EXTENSION = {"tests", "server", "scripts", "bench", "wheels", "dist", "build", "out"}
# A module may import its own layer and those below it; "" is the package's __init__.py.
LAYERS = {"engine": 0, "bridge": 1, "operators": 2, "panels": 2, "preferences": 2, "properties": 2, "api": 2, "": 3}
BLENDER_MODULES = {"bpy", "bmesh", "mathutils", "bl_operators", "bl_ui", "addon_utils", "gpu", "blf"}


def extension_modules(root: Path) -> dict:
    """Dotted module name ('' for the root __init__) -> file, for every module of the extension."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in NOT_EXTENSION or any(p.startswith(".") for p in parts):
            continue
        names = list(parts[:-1]) + ([] if path.name == "__init__.py" else [path.stem])
        found[".".join(names)] = path
    return found


def _package_of(module: str, path: Path) -> list:
    parts = module.split(".") if module else []
    return parts if path.name == "__init__.py" else parts[:-1]


def _project_name(dotted: str, modules: dict):
    """The project module an absolute import names (bl_ext.<repo>.fathom.x or x), else None."""
    parts = dotted.split(".")
    if len(parts) >= 3 and parts[0] == "bl_ext":
        parts = parts[3:]
    name = ".".join(parts)
    return name if name in modules and name != "" else None


def imports_of(module: str, path: Path, modules: dict):
    """(imported project module, line, absolute?) and the external top-level names, for one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _package_of(module, path)
    edges, external = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _project_name(alias.name, modules)
                if target is not None:
                    edges.append((target, node.lineno, True))
                else:
                    external.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                absolute = False
                dotted = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                absolute = True
                dotted = node.module
                if _project_name(dotted, modules) is None and not (dotted == "bl_ext" or dotted.startswith("bl_ext.")):
                    external.add(dotted.split(".")[0])
                    continue
                parts = dotted.split(".")
                dotted = ".".join(parts[3:] if parts[0] == "bl_ext" else parts)
            for alias in node.names:
                sub = f"{dotted}.{alias.name}" if dotted else alias.name
                if sub in modules:
                    edges.append((sub, node.lineno, absolute))
                elif dotted in modules:
                    edges.append((dotted, node.lineno, absolute))
    return edges, external


def graph(root: Path) -> dict:
    """module -> [(imported module, line, absolute?)], plus the external names, per module."""
    modules = extension_modules(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(edges: dict) -> list:
    """Every strongly connected group of more than one module (or a module importing itself)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):  # Tarjan, iterative enough for a few hundred modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def problems(root: Path) -> list:
    """What breaks the architecture under ``root``, one line each."""
    found = []
    imports = graph(root)
    for module, (edges, external) in sorted(imports.items()):
        where = module or "__init__"
        for target, line, absolute in edges:
            if layer(target) > layer(module):
                found.append(f"{where}:{line} imports {target or '__init__'}, a layer above it")
            if module.split(".")[0] == "engine" and absolute:
                found.append(f"{where}:{line} imports {target} absolutely: engine uses relative imports only")
        if module.split(".")[0] == "engine" and external & BLENDER_MODULES:
            found.append(f"{where} imports {', '.join(sorted(external & BLENDER_MODULES))}: engine never needs Blender")
    for group in cycles({m: {t for t, _, _ in edges} for m, (edges, _) in imports.items()}):
        found.append("import cycle: " + " <-> ".join(m or "__init__" for m in group))
    return found


def test_the_extension_has_no_cycle_and_no_upward_import():
    assert extension_modules(ROOT)["bridge.generation.job"]  # the walk sees the packages
    assert problems(ROOT) == []


def _write(root: Path, files: dict):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.mark.parametrize(
    "files, expected",
    [
        # Two bridge modules importing each other, one of them only inside a function.
        (
            {"bridge/a.py": "from . import b\n", "bridge/b.py": "def f():\n    from .a import x\n"},
            "import cycle: bridge.a <-> bridge.b",
        ),
        # A bridge module reaching up into operators (absolute, as Blender names the package).
        (
            {"bridge/a.py": "from bl_ext.user_default.fathom.operators import generate\n", "operators/generate.py": ""},
            "bridge.a:1 imports operators.generate, a layer above it",
        ),
        # engine reaching into bridge, and engine importing bpy.
        (
            {"engine/e.py": "def f():\n    from ..bridge import a\n", "bridge/a.py": ""},
            "engine.e:2 imports bridge.a, a layer above it",
        ),
        ({"engine/e.py": "import bpy\n"}, "engine.e imports bpy: engine never needs Blender"),
        # A cycle through a package's __init__.py.
        (
            {"operators/__init__.py": "from . import x\n", "operators/x.py": "from .. import operators\n"},
            "import cycle: operators <-> operators.x",
        ),
    ],
)
def test_the_check_finds_cycles_and_upward_imports(tmp_path, files, expected):
    _write(
        tmp_path,
        {"__init__.py": "", "engine/__init__.py": "", "bridge/__init__.py": "", "operators/__init__.py": "", **files},
    )
    assert expected in problems(tmp_path)
