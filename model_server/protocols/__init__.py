"""Protocol adapters: wire formats in, tensors to the data plane, wire formats out.

They never run TensorFlow; tensors cross as numpy arrays (strings as object arrays of bytes).
"""
