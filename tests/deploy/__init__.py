"""Helpers for the deployment tests (tests/test_deploy*.py) and docs/render_dashboard.py."""
