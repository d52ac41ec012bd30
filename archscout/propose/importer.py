"""Import other people's candidates into a study: ASI-Arch's published JSON, or plain .py files.

`parse_asi_arch` reads ASI-Arch's published format (GAIR-NLP/ASI-Arch `data/106.json`: a list of
objects with `name`, `program` (the code), `motivation`, `index`, `parent` (an index in their tree),
`result` (their training-loss curve and benchmark scores as CSV text), `score`, `parameters`,
`summary`, `name_new`). `import_entries` stores each valid entry as an architecture (origin `import`)
with a queued experiment in state `proposed`, so `archscout run` evaluates it like any candidate;
parents are linked where the parent is imported too; their published figures go to
`external_results`, labelled as theirs, never into runs or scores. `import_files` does the same for
.py files (no external figures). Importing twice adds nothing twice (same code = already present).

Bad input: a path that does not exist or a JSON that is not ASI-Arch's format raises `ImportInputError`
(one line); within a valid file, entries without code, without a name, with a duplicate name, with
a syntax error or with the code of an architecture already stored are listed with their reason, the
others imported. `attach_tree` adds, from ASI-Arch's tree of explored nodes (`data/tree.json`: index,
name, parent, score per node, no code), each imported architecture's ancestry and tree score to its
external reference (parents in our lineage stay direct parents only). Not covered: their cognition
base and their SVG pictures.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from archscout.propose.novelty import normalized_hash
from archscout.records import code_hash
from archscout.store.external import add_external, external_by_key, externals, set_external_data, set_parent
from archscout.store.db import StudyDB

SOURCE = "asi-arch"
LABEL = (
    "published by ASI-Arch (GAIR-NLP/ASI-Arch, data/106.json): their training-loss curve, benchmark "
    "scores, parameter count and fitness score; not measured by archscout"
)


class HasDB(Protocol):
    """What the import needs of an open study (`study.StudyHandle` is one): its database. A protocol,
    so that proposals do not import the study layer above them."""

    db: StudyDB


class ImportInputError(Exception):
    """The input as a whole cannot be imported (missing path, not ASI-Arch's format): one line."""


class Entry(BaseModel):
    label: str  # how the entry is named in messages: its name, or its position
    name: str
    code: str
    motivation: str
    source_id: str | None = None  # ASI-Arch's index
    parent_source_id: str | None = None
    reference: dict[str, Any] | None = None  # their published figures


class ImportReport(BaseModel):
    imported: list[tuple[str, int]] = Field(default_factory=list)  # (label, architecture id)
    present: list[tuple[str, int]] = Field(default_factory=list)  # already in the study
    rejected: list[tuple[str, str]] = Field(default_factory=list)  # (label, reason)
    linked_parents: int = 0


def _num(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _csv_row(text: Any) -> dict[str, float | None]:
    """ASI-Arch's one-row CSV ("',col1,col2\\nname,v1,v2'") -> {col: value}."""
    if not isinstance(text, str) or "\n" not in text:
        return {}
    header, row = text.strip().splitlines()[:2]
    return {h: _num(v) for h, v in zip(header.split(",")[1:], row.split(",")[1:])}


def _reference(raw: dict[str, Any]) -> dict[str, Any]:
    result = raw.get("result") if isinstance(raw.get("result"), dict) else {}
    train = _csv_row(result.get("train"))
    tests = _csv_row(result.get("test"))
    steps = sorted((int(k), v) for k, v in train.items() if k.isdigit() and v is not None)
    return {
        "index": raw.get("index"),
        "parent_index": raw.get("parent"),
        "name_new": raw.get("name_new"),
        "summary": raw.get("summary"),
        "parameters": raw.get("parameters"),
        "score": _num(str(raw.get("score"))) if raw.get("score") is not None else None,
        "train_loss": {str(k): v for k, v in steps},
        "train_loss_final": steps[-1][1] if steps else None,
        "benchmarks": {k: v for k, v in tests.items() if k != "average"},
        "benchmark_average": tests.get("average"),
    }


def parse_asi_arch(path: Path) -> tuple[list[Entry], list[tuple[str, str]]]:
    """(valid entries, rejected (label, reason)); raises ImportInputError for a wrong file."""
    path = Path(path)
    if not path.exists():
        raise ImportInputError(f"no such file: {path}")
    if path.is_dir():
        path = path / "data" / "106.json" if (path / "data" / "106.json").exists() else path / "106.json"
        if not path.exists():
            raise ImportInputError(f"no ASI-Arch data/106.json under {path.parent}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ImportInputError(f"{path} is not JSON: {err}") from None
    if isinstance(data, dict) and isinstance(data.get("results"), list) and "total_records" in data:
        raise ImportInputError(
            f"{path} is ASI-Arch's tree of {len(data['results'])} explored nodes, which has no code; "
            "import data/106.json"
        )
    if isinstance(data, dict) and "program" in data:
        data = [data]
    if not isinstance(data, list) or not any(isinstance(e, dict) and ("program" in e or "name" in e) for e in data):
        raise ImportInputError(
            f"{path} is not in ASI-Arch's format (a JSON list of objects with name, program, motivation)"
        )
    entries, rejected, seen = [], [], {}
    for i, raw in enumerate(data):
        label = f"entry {i}"
        if not isinstance(raw, dict):
            rejected.append((label, "not an object"))
            continue
        name = raw.get("name")
        if isinstance(name, str) and name.strip():
            label = name = name.strip()
        else:
            rejected.append((label, "no name"))
            continue
        code = raw.get("program")
        if not isinstance(code, str) or not code.strip():
            rejected.append((label, "no code (empty or missing `program`)"))
            continue
        if name in seen:
            rejected.append((label, f"duplicate name (first at entry {seen[name]})"))
            continue
        seen[name] = i
        try:
            ast.parse(code)
        except SyntaxError as err:
            rejected.append((label, f"syntax error at line {err.lineno}: {err.msg}"))
            continue
        motivation = raw.get("motivation") if isinstance(raw.get("motivation"), str) else ""
        source_id = str(raw["index"]) if raw.get("index") is not None else f"name:{name}"
        parent = str(raw["parent"]) if raw.get("parent") not in (None, "") else None
        entries.append(Entry(label=label, name=name, code=code, motivation=motivation or "imported from ASI-Arch",
                             source_id=source_id, parent_source_id=parent, reference=_reference(raw)))
    return entries, rejected


def read_files(paths: list[Path]) -> tuple[list[Entry], list[tuple[str, str]]]:
    """Candidate .py files (a folder stands for its *.py files) -> (entries, rejected)."""
    entries, rejected = [], []
    for given in paths:
        files = sorted(Path(given).glob("*.py")) if Path(given).is_dir() else [Path(given)]
        for path in files:
            if not path.is_file():
                rejected.append((str(path), "no such file"))
                continue
            if path.suffix != ".py":
                rejected.append((str(path), "not a .py file"))
                continue
            try:
                code = path.read_text()
                tree = ast.parse(code)
            except (UnicodeDecodeError, SyntaxError) as err:
                where = f" at line {err.lineno}" if isinstance(err, SyntaxError) else ""
                rejected.append((str(path), f"cannot be read as Python{where}: {getattr(err, 'msg', err)}"))
                continue
            doc = ast.get_docstring(tree) or f"imported from {path.name}"
            entries.append(Entry(label=str(path), name=path.stem, code=code, motivation=doc))
    return entries, rejected


def import_entries(study: HasDB, entries: list[Entry], source: str | None = SOURCE) -> ImportReport:
    """Store each entry with a queued experiment; returns what was imported, present, rejected."""
    db = study.db
    report = ImportReport()
    by_source_id: dict[str, int] = {}
    for entry in entries:
        existing = db.architecture_by_code_hash(code_hash(entry.code))
        if existing is not None and existing.name != entry.name:
            report.rejected.append((entry.label, f"same code as architecture #{existing.id} ({existing.name})"))
            continue
        if existing is not None:
            report.present.append((entry.label, existing.id))
            if entry.source_id:
                by_source_id[entry.source_id] = existing.id
            continue
        norm = normalized_hash(entry.code)
        if twins := db.architectures_by_norm_hash(norm):
            report.rejected.append((entry.label, f"same code as architecture #{twins[0].id}"))
            continue
        with db.transaction() as tx:
            exp = db.experiments.start(proposer="import", note=f"imported {entry.label}", conn=tx)
            arch_id = db.add_architecture(entry.code, name=entry.name, origin="import", norm_hash=norm,
                                          motivation=entry.motivation, experiment_id=exp.id, conn=tx)
            db.experiments.advance(exp.id, "proposed", architecture_id=arch_id, conn=tx)
            if source and entry.source_id and entry.reference is not None:
                if external_by_key(db, source, entry.source_id, conn=tx) is None:
                    add_external(db, arch_id, source, entry.source_id, LABEL, entry.reference, conn=tx)
        report.imported.append((entry.label, arch_id))
        if entry.source_id:
            by_source_id[entry.source_id] = arch_id
    if source:
        # earlier imports count too: a parent imported last time links a child imported now
        for ext in externals(db, source):
            by_source_id.setdefault(ext.source_id, ext.architecture_id)
        for entry in entries:
            child = by_source_id.get(entry.source_id or "")
            parent = by_source_id.get(entry.parent_source_id or "")
            if child and parent and parent != child:
                arch = db.architecture(child)
                if arch is not None and arch.parent_id is None:
                    set_parent(db, child, parent)
                    report.linked_parents += 1
    return report


def parse_tree(path: Path) -> dict[str, dict[str, Any]]:
    """ASI-Arch's tree.json -> {index: node}; raises ImportInputError for another file."""
    path = Path(path)
    if not path.is_file():
        raise ImportInputError(f"no such file: {path}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ImportInputError(f"{path} is not JSON: {err}") from None
    nodes = data.get("results") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not all(isinstance(n, dict) and "index" in n for n in nodes):
        raise ImportInputError(f"{path} is not ASI-Arch's tree format (an object with a `results` list of nodes)")
    return {str(n["index"]): n for n in nodes}


def attach_tree(study: HasDB, tree: dict[str, dict[str, Any]], source: str = SOURCE) -> int:
    """Store each imported architecture's ancestry in the tree; returns how many were found in it."""
    found = 0
    for ext in externals(study.db, source):
        node = tree.get(ext.source_id)
        if node is None:
            continue
        found += 1
        chain, seen = [], {ext.source_id}
        parent = node.get("parent")
        while parent is not None and str(parent) in tree and str(parent) not in seen:
            seen.add(str(parent))
            up = tree[str(parent)]
            chain.append({"index": str(parent), "name": up.get("name"), "score": up.get("score")})
            parent = up.get("parent")
        set_external_data(study.db, ext.id, {**ext.data, "tree_score": node.get("score"), "tree_ancestors": chain})
    return found
