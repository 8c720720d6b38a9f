"""Worker processes: the engine, service workers, or both (`Worker`)."""
