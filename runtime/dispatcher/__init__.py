"""The dispatcher: claims queued jobs and starts one worker per job (ECS task or local process).

Import the cores from ``runtime.dispatcher.core`` (dispatch, fail_dead_letter, task_stopped,
StoppedTask) and the launchers from ``runtime.dispatcher.launchers``; the Lambda entry points
are in ``runtime.dispatcher.handler`` and ``runtime.dispatcher.migrate``.
"""
