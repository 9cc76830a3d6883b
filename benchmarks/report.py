"""Writing a benchmark's results: ``<out>.json`` (the data) and ``<out>.md`` (the report), and printing the report."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(out: Path, data: dict, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    out.with_suffix(".md").write_text(text)
    print(text)


def provenance_lines(report: dict, dataset: str) -> list[str]:
    """Markdown paragraphs saying which part of ``dataset`` a report covers (``ids_below``) and any ``note``."""
    lines = []
    if report.get("ids_below"):
        lines += [f"Only networks with id < {report['ids_below']} (`--ids-below`): {dataset} before its extension.", ""]
    if report.get("note"):
        lines += [report["note"], ""]
    return lines


def merge_meta(saved: dict, meta: dict, ran: str) -> dict:
    """The meta of saved results joined with a later run's (``--merge``): both machines and both commands named.

    ``ran`` says what the later run covered; results made with other steps or seeds cannot be merged."""
    if saved["steps"] != meta["steps"] or saved["seeds"] != meta["seeds"]:
        raise SystemExit(f"--merge: the saved results used steps {saved['steps']} / seeds {saved['seeds']}")
    machine = meta["machine"] if saved["machine"] == meta["machine"] else f"{saved['machine']}; {ran}: {meta['machine']}"
    return {**saved, **meta, "machine": machine, "command": f"{saved['command']}`, then `{meta['command']}"}
