import ast
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from archscout.propose.base import ProposalContext
from archscout.records import ArchView
from archscout.propose.genome import GENES, Change, Genome, crossover, gene_values, mutate
from archscout.propose.mutate import OfflineProposer, emit, make_name
from archscout.propose.rationale import GENE_LABEL, label, motivation
from archscout.space import ops

BASELINES = Path(__file__).resolve().parents[2] / "archscout" / "space" / "baselines"


def module_classes(source: str) -> list[ast.ClassDef]:
    return [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)]


def is_nn_module(node: ast.ClassDef) -> bool:
    return any(ast.unparse(base) in ("nn.Module", "torch.nn.Module") for base in node.bases)


def visible_diff(a: Genome, b: Genome) -> set[str]:
    """Genes that show in b's file with a value a's file does not show (newly used, or changed)."""
    return {g for g in b.active_genes() if g not in a.active_genes() or getattr(a, g) != getattr(b, g)}


def arch(name: str, genome: Genome | None = None, code: str = "", id: int = 1) -> ArchView:
    return ArchView(id=id, name=name, code=code, genome=genome.model_dump() if genome else None)


def test_default_genome_is_deltanet_and_describes_itself():
    g = Genome.default()
    assert (g.memory, g.feature_map, g.beta, g.conv_size, g.conv_target, g.paths, g.output) == (
        "delta", "silu_l2", "sigmoid", 4, "qkv", ["memory"], "rmsnorm_silu"
    )
    assert g.describe().startswith("delta rule, SiLU+L2 q/k, sigmoid beta, conv4 on qkv")
    assert Genome.model_validate(g.model_dump()) == g


def test_random_genomes_are_valid_and_cover_every_memory_rule():
    rng = random.Random(0)
    drawn = [Genome.random(rng) for _ in range(300)]
    assert all(not g.problems() for g in drawn)
    assert {g.memory for g in drawn} == set(gene_values("memory"))
    assert {len(g.paths) for g in drawn} == {1, 2, 3}


def test_repair_fixes_each_invalid_combination():
    cases = [
        (Genome(memory="delta", feature_map="relu"), "feature_map", "silu_l2"),
        (Genome(memory="decay_linear", decay="fixed"), "decay", "logsigmoid"),
        (Genome(router="hierarchical", local_path=True), "router", "softmax"),
    ]
    for bad, gene, fixed in cases:
        assert bad.problems()
        with pytest.raises(ValueError):
            bad.validate_combination()
        good, changes = bad.repaired()
        assert getattr(good, gene) == fixed and not good.problems()
        assert changes == [Change(gene, getattr(bad, gene), fixed, cause="repair")]


def test_from_dict_rejects_foreign_genomes():
    assert Genome.from_dict(None) is None
    assert Genome.from_dict({"memory": "attention"}) is None
    assert Genome.from_dict({"memory": "delta", "heads": 8}) is None
    assert Genome.from_dict({"memory": "delta", "feature_map": "elu1"}).feature_map == "silu_l2"


def test_every_emitted_file_compiles_with_one_module_class_and_real_ops():
    rng = random.Random(1)
    for _ in range(200):
        genome = Genome.random(rng)
        name = make_name(genome, rng)
        source = emit(genome, name)
        compile(source, name, "exec")
        classes = module_classes(source)
        assert [c.name for c in classes] == [name] and is_nn_module(classes[0])
        imported = [
            alias.name
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and node.module == "archscout.space.ops"
            for alias in node.names
        ]
        assert imported and set(imported) <= set(ops.__all__)
        lines = source.splitlines()
        assert max(len(line) for line in lines) <= 110
        assert not any(line != line.rstrip() for line in lines)
        assert "\n\n\n\n" not in source


def test_emit_refuses_invalid_genomes_and_names():
    with pytest.raises(ValueError, match="L2-normalised"):
        emit(Genome.model_construct(**{**Genome().model_dump(), "feature_map": "relu"}), "Bad")
    with pytest.raises(ValueError, match="identifier"):
        emit(Genome.default(), "not a name")


def test_make_name_is_camel_case_and_reflects_the_design():
    rng = random.Random(2)
    g = Genome(memory="gated_delta", local_path=True, direct_path=True, router="sigmoid")
    name = make_name(g, rng)
    assert name.startswith("GatedDeltaTriPathSigmoid") and name.isidentifier() and name[-4:].isdigit()


def test_mutate_changes_one_or_two_active_genes_and_says_so():
    rng = random.Random(3)
    for _ in range(200):
        parent = Genome.random(rng)
        n = rng.choice((1, 2))
        child, changes = mutate(parent, rng, n_changes=n)
        chosen = [c for c in changes if c.cause == "chosen"]
        assert len(chosen) == n
        assert not child.problems()
        # every change shows in the emitted file, and every visible difference is a recorded change
        assert all(c.gene in child.active_genes() for c in changes)
        assert visible_diff(parent, child) <= {c.gene for c in changes}
        assert all(getattr(child, c.gene) == c.new and getattr(parent, c.gene) == c.old for c in changes)
        assert visible_diff(parent, child)


def test_motivation_names_the_parent_and_every_change():
    rng = random.Random(4)
    for _ in range(200):
        parent = Genome.random(rng)
        child, changes = mutate(parent, rng)
        text = motivation(f"Parent P uses {parent.describe()}", changes, child)
        assert text.startswith(f"Parent P uses {parent.describe()}; ") and text.endswith(".")
        for change in changes:
            if change.gene in ("local_path", "direct_path"):
                path = change.gene.removesuffix("_path")
                assert (f"adding a {path} path" if change.new else f"dropping the {path} path") in text
            elif change.gene == "local_kernel" and change.cause == "woken":
                assert f"over {change.new} tokens" in text
            else:
                assert label(change.gene, change.new) in text
            if change.cause == "chosen" and change.gene not in ("local_path", "direct_path"):
                assert f"switching {GENE_LABEL[change.gene]} from {label(change.gene, change.old)}" in text


