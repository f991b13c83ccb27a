"""annotator: active-learning annotation of Chinese policy clauses."""
