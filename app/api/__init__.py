"""What users can ask of sggw over HTTP: the service behind every operation, the REST
handlers, the bounded HTTP server, the OpenAPI document and the Prometheus metrics."""
