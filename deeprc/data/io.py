"""Reading CSV and Parquet files with each rank taking its share, and writing one Parquet part per rank."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from deeprc.data._comm import collective
from deeprc.data.types import common_type
from deeprc.errors import config_error

_SUFFIXES = {"csv": (".csv", ".csv.gz", ".csv.bz2", ".tsv"), "parquet": (".parquet", ".pq")}


def expand_paths(paths: str | os.PathLike | Sequence[str | os.PathLike], kind: str) -> list[Path]:
    """Files named by `paths` (files, globs or folders), sorted within each entry; error if any is missing."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for entry in paths:
        text = str(entry)
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise config_error(text, None, f"no {kind} file matches this pattern",
                                   "check the path and the pattern, or create the files first")
            files.extend(Path(m) for m in matches if Path(m).is_file())
        elif Path(text).is_dir():
            found = sorted(p for p in Path(text).rglob("*") if p.is_file() and p.name.endswith(_SUFFIXES[kind])
                           and not p.name.startswith((".", "_")))
            if not found:
                raise config_error(text, None, f"this folder holds no {kind} file ({', '.join(_SUFFIXES[kind])})",
                                   f"put the {kind} files there or point to the right folder")
            files.extend(found)
        elif Path(text).is_file():
            files.append(Path(text))
        else:
            raise config_error(text, None, f"{kind} input file does not exist",
                               "check the path (relative paths are taken from the current directory)")
    if not files:
        raise config_error(None, None, f"no {kind} input was given", "pass at least one file, glob or folder")
    return files


def unify_file_schemas(schemas: list[tuple[str, pa.Schema]]) -> pa.Schema:
    """The common schema of several files; a clear error naming file and column when they disagree."""
    first_file, first = schemas[0]
    fields = {f.name: f.type for f in first}
    for path, schema in schemas[1:]:
        missing = [n for n in fields if n not in schema.names]
        extra = [n for n in schema.names if n not in fields]
        if missing or extra:
            column = (missing or extra)[0]
            what = (f"column '{column}' of {first_file} is missing here" if missing
                    else f"column '{column}' is not in {first_file}")
            raise config_error(path, column, f"schema mismatch between inputs: {what}",
                               "give all files the same columns, or read them separately and use DTable.concat")
        for name in schema.names:
            promoted = common_type(fields[name], schema.field(name).type)
            if promoted is None:
                raise config_error(path, name, f"schema mismatch between inputs: column '{name}' is "
                                   f"{schema.field(name).type} here but {fields[name]} in {first_file}",
                                   "make the column the same type in every file (or pass column_types for CSV)")
            fields[name] = promoted
    return pa.schema([(n, fields[n]) for n in first.names])


def _conform(table: pa.Table, schema: pa.Schema, path: str) -> pa.Table:
    """Reorder and cast a file's table to the common schema."""
    table = table.select(schema.names)
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise config_error(path, None, f"cannot convert this file to the common schema ({exc})",
                           "make the columns the same type in every file") from exc


def _share(n: int, size: int, rank: int) -> tuple[int, int]:
    """Contiguous [start, stop) of n items for this rank."""
    return n * rank // size, n * (rank + 1) // size


def read_parquet(paths: Any, comm: Any, columns: Sequence[str] | None = None) -> tuple[pa.Table, str]:
    """This rank's share of the row groups of the Parquet files, conformed to their common schema."""
    files = collective(comm, lambda: expand_paths(paths, "parquet"))

    def meta_for(share: list[Path]) -> list[tuple[str, bytes, list[int]]]:
        out = []
        for path in share:
            try:
                md = pq.ParquetFile(path).metadata
            except (OSError, pa.ArrowInvalid) as exc:
                raise config_error(path, None, f"not a readable Parquet file ({exc})",
                                   "check the file, or remove it from the input") from exc
            sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
            out.append((str(path), md.schema.to_arrow_schema().serialize().to_pybytes(), sizes))
        return out

    lo, hi = _share(len(files), comm.size, comm.rank)
    mine = collective(comm, lambda: meta_for(files[lo:hi]))
    metas = [m for part in (comm.allgather(mine) if comm.size > 1 else [mine]) for m in part]
    schemas = [(p, pa.ipc.read_schema(pa.py_buffer(s))) for p, s, _ in metas]

    def unify() -> pa.Schema:
        schema = unify_file_schemas(schemas)
        for col in columns or []:
            if col not in schema.names:
                raise config_error(schemas[0][0], col, "column not found in the input files",
                                   f"use one of: {', '.join(schema.names)}")
        return schema.select(list(columns)) if columns else schema

    schema = collective(comm, unify)
    # units of work: (file, row group, rows); balance rows across ranks with contiguous runs
    units = [(p, i, n) for p, _, sizes in metas for i, n in enumerate(sizes)]
    total = sum(n for _, _, n in units)
    begin, end = _share(total, comm.size, comm.rank)
    picked: dict[str, list[int]] = {}
    seen = 0
    for path, group, n in units:
        middle = seen + n / 2
        if begin <= middle < end or (n == 0 and begin <= seen < end):
            picked.setdefault(path, []).append(group)
        seen += n

    def read() -> pa.Table:
        parts = [_conform(pq.ParquetFile(p).read_row_groups(g, columns=schema.names), schema, p)
                 for p, g in picked.items()]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    return collective(comm, read), _describe(files)


def read_csv(paths: Any, comm: Any, column_types: dict[str, pa.DataType] | None = None,
             delimiter: str | None = None) -> tuple[pa.Table, str, int]:
    """This rank's share of the CSV files (whole files per rank), their common schema, the file count."""
    files = collective(comm, lambda: expand_paths(paths, "csv"))
    lo, hi = _share(len(files), comm.size, comm.rank)

    def load() -> list[tuple[str, pa.Table]]:
        out = []
        for path in files[lo:hi]:
            delim = delimiter or ("\t" if str(path).endswith(".tsv") else ",")
            try:
                table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delim),
                                       convert_options=pacsv.ConvertOptions(column_types=column_types or {}))
            except (OSError, pa.ArrowInvalid) as exc:
                raise config_error(path, None, f"cannot parse this CSV file ({exc})",
                                   "fix the file (header row, same number of fields per line)") from exc
            out.append((str(path), table))
        return out

    tables = collective(comm, load)
    mine = [(p, t.schema.serialize().to_pybytes()) for p, t in tables]
    gathered = [m for part in (comm.allgather(mine) if comm.size > 1 else [mine]) for m in part]
    schemas = [(p, pa.ipc.read_schema(pa.py_buffer(s))) for p, s in gathered]
    schema = collective(comm, lambda: unify_file_schemas(schemas))
    local = collective(comm, lambda: [_conform(t, schema, p) for p, t in tables])
    return (pa.concat_tables(local) if local else schema.empty_table()), _describe(files), len(files)


def _describe(files: list[Path]) -> str:
    """A short name for where a table came from, used in error messages."""
    if len(files) == 1:
        return str(files[0])
    return f"{files[0]} (and {len(files) - 1} more files)"


def write_parquet(table: pa.Table, folder: str | os.PathLike, rank: int, size: int) -> Path:
    """Write this rank's partition as FOLDER/part-<rank>.parquet (rank 0 removes stale parts >= size)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        for old in out.glob("part-*.parquet"):
            index = old.name[len("part-"): -len(".parquet")]
            if index.isdigit() and int(index) >= size:
                old.unlink()
    path = out / f"part-{rank}.parquet"
    pq.write_table(table, path)
    return path
