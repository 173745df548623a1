"""The `longrec` command line: thin typer commands over the library."""
