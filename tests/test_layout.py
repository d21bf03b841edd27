"""The package's own layout rules (STYLE.md): which modules may import Dask and the kernels."""

import ast
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


def importers(prefixes: tuple[str, ...]) -> set[str]:
    """The package's modules outside ``gpuseg/kernels`` importing anything under ``prefixes``."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        if relative.startswith("gpuseg/kernels/"):
            continue
        if any(m == p or m.startswith(f"{p}.") for m in imported_modules(path) for p in prefixes):
            found.add(relative)
    return found


def test_only_the_distributed_module_imports_dask():
    assert importers(("dask", "distributed", "dask_ml")) == {"gpuseg/distributed.py"}


def test_only_the_backend_imports_the_kernels():
    kernel_modules = ("gpuseg.kernels.fused", "gpuseg.kernels.gemm", "gpuseg.kernels.seeding",
                      "gpuseg.kernels.cuda_fused", "gpuseg.kernels.cuda_seeding",
                      "gpuseg.kernels.assign_accumulate")  # fmt: skip
    found = importers(kernel_modules)
    # ``from gpuseg import kernels`` names the package itself.
    found |= {
        p.relative_to(PACKAGE.parent).as_posix()
        for p in PACKAGE.glob("*.py")
        if "gpuseg.kernels" in imported_modules(p) and p.name != "__init__.py"
    }
    assert found == {"gpuseg/_backend.py"}
