"""HTTP routers: predictions, predictor listing, health, Prometheus metrics."""
