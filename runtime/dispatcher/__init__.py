"""The dispatcher: claims queued jobs and starts one worker per job (ECS task or local process).

The decisions are in ``runtime.dispatcher.core`` (dispatch, fail_dead_letter, task_stopped,
StoppedTask) and ``runtime.dispatcher.sweeper``; ``runtime.dispatcher.service.DispatcherService``
holds what they run on and is what the Lambda entry points (``runtime.dispatcher.handler``) and
the local platform's loop call. ``runtime.dispatcher.migrate`` is the migrations custom resource.
"""
