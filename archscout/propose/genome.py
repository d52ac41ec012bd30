"""The offline proposer's design space: a genome of linear-attention design choices, and its operators.

A `Genome` is one point in a structured space of DeltaNet-family token mixers. Each field is a gene,
one design decision an ASI-Arch-style researcher would vary:

  memory            the state update: delta | gated_delta | decay_linear (GLA-style data-dependent
                    decay) | linear (no decay) | retention (fixed per-head decay)
  feature_map       q/k features: silu_l2 | identity_l2 | elu1 | relu
  beta              the delta rules' write strength: sigmoid | neg (2 * sigmoid) | constant
  decay             gated_delta / decay_linear forgetting: mamba2 | logsigmoid | fixed
  decay_temperature the log-sigmoid gate's divisor (GLA's normaliser)
  conv_size         short causal conv kernel (0: none) and conv_target (qkv | kv)
  local_path        add a causal depthwise conv of v (local_kernel wide) beside the memory
  direct_path       add v itself (an identity route) beside the memory
  router            how paths are mixed per token and head: softmax | sigmoid | hierarchical
  output            rmsnorm_silu (gated norm) | rmsnorm | sigmoid_gate
  expand_v          value width per head, in multiples of the q/k head dim

Some combinations are invalid (the delta rules need L2-normalised keys; decay_linear with a fixed
decay is retention; a hierarchical router needs both extra paths): `problems` names them, `repaired`
fixes them, and every genome this module returns is valid. `active_genes` says which genes change the
emitted code, so a mutation never touches a gene that would leave the file unchanged.

`mutate` changes one or two active genes; `crossover` is uniform over genes. Both return valid
genomes and record every change (`Change`), including the ones a choice caused.

Not here: the chunk size (chunkwise kernels are exact for any chunk size, and the evaluator passes the
preset's `chunk_size` to every mixer, so a gene would change nothing), code emission (mutate.py) and
the motivation text (rationale.py).
"""

from __future__ import annotations

import dataclasses
import random
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

Memory = Literal["delta", "gated_delta", "decay_linear", "linear", "retention"]
FeatureMap = Literal["silu_l2", "identity_l2", "elu1", "relu"]
Beta = Literal["sigmoid", "neg", "constant"]
Decay = Literal["mamba2", "logsigmoid", "fixed"]
Router = Literal["softmax", "sigmoid", "hierarchical"]
Output = Literal["rmsnorm_silu", "rmsnorm", "sigmoid_gate"]

DELTA_RULES = ("delta", "gated_delta")
DECAYED = ("gated_delta", "decay_linear")
L2_FEATURES = ("silu_l2", "identity_l2")
POSITIVE_FEATURES = ("elu1", "relu")


