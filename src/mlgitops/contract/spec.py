"""The data contract's schema: column types, roles and the contract section (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from mlgitops.sections import Section

Task = Literal["classification", "regression"]
Dtype = Literal["float", "int", "category", "bool", "string", "date"]
Role = Literal["feature", "target", "identifier", "personal", "ignored"]

FEATURE_DTYPES: frozenset[str] = frozenset({"float", "int", "category", "bool"})
NUMERIC_DTYPES: frozenset[str] = frozenset({"float", "int"})


class ColumnSpec(Section):
    """One column of the raw table: its type, its role and what values it may hold."""

    dtype: Dtype
    role: Role = "feature"
    description: str = ""
    nullable: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    # What the service does with a category it has never seen; training data always rejects it.
    on_unknown: Literal["reject", "map_to_unknown"] = "reject"

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.dtype == "category" and not self.categories:
            raise ValueError("a 'category' column needs a non-empty 'categories' list")
        if self.categories is not None and self.dtype != "category":
            raise ValueError(
                f"'categories' is only allowed with dtype 'category', got '{self.dtype}'"
            )
        if (self.min is not None or self.max is not None) and self.dtype not in NUMERIC_DTYPES:
            raise ValueError(
                f"'min'/'max' are only allowed on float or int columns, got '{self.dtype}'"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        if self.role == "feature" and self.dtype not in FEATURE_DTYPES:
            raise ValueError(
                f"a feature must have dtype one of {sorted(FEATURE_DTYPES)}, got '{self.dtype}'; "
                "declare free text as role 'personal' and dates as role 'ignored'"
            )
        return self


class ContractParams(Section):
    """The data contract: every column of the raw table, the target and the task."""

    task: Task
    strict: bool = True
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _one_target(self) -> ContractParams:
        problems = []
        targets = [name for name, spec in self.columns.items() if spec.role == "target"]
        if len(targets) != 1:
            problems.append(f"exactly one column must have role 'target', got {targets}")
        else:
            target_spec = self.columns[targets[0]]
            if target_spec.nullable:
                problems.append(f"the target column '{targets[0]}' cannot be nullable")
            if self.task == "classification" and target_spec.dtype not in {
                "category",
                "bool",
                "int",
            }:
                problems.append(
                    "a classification target must be category, bool or int, "
                    f"got '{target_spec.dtype}'"
                )
            if self.task == "regression" and target_spec.dtype not in NUMERIC_DTYPES:
                problems.append(
                    f"a regression target must be float or int, got '{target_spec.dtype}'"
                )
        if not self.features:
            problems.append("the contract declares no column with role 'feature'")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _with_role(self, role: Role) -> tuple[str, ...]:
        return tuple(name for name, spec in self.columns.items() if spec.role == role)

    @property
    def target(self) -> str:
        """The target column's name."""
        return self._with_role("target")[0]

    @property
    def features(self) -> tuple[str, ...]:
        """The feature columns, in contract order."""
        return self._with_role("feature")

    @property
    def identifiers(self) -> tuple[str, ...]:
        """The identifier columns."""
        return self._with_role("identifier")

    @property
    def personal(self) -> tuple[str, ...]:
        """The personal-data columns, never features."""
        return self._with_role("personal")

    @property
    def numeric_features(self) -> tuple[str, ...]:
        """The float and int features."""
        return tuple(c for c in self.features if self.columns[c].dtype in NUMERIC_DTYPES)

    @property
    def categorical_features(self) -> tuple[str, ...]:
        """The category and bool features."""
        return tuple(c for c in self.features if self.columns[c].dtype not in NUMERIC_DTYPES)
