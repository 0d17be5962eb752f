"""The command line: the tour runs end to end, help works, a user's mistake is one line and exit 2."""
import pytest

from npmobilenet.cli import COMMANDS, main


def test_tour_checks_its_gradients(capsys):
    assert main(["tour", "--channels", "8", "--expand", "16", "--kernel", "3", "--size", "4"]) == 0
    out = capsys.readouterr().out
    assert "all passed" in out and "conv_dw.weight" in out and "se.conv_reduce.weight" in out


def test_user_error_is_one_line(capsys):
    assert main(["tour", "--kernel", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--kernel" in err[0] and "odd" in err[0] and "got 4" in err[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: npmobilenet " + command in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out
