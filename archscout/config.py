"""Typed configuration: evaluation presets (model sizes, proxy tasks, step budgets, probe and monitor
thresholds, sandbox limits).

Presets are data: the built-in ones live in `presets.toml` next to this file, and a user can load
their own TOML file with the same shape (`load_presets(extra=path)`). Study-level settings (search
policy, LLM, budgets) are added by the modules that use them; this module only knows how one
candidate is evaluated.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PRESETS_FILE = Path(__file__).with_name("presets.toml")


class Strict(BaseModel):
    # a misspelt field in a user's TOML must be an error, not silently ignored
    model_config = ConfigDict(extra="forbid")


class ModelSpec(Strict):
    """The backbone that hosts the candidate mixer; sized by the preset, never by the candidate."""

    d_model: int = 128
    n_layers: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0  # SwiGLU hidden = ratio * d_model; 0 removes the MLP (Zoology MQAR models)


class OptimSpec(Strict):
    steps: int = 200
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    min_lr_ratio: float = 0.1  # cosine decays to lr * this


class _Task(Strict):
    """What every proxy task has; each kind below adds only the fields its generator reads, so a
    field given to the wrong kind (a corpus on an MQAR task) fails when the preset loads."""

    name: str
    model: ModelSpec = Field(default_factory=ModelSpec)
    optim: OptimSpec = Field(default_factory=OptimSpec)
    seq_len: int = 128
    vocab_size: int = 512
    eval_every: int = 50  # steps between evaluations (accuracy curve / val-loss curve)


class LMTask(_Task):
    """Language modelling on a text corpus; scored by held-out val loss."""

    kind: Literal["lm"]
    corpus: list[str] = Field(default_factory=lambda: ["kjv"])  # "kjv" or paths to .txt files
    val_fraction: float = 0.05  # the last fraction of the text is the held-out split
    eval_tokens: int = 32768  # validation tokens scored at each evaluation
    corpus_chars: int | None = None  # truncate the corpus (smoke tests); None = all


class _SyntheticTask(_Task):
    test_examples: int = 1000  # held-out examples scored at each evaluation


class MQARTask(_SyntheticTask):
    """Multi-query associative recall (Zoology)."""

    kind: Literal["mqar"]
    num_kv_pairs: int = 16
    power_a: float = 0.01  # power-law parameter of the query gaps


class SelectiveCopyTask(_SyntheticTask):
    """MAD selective copying."""

    kind: Literal["selective_copy"]
    num_tokens_to_copy: int = 16


class NoisyRecallTask(_SyntheticTask):
    """MAD noisy in-context recall."""

    kind: Literal["noisy_recall"]
    num_kv_pairs: int = 16
    noise_vocab_size: int = 16
    frac_noise: float = 0.0


class FuzzyRecallTask(NoisyRecallTask):
    """MAD fuzzy in-context recall: keys and values are motifs of several tokens."""

    kind: Literal["fuzzy_recall"]  # type: ignore[assignment]
    k_motif_size: int = 1  # tokens per key
    v_motif_size: int = 1  # tokens per value


# One proxy task; `kind` picks the model class (and the generator in evaluate/tasks).
TaskSpec = Annotated[
    Union[LMTask, MQARTask, SelectiveCopyTask, NoisyRecallTask, FuzzyRecallTask], Field(discriminator="kind"),
]
_TASK = TypeAdapter(TaskSpec)


def task_spec(**fields) -> TaskSpec:
    """Build one task from its fields (the kind picks the class); ValidationError names a bad field."""
    return _TASK.validate_python(fields)


class ProbeSpec(Strict):
    d_model: int = 64
    num_heads: int = 4
    batch: int = 3
    seq_len: int = 64  # causality and batch-independence probes
    complexity_len: int = 256  # timed at L and 4L
    quadratic_ratio: float = 10.0  # FLOPs or time at 4L over L above this is flagged (linear ~4, quadratic ~16)
    quadratic_fatal: bool = False  # softmax attention is a legitimate (reported) reference
    param_ratio: float = 3.0  # mixer params may be at most this multiple of the baseline's
    atol: float = 1e-5  # float64 tolerance for the exact leak / batch tests


class MonitorSpec(Strict):
    explode_ratio: float = 4.0  # loss > ratio * initial loss after warm-up means divergence
    leak_ratio: float = 0.5  # loss < ratio * baseline loss at the same step is a leak signal
    leak_min_step: int = 20
    slow_ratio: float = 10.0  # median step CPU time > ratio * baseline's stops the run


class LimitSpec(Strict):
    """Sandbox limits for the child process; see evaluate/sandbox.py."""

    memory_mb: int = 8192  # address space
    cpu_s: int = 1800
    file_mb: int = 256  # largest file the child may write
    nproc: int = 256  # processes/threads visible to the child's user (torch needs threads)
    nofile: int = 256
    output_kb: int = 256  # captured stdout/stderr kept per stream
    probe_timeout_s: float = 60.0
    train_timeout_s: float = 900.0


class PoolScale(Strict):
    """When the pool is first re-ranked and how often after (store/pool.py's PoolPolicy), scaled to
    the preset so that a demo-length run shows pool updates. Default: ASI-Arch's 200 / 50."""

    cold_start: int = Field(200, ge=0)
    update_every: int = Field(50, ge=1)


class Preset(Strict):
    name: str
    description: str = ""
    tasks: list[TaskSpec]
    num_threads: int = 2
    bf16_autocast: bool = False  # bf16 on CPU costs accuracy at this scale; GPUs turn it on
    chunk_size: int = 32  # passed to the mixer as a kwarg hint
    probes: ProbeSpec = Field(default_factory=ProbeSpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    limits: LimitSpec = Field(default_factory=LimitSpec)
    pool: PoolScale = Field(default_factory=PoolScale)

    @property
    def train_cost(self) -> float:
        """Training budget in token-width-layer units (steps x batch x seq_len x d_model x n_layers,
        summed over tasks): orders the ladder's rungs by cost without running anything."""
        return float(sum(t.optim.steps * t.optim.batch_size * t.seq_len * t.model.d_model * t.model.n_layers
                         for t in self.tasks))

    @property
    def lm_task(self) -> LMTask | None:
        return next((t for t in self.tasks if t.kind == "lm"), None)

    @property
    def synthetic_tasks(self) -> list[TaskSpec]:
        return [t for t in self.tasks if t.kind != "lm"]


class ConfigError(ValueError):
    """A configuration problem, with a message that names the offending field."""


def _format_validation(err: ValidationError, where: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    return f"{where}: field '{loc}': {first['msg']}"


def _parse_presets(data: dict, where: str) -> dict[str, Preset]:
    out: dict[str, Preset] = {}
    for name, body in data.get("preset", {}).items():
        try:
            out[name] = Preset(name=name, **body)
        except ValidationError as err:
            raise ConfigError(_format_validation(err, f"{where} [preset.{name}]")) from None
    return out


@lru_cache(maxsize=1)
def builtin_presets() -> dict[str, Preset]:
    return _parse_presets(tomllib.loads(PRESETS_FILE.read_text()), str(PRESETS_FILE))


def load_presets(extra: Path | None = None) -> dict[str, Preset]:
    presets = dict(builtin_presets())
    if extra is not None:
        try:
            data = tomllib.loads(Path(extra).read_text())
        except FileNotFoundError:
            raise ConfigError(f"preset file not found: {extra}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{extra}: not valid TOML: {err}") from None
        presets.update(_parse_presets(data, str(extra)))
    return presets


def get_preset(name: str, extra: Path | None = None) -> Preset:
    presets = load_presets(extra)
    if name not in presets:
        raise ConfigError(f"unknown preset '{name}' (known: {', '.join(sorted(presets))})")
    return presets[name]
