"""The real trainer, recording which samples each rank trained on (for the shard tests).

``python -m tests.slurm.record_indices TRAINER-FLAGS`` under torchrun: a Trainer whose
train_step remembers ``batch.indices``; each rank writes ``indices_rank<R>.json`` (its
global rank, node rank and the indices, step by step) into ``--output-dir``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from darklight_dist.cli import parse_args
from darklight_dist.distributed import init_distributed, setup_logging, teardown
from darklight_dist.trainer import Trainer


class IndexRecordingTrainer(Trainer):
    """A Trainer that keeps the data-set indices of every batch it trains on."""

    seen: list[list[int]]

    def train_step(self, batch) -> None:  # type: ignore[override]
        super().train_step(batch)
        self.seen.append([] if batch.indices is None else [int(i) for i in batch.indices])


def main(argv: list[str]) -> int:
    cfg = parse_args(argv)
    env = init_distributed(cfg.run.device)
    setup_logging(env.rank)
    trainer = IndexRecordingTrainer(cfg, env)
    trainer.seen = []
    summary = trainer.train()
    record = {"rank": env.rank, "node_rank": env.node_rank, "world_size": env.world_size,
              "steps": summary["steps"], "indices": trainer.seen}
    Path(cfg.checkpoint.output_dir, f"indices_rank{env.rank}.json").write_text(json.dumps(record))
    teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
