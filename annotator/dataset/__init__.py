"""The training data a project exports: resolution, cleaning, label issues, splits, the datasheet."""
