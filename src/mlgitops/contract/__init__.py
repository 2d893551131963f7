"""The data contract: its schema here (cheap to import); checking tables in `contract.check`."""

from mlgitops.contract.spec import (
    FEATURE_DTYPES,
    NUMERIC_DTYPES,
    ColumnSpec,
    ContractParams,
    Dtype,
    Role,
    Task,
)

__all__ = [
    "FEATURE_DTYPES",
    "NUMERIC_DTYPES",
    "ColumnSpec",
    "ContractParams",
    "Dtype",
    "Role",
    "Task",
]
