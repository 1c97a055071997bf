"""Pure builders of a TrainingJob's children: a headless Service and one Indexed Job per role."""
