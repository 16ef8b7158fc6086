"""`python tests/job_swap.py JOB GRACE AI-WALLPAPER-ARGS...`: the real CLI (`python -m ai_wallpaper ...`)
with the one thing a test must not run for real swapped out.

JOB is a JSON argv that replaces the generation child the daemon and `next` start (the `{run_id}` and
`{trigger}` placeholders are filled as for the real `generate`); "" keeps the real one. GRACE is how
long a stopped child gets before SIGKILL, in seconds; "" keeps the default. Everything else (argument
parsing, logging, the lock, the scheduler, signals, exit codes) is the product's own code path, and the
product has no switch for this.
"""

from __future__ import annotations

import functools
import json
import sys

from ai_wallpaper.service import daemon, job_runner


def main(argv: list[str]) -> int:
    job, grace, cli_args = argv[0], argv[1], argv[2:]
    if job:
        command = [str(word) for word in json.loads(job)]
        swapped = functools.partial(lambda _config_file: list(command))
        job_runner.generate_command = swapped  # read at call time by `next`
        daemon.generate_command = swapped  # the daemon's module-level name
    if grace:
        job_runner.JobRunner.__init__ = functools.partialmethod(  # type: ignore[method-assign]
            job_runner.JobRunner.__init__, stop_grace_s=float(grace))
    from ai_wallpaper.cli import main as cli_main

    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
