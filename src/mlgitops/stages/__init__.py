"""The DVC pipeline stages, one module each; `dvc.yaml` wires them together."""
