"""`python -m longrec.serve --model DIR [--db URL] [--host H] [--port P]` (same as `longrec serve`)."""

import typer

from longrec.cli._common import handle_errors
from longrec.cli.serve import serve

if __name__ == "__main__":
    typer.run(handle_errors(serve))
