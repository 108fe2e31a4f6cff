"""One torchrun rank: build the DALI loaders from the torchrun environment, read an epoch, check across ranks.

Run by test_dali_torchrun.py; rank 0 writes what it found to the JSON path given as argv[2].
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist

from darklight_dist.config import Config
from darklight_dist.data.dali import build_dali_loaders
from darklight_dist.data.layout import scan_image_folder


def main() -> None:
    data, out = sys.argv[1], sys.argv[2]
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    dist.init_process_group("gloo")
    cfg = Config()
    cfg.optim.batch_size, cfg.data.workers, cfg.data.image_size, cfg.data.val_resize_size = 4, 1, 16, 20
    train, val = build_dali_loaders(cfg, rank=rank, world_size=world, local_rank=local, device=torch.device("cpu"),
                                    train_files=scan_image_folder(f"{data}/train"),
                                    val_files=scan_image_folder(f"{data}/val"), layout="nhwc")
    seen = [i for b in train for i in b.indices.tolist()]
    counted = [i for b in val for i in b.indices[: b.valid].tolist()]
    gathered: list = [None] * world
    dist.all_gather_object(gathered, {"rank": rank, "local": local, "steps": train.steps_per_epoch,
                                      "val_steps": val.steps_per_epoch, "train": seen, "val": counted})
    if rank == 0:
        with open(out, "w") as f:
            json.dump(gathered, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
