"""Pure builders: one of our objects in (ModelDeployment here, TrainingJob in trainingjob/), the
child objects it should have out. No I/O here."""
