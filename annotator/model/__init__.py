"""The classifier and its features: featurizer, PolicyClassifier, calibration, training, pool cache."""
