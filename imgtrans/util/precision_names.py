"""One vocabulary for ``--precision`` across train, translate and eval.

Users arrive with Lightning's names (``bf16-mixed``, ``16-mixed``, ``32-true``) or the short ones
(``bf16``, ``fp16``, ``fp32``); every command takes all of them.  Each command then keeps one
internal spelling: training stores ``auto | fp32 | bf16-mixed | fp16-mixed`` in ``run.precision``
(what config.toml files hold, so older runs stay valid), inference runs ``auto | fp32 | bf16 | fp16``.
Training is always mixed (fp32 weights, low-precision arithmetic), which is why ``bf16`` there
means ``bf16-mixed``; Lightning's pure ``bf16-true``/``16-true`` (low-precision weights) are not
offered, rather than being silently treated as mixed.
"""
from __future__ import annotations

from .errors import ConfigError

#: every accepted spelling -> its kind (auto, fp32, bf16, fp16); matched case-insensitively
SPELLINGS: dict[str, str] = {
    "auto": "auto",
    "fp32": "fp32", "32": "fp32", "32-true": "fp32",
    "bf16": "bf16", "bf16-mixed": "bf16",
    "fp16": "fp16", "fp16-mixed": "fp16", "16-mixed": "fp16",
}

#: kind -> the spelling training stores in ``run.precision`` (see :data:`imgtrans.core.config.PRECISIONS`)
TRAINING = {"auto": "auto", "fp32": "fp32", "bf16": "bf16-mixed", "fp16": "fp16-mixed"}
#: kind -> the spelling the inference engine runs (see :data:`imgtrans.inference.engine.PRECISIONS`)
INFERENCE = {"auto": "auto", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"}


def precision_kind(name: str, what: str = "--precision") -> str:
    """``auto``, ``fp32``, ``bf16`` or ``fp16`` for any accepted spelling of ``name``."""
    kind = SPELLINGS.get(str(name).strip().lower()) if isinstance(name, str) else None
    if kind is None:
        raise ConfigError(f"{what} {name!r} is not a precision; use one of {', '.join(SPELLINGS)}")
    return kind


def training_precision(name: str, what: str = "--precision") -> str:
    """``name`` in the spelling ``run.precision`` stores (``bf16`` -> ``bf16-mixed``)."""
    return TRAINING[precision_kind(name, what)]


def inference_precision(name: str, what: str = "--precision") -> str:
    """``name`` in the spelling the inference engine runs (``bf16-mixed`` -> ``bf16``)."""
    return INFERENCE[precision_kind(name, what)]
