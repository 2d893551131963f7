"""Batch scoring: the reviewed model over a table of any size, on one machine or a Dask cluster."""