def test_proposal_motivation_starts_from_the_parent():
    rng = random.Random(4)
    parent = Genome.random(rng)
    ctx = ProposalContext(parent=arch("ParentArch", parent))
    for seed in range(10):
        proposal = OfflineProposer(crossover_rate=0.0).propose(ctx, random.Random(seed))
        assert proposal.motivation.startswith(f"Parent ParentArch uses {parent.describe()}; ")


def test_crossover_takes_every_gene_from_a_parent():
    rng = random.Random(5)
    for _ in range(300):
        a, b = Genome.random(rng), Genome.random(rng)
        child = crossover(a, b, rng)
        assert not child.problems()
        assert all(getattr(child, g) in (getattr(a, g), getattr(b, g)) for g in GENES)


def test_same_seed_same_proposal():
    rng = random.Random(6)
    ctx = ProposalContext(
        parent=arch("P", Genome.random(rng)),
        references=[arch(f"R{i}", Genome.random(rng), id=i + 2) for i in range(4)],
    )
    first = OfflineProposer().propose(ctx, random.Random(11))
    again = OfflineProposer().propose(ctx, random.Random(11))
    other = OfflineProposer().propose(ctx, random.Random(12))
    assert first == again
    assert other != first


def test_deltanet_baseline_parent_is_read_as_the_default_genome():
    code = (BASELINES / "deltanet.py").read_text()
    ctx = ProposalContext(parent=arch("DeltaNet", None, code))
    proposal = OfflineProposer(crossover_rate=0.0).propose(ctx, random.Random(7))
    child = Genome.model_validate(proposal.genome)
    assert proposal.origin == "offline"
    assert proposal.motivation.startswith("Parent DeltaNet is a seed baseline")
    assert 1 <= len(visible_diff(Genome.default(), child)) <= 4  # 1-2 chosen changes, plus repairs
    assert proposal.name in proposal.code and proposal.code == emit(child, proposal.name)


def test_unreadable_parent_restarts_from_a_random_draw():
    code = (BASELINES / "softmax_attention.py").read_text()
    ctx = ProposalContext(parent=arch("SoftmaxAttention", None, code))
    proposal = OfflineProposer().propose(ctx, random.Random(8))
    assert "has no genome to vary" in proposal.motivation
    compile(proposal.code, proposal.name, "exec")
    assert OfflineProposer().propose(ProposalContext(parent=None), random.Random(8)).genome


def test_feedback_asks_for_a_bigger_step_then_a_restart():
    parent = Genome.default()
    ctx = ProposalContext(parent=arch("P", parent), feedback="duplicate of #3", attempt=1)
    for seed in range(20):
        proposal = OfflineProposer(crossover_rate=0.0).propose(ctx, random.Random(seed))
        assert len(visible_diff(parent, Genome.model_validate(proposal.genome))) >= 2
    late = ctx.model_copy(update={"attempt": 2})
    proposal = OfflineProposer().propose(late, random.Random(0))
    assert proposal.motivation.startswith("Earlier attempts were rejected (duplicate of #3)")


def test_proposals_avoid_the_parent_and_references_they_were_shown():
    rng = random.Random(9)
    parent = Genome.random(rng)
    references = [mutate(parent, rng, 1)[0] for _ in range(6)]
    ctx = ProposalContext(
        parent=arch("P", parent), references=[arch(f"R{i}", g, id=i + 2) for i, g in enumerate(references)]
    )
    shown = {g.canonical() for g in [parent, *references]}
    for seed in range(30):
        proposal = OfflineProposer(crossover_rate=0.5).propose(ctx, random.Random(seed))
        assert Genome.model_validate(proposal.genome).canonical() not in shown


def test_crossover_proposals_mix_the_parent_and_a_reference():
    rng = random.Random(10)
    parent, mate = Genome.default(), Genome.random(rng)
    ctx = ProposalContext(parent=arch("P", parent), references=[arch("Mate", mate, id=2)])
    crossed = 0
    for seed in range(20):
        proposal = OfflineProposer(crossover_rate=1.0).propose(ctx, random.Random(seed))
        if "crossed here with reference Mate" in proposal.motivation:
            crossed += 1
            child = Genome.model_validate(proposal.genome)
            assert all(getattr(child, g) in (getattr(parent, g), getattr(mate, g)) for g in GENES)
    # a mix identical to a parent falls back to a mutation; most mixes are new
    assert crossed >= 10


def test_emitted_candidates_pass_the_probes_in_the_sandbox(tmp_path):
    from archscout.config import get_preset
    from archscout.evaluate.runner import evaluate

    preset = get_preset("smoke")
    rng = random.Random(2025)
    sample = [("default", Genome.default())]
    for _ in range(8):
        child, _ = mutate(Genome.random(rng), rng)
        sample.append((make_name(child, rng), child))
    paths = []
    for name, genome in sample:
        path = tmp_path / f"{name}.py"
        path.write_text(emit(genome, "DefaultDelta" if name == "default" else name))
        paths.append(path)
    # each run starts a child that imports torch; a few at once keeps the test near a minute
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda p: evaluate(p, preset, seed=0, probe_only=True), paths))
    failures = {
        name: f"{r.failure.kind}: {r.failure.message}" for (name, _), r in zip(sample, results) if not r.ok
    }
    for name, reason in failures.items():
        print(f"probe failure {name}: {reason}")
    assert results[0].ok, failures.get("default")
    assert sum(r.ok for r in results[1:]) >= 7, failures
