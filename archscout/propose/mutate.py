"""The offline proposer: the embedded default Researcher, with no network and no LLM.

It evolves `Genome`s (genome.py) instead of writing code freely: the parent's genome is mutated (or,
now and then, crossed with a reference's), and `emit` renders the child as a complete, readable
candidate file from `templates/candidate.py.j2`: one nn.Module subclass named after the design,
plain helper functions, the same `archscout.space.ops` imports as the hand-written baselines.
`Genome.default()` emits DeltaNet exactly (same parameters, creation order and initialisation, so the
same outputs for a seed), and Gated DeltaNet is one gene away. The motivation is written from the
changes made (rationale.py). A child equal to the parent or a reference in the context is redrawn;
feedback on a rejected attempt makes the next step two changes, and a third attempt a fresh draw.

What it does not do: read code. A parent without a stored genome (a baseline, an imported or
LLM-written file) is matched to a genome only when it is one of the delta-rule seed baselines;
anything else restarts from a random draw. Nor does it learn from fitness: selection is the pool's
job, and this proposer only moves through the space.
"""

from __future__ import annotations

import random
import re
import textwrap
from functools import lru_cache

import jinja2

from archscout.propose.base import Proposal, ProposalContext
from archscout.records import ArchView
from archscout.propose.genome import (
    DECAYED,
    DELTA_RULES,
    GENES,
    MEMORY_PHRASE,
    Change,
    Genome,
    crossover,
    mutate,
)
from archscout.propose.rationale import motivation

__all__ = ["Change", "Genome", "OfflineProposer", "crossover", "emit", "make_name", "motivation", "mutate"]

CROSSOVER_RATE = 0.3
MAX_LINE = 110  # an emitted code line longer than this is wrapped where the emitter can
DOC_WIDTH = 100  # the docstring's design table wraps at this width

OP_NAMES = {
    "delta": "delta_rule_chunkwise",
    "gated_delta": "gated_delta_rule_chunkwise",
    "decay_linear": "decay_linear_attn_chunkwise",
    "linear": "linear_attn_chunkwise",
    "retention": "retention_chunkwise",
}
# each op's arguments between v and chunk_size
MEMORY_ARGS = {
    "delta": "beta, ",
    "gated_delta": "beta, g, ",
    "decay_linear": "g, ",
    "linear": "",
    "retention": "self.gamma, ",
}
MEMORY_DESIGN = {
    "delta": "delta rule: S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, o_t = S_t^T q_t",
    "gated_delta": "gated delta rule: S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T",
    "decay_linear": "decayed linear attention (GLA-style): S_t = exp(g_t) S_{t-1} + k_t v_t^T",
    "linear": "linear attention without decay: S_t = S_{t-1} + k_t v_t^T",
    "retention": "retention: S_t = gamma_h S_{t-1} + k_t v_t^T with a fixed gamma_h per head",
}
FEATURE_DESIGN = {
    "silu_l2": "SiLU, then L2 normalisation per head",
    "identity_l2": "L2 normalisation per head, no activation",
    "elu1": "elu(x) + 1 (positive)",
    "relu": "ReLU (non-negative, sparse)",
}
BETA_DESIGN = {
    "sigmoid": "sigmoid(Linear(x)), in (0, 1)",
    "neg": "2 * sigmoid(Linear(x)), in (0, 2): allows negative eigenvalues (Grazzi et al. 2024)",
    "constant": "a learned constant per head, the same for every token",
}
DECAY_DESIGN = {
    "mamba2": "Mamba-2: g = -exp(A_log) * softplus(Linear(x) + dt_bias), heads from fast to slow",
    "logsigmoid": "GLA: g = logsigmoid(Linear(x)) / {tau}",
    "fixed": "fixed per head, gamma_h = 1 - 2^-x for x evenly in [5, 9] (RetNet)",
}
ROUTER_DESIGN = {
    "softmax": "softmax over the paths, per token and head, from the hidden state",
    "sigmoid": "an independent sigmoid gate per path, token and head, from the hidden state",
    "hierarchical": "a sigmoid splits local from global, then a softmax splits memory from direct, "
    "per token and head",
}
OUTPUT_DESIGN = {
    "rmsnorm_silu": "per-head RMSNorm times a SiLU gate, then a projection",
    "rmsnorm": "per-head RMSNorm, then a projection",
    "sigmoid_gate": "a sigmoid gate (no norm), then a projection",
}


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("archscout.propose", "templates"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Python source, not HTML
    )
    return env.get_template("candidate.py.j2")


