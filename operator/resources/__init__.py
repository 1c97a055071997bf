"""Pure builders: a ModelDeployment in, the child objects it should have out. No I/O here."""
