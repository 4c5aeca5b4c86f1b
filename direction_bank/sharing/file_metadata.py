"""The JSON metadata of dbank files, type-checked field by field (pydantic, strict: no bool for
an int, no string for a number, no NaN) before anything in it is trusted."""
from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from direction_bank.errors import FileRejected

MAX_COUNT = 2**31 - 1
Text = Annotated[str, Field(max_length=4096)]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Number = Annotated[float, Field(allow_inf_nan=False)]


def _bounded_json(limit: int):
    """A check that a free-form JSON value (provenance settings, a recipe) serialises to at most
    `limit` characters: the bank stores it in every row it comes with."""
    def check(value):
        import json

        if value is not None and len(json.dumps(value, default=str)) > limit:
            raise ValueError(f"more than {limit} characters of JSON")
        return value

    return AfterValidator(check)


Settings = Annotated[Optional[dict[str, Any]], _bounded_json(8192)]
Recipe = Annotated[Optional[dict[str, Any]], _bounded_json(65536)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class EncoderMeta(_Strict):
    """The text encoder a file was made with."""

    model: Annotated[str, Field(max_length=1024)]
    encoder_class: Annotated[str, Field(max_length=128)]
    hidden_size: Annotated[int, Field(ge=1, le=65536)]
    max_length: Annotated[int, Field(ge=1, le=4096)]
    pooled_size: Optional[Annotated[int, Field(ge=1, le=65536)]] = None
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class TensorMeta(_Strict):
    """Shape, dtype and SHA-256 of one stored tensor."""

    shape: list[Annotated[int, Field(ge=0)]]
    dtype: Text
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ConceptRef(_Strict):
    """A concept a direction joins, with the sentences its mean averaged."""

    name: Name
    sentence_count: Optional[Count] = None


class Confidence(_Strict):
    """How far a direction can be trusted (see confidence.py)."""

    snr: Optional[Annotated[float, Field(allow_inf_nan=False, ge=0)]] = None


class SentenceMeta(_Strict):
    """A sentence inside a concept bundle, with its provenance."""

    text: Annotated[str, Field(min_length=1, max_length=4096)]
    generator: Optional[Annotated[str, Field(max_length=64)]] = None
    generator_model: Optional[Annotated[str, Field(max_length=1024)]] = None
    prompt_version: Optional[Annotated[str, Field(max_length=64)]] = None
    settings: Settings = None
    created_at: Optional[Text] = None


class _Common(_Strict):
    format: Text
    format_version: int
    dbank_version: Optional[Text] = None
    created_at: Optional[Text] = None
    name: Optional[Name] = None
    base_model: Optional[Annotated[str, Field(max_length=1024)]] = None
    encoder: EncoderMeta
    tensors: dict[str, TensorMeta]
    generators: Optional[list[dict[str, Any]]] = None


def _bounded(name: str):
    from sd_models.settings import SETTING_BOUNDS

    low, high = SETTING_BOUNDS[name]
    return Annotated[float, Field(ge=low, le=high, allow_inf_nan=False)]


class Tuning(_Strict):
    """A direction's tuned settings (dbank tune): the scale and cross-attention guidance edits use
    when none is given, with how they were chosen (free-form, bounded: scores, rule, models)."""

    scale: _bounded("scale")
    xa_guidance: _bounded("xa_guidance")


def checked_tuning(tuning) -> dict:
    """The tuning as a plain dict, or FileRejected in one line naming the bad field."""
    try:
        Tuning.model_validate(tuning)
        _bounded_json(16384).func(tuning)
    except (ValidationError, ValueError) as error:
        first = error.errors()[0] if isinstance(error, ValidationError) else {"loc": (), "msg": str(error)}
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise FileRejected(f"tuning field {where}: {first['msg']}") from None
    return dict(tuning)


class DirectionMeta(_Common):
    """A direction file's metadata."""

    source: Optional[ConceptRef] = None
    target: Optional[ConceptRef] = None
    recipe: Recipe = None
    confidence: Optional[Confidence] = None
    tuning: Annotated[Optional[Tuning], _bounded_json(16384)] = None


class ConceptMeta(_Common):
    """A concept bundle's metadata."""

    count: Annotated[int, Field(ge=1, le=MAX_COUNT)]
    origin: Optional[Annotated[str, Field(max_length=1024)]] = None
    sentence_count: Optional[Count] = None
    sentences: list[SentenceMeta] = []


def validate_metadata(file_name: str, kind: str, meta: dict) -> None:
    """Raise FileRejected, in one line naming the first bad field, unless every field of the
    metadata has the type and range its kind ('direction' or 'concept') needs."""
    model = DirectionMeta if kind == "direction" else ConceptMeta
    try:
        model.model_validate({k: v for k, v in meta.items() if k != "kind"})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise FileRejected(f"{file_name}: metadata field {where}: {first['msg']}") from None