def _design_lines(g: Genome) -> list[str]:
    """The docstring's table: one wrapped line per design choice that shows in the code."""
    rows = [("memory", MEMORY_DESIGN[g.memory]), ("q/k features", FEATURE_DESIGN[g.feature_map])]
    if g.memory in DELTA_RULES:
        rows.append(("write beta", BETA_DESIGN[g.beta]))
    if g.memory in DECAYED:
        rows.append(("decay", DECAY_DESIGN[g.decay].format(tau=g.decay_temperature)))
    if g.normalized_readout:
        rows.append(("read-out", "normalised by the matching (decayed) key sum"))
    targets = "q, k and v" if g.conv_target == "qkv" else "k and v"
    conv = f"causal depthwise, kernel {g.conv_size}, on {targets}" if g.conv_size else "none"
    rows.append(("short conv", conv))
    rows.append(("values", f"SiLU, {g.expand_v} x head_dim per head"))
    paths = ["memory"]
    if g.local_path:
        paths.append(f"local (causal depthwise conv of v, kernel {g.local_kernel})")
    if g.direct_path:
        paths.append("direct (v itself)")
    rows.append(("paths", ", ".join(paths) if len(paths) > 1 else "memory only"))
    if len(paths) > 1:
        rows.append(("router", ROUTER_DESIGN[g.router]))
    rows.append(("output", OUTPUT_DESIGN[g.output]))
    lines = []
    for label, text in rows:
        lines += textwrap.wrap(
            text, width=DOC_WIDTH, initial_indent=f"  {label:<14}", subsequent_indent=" " * 16
        )
    return lines


def _memory_call(g: Genome, target: str) -> str:
    """The line(s) calling the memory op, wrapped when they would run past MAX_LINE."""
    between = MEMORY_ARGS[g.memory]
    normalize = ", normalize=True" if g.normalized_readout else ""
    args = f"q, k, v.view(v_heads), {between}chunk_size=self.chunk_size{normalize}"
    call = f"{OP_NAMES[g.memory]}({args})"
    line = f"{target} = {call}  # [B, T, H, Dv]"
    if len(line) + 8 <= MAX_LINE:
        return line
    func, args = call.split("(", 1)
    return f"{target} = {func}(\n            {args[:-1]}\n        )  # [B, T, H, Dv]"


def _wrap_tuple(items: list[str], indent: int, prefix: str, suffix: str) -> str:
    """`prefix(a, b, c)suffix` on one line, or one item per line when that would run past MAX_LINE."""
    line = f"{prefix}({', '.join(items)}){suffix}"
    if indent + len(line) <= MAX_LINE:
        return line
    pad = " " * (indent + 4)
    return f"{prefix}(\n" + "".join(f"{pad}{item},\n" for item in items) + " " * indent + f"){suffix}"


def emit(genome: Genome, name: str) -> str:
    """The complete candidate source for `genome`, its mixer class named `name`."""
    g, problems = genome, genome.problems()
    if problems:
        raise ValueError(f"cannot emit an invalid genome: {'; '.join(problems)}")
    if not name.isidentifier():
        raise ValueError(f"class name {name!r} is not a Python identifier")
    decayed = g.memory in DECAYED
    multi_path = len(g.paths) > 1
    needs_conv = bool(g.conv_size) or g.local_path
    imports = {OP_NAMES[g.memory]} | ({"short_conv"} if needs_conv else set())
    hierarchical = g.router == "hierarchical"
    logit_names = "local share, memory, direct" if hierarchical else ", ".join(g.paths)
    constants = []
    if g.local_path:
        constants.append(("the local path's causal depthwise conv width", f"LOCAL_KERNEL = {g.local_kernel}"))
    if decayed and g.decay == "logsigmoid":
        constants.append((
            "GLA's gate normaliser: a larger divisor keeps initial decays nearer one (longer memory)",
            f"DECAY_TEMPERATURE = {float(g.decay_temperature)}",
        ))
    if multi_path:
        # the memory path starts favoured, so a multi-path child first behaves like its single-path
        # parent and training decides how far to open the other paths
        bias = (-1.0, 1.0, -1.0) if hierarchical else tuple(1.0 if p == "memory" else -1.0 for p in g.paths)
        constants.append((f"initial router logits, per head: {logit_names}", f"ROUTER_BIAS = {bias}"))
    linears = ["self.qkv_proj"]
    if g.memory in DELTA_RULES and g.beta != "constant":
        linears.append("self.beta_proj")
    if decayed and g.decay != "fixed":
        linears.append("self.decay_proj")
    if multi_path:
        linears.append("self.router")
    if g.output != "rmsnorm":
        linears.append("self.gate_proj")
    linears.append("self.o_proj")
    source = _template().render(
        name=name,
        title=MEMORY_PHRASE[g.memory],
        design=_design_lines(g),
        g=g,
        needs_math=decayed and g.decay == "mamba2",  # the conv kernel's init is in space/layers.py
        needs_conv=needs_conv,
        imports=sorted(imports),
        constants=constants,
        delta_rule=g.memory in DELTA_RULES,
        decayed=decayed,
        fixed_decay=g.memory == "retention" or (decayed and g.decay == "fixed"),
        multi_path=multi_path,
        router=multi_path,
        n_logits=len(g.paths),
        logit_names=logit_names,
        linears=_wrap_tuple(linears, indent=8, prefix="for layer in ", suffix=":"),
        memory_call=_memory_call(g, "memory" if multi_path else "o"),
    )
    # the template's optional blocks can leave runs of blank lines; PEP 8 allows at most two
    return re.sub(r"\n{4,}", "\n\n\n", source)


