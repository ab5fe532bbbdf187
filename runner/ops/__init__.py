"""One module per operation (Terraform's `command/`): each opens nothing itself, takes the opened Project
(runner/project.py), does its work under `project.locked_state(operation)` when it writes state, and returns
plain data for a view in runner/render/. The CLI calls one operation and one view per command.
"""
