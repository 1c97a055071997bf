"""Example training functions that ship with modelship, e.g.
`--model modelship_server.training.examples.digits:model`."""
