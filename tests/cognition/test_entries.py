"""The shipped entries: valid, numerous, from many distinct works, and written one by one."""

from __future__ import annotations

import json
import re
from collections import defaultdict

from archscout.cognition.index import ENTRIES_DIR, CognitionBase, CognitionEntry

PROSE = ("trigger", "background", "algorithm", "implementation")


def _entries() -> list[CognitionEntry]:
    return CognitionBase.load(backend="bm25").entries


def test_every_package_file_validates_and_is_named_by_its_id():
    for path in sorted(ENTRIES_DIR.glob("*.json")):
        entry = CognitionEntry.model_validate(json.loads(path.read_text(encoding="utf-8")))
        assert path.stem == entry.id


def test_the_base_has_at_least_40_entries_from_at_least_25_works():
    entries = _entries()
    assert len(entries) >= 40
    assert len({e.source for e in entries}) >= 25
    assert len({e.id for e in entries}) == len(entries)


def test_an_entry_rejects_unknown_and_empty_fields():
    good = _entries()[0].model_dump()
    for bad in ({**good, "extra": "x"}, {**good, "trigger": "   "}, {**good, "tags": []}):
        try:
            CognitionEntry.model_validate(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {sorted(set(bad) ^ set(good)) or 'an empty field'}")


def test_no_two_entries_share_a_long_sentence():
    # A template pasted across entries shows up as the same long sentence in several of them.
    seen: dict[str, set[str]] = defaultdict(set)
    for entry in _entries():
        for field in PROSE:
            for sentence in re.split(r"(?<=[.;:!?])\s+", getattr(entry, field)):
                words = re.findall(r"[a-z0-9]+", sentence.lower())
                if len(words) >= 8:
                    seen[" ".join(words)].add(entry.id)
    shared = {s: ids for s, ids in seen.items() if len(ids) > 1}
    assert not shared, shared
