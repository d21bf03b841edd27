"""The package's own layout rules (STYLE.md): which modules may import Dask and the kernels."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gpuseg"


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports at run time, at any depth of its code (lazy imports
    included; ``if TYPE_CHECKING:`` blocks, which never run, left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            node.body = []
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def importers(imports) -> set[str]:
    """The package's modules outside ``gpuseg/kernels`` with an import for which ``imports``
    (a module name -> bool) is true."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        if not relative.startswith("gpuseg/kernels/") and any(map(imports, imported_modules(path))):
            found.add(relative)
    return found


def under(module: str, package: str) -> bool:
    """Whether ``module`` is ``package`` or inside it."""
    return module == package or module.startswith(f"{package}.")


def test_only_the_distributed_module_imports_dask():
    def dask(module):
        return any(under(module, p) for p in ("dask", "distributed", "dask_ml"))

    assert importers(dask) == {"gpuseg/distributed.py"}


def test_only_the_backend_imports_the_kernels():
    def kernels(module):
        # Their data types aside, and the host-memory helpers with no device twin, nothing to
        # dispatch: the column interleave that fills Parquet blocks, and counting labels.
        return under(module, "gpuseg.kernels") and not any(
            under(module, f"gpuseg.kernels.{name}") for name in ("types", "interleave", "counts")
        )

    assert importers(kernels) == {"gpuseg/_backend.py"}


def test_the_package_and_the_one_pass_commands_start_without_sklearn_or_dask():
    # A fresh interpreter: what `import gpuseg` and the commands that only read a model pull in.
    code = (
        "import sys, gpuseg, gpuseg.cli, gpuseg.pipeline, gpuseg.profiles, gpuseg.report\n"
        "print(sorted(m for m in ('sklearn', 'dask', 'distributed') if m in sys.modules))\n"
        "from gpuseg import KMeans\n"
        "print(KMeans.__module__, 'sklearn' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["[]", "gpuseg.estimator True"]
