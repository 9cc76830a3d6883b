"""``GET /v1/predictors``: the loaded predictors with their spaces, ops, targets (unit, description, metrics)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from model.card import ModelCard
from service.deps import get_registry
from service.predictor import Registry
from service.schemas import PredictorInfo, PredictorList, TargetInfo, error_responses

router = APIRouter(prefix="/v1", tags=["predictors"], responses=error_responses(401, 503))


def _info(card: ModelCard, provider: str) -> PredictorInfo:
    targets = [
        TargetInfo(name=t.name, unit=t.unit, description=t.description, metrics=t.metrics, floor=t.floor)
        for t in card.targets
    ]
    return PredictorInfo(
        name=card.name, version=card.version, spaces=card.spaces, ops=card.ops, targets=targets, provider=provider,
        kind=card.kind, device=card.device,
    )


@router.get("/predictors", response_model=PredictorList)
def list_predictors(registry: Annotated[Registry, Depends(get_registry)]) -> PredictorList:
    """Cell predictors, then whole-network (ONNX) predictors, each sorted by name."""
    cells = [_info(registry.predictors[n].card, registry.predictors[n].provider) for n in sorted(registry.predictors)]
    networks = [_info(registry.networks[n].card, registry.networks[n].provider) for n in sorted(registry.networks)]
    return PredictorList(predictors=cells + networks)
