"""Loading and validating a config directory."""
