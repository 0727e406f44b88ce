"""runtime/ has no import cycle: a module that needs another's internals inside a function (and
types what it gets as ``Any``) hides a cycle that a refactor will one day turn into an ImportError.
The graph counts every import wherever it is written (tests/import_graph.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.import_graph import cycles, import_graph, module_names
from tests.layers import TESTS_DIR

RUNTIME = TESTS_DIR.parent / "runtime"


def test_given_the_runtime_package_when_its_import_graph_is_read_then_it_has_no_cycle() -> None:
    modules = module_names(RUNTIME)
    graph = import_graph(modules)

    found = cycles(graph)

    assert len(modules) > 40 and sum(map(len, graph.values())) > 100  # the scan saw the real tree
    assert found == [], "import cycles in runtime/:\n" + "\n".join(" -> ".join(c) for c in found)


def test_given_a_cycle_through_a_function_level_import_when_scanned_then_it_is_reported(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "sub/__init__.py": "",
        "a.py": "from pkg.sub import b\n",
        "sub/b.py": """
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from pkg import c
            """,
        "c.py": """
            def later():
                from . import a
            """,
        "d.py": "import pkg.sub.b\n",  # imports into the cycle, is not part of it
    }
    for name, text in files.items():
        (package / name).write_text(textwrap.dedent(text))

    graph = import_graph(module_names(package))

    assert graph["pkg.d"] == {"pkg.sub", "pkg.sub.b"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]


def test_given_a_package_init_that_imports_an_outside_module_importing_the_package_then_it_is_a_cycle(
    tmp_path: Path,
) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg import tool\n")
    (package / "sub" / "inner.py").write_text("from pkg.sub import x\n")  # its own package: no edge
    (package / "tool.py").write_text("from pkg.sub.inner import helper\n")

    graph = import_graph(module_names(package))

    assert graph["pkg.sub.inner"] == set()
    assert cycles(graph) == [["pkg.sub", "pkg.tool", "pkg.sub"]]
