"""Fixtures for the dataframe tests: one MPI launch per rank count runs every generated case."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dtable_cases import KERNEL_OPS, generate_cases, reference  # noqa: E402

from deeprc.data.ipc import from_bytes  # noqa: E402

CASES_PER_OP = 15
# (ranks, local kernel): every rank count with the default kernels, 2 ranks on Arrow/Acero and on
# polars (the polars run also cuts exchanges into 1 KiB rounds, to test the chunked path)
CONFIGS = ((1, "auto"), (2, "auto"), (3, "auto"), (2, "arrow"), (2, "polars"))


def launch(mpi_env: dict, ranks: int, script: Path, args: list[str], timeout: int = 240,
           extra_env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `script` on `ranks` real MPI ranks (mpiexec from the venv), failing loudly on error."""
    env = dict(mpi_env)
    env.update(POLARS_MAX_THREADS="1", OMP_NUM_THREADS="1", DEEPRC_COMM_TIMEOUT="60",
               PYTHONPATH=os.pathsep.join([str(HERE.parents[1]), env.get("PYTHONPATH", "")]), **(extra_env or {}))
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    cmd = [mpiexec, "-n", str(ranks), "--oversubscribe", sys.executable, str(script), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="session")
def io_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Parquet and CSV inputs (good, mismatched) for the file cases."""
    from dtable_cases import write_io_files

    return write_io_files(tmp_path_factory.mktemp("dtable-io"))


@pytest.fixture(scope="session")
def dtable_cases(io_folder: Path) -> list[dict]:
    from dtable_cases import io_cases

    cases = generate_cases(CASES_PER_OP)
    for case in io_cases(io_folder):
        case["id"] = len(cases)
        cases.append(case)
    return cases


@pytest.fixture(scope="session")
def dtable_results(dtable_cases: list[dict], mpi_env: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{(ranks, kernel): {case id: result}} from one launch of mpi_runner.py per configuration."""
    folder = tmp_path_factory.mktemp("dtable")
    cases_file = folder / "cases.pkl"
    cases_file.write_bytes(pickle.dumps(dtable_cases))
    kernel_file = folder / "kernel-cases.pkl"
    kernel_file.write_bytes(pickle.dumps([c for c in dtable_cases if c["op"] in KERNEL_OPS]))
    results = {}
    for ranks, kernel in CONFIGS:
        out = folder / f"results-{ranks}-{kernel}.pkl"
        cases_file_here = cases_file if kernel == "auto" else kernel_file
        launch(mpi_env, ranks, HERE / "mpi_runner.py", [str(cases_file_here), str(out)],
               extra_env={"DEEPRC_DATA_KERNEL": kernel, "DEEPRC_DATA_CHUNK_BYTES": "1024" if kernel == "polars" else ""})
        results[ranks, kernel] = pickle.loads(out.read_bytes())
    return results


@pytest.fixture(scope="session")
def dtable_references(dtable_cases: list[dict]) -> dict:
    """{case id: DuckDB's answer on the whole input}."""
    return {c["id"]: reference(c, [from_bytes(b) for b in c["tables"]]) for c in dtable_cases
            if not c["op"].startswith("io_")}