NAME_MEMORY = {
    "delta": "Delta",
    "gated_delta": "GatedDelta",
    "decay_linear": "GLA",
    "linear": "Linear",
    "retention": "Retention",
}
NAME_PATHS = {
    ("memory", "local"): "LocalMix",
    ("memory", "direct"): "DirectMix",
    ("memory", "local", "direct"): "TriPath",
}
NAME_ROUTER = {"softmax": "Softmax", "sigmoid": "Sigmoid", "hierarchical": "Hier"}


def make_name(genome: Genome, rng: random.Random) -> str:
    """A CamelCase class name: the salient genes plus four random digits, e.g. GatedDeltaTriPathHier4821."""
    g = genome
    parts = [NAME_MEMORY[g.memory]]
    parts.append({"elu1": "Elu", "relu": "Relu"}.get(g.feature_map, ""))
    if g.memory in DELTA_RULES:
        parts.append({"neg": "Neg", "constant": "ConstBeta"}.get(g.beta, ""))
    if len(g.paths) > 1:
        parts += [NAME_PATHS[tuple(g.paths)], NAME_ROUTER[g.router]]
    if g.conv_size == 0:
        parts.append("NoConv")
    return "".join(parts) + str(rng.randrange(1000, 10000))


def _diff(base: Genome, child: Genome) -> list[Change]:
    """The visible differences between two genomes, as changes from `base` to `child`."""
    genes = sorted(set(base.active_genes()) | set(child.active_genes()), key=GENES.index)
    return [Change(g, getattr(base, g), new) for g in genes if getattr(base, g) != (new := getattr(child, g))]


def genome_from_code(arch: ArchView) -> Genome | None:
    """The genome of a delta-rule seed baseline (DeltaNet, GatedDeltaNet); None for any other file."""
    name = re.sub(r"[^a-z]", "", arch.name.lower())
    defines = re.search(r"^class (Gated)?DeltaNet\b", arch.code, re.MULTILINE)
    gated = bool(defines and defines.group(1))
    if "gated_delta_rule_chunkwise" in arch.code and (name == "gateddeltanet" or gated):
        return Genome(memory="gated_delta", decay="mamba2")
    if "delta_rule_chunkwise" in arch.code and (name == "deltanet" or (defines and not gated)):
        return Genome.default()
    return None


class OfflineProposer:
    """Mutates (sometimes crosses over) the parent's genome and emits the child as a candidate file."""

    name = "offline"

    def __init__(self, crossover_rate: float = CROSSOVER_RATE, max_redraws: int = 8):
        self.crossover_rate = crossover_rate
        self.max_redraws = max_redraws  # mutations tried before accepting a child seen in the context

    def propose(self, ctx: ProposalContext, rng: random.Random) -> Proposal:
        base, opening, known = self._start(ctx, rng)
        # compared in canonical form: genomes that differ only in unused genes emit the same file
        seen = {base.canonical()} | {
            g.canonical() for a in [ctx.parent, *ctx.references] if a and (g := Genome.from_dict(a.genome))
        }
        child, changes = None, []
        mates = [(ref, g) for ref in ctx.references if (g := Genome.from_dict(ref.genome))]
        if known and mates and rng.random() < self.crossover_rate:
            ref, mate = rng.choice(mates)
            crossed = crossover(base, mate, rng)
            if crossed.canonical() not in seen:
                child, changes = crossed, _diff(base, crossed)
                opening += f", crossed here with reference {ref.name}"
        if child is None:
            # a rejected earlier attempt (duplicate, failed probe) asks for a bigger step
            n_changes = 2 if ctx.feedback else None
            for _ in range(self.max_redraws):
                child, changes = mutate(base, rng, n_changes)
                if child.canonical() not in seen:
                    break
        name = make_name(child, rng)
        return Proposal(
            name=name,
            motivation=motivation(opening, changes, child),
            code=emit(child, name),
            genome=child.model_dump(),
            origin="offline",
        )

    def _start(self, ctx: ProposalContext, rng: random.Random) -> tuple[Genome, str, bool]:
        """(genome to vary, the motivation's opening, whether it is the parent's own design)."""
        parent = ctx.parent
        if ctx.feedback and ctx.attempt >= 2:
            # repeated rejections near this parent: leave its neighbourhood altogether
            drawn = Genome.random(rng)
            reason = " ".join(ctx.feedback.split())[:80]
            opening = f"Earlier attempts were rejected ({reason}), so this restarts from {_draw(drawn)}"
            return drawn, opening, False
        if parent is None:
            drawn = Genome.random(rng)
            return drawn, f"With no parent, this starts from {_draw(drawn)}", False
        genome = Genome.from_dict(parent.genome)
        if genome is not None:
            return genome, f"Parent {parent.name} uses {genome.describe()}", True
        genome = genome_from_code(parent)
        if genome is not None:
            return genome, f"Parent {parent.name} is a seed baseline read as {genome.describe()}", True
        drawn = Genome.random(rng)
        return drawn, f"Parent {parent.name} has no genome to vary, so this starts from {_draw(drawn)}", False


def _draw(genome: Genome) -> str:
    return f"a fresh draw ({genome.describe()})"
