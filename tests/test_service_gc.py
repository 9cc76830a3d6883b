"""The serving process's garbage collector: frozen start-up objects and a raised young threshold while an app runs."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from service.app import create_app
from service.gc_tuning import GEN0_THRESHOLD, serving_gc
from service.settings import Settings


def test_serving_gc_freezes_and_restores() -> None:
    before = gc.get_threshold()
    with serving_gc():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GEN0_THRESHOLD
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


def test_disabled_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    with serving_gc(enabled=False):
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == before


def test_an_app_tunes_the_collector_while_it_serves(toy_predictors) -> None:
    before = gc.get_threshold()
    for enabled in (True, False):
        settings = Settings(predictor_dir=toy_predictors[0], providers="cpu", gc_tuning=enabled)
        with TestClient(create_app(settings)) as client:
            assert client.get("/readyz").status_code == 200
            assert (gc.get_freeze_count() > 0) is enabled
            assert (gc.get_threshold()[0] == GEN0_THRESHOLD) is enabled
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
