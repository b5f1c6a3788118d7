"""Run one stage function on the ranks of an mpiexec launch (used by the multi-rank tests).

    mpiexec -n 2 python tests/workloads/mpi_stage.py FUNCTION RUN_DIR NAME PARAMS_JSON INPUTS_JSON
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    import deeprc.comm
    from deeprc.stage import StageContext, resolve

    target, run, name, params, inputs = argv
    comm = deeprc.comm.init()
    logging.basicConfig(level=logging.INFO, format=f"[rank {comm.rank}] %(message)s")
    run_dir = Path(run)
    ctx = StageContext(name=name, comm=comm, params=json.loads(params),
                       inputs={k: Path(v) for k, v in json.loads(inputs).items()},
                       outdir=run_dir / name, run_dir=run_dir, seed=0)
    result = resolve(target)(ctx)
    ranks = comm.gather({"rank": comm.rank, "size": comm.size, "result_keys": sorted(result)}, root=0)
    if comm.rank == 0:
        (run_dir / f"{name}.result.json").write_text(json.dumps({"metrics": result, "ranks": ranks}))
    comm.barrier()


if __name__ == "__main__":
    main(sys.argv[1:])
