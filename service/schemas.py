"""Request and response bodies of the HTTP API (pydantic v2); extra fields are rejected everywhere."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

SPACES: tuple[str, ...] = ("nb201", "nb101", "darts", "graph", "fbnet", "ofa")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NB201Architecture(_Strict):
    """A NAS-Bench-201 cell by arch string or by official index (exactly one of the two)."""

    space: Literal["nb201"]
    arch: str | None = Field(default=None, description="Arch string |op~0|+|op~0|op~1|+|op~0|op~1|op~2|.")
    index: StrictInt | None = Field(default=None, description="Official NAS-Bench-201 index 0..15624.")

    @model_validator(mode="after")
    def _one_of(self) -> NB201Architecture:
        if (self.arch is None) == (self.index is None):
            raise ValueError("give exactly one of 'arch' and 'index'")
        return self


class NB101Architecture(_Strict):
    """A NAS-Bench-101 cell: upper-triangular 0/1 adjacency matrix plus one op per node."""

    space: Literal["nb101"]
    matrix: list[list[Annotated[int, Field(ge=0, le=1)]]]
    ops: list[str]


DartsPair = tuple[str | StrictInt, StrictInt]


class DartsArchitecture(_Strict):
    """A DARTS genotype: normal and reduce cell, each 8 [op, input state] pairs."""

    space: Literal["darts"]
    normal: list[DartsPair]
    reduce: list[DartsPair]


class GraphNode(_Strict):
    op: str
    attrs: dict[str, Any] = Field(default_factory=dict)


class GraphArchitecture(_Strict):
    """A generic DAG: nodes (op names or {op, attrs}) and [source, destination] edges, in any node order."""

    space: Literal["graph"]
    nodes: list[str | GraphNode]
    edges: list[tuple[StrictInt, StrictInt]]


class FBNetArchitecture(_Strict):
    """An FBNet-space network (HELP's table): 22 searchable layers, each one of k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1,
    k5_e1_g2, k5_e3, k5_e6, skip (space-separated names, a list of names, or codes 0..8)."""

    space: Literal["fbnet"]
    layers: str | list[str] | list[StrictInt]


class OFAArchitecture(_Strict):
    """An Once-for-all MobileNetV3 network: 20 kernel sizes (3/5/7), 20 expansion ratios (3/4/6), 5 stage depths
    (2-4) and the input resolution (128-224, step 4)."""

    space: Literal["ofa"]
    ks: list[StrictInt]
    e: list[StrictInt]
    d: list[StrictInt]
    r: StrictInt


Architecture = Annotated[
    NB201Architecture | NB101Architecture | DartsArchitecture | GraphArchitecture | FBNetArchitecture | OFAArchitecture,
    Field(discriminator="space"),
]


class PredictRequest(_Strict):
    architectures: list[Architecture] = Field(min_length=1, description="Architectures to predict, answered in this order.")
    targets: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Targets to return; null = all of the predictor. Without a named predictor they may span several.",
    )
    predictor: str | None = Field(default=None, description="Predictor name; null = the loaded one supporting the spaces.")


class TargetValue(BaseModel):
    value: float
    unit: str
    std: float | None = Field(
        default=None, description="Standard deviation of the prediction, where the predictor has one (calibrated devices)."
    )


class ArchitectureResult(BaseModel):
    key: str = Field(description="Canonical key: identical for every renumbering of the same DAG.")
    predictions: dict[str, TargetValue]


class AnsweringPredictor(BaseModel):
    predictor: str
    version: str
    targets: list[str] = Field(description="The targets of the response this predictor answered.")


class PredictResponse(BaseModel):
    predictor: str = Field(
        description="The named predictor; else the default one for the request's spaces (when that answers none of the "
        "requested targets, the first predictor of answered_by)."
    )
    version: str
    answered_by: list[AnsweringPredictor] = Field(
        description="Which predictor answered which targets: one entry, unless the request named no predictor and asked "
        "for targets no single predictor offers (each target then comes from the first predictor, by priority, that "
        "offers it)."
    )
    results: list[ArchitectureResult]


class Measurement(_Strict):
    architecture: Architecture
    latency_ms: float = Field(ge=1e-6, le=1e7, allow_inf_nan=False, description="Measured latency on the new device, in ms.")


DEVICE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"  # a calibrated device's name, in requests and on the command line
CalibrationMethod = Literal["auto", "scale", "single", "ridge"]
CALIBRATION_METHODS: tuple[str, ...] = get_args(CalibrationMethod)


class CalibrateRequest(_Strict):
    device: str = Field(
        pattern=DEVICE_PATTERN,
        description="Name of the new device (lower case, digits, '_', '.', '-'); the predictor is calibrated-<device>.",
    )
    measurements: list[Measurement] = Field(min_length=5, description="10-50 measured architectures are typical.")
    base: str | None = Field(default=None, description="Multi-device predictor to calibrate; null = ARCHCAST_CALIBRATION_BASE.")
    method: CalibrationMethod = Field(
        default="auto",
        description="auto = the lower leave-one-out error of 'single' (best one device) and 'ridge'; 'scale' = the best "
        "one device times one factor.",
    )


class CalibrateResponse(BaseModel):
    predictor: str = Field(description="Name to pass as 'predictor' to POST /v1/predict.")
    version: str
    target: str
    base: str
    method: str
    n_samples: int
    loo_mape: float = Field(description="Leave-one-out mean absolute % error on the measurements.")
    loo_rmse_log: float = Field(description="Leave-one-out RMSE of log latency on the measurements.")
    std_log: float = Field(
        description="Std of log latency every prediction carries: loo_rmse_log inflated for the number of measurements."
    )
    sources: dict[str, float] = Field(description="Base latency heads used and their weights (largest first, at most 10).")
    bases_scale_loo_rmse_log: dict[str, float] | None = Field(
        default=None,
        description="ONNX calibrations: every network predictor tried as the base (all shipped ones when no base is "
        "named), by the leave-one-out RMSE of a one-factor fit on it; 'base' is the lowest.",
    )
    persisted: bool = Field(description="Written to ARCHCAST_CALIBRATION_DIR (visible to every worker).")


class TargetInfo(BaseModel):
    name: str
    unit: str
    description: str
    metrics: dict[str, float]
    floor: float | None = Field(
        default=None, description="No prediction is below it: chance accuracy (100 / classes %) for accuracies; null: none."
    )


class PredictorInfo(BaseModel):
    name: str
    version: str
    spaces: list[str]
    ops: list[str]
    targets: list[TargetInfo]
    provider: str
    kind: str = "cell"
    device: dict = {}


class PredictorList(BaseModel):
    predictors: list[PredictorInfo]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code, e.g. invalid_arch, body_too_large.")
    message: str = Field(description="What was wrong with the request, naming the field or limit.")
    request_id: str | None = Field(default=None, description="The request's ID, as in the X-Request-ID response header.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error statuses a route can answer."""
    text = {
        400: "Malformed JSON body.",
        401: "Missing or invalid API key (when keys are configured).",
        404: "Unknown predictor or device.",
        409: "Limit of calibrated predictors reached.",
        413: "Body, batch or graph over a configured limit.",
        415: "Unsupported content type.",
        422: "The architecture or request is invalid (the message names the problem).",
        503: "Not ready, shutting down, or overloaded (Retry-After).",
    }
    return {status: {"model": ErrorResponse, "description": text[status]} for status in statuses}