class Genome(BaseModel):
    """One token-mixer design; `default()` is DeltaNet, and `model_dump()` is its stored form."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory: Memory = "delta"
    feature_map: FeatureMap = "silu_l2"  # applied to q and k after the short conv
    beta: Beta = "sigmoid"  # used by the delta rules only
    decay: Decay = "mamba2"  # used by gated_delta and decay_linear only
    decay_temperature: Literal[4, 8, 16] = 16  # log-sigmoid gate divisor; larger = slower forgetting at init
    conv_size: Literal[0, 2, 3, 4] = 4
    conv_target: Literal["qkv", "kv"] = "qkv"
    local_path: bool = False
    local_kernel: Literal[5, 7, 9] = 7
    direct_path: bool = False
    router: Router = "softmax"  # used when there are two or more paths
    output: Output = "rmsnorm_silu"
    expand_v: Literal[1, 2] = 1

    @classmethod
    def default(cls) -> Genome:
        """DeltaNet: delta rule, SiLU + L2 q/k, sigmoid beta, conv 4 on qkv, one path, gated RMSNorm."""
        return cls()

    @classmethod
    def random(cls, rng: random.Random) -> Genome:
        """A uniform draw over every gene, then repaired."""
        values = {gene: rng.choice(gene_values(gene)) for gene in GENES}
        return cls(**values).repaired()[0]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Genome | None:
        """The genome stored with an architecture, or None if absent or not in this schema."""
        if not data:
            return None
        try:
            return cls.model_validate(data).repaired()[0]
        except ValidationError:
            return None

    def with_(self, **changes: Any) -> Genome:
        # model_copy(update=...) skips validation; rebuilding keeps the Literal domains enforced
        return Genome(**{**self.model_dump(), **changes})

    @property
    def paths(self) -> list[str]:
        """The mixed paths, memory first (the order the emitted router uses)."""
        return ["memory"] + ["local"] * self.local_path + ["direct"] * self.direct_path

    @property
    def normalized_readout(self) -> bool:
        """Positive features on a linear-attention memory: reads are divided by the matching key sum."""
        return self.memory in ("linear", "decay_linear") and self.feature_map in POSITIVE_FEATURES

    def problems(self) -> list[str]:
        """Why this combination cannot be emitted as a sound mixer; empty when valid."""
        found = []
        if self.memory in DELTA_RULES and self.feature_map not in L2_FEATURES:
            found.append("the delta rules need L2-normalised keys (I - beta k k^T must stay a contraction)")
        if self.memory == "decay_linear" and self.decay == "fixed":
            found.append("decay_linear with a fixed decay is retention")
        if self.router == "hierarchical" and not (self.local_path and self.direct_path):
            found.append("a hierarchical router needs the local and the direct path")
        return found

    def validate_combination(self) -> None:
        """Raise ValueError naming every problem of an invalid combination."""
        found = self.problems()
        if found:
            raise ValueError("; ".join(found))

    def repaired(self) -> tuple[Genome, list[Change]]:
        """The nearest valid genome and the forced changes that made it so."""
        fixes: dict[str, Any] = {}
        if self.memory in DELTA_RULES and self.feature_map not in L2_FEATURES:
            fixes["feature_map"] = "silu_l2"
        if self.memory == "decay_linear" and self.decay == "fixed":
            fixes["decay"] = "logsigmoid"
        if self.router == "hierarchical" and not (self.local_path and self.direct_path):
            fixes["router"] = "softmax"
        if not fixes:
            return self, []
        changes = [Change(gene, getattr(self, gene), new, cause="repair") for gene, new in fixes.items()]
        return self.with_(**fixes), changes

    def active_genes(self) -> list[str]:
        """Genes whose value shows in the emitted code, in declaration order."""
        inactive = set()
        if self.memory not in DELTA_RULES:
            inactive.add("beta")
        if self.memory not in DECAYED:
            inactive |= {"decay", "decay_temperature"}
        elif self.decay != "logsigmoid":
            inactive.add("decay_temperature")
        if self.conv_size == 0:
            inactive.add("conv_target")
        if not self.local_path:
            inactive.add("local_kernel")
        if len(self.paths) < 2:
            inactive.add("router")
        return [gene for gene in GENES if gene not in inactive]

    def canonical(self) -> Genome:
        """This design with every inactive gene at its default: equal for genomes that emit the same file."""
        active = set(self.active_genes())
        defaults = Genome()
        return self.with_(**{gene: getattr(defaults, gene) for gene in GENES if gene not in active})

    def describe(self) -> str:
        """A short phrase naming the design, e.g. for a motivation or a dashboard row."""
        parts = [MEMORY_PHRASE[self.memory], FEATURE_PHRASE[self.feature_map] + " q/k"]
        if self.memory in DELTA_RULES:
            parts.append(BETA_PHRASE[self.beta] + " beta")
        if self.memory in DECAYED:
            decay = DECAY_PHRASE[self.decay]
            parts.append(f"{decay} (tau {self.decay_temperature})" if self.decay == "logsigmoid" else decay)
        parts.append(f"conv{self.conv_size} on {self.conv_target}" if self.conv_size else "no short conv")
        if len(self.paths) > 1:
            names = [f"local{self.local_kernel}" if p == "local" else p for p in self.paths]
            parts.append(f"{'+'.join(names)} paths via {ROUTER_PHRASE[self.router]}")
        parts.append(OUTPUT_PHRASE[self.output])
        if self.expand_v > 1:
            parts.append(f"{self.expand_v}x value width")
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Change:
    """One gene's change, and why it happened.

    cause: "chosen" by the operator; "repair" when another change made the old value invalid; "woken"
    when another change brought an unused gene into use, so its dormant value now shows in the code.
    """

    gene: str
    old: Any
    new: Any
    cause: Literal["chosen", "repair", "woken"] = "chosen"


GENES: tuple[str, ...] = tuple(Genome.model_fields)

MEMORY_PHRASE = {
    "delta": "delta rule",
    "gated_delta": "gated delta rule",
    "decay_linear": "decayed linear attention",
    "linear": "linear attention",
    "retention": "retention",
}
FEATURE_PHRASE = {"silu_l2": "SiLU+L2", "identity_l2": "L2", "elu1": "elu+1", "relu": "ReLU"}
BETA_PHRASE = {"sigmoid": "sigmoid", "neg": "2*sigmoid", "constant": "per-head constant"}
DECAY_PHRASE = {"mamba2": "Mamba-2 decay", "logsigmoid": "log-sigmoid gate", "fixed": "fixed decay"}
ROUTER_PHRASE = {
    "softmax": "softmax router",
    "sigmoid": "sigmoid gates",
    "hierarchical": "hierarchical router",
}
OUTPUT_PHRASE = {
    "rmsnorm_silu": "RMSNorm+SiLU gate",
    "rmsnorm": "RMSNorm",
    "sigmoid_gate": "sigmoid output gate",
}


def gene_values(gene: str) -> tuple[Any, ...]:
    """Every value a gene may take, read from the field's type."""
    annotation = Genome.model_fields[gene].annotation
    return (False, True) if annotation is bool else typing.get_args(annotation)


