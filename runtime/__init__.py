"""TranscodeX runtime: the code that runs in the API Lambda, the dispatcher and the worker."""
