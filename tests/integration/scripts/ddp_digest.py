"""Run a Trainer under torchrun and record, after every step, a digest of this rank's student weights.

Used by test_ddp.py: the digests must be equal across ranks at every step, and the final weights of a
2-rank run must equal a 1-rank run with the same global batch.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from darklight_dist.cli import parse_args
from darklight_dist.distributed import init_distributed, setup_logging, teardown
from darklight_dist.trainer import Trainer


class DigestTrainer(Trainer):
    """A Trainer that remembers its weights' digest after each step."""

    digests: list[str]

    def train_step(self, batch) -> None:  # type: ignore[override]
        super().train_step(batch)
        h = hashlib.sha256()
        for p in self.student.parameters():
            h.update(p.detach().numpy().tobytes())
        self.digests.append(h.hexdigest())


def main() -> None:
    out = Path(sys.argv[1])
    cfg = parse_args(sys.argv[2:])
    env = init_distributed("cpu")
    setup_logging(env.rank)
    t = DigestTrainer(cfg, env)
    t.digests = []
    t.train()
    (out / f"digests_rank{env.rank}.json").write_text(json.dumps(t.digests))
    torch.save(t.student.state_dict(), out / f"weights_rank{env.rank}.pt")
    teardown()


if __name__ == "__main__":
    main()
