"""TrainingJob's controller: Jobs per role, their state, progress, and the export a ModelDeployment
serves."""
