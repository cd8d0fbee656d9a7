"""Built-in tax providers (automatic tax by the buyer's location)."""
