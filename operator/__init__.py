"""modelship operator: reconciles ModelDeployment and TrainingJob objects."""
