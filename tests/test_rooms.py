"""The rooms of docs/design.md, checked on the source: every ``.py`` of the project's packages is
parsed (nothing is imported) and every import is collected, those inside functions included.

Rules (each failure names the file, the line, the import and the rule):

(a) ``songexplorer_core`` (the science) imports no ``dagster*``, ``panel`` or ``bokeh`` and no other
    project package: not the orchestration, not the annotator, not the command line.
(b) No import cycle among the project's modules (imports inside functions count; imports under
    ``if TYPE_CHECKING:`` do not, since they never run).
(c) An asset module (a module of the Dagster package that defines an ``@asset``, ``@multi_asset``
    or ``@graph_asset``) imports from another asset module only the assets defined there; shared
    helpers belong in a module that defines no asset.
(d) The annotator imports no ``dagster*``, no Dagster package and no command line; the command
    line is imported by no other package.
(e) A module over 600 lines says why it is one module in its docstring, in a paragraph starting
    ``Why one module:``; no class is over 300 lines.

The project's packages are the top-level ones that pyproject.toml's setuptools section names; the
command line is the package of the ``songexplorer`` console script, whether it sits inside
``songexplorer_core`` (``songexplorer_core.cli``) or at the top (``songexplorer_cli``).
"""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = "songexplorer_core"
FORBIDDEN_IN_CORE = ("dagster", "panel", "bokeh")  # and any module whose top-level name starts so
MODULE_LINES, CLASS_LINES = 600, 300
WHY_MARKER = "Why one module:"
ASSET_DECORATORS = {"asset", "multi_asset", "graph_asset", "graph_multi_asset"}

#: Files that break a rule today and that others are changing in the same issue (the lead owns
#: models/train/dataset/classify; the annotator is being restructured).
#: Each entry must still break its rule: once the file is fixed the test fails until the entry
#: is removed, so the list can only shrink.
KNOWN = {
}


@dataclass(frozen=True)
class Import:
    target: str            # the module imported from (absolute)
    names: tuple[str, ...]  # names taken from it ("" for ``import target``)
    line: int
    type_checking: bool


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: int
    imports: list[Import] = field(default_factory=list)

    @property
    def rel(self) -> str:
        return self.path.relative_to(self.root).as_posix()

    root: Path = ROOT


@dataclass
class Project:
    root: Path
    packages: list[str]
    cli: str
    modules: dict[str, Module]

    def room(self, module: str) -> str:
        top = module.split(".")[0]
        if module == self.cli or module.startswith(self.cli + "."):
            return "cli"
        if top == CORE:
            return "core"
        if "dagster" in top and top in self.packages:
            return "dagster"
        if "annotator" in top and top in self.packages:
            return "annotator"
        return "project" if top in self.packages else "external"


def _packages(root: Path) -> tuple[list[str], str]:
    config = tomllib.loads((root / "pyproject.toml").read_text())
    setuptools = config.get("tool", {}).get("setuptools", {})
    listed = setuptools.get("packages", {"find": {}})
    if isinstance(listed, list):  # packages = ["songexplorer_core", ...]
        tops = sorted({name.split(".")[0] for name in listed})
    else:  # [tool.setuptools.packages.find] include = ["songexplorer_core*", ...]
        patterns = listed.get("find", {}).get("include", ["*"])
        tops = sorted(p.name for p in root.iterdir() if (p / "__init__.py").is_file()
                      and any(fnmatch.fnmatch(p.name, pattern) for pattern in patterns))
    entry = config["project"]["scripts"]["songexplorer"].split(":")[0]
    parts = entry.split(".")
    # the CLI package: the entry module's top-level package, unless that is core, where it is the
    # subpackage holding the entry (songexplorer_core.cli)
    cli = parts[0] if parts[0] != CORE else ".".join(parts[:2])
    return tops, cli


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _collect_imports(module: Module, is_package: bool) -> None:
    package = module.name if is_package else module.name.rpartition(".")[0]

    def visit(node: ast.AST, type_checking: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_checking)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                module.imports.append(Import(alias.name, ("",), node.lineno, type_checking))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            module.imports.append(Import(target, tuple(a.name for a in node.names), node.lineno, type_checking))
        for child in ast.iter_child_nodes(node):
            visit(child, type_checking)

    visit(module.tree, False)


