"""``GET /v1/predictors``: the loaded predictors with their spaces, ops, targets (unit, description, metrics)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from service.deps import get_registry
from service.predictor import Registry
from service.schemas import PredictorInfo, PredictorList, TargetInfo

router = APIRouter(prefix="/v1", tags=["predictors"])


@router.get("/predictors", response_model=PredictorList)
def list_predictors(registry: Annotated[Registry, Depends(get_registry)]) -> PredictorList:
    infos = []
    for name in sorted(registry.predictors):
        predictor = registry.predictors[name]
        card = predictor.card
        targets = [TargetInfo(name=t.name, unit=t.unit, description=t.description, metrics=t.metrics) for t in card.targets]
        infos.append(
            PredictorInfo(
                name=card.name, version=card.version, spaces=card.spaces, ops=card.ops, targets=targets,
                provider=predictor.provider,
            )
        )
    for name in sorted(registry.networks):
        network = registry.networks[name]
        card = network.card
        targets = [TargetInfo(name=t.name, unit=t.unit, description=t.description, metrics=t.metrics) for t in card.targets]
        infos.append(
            PredictorInfo(
                name=card.name, version=card.version, spaces=card.spaces, ops=card.ops, targets=targets,
                provider=network.provider, kind="network", device=card.device,
            )
        )
    return PredictorList(predictors=infos)
