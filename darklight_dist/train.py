"""Entry point: `torchrun --nproc_per_node=N -m darklight_dist.train ...` (or plain `python -m`).

Parse the config, join the process group, build the Trainer, train, tear down. Exit status:
0 done, 2 bad input (a DarklightError, printed once on rank 0 without a traceback),
75 stopped by SIGTERM/SIGUSR1 after a checkpoint (requeue me), anything else is a bug.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional, Sequence

from .errors import DarklightError

EXIT_OK, EXIT_BAD_INPUT, EXIT_REQUEUE = 0, 2, 75
log = logging.getLogger("darklight_dist")


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Run one rank's job and return its exit status."""
    from .cli import parse_args, to_toml
    from .distributed import init_distributed, setup_logging, teardown

    env = None
    try:
        cfg = parse_args(argv)
        setup_logging(int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))))  # before init: it logs
        env = init_distributed(cfg.run.device)
        if cfg.run.dry_run:
            if env.is_main:
                print(to_toml(cfg), end="")
            from .trainer import validate_config
            validate_config(cfg)
            return EXIT_OK
        from .trainer import Trainer
        summary = Trainer(cfg, env).train()
        return EXIT_REQUEUE if summary["stop_reason"] == "signal" else EXIT_OK
    except DarklightError as e:
        if env is None or env.is_main:
            print(f"darklight_dist: error: {e}", file=sys.stderr)
        elif e.rank_local:  # rank 0 cannot know it: it only sees this rank leave its collectives
            print(f"darklight_dist: error: [rank {env.rank}] {e}", file=sys.stderr)
        return e.exit_code
    finally:
        teardown()


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console-script entry point."""
    from torch.distributed.elastic.multiprocessing.errors import record

    sys.exit(record(run)(argv))


if __name__ == "__main__":
    main()
