"""The TensorFlow runtime: the only package that imports TensorFlow."""
