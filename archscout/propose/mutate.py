"""The offline proposer: the embedded default Researcher, with no network and no LLM.

It evolves `Genome`s (genome.py) instead of writing code freely: the parent's genome is mutated (or,
now and then, crossed with a reference's), and `emit` renders the child as a complete, readable
candidate file from `templates/candidate.py.j2`: one nn.Module subclass named after the design,
plain helper functions, the same `archscout.space.ops` imports as the hand-written baselines. The
motivation is written from the changes made ("Parent X uses ...; switching ... to ..., so that ...").

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

from archscout.propose.base import ArchView, Proposal, ProposalContext
from archscout.propose.genome import (
    DECAYED,
    DELTA_RULES,
    GENES,
    MEMORY_PHRASE,
    POSITIVE_FEATURES,
    Change,
    Genome,
    crossover,
    mutate,
)

__all__ = ["Change", "Genome", "OfflineProposer", "crossover", "emit", "make_name", "motivation", "mutate"]

CROSSOVER_RATE = 0.3
MAX_LINE = 110  # an emitted code line longer than this is wrapped where the emitter can
DOC_WIDTH = 100  # the docstring's design table wraps at this width


MEMORY_DESIGN = {
    "delta": "delta rule: S_t = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, o_t = S_t^T q_t",
    "gated_delta": "gated delta rule: S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T",
    "decay_linear": "linear attention with a data-dependent decay per head (GLA-style): "
    "S_t = exp(g_t) S_{t-1} + k_t v_t^T",
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
    if g.memory in ("linear", "decay_linear") and g.feature_map in POSITIVE_FEATURES:
        rows.append(("read-out", "normalised by the matching (decayed) key sum"))
    targets = "q, k and v" if g.conv_target == "qkv" else "k and v"
    rows.append(("short conv", f"causal depthwise, kernel {g.conv_size}, on {targets}" if g.conv_size else "none"))
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
    values = "v.view(v_heads)"
    normalize = ", normalize=True" if g.feature_map in POSITIVE_FEATURES else ""
    call = {
        "delta": f"delta_rule_chunkwise(q, k, {values}, beta, chunk_size=self.chunk_size)",
        "gated_delta": f"gated_delta_rule_chunkwise(q, k, {values}, beta, g, chunk_size=self.chunk_size)",
        "decay_linear": f"decay_linear_attn_chunkwise(q, k, {values}, g, chunk_size=self.chunk_size{normalize})",
        "linear": f"linear_attn_chunkwise(q, k, {values}, chunk_size=self.chunk_size{normalize})",
        "retention": f"retention_chunkwise(q, k, {values}, self.gamma, chunk_size=self.chunk_size)",
    }[g.memory]
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


OP_NAMES = {
    "delta": "delta_rule_chunkwise",
    "gated_delta": "gated_delta_rule_chunkwise",
    "decay_linear": "decay_linear_attn_chunkwise",
    "linear": "linear_attn_chunkwise",
    "retention": "retention_chunkwise",
}


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
        constants.append(("width of the local path's causal depthwise conv over v", f"LOCAL_KERNEL = {g.local_kernel}"))
    if decayed and g.decay == "logsigmoid":
        constants.append((
            "GLA's gate normaliser: a larger divisor keeps initial decays nearer one (longer memory)",
            f"DECAY_TEMPERATURE = {float(g.decay_temperature)}",
        ))
    if multi_path:
        # the memory path starts favoured, so a multi-path child first behaves like its single-path
        # parent and training decides how far to open the other paths
        bias = (-1.0, 1.0, -1.0) if hierarchical else tuple(1.0 if p == "memory" else -1.0 for p in g.paths)
        constants.append((f"router logits at initialisation, per head ({logit_names})", f"ROUTER_BIAS = {bias}"))
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
        needs_math=needs_conv or (decayed and g.decay == "mamba2"),
        needs_conv=needs_conv,
        imports=sorted(imports),
        constants=constants,
        delta_rule=g.memory in DELTA_RULES,
        decayed=decayed,
        fixed_decay=g.memory == "retention" or (decayed and g.decay == "fixed"),
        normalized_readout=g.memory in ("linear", "decay_linear") and g.feature_map in POSITIVE_FEATURES,
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
NAME_PATHS = {("memory", "local"): "LocalMix", ("memory", "direct"): "DirectMix", ("memory", "local", "direct"): "TriPath"}
NAME_ROUTER = {"softmax": "Softmax", "sigmoid": "Sigmoid", "hierarchical": "Hier"}


def make_name(genome: Genome, rng: random.Random) -> str:
    """A CamelCase class name from the salient genes plus four random digits, e.g. GatedDeltaTriPathHier4821."""
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


GENE_LABEL = {
    "memory": "the memory update",
    "feature_map": "the q/k feature map",
    "beta": "the write strength beta",
    "decay": "the decay",
    "decay_temperature": "the gate temperature",
    "conv_size": "the short convolution",
    "conv_target": "the short convolution's inputs",
    "local_path": "the local path",
    "local_kernel": "the local path's kernel",
    "direct_path": "the direct path",
    "router": "the path router",
    "output": "the output stage",
    "expand_v": "the value width",
}
VALUE_LABEL = {
    "memory": {
        "delta": "the delta rule",
        "gated_delta": "the gated delta rule",
        "decay_linear": "GLA-style decayed linear attention",
        "linear": "plain linear attention",
        "retention": "retention",
    },
    "feature_map": {"silu_l2": "SiLU+L2", "identity_l2": "plain L2 normalisation", "elu1": "elu+1", "relu": "ReLU"},
    "beta": {"sigmoid": "sigmoid(xW)", "neg": "2*sigmoid(xW)", "constant": "a per-head constant"},
    "decay": {"mamba2": "the Mamba-2 decay", "logsigmoid": "a GLA log-sigmoid gate", "fixed": "fixed per-head decays"},
    "conv_target": {"qkv": "q, k and v", "kv": "k and v only"},
    "router": {"softmax": "a softmax router", "sigmoid": "independent sigmoid gates", "hierarchical": "a hierarchical router"},
    "output": {
        "rmsnorm_silu": "RMSNorm with a SiLU gate",
        "rmsnorm": "RMSNorm without a gate",
        "sigmoid_gate": "a sigmoid gate without a norm",
    },
}
EFFECT = {
    ("memory", "delta"): "so that each write first erases what the state held for that key, an error-correcting "
    "update that sharpens associative recall",
    ("memory", "gated_delta"): "so that each head can also forget stale associations at a rate set by the current "
    "token, clearing memory at context switches",
    ("memory", "decay_linear"): "so that the whole state forgets at a rate set by the current token (GLA), "
    "without the delta rule's per-key overwrite",
    ("memory", "linear"): "an ablation that never forgets, testing how much decay and overwriting matter at this "
    "context length",
    ("memory", "retention"): "so that heads keep fixed time scales (about 32 to 512 tokens) instead of learned "
    "forgetting, more stable but less adaptive",
    ("feature_map", "silu_l2"): "so that keys stay unit-norm while the SiLU lets features switch off",
    ("feature_map", "identity_l2"): "so that keys keep signed features and can be made orthogonal more easily, "
    "reducing interference between stored items",
    ("feature_map", "elu1"): "so that features stay positive and the read-out can be normalised like attention "
    "(Katharopoulos et al. 2020)",
    ("feature_map", "relu"): "so that features are sparse and each query matches fewer stored keys",
    ("beta", "sigmoid"): "the standard convex overwrite, more stable than an over-relaxed one",
    ("beta", "neg"): "allowing negative eigenvalues in the state transition (Grazzi et al. 2024), which helps "
    "state tracking such as parity",
    ("beta", "constant"): "so that every token writes equally hard, testing whether choosing what to store is "
    "worth a projection",
    ("decay", "mamba2"): "so that forgetting rates start spread from fast to slow heads and follow the input",
    ("decay", "logsigmoid"): "so that decays start near one (long memory) and are learned from the input "
    "without a separate time step",
    ("decay", "fixed"): "so that forgetting no longer depends on the input, keeping several fixed time scales",
    ("conv_target", "kv"): "so that queries stay sharp to the current token while keys and values still see a "
    "short window",
    ("conv_target", "qkv"): "so that queries also see the short local window",
    ("router", "softmax"): "so that paths compete for one unit of weight per token and head",
    ("router", "sigmoid"): "so that each path can be opened or closed without suppressing the others",
    ("router", "hierarchical"): "separating the short- versus long-range decision from the choice between "
    "memory and direct value",
    ("output", "rmsnorm_silu"): "so that the token can suppress unhelpful memory reads through the gate, as in "
    "Mamba-2 and Gated DeltaNet",
    ("output", "rmsnorm"): "testing whether the output gate earns its parameters",
    ("output", "sigmoid_gate"): "so that the read-out keeps its scale (how strongly the memory matched) instead "
    "of having it normalised away",
    ("expand_v", 2): "doubling the state per head for more memory capacity at about 1.6x the parameters",
    ("expand_v", 1): "halving the state and the value projections for a leaner layer",
}
REPAIR_REASON = {
    "feature_map": "the delta rules need unit-norm keys",
    "decay": "a fixed decay would make it retention",
    "router": "a hierarchical router needs both extra paths",
}


def _label(gene: str, value) -> str:
    if gene in VALUE_LABEL:
        return VALUE_LABEL[gene][value]
    if gene == "conv_size":
        return f"kernel {value}" if value else "none"
    if gene == "decay_temperature":
        return f"tau = {value}"
    if gene == "expand_v":
        return f"{value}x head_dim"
    return str(value)


def _effect(change: Change) -> str:
    gene, old, new = change.gene, change.old, change.new
    if (gene, new) in EFFECT:
        return EFFECT[gene, new]
    if gene == "conv_size":
        if new == 0:
            return "removing the local token shift that helps form induction heads, to test whether the memory alone suffices"
        if old == 0:
            return "adding a short local window before the memory, which helps induction-style copying"
        return "widening the local window before the memory" if new > old else "keeping keys closer to the current token"
    if gene == "decay_temperature":
        if new > old:
            return "so that decays start nearer one and memory lasts longer early in training"
        return "so that the gate starts with faster forgetting and a wider dynamic range"
    if gene == "local_kernel":
        return "so that the local path covers a longer window" if new > old else "so that the local path focuses on nearer tokens"
    return ""


def _clause(change: Change, child: Genome) -> str:
    """One change in words, e.g. 'switching the memory update from the delta rule to ..., so that ...'."""
    if change.gene == "local_path":
        if change.new:
            return (
                f"adding a local path (a causal depthwise conv of v over {child.local_kernel} tokens) beside the memory, "
                "so that short-range patterns need not compete for room in the recurrent state"
            )
        return "dropping the local path, so that all token mixing goes back through the memory"
    if change.gene == "direct_path":
        if change.new:
            return (
                "adding a direct path (v itself), so that the layer can pass the current token's value through "
                "unmixed when the memory has nothing useful to return"
            )
        return "dropping the direct path, so that every output is read from mixed context"
    text = f"switching {GENE_LABEL[change.gene]} from {_label(change.gene, change.old)} to {_label(change.gene, change.new)}"
    effect = _effect(change)
    return f"{text}, {effect}" if effect else text


def motivation(opening: str, changes: list[Change], child: Genome, limit: int = 3) -> str:
    """`opening` ("Parent X uses ...") followed by the changes in words and what they brought along."""
    chosen = [c for c in changes if c.cause == "chosen"]
    clauses = [_clause(c, child) for c in chosen[:limit]]
    if len(chosen) > limit:
        rest = ", ".join(GENE_LABEL[c.gene] for c in chosen[limit:])
        clauses.append(f"and {len(chosen) - limit} more choices ({rest})")
    text = f"{opening}; " + "; and ".join(clauses) if clauses else opening
    notes = [
        f"{GENE_LABEL[c.gene]} becomes {_label(c.gene, c.new)}, since {REPAIR_REASON[c.gene]}"
        for c in changes
        if c.cause == "repair"
    ]
    # the local path's clause already names its kernel
    woken = [c for c in changes if c.cause == "woken" and c.gene != "local_kernel"]
    if woken:
        notes.append("newly in use: " + ", ".join(f"{GENE_LABEL[c.gene]} is {_label(c.gene, c.new)}" for c in woken))
    if notes:
        text += " (" + "; ".join(notes) + ")"
    return text + "."


def _diff(base: Genome, child: Genome) -> list[Change]:
    """The visible differences between two genomes, as changes from `base` to `child`."""
    genes = sorted(set(base.active_genes()) | set(child.active_genes()), key=GENES.index)
    return [Change(g, getattr(base, g), getattr(child, g)) for g in genes if getattr(base, g) != getattr(child, g)]


def genome_from_code(arch: ArchView) -> Genome | None:
    """The genome of a delta-rule seed baseline (DeltaNet, GatedDeltaNet); None for any other file."""
    name = re.sub(r"[^a-z]", "", arch.name.lower())
    defines = re.search(r"^class (Gated)?DeltaNet\b", arch.code, re.MULTILINE)
    if "gated_delta_rule_chunkwise" in arch.code and (name == "gateddeltanet" or (defines and defines.group(1))):
        return Genome(memory="gated_delta", decay="mamba2")
    if "delta_rule_chunkwise" in arch.code and (name == "deltanet" or (defines and not defines.group(1))):
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
                opening += f", crossed here with reference {ref.name} ({mate.describe()})"
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
            return drawn, f"Earlier attempts were rejected ({ctx.feedback[:80]}), so this restarts from a fresh draw ({drawn.describe()})", False
        if parent is None:
            drawn = Genome.random(rng)
            return drawn, f"With no parent, this starts from a fresh draw ({drawn.describe()})", False
        genome = Genome.from_dict(parent.genome)
        if genome is not None:
            return genome, f"Parent {parent.name} uses {genome.describe()}", True
        genome = genome_from_code(parent)
        if genome is not None:
            return genome, f"Parent {parent.name} is a seed baseline read as {genome.describe()}", True
        drawn = Genome.random(rng)
        return drawn, f"Parent {parent.name} has no genome to vary, so this starts from a fresh draw ({drawn.describe()})", False
