"""Both research teams answer every question the loop asks (team.ResearchTeam), with the same
signatures, so the loop can stay one path; and the offline team passes everything through."""

from __future__ import annotations

import inspect
import random

import pytest

from archscout.agents.team import Team
from archscout.propose.base import ProposalContext
from archscout.team import OfflineTeam, ResearchTeam

METHODS = [name for name, _ in inspect.getmembers(ResearchTeam, inspect.isfunction) if not name.startswith("_")]


def test_the_protocol_names_every_stage_hook():
    assert set(METHODS) == {"preflight", "propose", "review", "novelty", "debug", "judge", "analyze", "cost"}


@pytest.mark.parametrize("team", [OfflineTeam, Team], ids=["offline", "llm"])
@pytest.mark.parametrize("name", METHODS)
def test_each_team_has_the_protocol_signature(team, name):
    want = list(inspect.signature(getattr(ResearchTeam, name)).parameters)
    assert list(inspect.signature(getattr(team, name)).parameters) == want
    for attr in ("probe_attempts", "debug_attempts"):
        assert hasattr(team, attr)


def test_the_offline_team_proposes_from_the_genome_and_passes_everything_else():
    team = OfflineTeam()
    proposal = team.propose(1, ProposalContext(parent=None), random.Random(0))
    assert proposal.origin == "offline" and proposal.genome
    assert team.review(1, proposal) == (proposal, "")
    never = lambda: pytest.fail("the offline team must not look up similar motivations")  # noqa: E731
    assert team.novelty(1, ProposalContext(parent=None), proposal, never) == (proposal, "")
    assert (team.probe_attempts, team.debug_attempts) == (0, 0)
    assert team.judge(1, 1, proposal.code, None, None, None) == (None, None)
    assert team.analyze(1, None, None, None, None, [], {}) is None and team.cost(1) is None
