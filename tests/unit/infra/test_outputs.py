import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlgitops.infra.outputs import REMOTE_OUTPUT, VARIABLES, StackError, setup_from_outputs

# Output values as a stack could hold them, shell metacharacters included.
VALUES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1)


@given(values=st.fixed_dictionaries({key: VALUES for key in [*VARIABLES, REMOTE_OUTPUT]}))
def test_commands_set_each_variable_to_its_output_whatever_the_value(values):
    setup = setup_from_outputs(values)
    lines = setup.commands("acme/churn")
    assigned = {}
    for line in lines[:-1]:
        words = shlex.split(line)
        assert words[:3] == ["gh", "variable", "set"]
        assert words[-2:] == ["--repo", "acme/churn"]
        assigned[words[3]] = words[5]
    assert assigned == {name: values[key] for key, name in VARIABLES.items()}
    assert shlex.split(lines[-1])[-1] == values[REMOTE_OUTPUT]


@pytest.mark.parametrize("missing", [*VARIABLES, REMOTE_OUTPUT])
def test_a_missing_output_is_named(missing):
    outputs = {key: "x" for key in [*VARIABLES, REMOTE_OUTPUT] if key != missing}
    with pytest.raises(StackError, match=missing):
        setup_from_outputs(outputs)
