"""Assertions shared by the command-line tests."""


def assert_one_line_error(code, err, *fragments):
    """The command failed with one ``destar: error:`` line, no traceback, naming all
    ``fragments``; returns that line."""
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("destar: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], err
    return lines[0]