def load_project(root: Path = ROOT) -> Project:
    packages, cli = _packages(root)
    modules = {}
    for top in packages:
        for path in sorted((root / top).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            module = Module(_module_name(root, path), path, ast.parse(source, str(path)), len(source.splitlines()),
                            root=root)
            _collect_imports(module, path.name == "__init__.py")
            modules[module.name] = module
    return Project(root, packages, cli, modules)


def edges(project: Project, module: Module, *, runtime_only: bool = False):
    """``(imported project module, Import)`` for each project module that ``module`` imports: the
    module named, and each imported name that is itself a submodule."""
    for imp in module.imports:
        if runtime_only and imp.type_checking:
            continue
        targets = [imp.target] + [f"{imp.target}.{n}" for n in imp.names if n and f"{imp.target}.{n}" in project.modules]
        for target in targets:
            if target in project.modules:
                yield target, imp


def _where(module: Module, imp: Import) -> str:
    names = ", ".join(n for n in imp.names if n)
    what = f"from {imp.target} import {names}" if names else f"import {imp.target}"
    return f"{module.rel}:{imp.line}: `{what}`"


def _top(name: str) -> str:
    return name.split(".")[0]


# ---------------------------------------------------------------------------------------------
# the rules, each a list of messages


def rule_a_core(project: Project) -> list[str]:
    found = []
    for module in project.modules.values():
        if project.room(module.name) != "core":
            continue
        for imp in module.imports:
            room = project.room(imp.target)
            if _top(imp.target).startswith(FORBIDDEN_IN_CORE) or room not in ("core", "external"):
                found.append(f"{_where(module, imp)} breaks rule (a): {CORE} imports no dagster, panel, bokeh "
                             f"or other project package ({imp.target} is {room if room != 'external' else 'a UI/orchestration library'})")
    return found


def _cycle_in(component: set[str], graph: dict[str, dict[str, Import]]) -> list[str]:
    start = min(component)
    path, seen = [start], {start}

    def walk(node: str) -> list[str] | None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                return path + [start]
            if nxt in component and nxt not in seen:
                seen.add(nxt)
                path.append(nxt)
                if (found := walk(nxt)) is not None:
                    return found
                path.pop()
        return None

    return walk(start) or [start, start]


def rule_b_cycles(project: Project) -> list[str]:
    graph: dict[str, dict[str, Import]] = {name: {} for name in project.modules}
    for module in project.modules.values():
        for target, imp in edges(project, module, runtime_only=True):
            if target != module.name:
                graph[module.name].setdefault(target, imp)
    # Tarjan's strongly connected components, iteratively
    index, low, stack, on_stack, components, counter = {}, {}, [], set(), [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
    found = []
    for component in components:
        cycle = _cycle_in(component, graph)
        steps = "; ".join(_where(project.modules[a], graph[a][b]) for a, b in zip(cycle, cycle[1:]))
        found.append(f"{project.modules[cycle[0]].rel}: breaks rule (b), import cycle {' -> '.join(cycle)}: {steps}")
    return found


def _is_asset_decorator(node: ast.expr) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name in ASSET_DECORATORS


def asset_modules(project: Project) -> dict[str, set[str]]:
    """Modules of the Dagster package defining assets, with the names of the assets they define."""
    found = {}
    for module in project.modules.values():
        if project.room(module.name) != "dagster":
            continue
        assets = {node.name for node in ast.walk(module.tree)
                  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and any(_is_asset_decorator(d) for d in node.decorator_list)}
        if assets:
            found[module.name] = assets
    return found


def rule_c_assets(project: Project) -> list[str]:
    assets = asset_modules(project)
    found = []
    for name in assets:
        module = project.modules[name]
        for target, imp in edges(project, module):
            if target == name or target not in assets:
                continue
            taken = set(imp.names) if imp.target == target else {""}
            helpers = sorted(n if n else f"the whole module {target}" for n in taken - assets[target])
            if helpers:
                found.append(f"{_where(module, imp)} breaks rule (c): an asset module imports from another asset "
                             f"module only its assets ({', '.join(helpers)} "
                             f"{'is' if len(helpers) == 1 else 'are'} not an asset of {target}); "
                             "move shared helpers to a module that defines no asset")
    return found


def rule_d_annotator_cli(project: Project) -> list[str]:
    found = []
    for module in project.modules.values():
        room = project.room(module.name)
        for imp in module.imports:
            target_room = project.room(imp.target)
            if room == "annotator" and (_top(imp.target).startswith("dagster") or target_room in ("dagster", "cli")):
                found.append(f"{_where(module, imp)} breaks rule (d): the annotator imports no dagster, "
                             f"no Dagster package and no command line")
            elif room != "cli" and target_room == "cli" and room != "core":
                found.append(f"{_where(module, imp)} breaks rule (d): the command line ({project.cli}) is "
                             "imported by no other package")
    return found


def _docstring_has_reason(module: Module) -> bool:
    return WHY_MARKER in (ast.get_docstring(module.tree) or "")


def rule_e_sizes(project: Project) -> list[str]:
    found = []
    for module in project.modules.values():
        if module.lines > MODULE_LINES and not _docstring_has_reason(module):
            found.append(f"{module.rel}: {module.lines} lines breaks rule (e): a module over {MODULE_LINES} lines "
                         f"splits along its sections, or says why not in a docstring paragraph starting {WHY_MARKER!r}")
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > CLASS_LINES:
                found.append(f"{module.rel}:{node.lineno}: class {node.name} is {node.end_lineno - node.lineno + 1} "
                             f"lines, breaks rule (e): no class over {CLASS_LINES} lines")
    return found


# ---------------------------------------------------------------------------------------------
# the tests


@pytest.fixture(scope="module")
def project() -> Project:
    return load_project()


def _check(rule: str, found: list[str], project: Project) -> None:
    """Fail with every message not in :data:`KNOWN` (a message starts with the file's relative
    path), and with one for each KNOWN entry of ``rule`` whose file exists but no longer breaks
    it (remove the entry)."""
    unexpected = [message for message in found if (rule, message.split(":", 1)[0]) not in KNOWN]
    broken = {message.split(":", 1)[0] for message in found}
    for (known_rule, rel), reason in KNOWN.items():
        if known_rule == rule and (project.root / rel).exists() and rel not in broken:
            unexpected.append(f"{rel} no longer breaks rule ({rule}): remove its KNOWN entry ({reason})")
    if unexpected:
        pytest.fail("\n".join(unexpected), pytrace=False)


def test_the_rooms_are_found(project):
    """The checks below see the whole project: core, the Dagster package with its assets, the
    annotator and the command line (so an empty scan cannot pass)."""
    rooms = {project.room(name) for name in project.modules}
    assert {"core", "dagster", "annotator", "cli"} <= rooms, rooms
    assert sum(project.room(n) == "core" for n in project.modules) > 10
    assert len(asset_modules(project)) >= 3


def test_core_imports_no_orchestration_ui_or_cli(project):
    _check("a", rule_a_core(project), project)


def test_no_import_cycle(project):
    _check("b", rule_b_cycles(project), project)


def test_asset_modules_share_only_assets(project):
    _check("c", rule_c_assets(project), project)


def test_annotator_and_cli_stay_apart(project):
    _check("d", rule_d_annotator_cli(project), project)


def test_long_modules_say_why_and_classes_stay_short(project):
    _check("e", rule_e_sizes(project), project)


# ---------------------------------------------------------------------------------------------
# the rules catch what they are for, on a small made-up project


def test_each_rule_catches_its_breach(tmp_path):
    files = {
        "pyproject.toml": '[project]\nname = "x"\n[project.scripts]\nsongexplorer = "songexplorer_cli:main"\n'
                          '[tool.setuptools.packages.find]\n'
                          'include = ["songexplorer_core*", "songexplorer_dagster*", "songexplorer_annotator*", '
                          '"songexplorer_cli*"]\n',
        "songexplorer_core/__init__.py": "",
        "songexplorer_core/a.py": "def f():\n    import dagster\n    from songexplorer_core import b\n",
        "songexplorer_core/b.py": "from songexplorer_core.a import f\n",
        "songexplorer_core/long.py": '"""Long."""\n' + "x = 1\n" * 700,
        "songexplorer_core/big.py": "class C:\n" + "    x = 1\n" * 400,
        "songexplorer_dagster/__init__.py": "",
        "songexplorer_dagster/defs/__init__.py": "",
        "songexplorer_dagster/defs/one.py": "import dagster as dg\n\ndef helper():\n    pass\n\n"
                                             "@dg.asset\ndef first():\n    pass\n",
        "songexplorer_dagster/defs/two.py": "import dagster as dg\nfrom songexplorer_dagster.defs.one import first\n\n"
                                             "@dg.asset(deps=[first])\ndef second():\n"
                                             "    from songexplorer_dagster.defs.one import helper\n",
        "songexplorer_annotator/__init__.py": "from songexplorer_cli import main\n",
        "songexplorer_cli/__init__.py": "def main():\n    pass\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    made_up = load_project(tmp_path)
    assert made_up.cli == "songexplorer_cli"
    assert [m.split(":")[:2] for m in rule_a_core(made_up)] == [["songexplorer_core/a.py", "2"]]
    assert len(rule_b_cycles(made_up)) == 1 and "songexplorer_core.a -> songexplorer_core.b" in rule_b_cycles(made_up)[0]
    (only,) = rule_c_assets(made_up)
    assert only.startswith("songexplorer_dagster/defs/two.py:6:") and "helper" in only and "first" not in only.split("(")[1]
    assert [m.split(":")[:2] for m in rule_d_annotator_cli(made_up)] == [["songexplorer_annotator/__init__.py", "1"]]
    assert sorted(m.split(":")[0] for m in rule_e_sizes(made_up)) == ["songexplorer_core/big.py", "songexplorer_core/long.py"]
