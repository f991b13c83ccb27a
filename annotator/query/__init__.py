"""Which clauses to label next: the strategy registry, scores, cold start, the simulator, stopping."""
