"""Code shared by the API, the dispatcher and the worker: settings, job contract, database."""
