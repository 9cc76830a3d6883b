"""HTTP routers: predictions, predictor listing, health."""
