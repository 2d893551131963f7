import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlgitops.infra.outputs import (
    REMOTE_OUTPUT,
    VARIABLES,
    StackError,
    find_stack,
    setup_from_outputs,
)

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


@pytest.mark.parametrize(
    ("code", "message", "absent"),
    [
        ("ValidationError", "Stack with id mlgitops does not exist", True),
        ("AccessDenied", "User is not authorized to perform cloudformation:DescribeStacks", False),
        ("ExpiredToken", "The security token included in the request is expired", False),
    ],
)
def test_only_a_missing_stack_reads_as_absent(code: str, message: str, absent: bool) -> None:
    # An unreadable stack must not pass for a missing one: a change set of type CREATE over a
    # stack the role cannot see would fail with an error that names neither.
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(
        "cloudformation",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stub:
        stub.add_client_error("describe_stacks", service_error_code=code, service_message=message)
        if absent:
            assert find_stack(client, "mlgitops") is None
        else:
            with pytest.raises(StackError, match="cannot read stack 'mlgitops'"):
                find_stack(client, "mlgitops")
