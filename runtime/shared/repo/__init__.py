"""Repositories: the only code that reads or writes the job and upload tables.

One module per table (``jobs``, ``uploads``, ``outputs`` for ``job_outputs``); everything else
calls their functions with a connection from runtime.shared.db. Every status change is ONE
guarded UPDATE (``WHERE id = … AND status = ANY(…) RETURNING …``) whose sources come from
runtime.shared.status: two processes racing for a row cannot both win, and no code reads a
status and then writes based on it. tests/unit/test_repositories.py fails on SQL against these
tables anywhere else in runtime/.
"""
