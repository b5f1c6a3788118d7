"""The pipeline runtime: spec, DAG engine, pilot and batch runners, run folder, resume, report.

Entry points: `deeprc-deploy run` / `report` (deeprc.pipeline.cli), `run_pipeline()` for code,
and `python -m deeprc.pipeline.entry` (the stage entry point both runners start).
"""
