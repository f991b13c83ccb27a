"""Where the project lives: the Store (all SQL), its engines, the model registry, locks."""
