"""The package's layering: its import graph (imports inside functions counted too) has no circle,
between modules or between packages."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in its file)."""
    mods = {".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
            for p in (SRC / "endopat").rglob("*.py")}
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != m:
                    graph[m].add(name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_circle():
    assert circles(import_graph()) == []


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph with each module folded into its top sub-package (endopat.study.runner ->
    endopat.study): no package may import a package that imports it back."""
    top = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    out: dict[str, set[str]] = {top(m): set() for m in graph}
    for m, targets in graph.items():
        out[top(m)] |= {top(t) for t in targets if top(t) != top(m)}
    return out


def test_no_package_imports_a_package_that_imports_it_back():
    assert circles(package_graph(import_graph())) == []


# the declared layers, lowest first: a module imports its own layer and those below, never above
LAYERS = [
    {"endopat", "errors", "seeds", "machine", "best_epoch", "io", "labels", "losses", "archs", "weight_layouts", "choose", "colour",
     "metrics", "drawing", "streams"},  # what everything may use: files, label semantics, pure losses and metrics, drawing
    {"data", "annotation", "config", "augment"},  # reading the user's data and settings
    {"networks", "checkpoints", "runtime", "training_state", "encoder_weights", "segmenter"},  # models and their files
    {"tasks", "semi", "embedding", "evaluate", "export"},  # what a model does
    {"pretrain", "finetune", "predict", "predict_video", "report", "suggest"},  # the commands' own work
    {"study", "serve"},  # compositions of those
    {"demo", "cli", "__main__"},  # entry points
]


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    for k, names in enumerate(LAYERS):
        if top in names:
            return k
    raise AssertionError(f"{module}: not in a declared layer (tests/test_layout.py LAYERS)")


def test_every_import_points_to_the_same_or_a_lower_layer():
    graph = import_graph()
    upward = [f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a)]
    assert upward == []


def test_training_loops_do_not_import_the_report_the_study_or_the_server():
    graph = import_graph()
    for loop in ("endopat.finetune", "endopat.pretrain"):
        assert not {t for t in graph[loop] if t.startswith(("endopat.report", "endopat.study", "endopat.serve"))}, loop


def test_the_package_folding_finds_a_circle_between_packages():
    graph = {"endopat.a.x": {"endopat.b.y"}, "endopat.b.y": set(), "endopat.b.z": {"endopat.a.w"}, "endopat.a.w": set()}
    assert circles(package_graph(graph)) == [["endopat.a", "endopat.b"]]


def test_the_circle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


MAX_LINES, MAX_FUNCTION = 300, 60


def too_long(path: Path) -> list[str]:
    """A module over MAX_LINES lines, and every function over MAX_FUNCTION lines, of ``path``."""
    text = path.read_text()
    out = [f"{path.name}: {len(text.splitlines())} lines"] if len(text.splitlines()) > MAX_LINES else []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION:
            out.append(f"{path.name}: {node.name} has {node.end_lineno - node.lineno + 1} lines")
    return out


def test_no_module_is_over_300_lines_and_no_function_over_60():
    assert [t for p in sorted((SRC / "endopat").rglob("*.py")) for t in too_long(p)] == []


def test_the_length_check_finds_a_long_function(tmp_path):
    long = tmp_path / "m.py"
    long.write_text("def f():\n" + "    x = 1\n" * 61)
    assert too_long(long) == ["m.py: f has 62 lines"]
