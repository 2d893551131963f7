"""The BentoML service: packaging the trained pipeline, the service, its request guards."""
