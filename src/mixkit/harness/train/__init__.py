"""The harness: configuration, methods by name, the training loop, comparisons."""
