"""A small HTTP/1.1 server on httptools, for the REST APIs and metrics."""
