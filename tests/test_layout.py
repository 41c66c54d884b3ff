"""The package's layout: which sub-package may import which, no import cycles, no hidden
imports, and modules and functions small enough to read (docs/algorithm.md, its "Layout of
the code")."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sharedppo"

# What each part may import from the rest of the package (its own modules always). The order
# is the layering: the schema at the bottom, the pieces of a run above it, front ends on top.
BASE = {"config", "extras", "overrides", "compose", "durable", "jobdir", "wrappers"}
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "extras": {"config"},
    "overrides": set(),
    "compose": {"config", "extras"},
    "durable": set(),
    "jobdir": {"config", "durable"},
    "wrappers": set(),
    "envs": {"config", "extras"},
    "nn": {"config", "envs"},
    "algo": {"config", "nn"},
    "tb": {"config", "overrides", "jobdir"},
    "run": {"config", "extras", "overrides", "durable", "jobdir", "envs", "nn", "algo", "tb"},
    "pack": {"config", "extras", "overrides", "durable", "jobdir", "envs", "nn", "algo", "tb"}
    | {"run"},
    "cli": BASE | {"envs", "nn", "algo", "tb", "run", "pack"},
    "tune": BASE | {"envs", "nn", "algo", "tb", "run"},
    "report": BASE | {"tb"},
    "api": BASE | {"envs", "nn", "algo", "tb", "run"},
    "__main__": {"cli"},
    "__init__": {"api"},
}
# Where a part may use only one module of another: the network reads the observation layout.
ONLY = {("nn", "envs"): {"envs.spaces"}}
# Third-party packages a part must not import: the network and the algorithm are plain torch,
# usable without Hydra or TensorBoard; the algorithm knows no environments.
FORBIDDEN = {
    "nn": {"hydra", "omegaconf", "tensorboard"},
    "algo": {"hydra", "omegaconf", "tensorboard", "gymnasium"},
    "config": {"hydra", "omegaconf", "tensorboard", "torch", "gymnasium"},
    "durable": {"hydra", "omegaconf", "tensorboard", "torch", "gymnasium"},
}
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 80


def modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield ".".join(parts), path, ast.parse(path.read_text(), str(path))


def _is_package(name: str) -> bool:
    return (PACKAGE / name.replace(".", "/") / "__init__.py").is_file()


def imported(name: str, path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The sharedppo modules an import statement names (dotted, without the 'sharedppo.')."""
    if isinstance(node, ast.Import):
        return [a.name[10:] for a in node.names if a.name.startswith("sharedppo.")]
    if node.level == 0:
        if not (node.module or "").startswith("sharedppo"):
            return []
        base = node.module[10:]
    else:
        if path.name == "__init__.py":
            package = [] if path.parent == PACKAGE else name.split(".")
        else:
            package = name.split(".")[:-1]
        up = package[: len(package) - (node.level - 1)]
        base = ".".join([*up, *([node.module] if node.module else [])])
    found = []
    for alias in node.names:
        sub = f"{base}.{alias.name}" if base else alias.name
        is_module = _is_package(sub) or (PACKAGE / f"{sub.replace('.', '/')}.py").is_file()
        found.append(sub if is_module else base)
    return [f for f in found if f]


def top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # annotations only: no import at run time, so no cycle
        elif isinstance(node, (ast.If, ast.Try)):
            for child in ast.walk(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    yield child


# The schema's own helpers (roles, checks) are part of the schema's layer.
SAME_PART = {"keys": "config", "groups": "config"}


def part_of(module: str) -> str:
    top = module.split(".")[0]
    return SAME_PART.get(top, top)


def test_parts_import_only_the_layers_below_them():
    wrong = []
    for name, path, tree in modules():
        part = part_of(name)
        assert part in ALLOWED, f"{path}: a new top-level part; give it a place in ALLOWED"
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in imported(name, path, node):
                other = part_of(target)
                if other != part and other not in ALLOWED[part]:
                    wrong.append(f"{name} imports {target}")
                elif target not in ONLY.get((part, other), {target}):
                    wrong.append(f"{name} imports {target} (only {ONLY[part, other]})")
    assert not wrong, "\n".join(wrong)


def test_no_function_local_imports_of_the_package():
    # A local import is how a cycle hides; the package's lazy `sharedppo.train`/`load` (so that
    # importing a sub-package does not load the API's dependencies) is the one exception.
    local = []
    for name, path, tree in modules():
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and imported(name, path, node):
                    local.append(f"{name}:{func.name}")
    assert local == ["__init__:__getattr__"]


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for name, path, tree in modules():
        graph[name] = {
            t for node in top_level_imports(tree) for t in imported(name, path, node) if t != name
        }
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            pytest.fail("import cycle: " + " -> ".join([*stack[stack.index(node) :], node]))
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ is imported on the way to its modules, not a dependency
            if not node.startswith(f"{nxt}."):
                visit(nxt, [*stack, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_the_network_and_algorithm_load_without_hydra_or_tensorboard():
    """Hydra, OmegaConf and TensorBoard are checked on what is really loaded (imports of
    imports too), in a fresh interpreter; the parts' own imports of FORBIDDEN packages on the
    source (algo/ reaches gymnasium only through nn/'s action heads, which read the spaces)."""
    code = (
        "import sys, sharedppo.config, sharedppo.algo.agent, sharedppo.algo.gae, "
        "sharedppo.nn.actor_critic;"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & {"hydra", "omegaconf", "tensorboard"}
    direct = []
    for name, _, tree in modules():
        banned = FORBIDDEN.get(part_of(name), set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            direct += [f"{name} imports {r}" for r in roots & banned]
    assert not direct, "\n".join(direct)


def test_modules_and_functions_stay_small():
    long = []
    for name, path, tree in modules():
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            long.append(f"module {name}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"function {name}:{node.name}: {size} lines")
    assert not long, "\n".join(long)


def test_every_sub_package_says_what_it_holds_and_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        if init.parent.name == "conf":
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc, f"{init}: docstring must say what it holds and may import"
        may = doc[doc.index("May import") :]
        missing = [dep for dep in ALLOWED[init.parent.name] if f"``{dep}``" not in may]
        assert not missing, f"{init}: the docstring's 'May import' leaves out {missing}"