def _alternatives(genome: Genome, gene: str) -> list[Any]:
    """Values of `gene` that differ from the current one and survive repair (repair never undoes them)."""
    current = getattr(genome, gene)
    return [
        value
        for value in gene_values(gene)
        if value != current and getattr(genome.with_(**{gene: value}).repaired()[0], gene) == value
    ]


def _keeps(genome: Genome, gene: str, value: Any, earlier: set[str]) -> bool:
    """Whether setting `gene` leaves the genes changed earlier in use and at their new values."""
    child = genome.with_(**{gene: value}).repaired()[0]
    active = child.active_genes()
    return all(g in active and getattr(child, g) == getattr(genome, g) for g in earlier)


def mutate(genome: Genome, rng: random.Random, n_changes: int | None = None) -> tuple[Genome, list[Change]]:
    """Change `n_changes` (default: 1, or 2 with probability 1/3) distinct active genes.

    Returns the repaired child and every change made: the chosen ones first, then those they caused
    (a repair, e.g. switching to the delta rule forces L2-normalised keys, or a dormant gene woken,
    e.g. the decay's form once the memory has a decay).
    """
    n_changes = n_changes if n_changes is not None else rng.choice((1, 1, 2))
    chosen: list[Change] = []
    caused: list[Change] = []
    for _ in range(n_changes):
        touched = {c.gene for c in chosen + caused}
        # a later change must not hide or undo an earlier one (e.g. drop the decay whose form just changed)
        options = {
            g: [v for v in _alternatives(genome, g) if _keeps(genome, g, v, touched)]
            for g in genome.active_genes()
            if g not in touched
        }
        choices = [g for g, values in options.items() if values]
        if not choices:
            break
        gene = rng.choice(choices)
        new = rng.choice(options[gene])
        chosen.append(Change(gene, getattr(genome, gene), new))
        child, repairs = genome.with_(**{gene: new}).repaired()
        woken = [
            Change(g, getattr(genome, g), getattr(child, g), cause="woken")
            for g in child.active_genes()
            if g not in genome.active_genes() and g != gene and g not in {c.gene for c in repairs}
        ]
        caused += repairs + woken
        genome = child
    return genome, chosen + [c for c in caused if c.gene in genome.active_genes()]


# genes whose validity depends on each other; crossover inherits each group whole when mixing breaks it
LINKED = (("memory", "feature_map", "decay"), ("router", "local_path", "direct_path"))


def crossover(a: Genome, b: Genome, rng: random.Random) -> Genome:
    """Uniform crossover: each gene from `a` or `b` with equal odds; every value comes from a parent.

    A mix that breaks a constraint takes the whole linked group from the parent that gave its first
    gene, which is valid because each parent is.
    """
    a, b = a.repaired()[0], b.repaired()[0]
    picks = {gene: rng.choice((a, b)) for gene in GENES}
    child = {gene: getattr(parent, gene) for gene, parent in picks.items()}
    for group in LINKED:
        source = picks[group[0]]
        # constraints never span groups, so the group alone decides whether it fits a valid parent
        if source.with_(**{gene: child[gene] for gene in group}).problems():
            child.update({gene: getattr(source, gene) for gene in group})
    return Genome(**child)
