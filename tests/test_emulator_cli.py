"""`tuner emulator ...` on a port that is taken says so, for every emulator."""

from __future__ import annotations

import socket

import pytest


@pytest.mark.parametrize("which", ["gemini", "vertex", "openai"])
def test_a_port_in_use_is_a_clear_error(project, which):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = project.run("emulator", which, "--port", str(port))
    assert result.code == 1, result.output
    assert "internal error" not in result.err, result.err
    assert result.err.splitlines() == [
        f"Error: port {port} on 127.0.0.1 is already in use",
        "  -> stop what listens there, or choose another port with --port (0 picks a free one)",
    ]


@pytest.mark.parametrize("which", ["gemini", "vertex", "openai"])
def test_a_state_file_of_something_else_is_a_clear_error(project, which, tmp_path):
    state = tmp_path / "state.json"
    state.write_text('{"something": "else"}', encoding="utf-8")
    result = project.run("emulator", which, "--port", "0", "--state", str(state))
    assert result.code == 1, result.output
    assert "internal error" not in result.err, result.err
    assert len(result.err.splitlines()) == 2 and f"Error: {state}: not a " in result.err
    assert "-> delete it to start empty" in result.err
