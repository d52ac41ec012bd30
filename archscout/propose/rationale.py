"""The offline proposer's motivations: a genome change in words, with its expected effect.

`motivation` turns the `Change`s an operator made into one or two sentences in the field's terms:
"Parent X uses <design>; switching the memory update from the delta rule to the gated delta rule, so
that each head can also forget stale associations ... (newly in use: the decay is ...)." The words
are fixed tables, one per gene and value; they state the hypothesis a researcher would attach to the
change, not a measured result. Nothing here reads code or results.
"""

from __future__ import annotations

from archscout.propose.genome import Change, Genome

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
    "feature_map": {
        "silu_l2": "SiLU+L2",
        "identity_l2": "plain L2 normalisation",
        "elu1": "elu+1",
        "relu": "ReLU",
    },
    "beta": {"sigmoid": "sigmoid(xW)", "neg": "2*sigmoid(xW)", "constant": "a per-head constant"},
    "decay": {
        "mamba2": "the Mamba-2 decay",
        "logsigmoid": "a GLA log-sigmoid gate",
        "fixed": "fixed per-head decays",
    },
    "conv_target": {"qkv": "q, k and v", "kv": "k and v only"},
    "router": {
        "softmax": "a softmax router",
        "sigmoid": "independent sigmoid gates",
        "hierarchical": "a hierarchical router",
    },
    "output": {
        "rmsnorm_silu": "RMSNorm with a SiLU gate",
        "rmsnorm": "RMSNorm without a gate",
        "sigmoid_gate": "a sigmoid gate without a norm",
    },
}
# the expected effect of moving a gene to a value, in the field's terms
EFFECT = {
    ("memory", "delta"): "so that each write first erases what the state held for that key, an "
    "error-correcting update that sharpens associative recall",
    ("memory", "gated_delta"): "so that each head can also forget stale associations at a rate set by "
    "the current token, clearing memory at context switches",
    ("memory", "decay_linear"): "so that the whole state forgets at a rate set by the current token "
    "(GLA), without the delta rule's per-key overwrite",
    ("memory", "linear"): "an ablation that never forgets, testing how much decay and overwriting "
    "matter at this context length",
    ("memory", "retention"): "so that heads keep fixed time scales (about 32 to 512 tokens) instead of "
    "learned forgetting, more stable but less adaptive",
    ("feature_map", "silu_l2"): "so that keys stay unit-norm while the SiLU lets features switch off",
    ("feature_map", "identity_l2"): "so that keys keep signed features and can be made orthogonal more "
    "easily, reducing interference between stored items",
    ("feature_map", "elu1"): "so that features stay positive and the read-out can be normalised like "
    "attention (Katharopoulos et al. 2020)",
    ("feature_map", "relu"): "so that features are sparse and each query matches fewer stored keys",
    ("beta", "sigmoid"): "the standard convex overwrite, more stable than an over-relaxed one",
    ("beta", "neg"): "allowing negative eigenvalues in the state transition (Grazzi et al. 2024), which "
    "helps state tracking such as parity",
    ("beta", "constant"): "so that every token writes equally hard, testing whether choosing what to "
    "store is worth a projection",
    ("decay", "mamba2"): "so that forgetting rates start spread from fast to slow heads and follow the input",
    ("decay", "logsigmoid"): "so that decays start near one (long memory) and are learned from the "
    "input without a separate time step",
    ("decay", "fixed"): "so that forgetting no longer depends on the input, keeping several fixed "
    "time scales",
    ("conv_target", "kv"): "so that queries stay sharp to the current token while keys and values "
    "still see a short window",
    ("conv_target", "qkv"): "so that queries also see the short local window",
    ("router", "softmax"): "so that paths compete for one unit of weight per token and head",
    ("router", "sigmoid"): "so that each path can be opened or closed without suppressing the others",
    ("router", "hierarchical"): "separating the short- versus long-range decision from the choice "
    "between memory and direct value",
    ("output", "rmsnorm_silu"): "so that the token can suppress unhelpful memory reads through the "
    "gate, as in Mamba-2 and Gated DeltaNet",
    ("output", "rmsnorm"): "testing whether the output gate earns its parameters",
    ("output", "sigmoid_gate"): "so that the read-out keeps its scale (how strongly the memory "
    "matched) instead of having it normalised away",
    ("expand_v", 2): "doubling the state per head for more memory capacity at about 1.6x the parameters",
    ("expand_v", 1): "halving the state and the value projections for a leaner layer",
}
REPAIR_REASON = {
    "feature_map": "the delta rules need unit-norm keys",
    "decay": "a fixed decay would make it retention",
    "router": "a hierarchical router needs both extra paths",
}


def label(gene: str, value) -> str:
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
            return (
                "removing the local token shift that helps form induction heads, to test whether the "
                "memory alone suffices"
            )
        if old == 0:
            return "adding a short local window before the memory, which helps induction-style copying"
        if new > old:
            return "widening the local window before the memory"
        return "keeping keys nearer the current token"
    if gene == "decay_temperature":
        if new > old:
            return "so that decays start nearer one and memory lasts longer early in training"
        return "so that the gate starts with faster forgetting and a wider dynamic range"
    if gene == "local_kernel":
        if new > old:
            return "so that the local path covers a longer window"
        return "focusing the local path on nearer tokens"
    return ""


def _clause(change: Change, child: Genome) -> str:
    """One change in words, e.g. 'switching the memory update from the delta rule to ..., so that ...'."""
    if change.gene == "local_path":
        if change.new:
            return (
                f"adding a local path (a causal depthwise conv of v over {child.local_kernel} tokens) beside "
                "the memory, so that short-range patterns need not compete for room in the recurrent state"
            )
        return "dropping the local path, so that all token mixing goes back through the memory"
    if change.gene == "direct_path":
        if change.new:
            return (
                "adding a direct path (v itself), so that the layer can pass the current token's value "
                "through unmixed when the memory has nothing useful to return"
            )
        return "dropping the direct path, so that every output is read from mixed context"
    old, new = label(change.gene, change.old), label(change.gene, change.new)
    text = f"switching {GENE_LABEL[change.gene]} from {old} to {new}"
    effect = _effect(change)
    return f"{text}, {effect}" if effect else text


def motivation(opening: str, changes: list[Change], child: Genome, limit: int = 2) -> str:
    """`opening` ("Parent X uses ...") followed by the changes in words and what they brought along.

    Past `limit` chosen changes (a crossover may make many) the rest are only named, to keep it short.
    """
    chosen = [c for c in changes if c.cause == "chosen"]
    clauses = [_clause(c, child) for c in chosen[:limit]]
    if len(chosen) > limit:
        taken = ", ".join(f"{label(c.gene, c.new)} for {GENE_LABEL[c.gene]}" for c in chosen[limit:])
        clauses.append(f"taking {taken}")
    text = f"{opening}; " + "; and ".join(clauses) if clauses else opening
    notes = [
        f"{GENE_LABEL[c.gene]} becomes {label(c.gene, c.new)}, since {REPAIR_REASON[c.gene]}"
        for c in changes
        if c.cause == "repair"
    ]
    # the local path's clause already names its kernel
    woken = [c for c in changes if c.cause == "woken" and c.gene != "local_kernel"]
    if woken:
        used = ", ".join(f"{GENE_LABEL[c.gene]} is {label(c.gene, c.new)}" for c in woken)
        notes.append(f"newly in use: {used}")
    if notes:
        text += " (" + "; ".join(notes) + ")"
    return text + "."
